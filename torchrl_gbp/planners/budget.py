"""When an iterative search stops: its iteration count, a wall-clock budget, a per-env cost plateau."""
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
        patience: each env (batch element) stops once its own best cost has not
            improved by more than ``tolerance`` times its first cost of the
            search for ``patience`` iterations in a row; a stopped env's search
            state is frozen (masked) and the loop ends when every env has
            stopped. ``None``: never stop on a plateau.
        tolerance: improvement per iteration, relative to the env's first cost, that counts as progress
            (relative to the first cost rather than the current one, so an env creeping towards a small
            cost stops as soon as one that started there would).
        clock: the seconds counter ``max_seconds`` is measured with (default
            ``time.perf_counter``; tests inject a simulated one).

    What each rule costs on a GPU: none of them reads a tensor when no budget is
    set (the loop never synchronises with the host); the plateau rule keeps its
    per-env counters on the device and reads one boolean per iteration (is any
    env still searching?); the time rule reads the host's clock only, which runs
    ahead of queued kernels.

    Example:
        >>> budget = SearchBudget(max_seconds=0.02, patience=5)
        >>> clock = budget.start(batch=1, device=torch.device("cpu"))
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

    def start(self, batch: int, device: torch.device) -> BudgetClock:
        """A fresh clock for one search over ``batch`` envs whose tensors live on ``device``."""
        return BudgetClock(self, batch, device)


class BudgetClock:
    """The running state of one search under a :class:`SearchBudget`.

    ``active`` ``(B,)`` (``None`` without a ``patience``): the envs still
    searching, on the search's device; loops freeze the others' state with it.
    ``iterations`` counts the loop's iterations, that is those of the env that
    stopped last.

    Example:
        >>> clock = SearchBudget(patience=2).start(batch=2, device=torch.device("cpu"))
        >>> costs = [torch.tensor([1.0, 3.0]), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]),
        ...          torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])]
        >>> [clock.should_stop(cost) for cost in costs]  # env 0 stalls from the start, env 1 two steps later
        [False, False, False, False, True]
        >>> clock.iterations, clock.stop_reason, clock.active.tolist()
        (5, 'plateau', [False, False])
    """

    def __init__(self, budget: SearchBudget, batch: int, device: torch.device) -> None:
        self.budget = budget
        self.started = budget.clock()
        self.iterations = 0
        self.stop_reason = "iterations"
        self.active: torch.Tensor | None = None
        if budget.patience is not None:
            self.active = torch.ones(batch, dtype=torch.bool, device=device)
            self.best = torch.full((batch,), float("inf"), device=device)
            self.stalled = torch.zeros(batch, dtype=torch.long, device=device)

    def should_stop(self, best_cost: torch.Tensor) -> bool:
        """Record one finished iteration whose best costs so far are ``best_cost`` ``(B, ...)`` (an env's cost:
        the least over its trailing dimensions, for example restarts); say whether to stop.

        ``best_cost`` is only read when the budget has a ``patience`` (then on the device, but for the one
        boolean that says whether any env is still searching).
        """
        self.iterations += 1
        budget = self.budget
        if self.active is not None:
            cost = best_cost.detach().reshape(best_cost.shape[0], -1).amin(1).to(self.best.dtype)
            if self.iterations == 1:
                self.scale = cost.abs()
            progress = (cost < self.best - budget.tolerance * self.scale) | torch.isinf(self.best)
            self.best = torch.where(progress, cost, self.best)
            self.stalled = torch.where(progress, 0, self.stalled + 1)
            self.active = self.active & (self.stalled < budget.patience)
            if not bool(self.active.any()):  # the one host read a plateau rule costs
                self.stop_reason = "plateau"
                return True
        if budget.max_seconds is not None:
            elapsed = budget.clock() - self.started
            # One more iteration plus the final scoring of the plan must still fit.
            if elapsed * (self.iterations + 1.5) / self.iterations > budget.max_seconds:
                self.stop_reason = "time"
                return True
        return False

    def freeze(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """``new`` where the env is still searching, ``old`` where it has stopped (``new`` itself without a
        plateau rule); the env is dimension 0."""
        if self.active is None:
            return new
        return torch.where(self.active.view(-1, *[1] * (new.ndim - 1)), new, old)
