"""What all planners share: the problem definition, the candidate rollout and its score."""
from __future__ import annotations

import abc
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch

from ..objectives import GoalCost
from .budget import BudgetClock, SearchBudget


class PlanResult(NamedTuple):
    """A plan ``actions`` ``(B, H, A)`` (normalised model actions) and its model cost ``(B,)``."""

    actions: torch.Tensor
    cost: torch.Tensor


class Planner(abc.ABC):
    """Base class: searches ``H`` normalised model actions that bring the latent to a goal.

    Every planner scores candidates with the same :meth:`score` (the world model's
    ``rollout`` followed by the shared :class:`GoalCost`) and differs only in
    :meth:`search`.

    Args:
        world_model: any object with ``rollout(z_hist, a_hist, actions)`` and
            ``action_dim`` (see :class:`~torchrl_gbp.models.StateWorldModel`).
        objective: the goal cost (default ``GoalCost("all", base=0.5, alpha=1)`` with the
            world model's ``config.proprio_dim`` when it has one).
        horizon: planned model steps ``H``.
        action_low, action_high: bounds ``(A,)`` of the normalised model action;
            every candidate is projected into them. ``None``: unbounded.
        budget: extra stopping rules (wall-clock seconds, cost plateau) for the
            search loop; ``None``: run the planner's full iteration count.
        compile: score candidates with ``torch.compile`` of the rollout and cost
            (forward and backward); falls back to eager, with a warning, where
            compilation fails. Each new batch shape compiles once (seconds); every
            compiled planner is one more entry of Dynamo's cache for the shared
            scoring code, so a process that builds many may need a larger
            ``torch._dynamo.config.recompile_limit`` (default 8; past it, eager).
        autocast_dtype: score candidates under ``torch.autocast`` with this dtype
            (for example ``torch.bfloat16``: several times faster matrix products
            on CPUs with AVX512-BF16/AMX and on GPUs, at bf16 precision of the
            cost); costs are returned in the inputs' dtype. ``None``: full precision.

    After each call, ``last_clock`` (a :class:`BudgetClock`) tells how many
    iterations the search ran and why it stopped.
    """

    def __init__(self, world_model, objective: GoalCost | None = None, horizon: int = 5,
                 action_low: torch.Tensor | None = None, action_high: torch.Tensor | None = None,
                 budget: SearchBudget | None = None, compile: bool = False,
                 autocast_dtype: torch.dtype | None = None) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.world_model = world_model
        proprio_dim = getattr(getattr(world_model, "config", None), "proprio_dim", 0)
        self.objective = objective if objective is not None else GoalCost(proprio_dim=proprio_dim)
        self.horizon = horizon
        self.action_dim = world_model.action_dim
        self.action_low = None if action_low is None else torch.as_tensor(action_low).detach()
        self.action_high = None if action_high is None else torch.as_tensor(action_high).detach()
        self.budget = budget if budget is not None else SearchBudget()
        self.compile = compile
        self.autocast_dtype = autocast_dtype
        self._compiled_score: Callable[..., torch.Tensor] | None = None
        self.last_clock: BudgetClock | None = None
        self.last_nonfinite = 0

    def project(self, actions: torch.Tensor) -> torch.Tensor:
        """Clamp ``actions`` into the action bounds (out of place)."""
        if self.action_low is None:
            return actions
        return torch.maximum(torch.minimum(actions, self.action_high.to(actions)), self.action_low.to(actions))

    def cold_start(self, batch: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The search's starting plan ``(B, H, A)`` when there is no warm start (zeros, projected)."""
        return self.project(like.new_zeros(batch, self.horizon, self.action_dim))

    def score(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor,
              candidates: torch.Tensor) -> torch.Tensor:
        """Cost ``(B, N)`` of ``N`` candidate plans ``(B, N, H, A)`` per batch element.

        With ``compile=True`` this runs the compiled :meth:`score_eager`, under
        ``torch.autocast`` when ``autocast_dtype`` is set.
        """
        if self.autocast_dtype is None:
            return self._score(z_hist, a_hist, z_goal, candidates)
        with torch.autocast(device_type=candidates.device.type, dtype=self.autocast_dtype):
            cost = self._score(z_hist, a_hist, z_goal, candidates)
        return cost.to(candidates.dtype)

    def _score(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor,
               candidates: torch.Tensor) -> torch.Tensor:
        if not self.compile:
            return self.score_eager(z_hist, a_hist, z_goal, candidates)
        if self._compiled_score is None:
            self._compiled_score = torch.compile(self.score_eager)
        try:
            return self._compiled_score(z_hist, a_hist, z_goal, candidates)
        except Exception as error:  # a compiler or backend failure: eager gives the same numbers
            cost = self.score_eager(z_hist, a_hist, z_goal, candidates)  # re-raises the caller's own errors
            warnings.warn(f"torch.compile failed ({type(error).__name__}: {error}); planning in eager mode",
                          RuntimeWarning, stacklevel=2)
            self.compile = False
            return cost

    def score_eager(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor,
                    candidates: torch.Tensor) -> torch.Tensor:
        """:meth:`score` without compilation: the world model's rollout, then the objective (given the candidates
        too when it declares ``uses_actions``)."""
        n = candidates.shape[1]
        z = z_hist.unsqueeze(1).expand(-1, n, *z_hist.shape[1:])
        a = a_hist.unsqueeze(1).expand(-1, n, *a_hist.shape[1:])
        trajectory = self.world_model.rollout(z, a, candidates)
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
        Returns detached actions ``(B, H, A)`` inside the bounds and their cost.
        Works under ``torch.no_grad()`` and ``torch.inference_mode()`` alike (the
        search leaves inference mode and copies its inputs out of it). A candidate
        whose cost is not finite never wins over a finite one; ``last_nonfinite``
        counts the batch elements left with a non-finite cost (no finite plan found).
        """
        self._check(z_hist, a_hist, z_goal, init)
        with torch.inference_mode(False):
            inputs = [None if x is None else x.detach().clone() for x in (z_hist, a_hist, z_goal, init)]
            result = self.search(*inputs, generator)
        cost = result.cost.detach()
        self.last_nonfinite = int((~torch.isfinite(cost)).sum())
        return PlanResult(result.actions.detach(), cost)

    @abc.abstractmethod
    def search(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor,
               init: torch.Tensor | None, generator: torch.Generator | None) -> PlanResult:
        """The planner-specific search; inputs are validated and detached."""


def fresh_episode_history(obs: torch.Tensor, num_hist: int,
                          action_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The history at an episode's first step: the observation ``(B, ...)`` repeated ``num_hist`` times,
    ``(B, num_hist, ...)``, and ``num_hist - 1`` zero (normalised) past actions ``(B, num_hist - 1, action_dim)``.

    Example:
        >>> obs_hist, a_hist = fresh_episode_history(torch.ones(4, 2), num_hist=3, action_dim=10)
        >>> obs_hist.shape, a_hist.shape, float(a_hist.abs().sum())
        (torch.Size([4, 3, 2]), torch.Size([4, 2, 10]), 0.0)
    """
    b = obs.shape[0]
    return obs.unsqueeze(1).expand(b, num_hist, *obs.shape[1:]), obs.new_zeros(b, num_hist - 1, action_dim)


@torch.no_grad()
def planning_inputs(world_model, start_obs: torch.Tensor,
                    goal_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``plan``'s inputs for fresh episodes: ``(z_hist (B, h, D), a_hist (B, h - 1, A), z_goal (B, D))``.

    The history is :func:`fresh_episode_history`, as :class:`~torchrl_gbp.planners.MPCPolicy` starts an episode.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, num_hist=3))
        >>> [t.shape for t in planning_inputs(model, torch.zeros(4, 2), torch.ones(4, 2))]
        [torch.Size([4, 3, 2]), torch.Size([4, 2, 2]), torch.Size([4, 2])]
    """
    obs_hist, a_hist = fresh_episode_history(start_obs, world_model.num_hist, world_model.action_dim)
    return world_model.encode(obs_hist), a_hist, world_model.encode(goal_obs)


def gaussian(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal samples with ``like``'s dtype and device, from ``generator`` when given."""
    return torch.randn(shape, dtype=like.dtype, device=like.device, generator=generator)
