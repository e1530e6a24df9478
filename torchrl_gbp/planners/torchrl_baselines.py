"""TorchRL's own ``CEMPlanner`` and ``MPPIPlanner`` driving any world model of the contract.

TorchRL's MPC planners step a ``ModelBasedEnvBase`` with ``env.rollout``; we
give them TorchRL's ``WorldModelEnv`` over the world model (the package's
models are ``torchrl.modules.WorldModel`` already; any other
:class:`~torchrl_gbp.models.PlanningWorldModel` with ``num_hist == 1`` gets
that key layout from its ``rollout``), whose
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
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import EnvBase
from torchrl.envs.model_based import WorldModelEnv
from torchrl.modules import CEMPlanner, MPPIPlanner, ValueOperator, WorldModel
from torchrl.modules.planners.common import MPCPlannerBase
from torchrl.objectives.value import TDLambdaEstimator

from ..models.contract import PlanningWorldModel, proprio_dim, require
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


class _RolloutStep(nn.Module):
    """One step of a contract model's ``rollout``: ``(latent (..., D), action (..., A)) -> next latent``."""

    def __init__(self, world_model: PlanningWorldModel) -> None:
        super().__init__()
        object.__setattr__(self, "world_model", world_model)  # not a submodule: the caller owns it

    def forward(self, latent: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        a_hist = action.new_zeros(*action.shape[:-1], 0, action.shape[-1])
        return self.world_model.rollout(latent.unsqueeze(-2), a_hist, action.unsqueeze(-2)).squeeze(-2)


class _CarryGoal(nn.Module):
    """The reward head of the planning env: the goal latent carried forward (its ``_step`` scores the reward)."""

    def forward(self, goal_latent: torch.Tensor) -> torch.Tensor:
        return goal_latent


def as_torchrl_world_model(world_model: PlanningWorldModel) -> WorldModel:
    """``world_model`` in TorchRL's ``WorldModel`` key layout (itself when it is one already).

    ``"latent"`` and ``"action"`` -> ``("next", "latent")`` through its ``rollout``
    (``num_hist`` must be 1), ``"goal_latent"`` carried to ``("next", "goal_latent")``.

    Example:
        >>> from torchrl_gbp.models import TransitionWorldModel
        >>> model = TransitionWorldModel(lambda z, a: z + a, latent_dim=2, action_dim=2)
        >>> td = TensorDict(latent=torch.zeros(3, 2), action=torch.ones(3, 2), goal_latent=torch.ones(3, 2),
        ...                 batch_size=[3])
        >>> as_torchrl_world_model(model).step(td)["next", "latent"].tolist()[0]
        [1.0, 1.0]
    """
    if isinstance(world_model, WorldModel):
        return world_model
    require(world_model, PlanningWorldModel, "as_torchrl_world_model")
    if world_model.num_hist != 1:
        raise ValueError(f"TorchRL's WorldModelEnv steps one latent; this model reads num_hist="
                         f"{world_model.num_hist} frames")
    encoder = TensorDictModule(world_model.encode, in_keys=list(world_model.observation_keys), out_keys=["latent"])
    return WorldModel(encoder=encoder,
                      dynamics=TensorDictModule(_RolloutStep(world_model), in_keys=["latent", "action"],
                                                out_keys=[("next", "latent")]),
                      reward_head=TensorDictModule(_CarryGoal(), in_keys=["goal_latent"],
                                                   out_keys=[("next", "goal_latent")]))


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
    planning_env = CandidateBatchWorldModelEnv(as_torchrl_world_model(world_model), objective, horizon,
                                               base_env=unbatched, batch_size=[])
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

    ``world_model``: any :class:`~torchrl_gbp.models.PlanningWorldModel` with
    ``num_hist == 1`` (:func:`as_torchrl_world_model`); ``env``: the real env,
    whose (batched) action spec bounds the plans. They maximise minus ``objective`` (the planners' :class:`GoalCost`; default
    as in :class:`~torchrl_gbp.planners.Planner`), so they search the same
    objective as our planners.

    MPPI's advantage is TD(lambda) with a zero value network (gamma = lambda = 1),
    i.e. the return of the imagined rollout. Call the planner on the output of
    :func:`reset_planning_env`; it samples from the global RNG.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> env = WallTask().make_env(num_envs=3)
        >>> planner = make_torchrl_planner("cem", model, env, samples=16, elites=4, iterations=2)
        >>> type(planner).__name__, type(planner.env).__mro__[1].__name__
        ('CEMPlanner', 'WorldModelEnv')
        >>> z = model.encode(torch.zeros(3, 2))
        >>> planner(reset_planning_env(planner, z, torch.ones(3, 2)))["action"].shape  # first model action each
        torch.Size([3, 10])
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
    """The planner's input for ``B`` envs: ``latent`` and ``goal_latent`` ``(B, D)`` after a reset.

    Example:
        >>> from torchrl_gbp.models import TransitionWorldModel
        >>> from torchrl_gbp.tasks import WallTask
        >>> model = TransitionWorldModel(lambda z, a: z + 0.1 * a, latent_dim=2, action_dim=2)
        >>> planner = make_torchrl_planner("mppi", model, WallTask().make_env(), samples=8, elites=2, iterations=1)
        >>> reset_planning_env(planner, torch.zeros(4, 2), torch.ones(4, 2)).batch_size
        torch.Size([4])
    """
    if latent.shape != goal_latent.shape or latent.ndim != 2:
        raise ValueError(f"latent and goal_latent must both be (B, D), got {tuple(latent.shape)} "
                         f"and {tuple(goal_latent.shape)}")
    td = TensorDict({"latent": latent, "goal_latent": goal_latent,
                     "plan_step": torch.zeros(latent.shape[0], 1, dtype=torch.int64, device=latent.device)},
                    batch_size=latent.shape[:1])
    return torch.stack([planner.env.reset(td[i]) for i in range(latent.shape[0])])
