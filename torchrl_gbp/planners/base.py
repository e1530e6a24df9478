"""What all planners share: the problem definition, the candidate rollout and its score."""
from __future__ import annotations

import abc
import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

import torch

from ..models.contract import PlanningWorldModel, RolloutModel, encode_entries, proprio_dim, require
from ..objectives import GoalCost
from .budget import BudgetClock, SearchBudget
from .memory import MemoryOptions

# Which plan a search returns: the cheapest it saw, or where it ended.
RESULT_RULES = ("best", "final")


class PlanResult(NamedTuple):
    """What one planning call measured.

    ``actions`` ``(B, H, A)``: the plan (normalised model actions); ``cost``
    ``(B,)``: its model cost; ``iterations``: the search loop's iterations
    (optimiser steps, sampling rounds; both stages for hybrids), one count for the
    batch: under a plateau budget each env stops on its own (its state frozen from
    then on) and this is the count of the env that stopped last; ``stop_reason``:
    ``"iterations"`` (the full count), ``"time"`` or ``"plateau"`` (the
    planner's :class:`SearchBudget` stopped it; ``"plateau"``: every env had).

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.planners import make_planner
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> planner = make_planner("cem", model, horizon=3, samples=16, elites=4, iterations=2)
        >>> start, goal = {"observation": torch.zeros(4, 2)}, {"observation": torch.ones(4, 2)}
        >>> result = planner.plan(*planning_inputs(model, start, goal))
        >>> result.actions.shape, result.cost.shape, result.iterations, result.stop_reason, result.nonfinite
        (torch.Size([4, 3, 10]), torch.Size([4]), 2, 'iterations', 0)
    """

    actions: torch.Tensor
    cost: torch.Tensor
    iterations: int = 0
    stop_reason: str = "iterations"

    @property
    def nonfinite(self) -> int:
        """Batch elements left with a non-finite cost (no finite plan found)."""
        return int((~torch.isfinite(self.cost)).sum())


