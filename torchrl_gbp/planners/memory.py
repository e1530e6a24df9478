"""How much of the model one planner call evaluates at once: the memory bound of planning."""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryOptions:
    """Bounds on what one world-model evaluation of a search holds in memory.

    A planner evaluates its candidates as rows: ``B x R`` (envs x restarts) for the gradient search,
    ``B x N`` (envs x samples) for the sampling searches. With ``chunk_rows`` it runs the rollout and cost
    (and, for the gradient search, their backward pass) on at most that many rows at a time: whole envs
    when ``chunk_rows >= R`` (or ``N``), else part of one env's candidates. Only the model's activations
    are chunked; the search's state, noise and stopping rules stay batched, so a chunked search returns
    the same plans as an unchunked one (up to floating-point rounding of the model's batched products).

    The rule :meth:`for_budget` applies: peak bytes of a search step are about ``fixed + rows x per_row``,
    where ``per_row`` is the activation memory of one row (measured in
    ``docs/results/planning_memory.md``: a full-size DINO-WM GD step, one-frame rollout, H=5) and
    ``fixed`` the weights, inputs and allocator slack; so ``chunk_rows = (budget - fixed) // per_row``.

    Args:
        chunk_rows: the most rows per model evaluation (``None``: all at once).

    Example:
        >>> MemoryOptions(chunk_rows=64).chunk_rows
        64
        >>> list(MemoryOptions(chunk_rows=4).blocks(batch=3, candidates=2))  # two envs, then the last one
        [(slice(0, 2, None), slice(0, 2, None)), (slice(2, 3, None), slice(0, 2, None))]
    """

    chunk_rows: int | None = None

    def __post_init__(self) -> None:
        if self.chunk_rows is not None and (not isinstance(self.chunk_rows, int) or self.chunk_rows < 1):
            raise ValueError(f"MemoryOptions chunk_rows must be an int >= 1 or None, got {self.chunk_rows!r}")

    @classmethod
    def for_budget(cls, budget_bytes: float, per_row_bytes: float, fixed_bytes: float = 0.0) -> MemoryOptions:
        """The largest ``chunk_rows`` whose step fits ``budget_bytes``: ``(budget - fixed) // per_row``.

        Example:
            >>> GB = 2**30
            >>> MemoryOptions.for_budget(40 * GB, per_row_bytes=0.5 * GB, fixed_bytes=4 * GB).chunk_rows
            72
        """
        if not per_row_bytes > 0:
            raise ValueError(f"per_row_bytes must be > 0, got {per_row_bytes!r}")
        rows = math.floor((budget_bytes - fixed_bytes) / per_row_bytes)
        if rows < 1:
            raise ValueError(f"budget_bytes={budget_bytes:.4g} holds no row: the fixed {fixed_bytes:.4g} bytes "
                             f"plus one row of {per_row_bytes:.4g} bytes need more")
        return cls(chunk_rows=rows)

    def blocks(self, batch: int, candidates: int) -> Iterator[tuple[slice, slice]]:
        """``(env slice, candidate slice)`` blocks covering ``batch x candidates`` rows, each at most
        ``chunk_rows`` (the whole grid at once without a ``chunk_rows``)."""
        rows = self.chunk_rows
        if rows is None or batch * candidates <= rows:
            yield slice(0, batch), slice(0, candidates)
        elif rows >= candidates:
            envs = rows // candidates
            for start in range(0, batch, envs):
                yield slice(start, min(start + envs, batch)), slice(0, candidates)
        else:
            for env in range(batch):
                for start in range(0, candidates, rows):
                    yield slice(env, env + 1), slice(start, min(start + rows, candidates))
