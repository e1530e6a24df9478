"""Sampling-based planners (CEM, MPPI, iCEM): sample around a Gaussian, score, refit."""
from __future__ import annotations

import abc
import math

import torch

from .base import Planner, PlanResult, gaussian
from .budget import BudgetClock


class SamplingPlanner(Planner):
    """Shared loop of CEM-style searches; subclasses only say how to refit the Gaussian.

    The plan is the best seen, as for every planner: the lowest-cost of the
    sampled candidates and the final mean (also when ``budget`` stops early);
    with ``result="final"``, the final mean. The loop never reads a tensor on the
    host unless ``budget`` has a ``patience`` (then one boolean per iteration);
    under it each env's Gaussian freezes once its own cost plateaus.

    Args:
        world_model: the world model (see :class:`Planner`).
        samples: candidates drawn per iteration and batch element.
        elites: best candidates used to refit.
        iterations: sample-score-refit rounds per call (the most; ``budget`` may stop sooner).
        init_std: std of the first Gaussian (the mean starts at ``init`` or zero).
        min_std: floor on the refitted std, so the search never freezes.
        planner_options: :class:`Planner`'s keyword arguments (``objective``, ``horizon``,
            ``action_low``, ``action_high``, ``budget``, ``compile``, ``autocast_dtype``).

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> class BestElitePlanner(SamplingPlanner):  # a sampling planner only defines its refit
        ...     def refit(self, elite, elite_cost):
        ...         return elite[:, 0], torch.full_like(elite[:, 0], 0.3)
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> planner = BestElitePlanner(model, horizon=3, samples=16, elites=2, iterations=2)
        >>> result = planner.plan(torch.zeros(2, 1, 2), torch.zeros(2, 0, 2), torch.ones(2, 2))
        >>> result.actions.shape, result.iterations
        (torch.Size([2, 3, 2]), 2)
    """

    def __init__(self, world_model, *, samples: int = 300, elites: int = 30, iterations: int = 30,
                 init_std: float = 1.0, min_std: float = 0.01, **planner_options) -> None:
        super().__init__(world_model, **planner_options)
        self.configure_sampling(samples, elites, iterations, init_std, min_std)

    def configure_sampling(self, samples: int, elites: int, iterations: int, init_std: float,
                           min_std: float) -> None:
        """Check and set the sampling loop's settings (shared with planners that run it as one stage)."""
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

    def population_size(self, iteration: int) -> int:
        """Candidates drawn around the Gaussian at ``iteration`` (0-based): ``samples`` at every iteration."""
        return self.samples

    def sample_noise(self, shape: tuple[int, ...], like: torch.Tensor,
                     generator: torch.Generator | None) -> torch.Tensor:
        """Unit-variance noise ``(B, N, H, A)`` scaled by the std and added to the mean: white Gaussian."""
        return gaussian(shape, like, generator)

    def carried_candidates(self, iteration: int, elite: torch.Tensor | None,
                           init: torch.Tensor | None) -> torch.Tensor | None:
        """Plans ``(B, C, H, A)`` scored beside iteration ``iteration``'s draws, from the previous iteration's
        elites ``elite`` (``None`` at iteration 0) or the warm start ``init``: none."""
        return None

    @torch.no_grad()
    def search(self, z_hist, a_hist, z_goal, init, generator, clock) -> PlanResult:
        """Iterate: sample ``samples`` plans, keep the ``elites`` cheapest, refit."""
        return self.sample_search(z_hist, a_hist, z_goal, init, generator, clock)[0]

    @torch.no_grad()
    def sample_search(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor,
                      init: torch.Tensor | None, generator: torch.Generator | None,
                      clock: BudgetClock) -> tuple[PlanResult, torch.Tensor]:
        """The sample-score-refit loop under ``clock``: the best plan seen and the last iteration's elites
        ``(B, K, H, A)``, cheapest first."""
        batch = z_hist.shape[0]
        shape = (batch, self.horizon, self.action_dim)
        mean = z_hist.new_zeros(shape) if init is None else init.clone()
        std = z_hist.new_full(shape, self.init_std)
        best_cost = z_hist.new_full((batch,), float("inf"))
        best_actions = mean.clone()
        elite = None
        for iteration in range(self.iterations):
            noise = self.sample_noise((batch, self.population_size(iteration), *shape[1:]), mean, generator)
            candidates = self.project(mean.unsqueeze(1) + std.unsqueeze(1) * noise)
            carried = self.carried_candidates(iteration, elite, init)
            if carried is not None:
                candidates = torch.cat([candidates, self.project(carried)], dim=1)
            cost = self.score(z_hist, a_hist, z_goal, candidates)
            elite_cost, index = cost.topk(self.elites, dim=1, largest=False)
            elite = candidates.gather(1, index.view(*index.shape, 1, 1).expand(-1, -1, *shape[1:]))
            new_mean, new_std = self.refit(elite, elite_cost)
            mean, std = clock.freeze(new_mean, mean), clock.freeze(new_std.clamp_min(self.min_std), std)
            first_cost, first = elite_cost.select(1, 0), elite.select(1, 0)
            better = first_cost < best_cost
            if clock.active is not None:  # envs whose cost has plateaued keep their Gaussian and best plan
                better = better & clock.active
            best_cost = torch.where(better, first_cost, best_cost)
            best_actions = torch.where(better.view(-1, 1, 1), first, best_actions)
            if clock.should_stop(best_cost):
                break
        mean = self.project(mean)
        mean_cost = self.score(z_hist, a_hist, z_goal, mean.unsqueeze(1)).squeeze(1)
        if self.result == "final":
            return PlanResult(mean, mean_cost), elite
        use_mean = mean_cost <= best_cost
        return PlanResult(torch.where(use_mean.view(-1, 1, 1), mean, best_actions),
                          torch.where(use_mean, mean_cost, best_cost)), elite

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

    def __init__(self, world_model, *, temperature: float = 0.05, **sampling_options) -> None:
        super().__init__(world_model, **sampling_options)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def refit(self, elite, elite_cost):
        """Exponentially weighted mean and std of the elites."""
        weights = torch.softmax(-(elite_cost - elite_cost.min(dim=1, keepdim=True).values) / self.temperature, dim=1)
        weights = weights.view(*weights.shape, 1, 1)
        mean = (weights * elite).sum(1)
        std = (weights * (elite - mean.unsqueeze(1)).pow(2)).sum(1).sqrt()
        return mean, std