class Planner(abc.ABC):
    """Base class: searches ``H`` normalised model actions that bring the latent to a goal.

    Every planner scores candidates with the same :meth:`score` (the world model's
    ``rollout`` followed by the shared :class:`GoalCost`) and differs only in
    :meth:`search`.

    Args:
        world_model: any :class:`~torchrl_gbp.models.RolloutModel` (``action_dim`` and
            ``rollout(z_hist, a_hist, actions)``; see the guide "Bring your own world model").
        objective: the goal cost (default ``GoalCost("all", base=0.5, alpha=1)`` with the
            world model's ``proprio_dim`` when it has one).
        horizon: planned model steps ``H``.
        action_low, action_high: bounds ``(A,)`` of the normalised model action;
            every candidate is projected into them. ``None``: unbounded.
        budget: extra stopping rules (wall-clock seconds, cost plateau) for the
            search loop; ``None``: run the planner's full iteration count.
        compile: score candidates with ``torch.compile`` of the rollout and cost
            (forward and backward); a string is ``torch.compile``'s ``mode`` (``"reduce-overhead"``:
            CUDA graphs on a GPU, for the fixed shapes of a planning loop; on a CPU the same code as
            ``True``); falls back to eager, with a warning, where
            compilation fails. Each new batch shape compiles once (seconds); every
            compiled planner is one more entry of Dynamo's cache for the shared
            scoring code, so a process that builds many may need a larger
            ``torch._dynamo.config.recompile_limit`` (default 8; past it, eager).
        autocast_dtype: run the rollout under ``torch.autocast`` with this dtype
            (for example ``torch.bfloat16``: several times faster matrix products
            on CPUs with AVX512-BF16/AMX and on GPUs); the cost is computed from the
            predicted latents in the inputs' dtype (fp32). ``None``: full precision.
        memory: :class:`MemoryOptions`, the bound on rows per model evaluation (``None``: no bound).
        tf32: on CUDA, plan with TF32 matrix products and convolutions (``True``, the default: Ampere and
            newer GPUs run fp32 products several times faster at a 10-bit mantissa, well within planning's
            noise); set for the ``plan`` call only, restored after it. No effect on other devices.
        result: which plan a search returns: ``"best"``, the cheapest it saw (the
            default), or ``"final"``, where it ended (the gradient planner's last
            iterate, after the last noise; the sampling planners' final mean), as
            the reference code does. Best-of picks the plan the model likes most,
            which is where a model is exploited.

    :meth:`plan` returns everything a call measured (:class:`PlanResult`);
    the planner keeps no per-call state.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> class ZeroPlanner(Planner):  # a planner only defines its search
        ...     def search(self, z_hist, a_hist, z_goal, init, generator, clock):
        ...         actions = self.cold_start(z_hist.shape[0], z_hist, generator)
        ...         return actions, self.score(z_hist, a_hist, z_goal, actions.unsqueeze(1)).squeeze(1)
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> planner = ZeroPlanner(model, horizon=4)
        >>> start, goal = {"observation": torch.zeros(3, 2)}, {"observation": torch.ones(3, 2)}
        >>> result = planner.plan(*planning_inputs(model, start, goal))
        >>> result.actions.shape, result.cost.shape
        (torch.Size([3, 4, 10]), torch.Size([3]))
    """

    def __init__(self, world_model, *, objective: GoalCost | None = None, horizon: int = 5,
                 action_low: torch.Tensor | None = None, action_high: torch.Tensor | None = None,
                 budget: SearchBudget | None = None, compile: bool = False,
                 autocast_dtype: torch.dtype | None = None, result: str = "best",
                 memory: MemoryOptions | None = None, tf32: bool = True) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if result not in RESULT_RULES:
            raise ValueError(f"result must be one of {RESULT_RULES}, got {result!r}")
        require(world_model, RolloutModel, type(self).__name__)
        self.result = result
        self.world_model = world_model
        self.objective = objective if objective is not None else GoalCost(proprio_dim=proprio_dim(world_model))
        self.horizon = horizon
        self.action_dim = world_model.action_dim
        self.action_low = None if action_low is None else torch.as_tensor(action_low).detach()
        self.action_high = None if action_high is None else torch.as_tensor(action_high).detach()
        self.budget = budget if budget is not None else SearchBudget()
        self.compile = compile
        self.autocast_dtype = autocast_dtype
        self.memory = memory if memory is not None else MemoryOptions()
        self.tf32 = tf32
        self._compiled_score: Callable[..., torch.Tensor] | None = None
        self._bounds: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def project(self, actions: torch.Tensor) -> torch.Tensor:
        """Clamp ``actions`` into the action bounds (out of place; unbounded planners return them as they are).

        The bounds are copied to ``actions``' device and dtype once and kept (no transfer per iteration).
        """
        if self.action_low is None:
            return actions
        return actions.clamp(*self._bounds_like(actions))

    def project_(self, actions: torch.Tensor) -> torch.Tensor:
        """:meth:`project` in place, outside autograd (one kernel in a search loop); returns ``actions``."""
        if self.action_low is not None:
            with torch.no_grad():
                actions.clamp_(*self._bounds_like(actions))
        return actions

    def _bounds_like(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (actions.device, actions.dtype)
        if key not in self._bounds:
            self._bounds[key] = (self.action_low.to(actions), self.action_high.to(actions))
        return self._bounds[key]

    def cold_start(self, batch: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The search's starting plan ``(B, H, A)`` when there is no warm start (zeros, projected)."""
        return self.project(like.new_zeros(batch, self.horizon, self.action_dim))

    def score(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor,
              candidates: torch.Tensor) -> torch.Tensor:
        """Cost ``(B, N)`` of ``N`` candidate plans ``(B, N, H, A)`` per batch element.

        Evaluated in blocks of at most ``memory.chunk_rows`` rows; with ``compile`` each block runs the
        compiled :meth:`score_eager`.
        """
        blocks = list(self.memory.blocks(*candidates.shape[:2]))
        pieces = [(envs, self._own(self._score(*_rows(envs, z_hist, a_hist, z_goal),
                                               _narrow(_narrow(candidates, envs), cands, 1)), len(blocks)))
                  for envs, cands in blocks]
        return _assemble(pieces)

    def value_and_grad(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor,
                       candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cost ``(B, N)`` of ``candidates`` ``(B, N, H, A)`` and the gradient of its sum ``(B, N, H, A)``.

        Forward and backward run block by block (``memory.chunk_rows`` rows at a time), so only one
        block's activations are alive at once.
        """
        costs, grads = [], []
        blocks = list(self.memory.blocks(*candidates.shape[:2]))
        with torch.enable_grad():
            for envs, cands in blocks:
                block = _narrow(_narrow(candidates, envs), cands, 1).detach().requires_grad_(True)
                cost = self._score(*_rows(envs, z_hist, a_hist, z_goal), block)
                (grad,) = torch.autograd.grad(cost.sum(), block)
                costs.append((envs, self._own(cost.detach(), len(blocks))))
                grads.append((envs, self._own(grad, len(blocks))))
        return _assemble(costs), _assemble(grads)

    def _score(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor,
               candidates: torch.Tensor) -> torch.Tensor:
        if not self.compile:
            return self.score_eager(z_hist, a_hist, z_goal, candidates)
        if self._compiled_score is None:
            mode = None if self.compile is True else self.compile
            self._compiled_score = torch.compile(self.score_eager, mode=mode)
        try:
            if self.compile == "reduce-overhead":  # a new CUDA-graph step: earlier outputs are copied out below
                torch.compiler.cudagraph_mark_step_begin()
            return self._compiled_score(z_hist, a_hist, z_goal, candidates)
        except Exception as error:  # a compiler or backend failure: eager gives the same numbers
            cost = self.score_eager(z_hist, a_hist, z_goal, candidates)  # re-raises the caller's own errors
            warnings.warn(f"torch.compile failed ({type(error).__name__}: {error}); planning in eager mode",
                          RuntimeWarning, stacklevel=2)
            self.compile = False
            return cost

    def _own(self, block: torch.Tensor, blocks: int) -> torch.Tensor:
        """A block's output, copied where the next block's CUDA-graph replay would overwrite it (compiled with
        ``"reduce-overhead"``, several blocks)."""
        return block.clone() if blocks > 1 and self.compile == "reduce-overhead" else block

    def score_eager(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor,
                    candidates: torch.Tensor) -> torch.Tensor:
        """:meth:`score` of one block, without compilation: the world model's rollout (under ``autocast_dtype``
        when set), then the objective in the inputs' dtype (given the candidates too when it declares
        ``uses_actions``)."""
        n = candidates.shape[1]
        z = z_hist.unsqueeze(1).expand(-1, n, *z_hist.shape[1:])
        a = a_hist.unsqueeze(1).expand(-1, n, *a_hist.shape[1:])
        if self.autocast_dtype is None:
            trajectory = self.world_model.rollout(z, a, candidates)
        else:
            with torch.autocast(device_type=candidates.device.type, dtype=self.autocast_dtype):
                trajectory = self.world_model.rollout(z, a, candidates)
            trajectory = trajectory.to(z.dtype)
        if getattr(self.objective, "include_start", False):  # the reference's cost scores the start frame too
            trajectory = torch.cat([z.narrow(-2, z.shape[-2] - 1, 1), trajectory], dim=-2)
        goal = None if z_goal is None else z_goal.unsqueeze(1)
        if getattr(self.objective, "uses_actions", False):
            return self.objective(trajectory, goal, candidates)
        return self.objective(trajectory, goal)

    def _check(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor,
               init: torch.Tensor | None) -> None:
        b = z_hist.shape[0]
        if z_hist.ndim < 3 or a_hist.shape[0] != b or a_hist.shape[-1] != self.action_dim:
            raise ValueError(
                f"plan expects z_hist (B, h, D) and a_hist (B, h - 1, {self.action_dim}); "
                f"got {tuple(z_hist.shape)} and {tuple(a_hist.shape)}"
            )
        if z_goal is None:
            if getattr(self.objective, "needs_goal", True):
                raise ValueError(f"z_goal is None but the objective {self.objective!r} needs a goal latent")
        elif z_goal.shape[0] != b or z_goal.shape[1:] != z_hist.shape[2:]:
            raise ValueError(f"z_goal must have shape {(b, *z_hist.shape[2:])}, got {tuple(z_goal.shape)}")
        expected = (b, self.horizon, self.action_dim)
        if init is not None and tuple(init.shape) != expected:
            raise ValueError(f"init must have shape {expected} (B, H, A), got {tuple(init.shape)}")

    def plan(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor | None,
             init: torch.Tensor | None = None, generator: torch.Generator | None = None) -> PlanResult:
        """Plan from latent history ``(B, h, D)``, past actions ``(B, h-1, A)`` to ``z_goal`` ``(B, D)``.

        ``z_goal`` may be ``None`` when the objective needs no goal
        (:class:`~torchrl_gbp.planners.ReturnObjective`).

        ``init`` ``(B, H, A)`` warm-starts the search (for example the shifted
        previous plan); ``generator`` makes the search reproducible.
        Returns a :class:`PlanResult`: detached actions ``(B, H, A)`` inside the
        bounds, their cost, the iterations run and why the search stopped.
        Works under ``torch.no_grad()`` and ``torch.inference_mode()`` alike (the
        search leaves inference mode and copies its inputs out of it). A candidate
        whose cost is not finite never wins over a finite one
        (:attr:`PlanResult.nonfinite` counts the batch elements with no finite plan).
        """
        self._check(z_hist, a_hist, z_goal, init)
        clock = self.budget.start(z_hist.shape[0], z_hist.device)
        with torch.inference_mode(False), _tf32(self.tf32 and z_hist.device.type == "cuda"):
            inputs = [None if x is None else x.detach().clone() for x in (z_hist, a_hist, z_goal, init)]
            actions, cost = self.search(*inputs, generator, clock)[:2]
        return PlanResult(actions.detach(), cost.detach(), clock.iterations, clock.stop_reason)

    @abc.abstractmethod
    def search(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor,
               init: torch.Tensor | None, generator: torch.Generator | None, clock: BudgetClock) -> PlanResult:
        """The planner-specific search under ``clock``; inputs are validated and detached."""


# The planners' hot paths slice with narrow / select / view rather than Python indexing: the same ops, and they
# also run on the fake "cuda" tensors of a CPU-only build (tests/test_device.py), whose indexing needs CUDA.
def _narrow(x: torch.Tensor, part: slice, dim: int = 0) -> torch.Tensor:
    """``x``'s ``part`` (a step-1 slice with bounds) along ``dim``, a view."""
    return x.narrow(dim, part.start, part.stop - part.start)


def _rows(envs: slice, z_hist: torch.Tensor, a_hist: torch.Tensor,
          z_goal: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The inputs of the envs ``envs`` (views)."""
    return _narrow(z_hist, envs), _narrow(a_hist, envs), None if z_goal is None else _narrow(z_goal, envs)


def _assemble(pieces: list[tuple[slice, torch.Tensor]]) -> torch.Tensor:
    """Blocks ``(envs, (b, n, ...))`` from :meth:`MemoryOptions.blocks`, in order, joined into ``(B, N, ...)``."""
    if len(pieces) == 1:
        return pieces[0][1]
    rows: list[torch.Tensor] = []
    start = 0
    while start < len(pieces):  # the blocks of one env slice are consecutive: join them along the candidates
        end = start + 1
        while end < len(pieces) and pieces[end][0] == pieces[start][0]:
            end += 1
        rows.append(torch.cat([block for _, block in pieces[start:end]], dim=1))
        start = end
    return torch.cat(rows, dim=0)


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """TF32 matrix products and convolutions inside the block when ``enabled``; the flags restored after it."""
    if not enabled:
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@torch.no_grad()
def planning_inputs(world_model, start: Mapping, goal: Mapping) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``plan``'s inputs for fresh episodes: ``(z_hist (B, h, D), a_hist (B, h - 1, A), z_goal (B, D))``.

    ``start`` and ``goal`` hold observation entries ``(B, ...)`` under the world
    model's ``observation_keys`` (a TensorDict or a dict, for example
    ``task.observe(states)``). As :class:`~torchrl_gbp.planners.MPCPolicy`
    starts an episode, the history repeats the start's latent ``h`` times after
    ``h - 1`` zero (normalised) actions.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, num_hist=3))
        >>> start, goal = {"observation": torch.zeros(4, 2)}, {"observation": torch.ones(4, 2)}
        >>> [t.shape for t in planning_inputs(model, start, goal)]
        [torch.Size([4, 3, 2]), torch.Size([4, 2, 2]), torch.Size([4, 2])]
    """
    require(world_model, PlanningWorldModel, "planning_inputs")
    z, z_goal = (encode_entries(world_model, entries) for entries in (start, goal))
    z_hist = z.unsqueeze(1).expand(z.shape[0], world_model.num_hist, *z.shape[1:])
    return z_hist, z.new_zeros(z.shape[0], world_model.num_hist - 1, world_model.action_dim), z_goal


def gaussian(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal samples with ``like``'s dtype and device, from ``generator`` when given."""
    return torch.randn(shape, dtype=like.dtype, device=like.device, generator=generator)
