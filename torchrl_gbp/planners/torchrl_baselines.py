"""TorchRL's own ``CEMPlanner`` and ``MPPIPlanner`` driving our world model, for side-by-side comparisons.

TorchRL's MPC planners step a ``ModelBasedEnvBase`` with ``env.rollout``; we
give them TorchRL's ``WorldModelEnv`` over a :class:`StateWorldModel`, whose
reward at imagined step ``t`` is minus the step-``t`` term of the planners'
:class:`GoalCost` (its per-step cost times its step weight), so the summed
reward of a plan is minus the cost our planners score it with. Two
TorchRL 0.14.1 quirks are worked around here (and nowhere else):
``WorldModelEnv`` expands the base env's batched specs (so we hand it the
unbatched ones), and its ``_step`` returns the env's own batch size, so the
batch-unlocked env cannot step the planners' ``(B, candidates)`` batches.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import EnvBase
from torchrl.envs.model_based import WorldModelEnv
from torchrl.modules import CEMPlanner, MPPIPlanner, ValueOperator
from torchrl.modules.planners.common import MPCPlannerBase
from torchrl.objectives.value import TDLambdaEstimator

from ..models.contract import proprio_dim
from ..objectives import GoalCost
from .factory import model_action_bounds


class CandidateBatchWorldModelEnv(WorldModelEnv):
    """``WorldModelEnv`` over the planners' objective, whose step output takes the batch size of its input.

    ``"plan_step"`` counts imagined steps; the reward of step ``t`` is
    ``-weights[t] * step_cost`` of ``objective`` over ``horizon`` steps.
    """

    def __init__(self, world_model, objective: GoalCost, horizon: int, **kwargs) -> None:
        super().__init__(world_model, **kwargs)
        self.objective = objective
        self.horizon = horizon

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        out = super()._step(tensordict)
        batch = tensordict.batch_size
        out = TensorDict(
            {k: v if v.shape[: len(batch)] == batch else v.expand(*batch, *v.shape) for k, v in out.items()},
            batch_size=batch,
        )
        step = tensordict.get("plan_step")
        latent, goal = out.get("latent"), out.get("goal_latent")
        weights = self.objective.weights(self.horizon, latent)
        cost = self.objective.step_costs(latent.unsqueeze(-2), goal) * weights[step.clamp_max(self.horizon - 1)]
        out.set("reward", -cost)
        out.set("plan_step", step + 1)
        return out


def make_planning_env(world_model, env: EnvBase, objective: GoalCost | None = None,
                      horizon: int = 5) -> CandidateBatchWorldModelEnv:
    """A batch-unlocked TorchRL env over ``world_model`` for TorchRL's MPC planners.

    Its action spec is the world model's normalised action box derived from
    ``env``'s action spec; its observations are ``"latent"``, ``"goal_latent"``
    and ``"plan_step"``; its reward follows ``objective`` (default: the
    planners' default :class:`GoalCost`) over ``horizon`` steps.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> make_planning_env(model, WallTask().make_env()).action_spec.shape
        torch.Size([10])
    """
    unbatched = SimpleNamespace(
        action_spec=env.full_action_spec_unbatched,
        reward_spec=env.full_reward_spec_unbatched,
        done_spec=env.full_done_spec_unbatched,
        observation_spec=env.full_observation_spec_unbatched,
        batch_size=torch.Size([]),
        device=env.device,
    )
    objective = objective if objective is not None else GoalCost(proprio_dim=proprio_dim(world_model))
    if getattr(objective, "include_start", False):
        raise ValueError("TorchRL's planners reward the predicted steps only; GoalCost(include_start=True) scores "
                         "the start frame too, so it has no per-step reward form here")
    planning_env = CandidateBatchWorldModelEnv(world_model, objective, horizon, base_env=unbatched, batch_size=[])
    low, high = model_action_bounds(world_model, env.action_spec)
    planning_env.action_spec = Bounded(low=low, high=high, shape=(world_model.action_dim,))
    planning_env.observation_spec = Composite(
        latent=Unbounded((world_model.latent_dim,)), goal_latent=Unbounded((world_model.latent_dim,)),
        plan_step=Unbounded((1,), dtype=torch.int64),
    )
    return planning_env


class _ZeroValue(nn.Module):
    """A value of zero everywhere: MPPI's TD(lambda) advantage becomes the discounted return."""

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return latent.new_zeros(*latent.shape[:-1], 1)


def make_torchrl_planner(kind: str, world_model, env: EnvBase, horizon: int = 5, samples: int = 300,
                         elites: int = 30, iterations: int = 30, temperature: float = 1.0,
                         objective: GoalCost | None = None) -> MPCPlannerBase:
    """TorchRL's ``CEMPlanner`` (``kind="cem"``) or ``MPPIPlanner`` (``"mppi"``) over ``world_model``.

    They maximise minus ``objective`` (the planners' :class:`GoalCost`; default
    as in :class:`~torchrl_gbp.planners.Planner`), so they search the same
    objective as our planners.

    MPPI's advantage is TD(lambda) with a zero value network (gamma = lambda = 1),
    i.e. the return of the imagined rollout. Call the planner on the output of
    :func:`reset_planning_env`; it samples from the global RNG.
    """
    planning_env = make_planning_env(world_model, env, objective, horizon)
    if kind == "cem":
        return CEMPlanner(planning_env, planning_horizon=horizon, optim_steps=iterations,
                          num_candidates=samples, top_k=elites)
    if kind == "mppi":
        value = ValueOperator(_ZeroValue(), in_keys=["latent"])
        advantage = TDLambdaEstimator(gamma=1.0, lmbda=1.0, value_network=value)
        return MPPIPlanner(planning_env, advantage, temperature=temperature, planning_horizon=horizon,
                           optim_steps=iterations, num_candidates=samples, top_k=elites)
    raise ValueError(f"kind must be 'cem' or 'mppi', got {kind!r}")


def reset_planning_env(planner: MPCPlannerBase, latent: torch.Tensor, goal_latent: torch.Tensor) -> TensorDictBase:
    """The planner's input for ``B`` envs: ``latent`` and ``goal_latent`` ``(B, D)`` after a reset."""
    if latent.shape != goal_latent.shape or latent.ndim != 2:
        raise ValueError(f"latent and goal_latent must both be (B, D), got {tuple(latent.shape)} "
                         f"and {tuple(goal_latent.shape)}")
    td = TensorDict({"latent": latent, "goal_latent": goal_latent,
                     "plan_step": torch.zeros(latent.shape[0], 1, dtype=torch.int64, device=latent.device)},
                    batch_size=latent.shape[:1])
    return torch.stack([planner.env.reset(td[i]) for i in range(latent.shape[0])])
