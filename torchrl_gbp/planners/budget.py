"""When an iterative search stops: its iteration count, a wall-clock budget, a cost plateau."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class SearchBudget:
    """Stopping rules shared by every planner's search loop (on top of its iteration count).

    Args:
        max_seconds: wall-clock seconds one ``plan`` call may spend searching.
            Before each iteration the search predicts its end from the mean
            iteration time so far and stops if that would overrun, then returns
            its best plan so far. ``None``: no time limit.
        patience: stop once the batch's total best cost has not improved by
            more than ``tolerance`` (relative) for ``patience`` iterations in a
            row. ``None``: never stop on a plateau.
        tolerance: relative improvement that counts as progress.
        clock: the seconds counter ``max_seconds`` is measured with (default
            ``time.perf_counter``; tests inject a simulated one).

    Checking the plateau reads the cost on the host (one sync per iteration on
    a GPU); without ``patience`` the loop never syncs, and on a GPU the time
    check then sees the host's clock, which runs ahead of queued kernels.

    Example:
        >>> budget = SearchBudget(max_seconds=0.02, patience=5)
        >>> clock = budget.start()
        >>> clock.should_stop(torch.tensor([1.0]))
        False
    """

    max_seconds: float | None = None
    patience: int | None = None
    tolerance: float = 1e-4
    clock: Callable[[], float] = field(default=time.perf_counter, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"SearchBudget max_seconds must be > 0 or None, got {self.max_seconds}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"SearchBudget patience must be >= 1 or None, got {self.patience}")
        if self.tolerance < 0:
            raise ValueError(f"SearchBudget tolerance must be >= 0, got {self.tolerance}")

    def start(self) -> BudgetClock:
        """A fresh clock for one search."""
        return BudgetClock(self)


class BudgetClock:
    """The running state of one search under a :class:`SearchBudget`.

    Example:
        >>> clock = SearchBudget(patience=2).start()
        >>> [clock.should_stop(torch.tensor([1.0])) for _ in range(3)]  # the cost never improves
        [False, False, True]
        >>> clock.iterations, clock.stop_reason
        (3, 'plateau')
    """

    def __init__(self, budget: SearchBudget) -> None:
        self.budget = budget
        self.started = budget.clock()
        self.iterations = 0
        self.best = float("inf")
        self.stalled = 0
        self.stop_reason = "iterations"

    def should_stop(self, best_cost: torch.Tensor) -> bool:
        """Record one finished iteration whose best costs so far are ``best_cost``; say whether to stop.

        ``best_cost`` is only read when the budget has a ``patience``.
        """
        self.iterations += 1
        budget = self.budget
        if budget.patience is not None:
            total = float(best_cost.sum())
            if total < self.best - budget.tolerance * abs(self.best) or self.best == float("inf"):
                self.best, self.stalled = total, 0
            else:
                self.stalled += 1
                if self.stalled >= budget.patience:
                    self.stop_reason = "plateau"
                    return True
        if budget.max_seconds is not None:
            elapsed = self.budget.clock() - self.started
            # One more iteration plus the final scoring of the plan must still fit.
            if elapsed * (self.iterations + 1.5) / self.iterations > budget.max_seconds:
                self.stop_reason = "time"
                return True
        return False