def coloured_noise(shape: tuple[int, ...], beta: float, like: torch.Tensor,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian noise ``(..., T, A)`` whose power spectrum along the time axis ``T`` falls as ``1 / f**beta``.

    Each entry has unit variance; ``beta = 0`` is white noise, larger ``beta`` gives smoother, more
    time-correlated sequences (iCEM uses about 2). Made as in Timmer and Koenig (1995): Gaussian Fourier
    coefficients scaled by ``f**(-beta / 2)`` (the zero frequency takes the lowest one's scale, ``1 / T``),
    inverse real FFT, then divided by the exact std of every step. One step (``T = 1``) is white.

    Example:
        >>> noise = coloured_noise((2000, 16, 1), 2.0, torch.zeros(()), torch.Generator().manual_seed(0))
        >>> lag1 = (noise[:, 1:] * noise[:, :-1]).mean() / noise.pow(2).mean()
        >>> noise.shape, bool(lag1 > 0.5)
        (torch.Size([2000, 16, 1]), True)
    """
    *lead, steps, dim = shape
    if steps == 1:
        return gaussian(shape, like, generator)
    freqs = torch.fft.rfftfreq(steps, dtype=torch.float64, device=like.device)
    freqs[0] = freqs[1]
    scale = freqs.pow(-beta / 2)
    # Each output step's variance: 4 s_k**2 / T**2 per complex term, 2 s_k**2 / T**2 for the real ones
    # (the zero frequency and, for even T, the Nyquist one, which get sqrt(2) below so that beta = 0 is white).
    weights = torch.full_like(scale, 4.0)
    weights[0] = 2.0
    if steps % 2 == 0:
        weights[-1] = 2.0
    sigma = (weights * scale.pow(2)).sum().sqrt() / steps  # a tensor: no host read
    real = torch.randn((*lead, dim, scale.numel()), dtype=torch.float64, device=like.device, generator=generator)
    imag = torch.randn((*lead, dim, scale.numel()), dtype=torch.float64, device=like.device, generator=generator)
    real, imag = real * scale, imag * scale
    imag[..., 0] = 0.0  # a real signal: the zero (and Nyquist) frequency terms are real
    real[..., 0] *= math.sqrt(2)
    if steps % 2 == 0:
        imag[..., -1] = 0.0
        real[..., -1] *= math.sqrt(2)
    noise = torch.fft.irfft(torch.complex(real, imag), n=steps, dim=-1) / sigma
    return noise.transpose(-1, -2).to(like.dtype)


class ImprovedCEMPlanner(CrossEntropyPlanner):
    """iCEM (Pinneri et al., 2020): CEM with coloured noise, elite carry-over and a shrinking population.

    Differences from :class:`CrossEntropyPlanner`, whose loop, scoring and refit it uses:

    - the noise is coloured along the horizon (:func:`coloured_noise`, exponent ``noise_beta``), so sampled
      plans are smooth in time;
    - iteration ``i`` draws ``max(samples / population_decay**i, min(samples, 2 * elites))`` candidates;
    - a ``keep_elites`` fraction of the previous iteration's elites is scored again beside the new draws, so
      the cheapest candidate of an iteration never costs more than the previous one's; at the first iteration
      the warm start (in :class:`~torchrl_gbp.planners.MPCPolicy`, the shifted previous plan, that is the
      previous call's best elite) is scored the same way. Only that one shifted elite crosses MPC calls: the
      policy keeps its state in the TensorDict, and the planner holds none between calls.

    iCEM's momentum on the Gaussian's parameters is left out (this package's CEM has none either).

    Args:
        noise_beta: exponent of the noise's ``1 / f**beta`` power spectrum (``0``: white, as CEM).
        population_decay: factor (``>= 1``) the population shrinks by at every iteration.
        keep_elites: fraction (in ``[0, 1]``) of the elites carried into the next iteration.
        (others): see :class:`SamplingPlanner`.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> planner = ImprovedCEMPlanner(model, horizon=3, samples=32, elites=4, iterations=3)
        >>> [planner.population_size(i) for i in range(3)]
        [32, 26, 20]
        >>> planner.plan(torch.zeros(2, 1, 2), torch.zeros(2, 0, 2), torch.ones(2, 2)).actions.shape
        torch.Size([2, 3, 2])
    """

    def __init__(self, world_model, *, iterations: int = 10, noise_beta: float = 2.0,
                 population_decay: float = 1.25, keep_elites: float = 0.3, **sampling_options) -> None:
        super().__init__(world_model, iterations=iterations, **sampling_options)
        if not noise_beta >= 0:
            raise ValueError(f"noise_beta must be >= 0 (0: white noise), got {noise_beta!r}")
        if not population_decay >= 1:
            raise ValueError(f"population_decay must be >= 1 (1: no shrinking), got {population_decay!r}")
        if not 0 <= keep_elites <= 1:
            raise ValueError(f"keep_elites must be a fraction in [0, 1], got {keep_elites!r}")
        self.noise_beta = noise_beta
        self.population_decay = population_decay
        self.keep_elites = keep_elites

    def population_size(self, iteration: int) -> int:
        """``samples / population_decay**iteration``, rounded, and never under ``min(samples, 2 * elites)``."""
        return max(round(self.samples / self.population_decay ** iteration), min(self.samples, 2 * self.elites))

    def sample_noise(self, shape: tuple[int, ...], like: torch.Tensor,
                     generator: torch.Generator | None) -> torch.Tensor:
        """:func:`coloured_noise` with exponent ``noise_beta`` along the horizon."""
        return coloured_noise(shape, self.noise_beta, like, generator)

    def carried_candidates(self, iteration: int, elite: torch.Tensor | None,
                           init: torch.Tensor | None) -> torch.Tensor | None:
        """The cheapest ``round(keep_elites * elites)`` previous elites; at iteration 0 the warm start (none of
        either when that count is 0)."""
        kept = round(self.keep_elites * self.elites)
        if kept == 0:
            return None
        if elite is None:
            return None if init is None else init.unsqueeze(1)
        return elite[:, :kept]
