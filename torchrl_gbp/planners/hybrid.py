"""GD-CEM: a few cross-entropy iterations propose plans, gradient steps refine the best of them."""
from __future__ import annotations

import torch

from .base import PlanResult
from .gradient import GradientPlanner
from .sampling import CrossEntropyPlanner


class GradientCEMPlanner(CrossEntropyPlanner, GradientPlanner):
    """GD-CEM: ``iterations`` rounds of :class:`CrossEntropyPlanner` search, then ``steps`` optimiser steps.

    The CEM stage runs :class:`SamplingPlanner`'s loop; the gradient stage runs
    :meth:`GradientPlanner.descend` on ``num_restarts`` starts: restart 0 is the CEM
    stage's plan (its best candidate seen), restarts 1, 2, ... the last CEM
    iteration's runner-up elites. The plan returned is the cheapest any restart
    reached, its start included, so it never costs more than the CEM stage's plan.
    ``budget`` counts the iterations of both stages together; when it stops the
    CEM stage, the CEM plan is returned without refinement.

    Args:
        samples, elites, iterations, init_std, min_std: the CEM stage (see :class:`SamplingPlanner`).
        steps: the gradient stage's optimiser steps.
        num_restarts: CEM candidates refined, ``1 <= num_restarts <= elites``.
        gradient_options: the gradient stage's other arguments (``lr``, ``optimizer``, ``optimizer_kwargs``,
            ``noise_std``, ``callback``: see :class:`GradientPlanner`) and :class:`Planner`'s.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> planner = GradientCEMPlanner(model, horizon=3, samples=32, elites=4, iterations=2, steps=5)
        >>> planner.plan(torch.zeros(2, 1, 2), torch.zeros(2, 0, 2), torch.ones(2, 2)).actions.shape
        torch.Size([2, 3, 2])
    """

    def __init__(self, world_model, *, samples: int = 300, elites: int = 30, iterations: int = 3,
                 init_std: float = 1.0, min_std: float = 0.01, steps: int = 30, num_restarts: int = 1,
                 **gradient_options) -> None:
        # A cold start is CEM's (zeros); the gradient stage always starts from CEM candidates.
        GradientPlanner.__init__(self, world_model, init="zeros", steps=steps, num_restarts=num_restarts,
                                 **gradient_options)
        self.configure_sampling(samples, elites, iterations, init_std, min_std)
        if num_restarts > elites:
            raise ValueError(f"num_restarts must be <= elites (it refines that many CEM candidates), "
                             f"got num_restarts={num_restarts}, elites={elites}")

    def search(self, z_hist, a_hist, z_goal, init, generator, clock) -> PlanResult:
        """The CEM stage, then the gradient stage from its best candidates."""
        proposal, elite = self.sample_search(z_hist, a_hist, z_goal, init, generator, clock)
        if clock.stop_reason == "iterations":  # the budget has not stopped the search
            starts = torch.cat([proposal.actions.unsqueeze(1), elite[:, 1:self.num_restarts]], dim=1)
            proposal = self.descend(z_hist, a_hist, z_goal, starts, generator, clock)
        return proposal
