"""Sampling-based planners (CEM, MPPI): sample around a Gaussian, score, refit."""
from __future__ import annotations

import abc

import torch

from .base import Planner, PlanResult, gaussian
from .budget import SearchBudget
from .objectives import GoalCost


class SamplingPlanner(Planner):
    """Shared loop of CEM-style searches; subclasses only say how to refit the Gaussian.

    The plan is the best seen, as for every planner: the lowest-cost of the
    sampled candidates and the final mean (also when ``budget`` stops early).

    Args:
        world_model, objective, horizon, action_low, action_high, budget, compile, autocast_dtype:
            see :class:`Planner`.
        samples: candidates drawn per iteration and batch element.
        elites: best candidates used to refit.
        iterations: sample-score-refit rounds per call (the most; ``budget`` may stop sooner).
        init_std: std of the first Gaussian (the mean starts at ``init`` or zero).
        min_std: floor on the refitted std, so the search never freezes.
    """

    def __init__(self, world_model, objective: GoalCost | None = None, horizon: int = 5, samples: int = 300,
                 elites: int = 30, iterations: int = 30, init_std: float = 1.0, min_std: float = 0.01,
                 action_low: torch.Tensor | None = None, action_high: torch.Tensor | None = None,
                 budget: SearchBudget | None = None, compile: bool = False,
                 autocast_dtype: torch.dtype | None = None) -> None:
        super().__init__(world_model, objective, horizon, action_low, action_high, budget, compile, autocast_dtype)
        if not 1 <= elites <= samples:
            raise ValueError(f"need 1 <= elites <= samples, got elites={elites}, samples={samples}")
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        if not init_std > 0 or not min_std >= 0:
            raise ValueError(f"need init_std > 0 and min_std >= 0, got init_std={init_std!r}, min_std={min_std!r}")
        self.samples = samples
        self.elites = elites
        self.iterations = iterations
        self.init_std = init_std
        self.min_std = min_std

    @torch.no_grad()
    def search(self, z_hist, a_hist, z_goal, init, generator) -> PlanResult:
        """Iterate: sample ``samples`` plans, keep the ``elites`` cheapest, refit."""
        clock = self.budget.start()
        batch = z_hist.shape[0]
        shape = (batch, self.horizon, self.action_dim)
        mean = z_hist.new_zeros(shape) if init is None else init.clone()
        std = z_hist.new_full(shape, self.init_std)
        best_cost = z_hist.new_full((batch,), float("inf"))
        best_actions = mean.clone()
        for _ in range(self.iterations):
            noise = gaussian((batch, self.samples, *shape[1:]), mean, generator)
            candidates = self.project(mean.unsqueeze(1) + std.unsqueeze(1) * noise)
            cost = self.score(z_hist, a_hist, z_goal, candidates)
            elite_cost, index = cost.topk(self.elites, dim=1, largest=False)
            elite = candidates.gather(1, index[..., None, None].expand(-1, -1, *shape[1:]))
            mean, std = self.refit(elite, elite_cost)
            std = std.clamp_min(self.min_std)
            better = elite_cost[:, 0] < best_cost
            best_cost = torch.where(better, elite_cost[:, 0], best_cost)
            best_actions = torch.where(better[:, None, None], elite[:, 0], best_actions)
            if clock.should_stop(best_cost):
                break
        self.last_clock = clock
        mean = self.project(mean)
        mean_cost = self.score(z_hist, a_hist, z_goal, mean.unsqueeze(1)).squeeze(1)
        use_mean = mean_cost <= best_cost
        return PlanResult(torch.where(use_mean[:, None, None], mean, best_actions),
                          torch.where(use_mean, mean_cost, best_cost))

    @abc.abstractmethod
    def refit(self, elite: torch.Tensor, elite_cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """New ``(mean, std)`` ``(B, H, A)`` from elites ``(B, K, H, A)`` sorted by cost ``(B, K)``."""


class CrossEntropyPlanner(SamplingPlanner):
    """The cross-entropy method: refit mean and std to the elites, equally weighted.

    The paper's baseline: 300 samples, 30 elites, 30 iterations.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> planner = CrossEntropyPlanner(model, horizon=3, samples=32, elites=4, iterations=2)
        >>> planner.plan(torch.zeros(2, 1, 2), torch.zeros(2, 0, 2), torch.ones(2, 2)).actions.shape
        torch.Size([2, 3, 2])
    """

    def refit(self, elite, elite_cost):
        """Mean and std of the elites."""
        return elite.mean(1), elite.std(1, unbiased=False)


class PathIntegralPlanner(SamplingPlanner):
    """MPPI: refit to the elites weighted by ``exp(-(cost - best) / temperature)``.

    The best cost is subtracted before exponentiating, so large costs never
    underflow every weight to zero (TorchRL's ``MPPIPlanner`` returns NaN there).

    Args:
        temperature: softness of the weighting, in cost units.
        (others): see :class:`SamplingPlanner`.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> planner = PathIntegralPlanner(model, horizon=3, samples=32, elites=8, iterations=2)
        >>> planner.plan(torch.zeros(2, 1, 2), torch.zeros(2, 0, 2), torch.ones(2, 2)).actions.shape
        torch.Size([2, 3, 2])
    """

    def __init__(self, world_model, objective: GoalCost | None = None, horizon: int = 5, samples: int = 300,
                 elites: int = 30, iterations: int = 30, temperature: float = 0.05, init_std: float = 1.0,
                 min_std: float = 0.01, action_low: torch.Tensor | None = None,
                 action_high: torch.Tensor | None = None, budget: SearchBudget | None = None,
                 compile: bool = False, autocast_dtype: torch.dtype | None = None) -> None:
        super().__init__(world_model, objective, horizon, samples, elites, iterations, init_std, min_std,
                         action_low, action_high, budget, compile, autocast_dtype)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def refit(self, elite, elite_cost):
        """Exponentially weighted mean and std of the elites."""
        weights = torch.softmax(-(elite_cost - elite_cost.min(dim=1, keepdim=True).values) / self.temperature, dim=1)
        weights = weights[..., None, None]
        mean = (weights * elite).sum(1)
        std = (weights * (elite - mean.unsqueeze(1)).pow(2)).sum(1).sqrt()
        return mean, std
