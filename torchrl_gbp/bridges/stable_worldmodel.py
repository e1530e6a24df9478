"""stable-worldmodel's protocols: its ``Costable`` models planned by our planners, our models as ``Costable``.

stable-worldmodel (``pip install stable-worldmodel``) puts every world model
behind ``Costable.get_cost(info_dict, action_candidates) -> costs`` and every
solver behind ``solve(info_dict, init_action)``. This bridge speaks those
protocols without importing the package (it needs torchvision, which does not
import beside a CPU torch build):

* :class:`CostableWorldModel`: a ``Costable`` as a
  :class:`~torchrl_gbp.models.PlanningWorldModel`, so our planners and
  :class:`~torchrl_gbp.planners.MPCPolicy` plan with it. Its "latent" is the
  info dict packed into one flat tensor; its ``rollout`` asks ``get_cost`` and
  returns the cost as a one-entry latent per step, which
  :data:`MODEL_COST` (a goal-free objective) reads.
* :class:`AsCostable`: one of our world models (and a goal cost) offered to
  stable-worldmodel's solvers as a ``Costable``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import prod
from typing import Protocol, runtime_checkable

import torch
from tensordict.utils import NestedKey
from torch import nn

from ..models.contract import PlanningWorldModel, cast_float, model_dtype, proprio_dim, require
from ..objectives import GoalCost


@runtime_checkable
class Costable(Protocol):
    """stable-worldmodel's model protocol: costs ``(B, S)`` of action candidates ``(B, S, H, A)``.

    ``info_dict`` maps names to tensors ``(B, S, ...)`` (the env's observations and goal, expanded over the
    ``S`` candidates).

    Example:
        >>> class Distance:
        ...     def get_cost(self, info_dict, action_candidates):
        ...         return (info_dict["position"] + action_candidates.sum(-2)).pow(2).sum(-1)
        >>> isinstance(Distance(), Costable)
        True
    """

    def get_cost(self, info_dict: dict, action_candidates: torch.Tensor) -> torch.Tensor:
        """``info_dict`` of ``(B, S, ...)`` tensors, candidates ``(B, S, H, A)`` -> costs ``(B, S)``."""


class ModelCost:
    """The goal-free objective of a :class:`CostableWorldModel`: the cost its rollout carries in its last step.

    Example:
        >>> MODEL_COST(torch.tensor([[[0.0], [2.5]]]), None)
        tensor([2.5000])
    """

    needs_goal = False

    def __call__(self, trajectory: torch.Tensor, goal: torch.Tensor | None = None) -> torch.Tensor:
        """``(..., H, 1)`` -> ``(...)``."""
        return trajectory[..., -1, 0]

    def __repr__(self) -> str:
        return "ModelCost()"


MODEL_COST = ModelCost()


class CostableWorldModel(nn.Module):
    """A stable-worldmodel ``Costable`` as a world model our planners and :class:`~torchrl_gbp.planners.MPCPolicy`
    plan with (objective :data:`MODEL_COST`).

    ``encode`` packs the info entries (one per key of ``info_shapes``, read from
    the TensorDict under the same keys) into one flat float latent;
    ``rollout`` unpacks them (integer entries, such as uint8 images, back to
    their dtype), calls ``costable.get_cost(info, candidates)`` and returns
    ``(..., H, 1)``: zeros, then the cost in the last step. Actions are the
    costable's (its ``action_block`` grouping is our ``frameskip``: give an
    :class:`~torchrl_gbp.models.ActionInterface` when it groups env actions).

    Args:
        costable: any object with ``get_cost(info_dict, action_candidates)``.
        info_shapes: each info entry's key and per-env shape (its dtype given as a pair
            ``(shape, dtype)``; float32 by default).
        action_dim: the size of one (flattened) action of the costable.
        action_interface: frameskip, statistics and bounds; ``None``: the identity.

    Example:
        >>> from torchrl_gbp.planners import GradientPlanner
        >>> class Distance:   # a stand-in following the protocol
        ...     def get_cost(self, info_dict, action_candidates):
        ...         reached = info_dict["position"] + action_candidates.sum(-2)
        ...         return (reached - info_dict["goal"]).pow(2).sum(-1)
        >>> model = CostableWorldModel(Distance(), info_shapes={"position": (2,), "goal": (2,)}, action_dim=2)
        >>> z = model.encode(torch.zeros(3, 2), torch.ones(3, 2))
        >>> planner = GradientPlanner(model, objective=MODEL_COST, horizon=2, steps=100, lr=0.1, noise_std=0.0)
        >>> plan = planner.plan(z.unsqueeze(1), z.new_zeros(3, 0, 2), None)
        >>> plan.actions.sum(1)[0].round(decimals=2), float(plan.cost.max()) < 1e-4
        (tensor([1., 1.]), True)
    """

    num_hist = 1

    def __init__(self, costable: Costable, *, info_shapes: Mapping[NestedKey, Sequence[int] | tuple],
                 action_dim: int, action_interface: nn.Module | None = None) -> None:
        super().__init__()
        if not callable(getattr(costable, "get_cost", None)):
            raise TypeError(f"costable must have get_cost(info_dict, action_candidates) (stable-worldmodel's "
                            f"Costable); {type(costable).__name__} has not")
        if not info_shapes:
            raise ValueError("info_shapes must name at least one info entry")
        self.costable = costable
        self.layout: list[tuple[NestedKey, tuple[int, ...], torch.dtype]] = []
        for key, shape in info_shapes.items():
            dtype = torch.float32
            if len(shape) == 2 and isinstance(shape[1], torch.dtype):
                shape, dtype = shape
            self.layout.append((key, tuple(int(n) for n in shape), dtype))
        self.observation_keys = tuple(key for key, _, _ in self.layout)
        self.goal_keys: tuple[NestedKey, ...] = ()
        self.latent_dim = sum(prod(shape) for _, shape, _ in self.layout)
        self.action_dim = action_dim
        if action_interface is not None:
            self.action_interface = action_interface

    def encode(self, *entries: torch.Tensor) -> torch.Tensor:
        """The info entries (one per key of ``info_shapes``, ``(..., *shape)``) packed into ``(..., latent_dim)``."""
        if len(entries) != len(self.layout):
            raise TypeError(f"encode takes one tensor per info key {list(self.observation_keys)}, got {len(entries)}")
        flat = []
        for (key, shape, _), x in zip(self.layout, entries):
            if tuple(x.shape[x.ndim - len(shape):]) != shape:
                raise ValueError(f"info entry {key!r} must have per-env shape {shape}, got {tuple(x.shape)}")
            flat.append(x.reshape(*x.shape[:x.ndim - len(shape)], -1).to(torch.get_default_dtype()))
        return torch.cat(flat, dim=-1)

    def info(self, z: torch.Tensor) -> dict[NestedKey, torch.Tensor]:
        """Inverse of :meth:`encode`: the info dict of packed latents ``(..., latent_dim)``."""
        info, start = {}, 0
        for key, shape, dtype in self.layout:
            size = prod(shape)
            x = z[..., start:start + size].reshape(*z.shape[:-1], *shape)
            info[key] = x if dtype.is_floating_point else x.round().to(dtype)
            start += size
        return info

    def rollout(self, z_hist: torch.Tensor, a_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(B, S, 1, D), (B, S, 0, A), (B, S, H, A) -> (B, S, H, 1)``: the costable's cost in the last step."""
        if actions.ndim != 4:
            raise ValueError(f"a Costable scores candidates (B, S, H, A); got actions {tuple(actions.shape)} "
                             f"(plan with one of the package's planners)")
        cost = self.costable.get_cost(self.info(z_hist[..., -1, :]), actions)
        if tuple(cost.shape) != tuple(actions.shape[:2]):
            raise ValueError(f"get_cost must return costs (B, S) = {tuple(actions.shape[:2])}, got "
                             f"{tuple(cost.shape)}")
        steps = actions.new_zeros(*actions.shape[:-1], 1)
        return torch.cat([steps[..., :-1, :], cost.to(actions.dtype)[..., None, None]], dim=-2)


class AsCostable:
    """One of our world models and a goal cost, offered to stable-worldmodel's solvers as a ``Costable``.

    ``get_cost(info_dict, action_candidates)``: ``info_dict`` holds the model's
    observation entries and the goal's (tensors ``(B, S, ...)``, under the
    names ``info_keys`` gives: by default the observation and goal keys, a
    nested key joined with dots); candidates ``(B, S, H, action_dim)`` are the
    model's normalised actions. The history is the current frame repeated
    ``num_hist`` times after zero actions, as :func:`~torchrl_gbp.planners.planning_inputs`
    starts an episode.

    Args:
        world_model: any :class:`~torchrl_gbp.models.PlanningWorldModel`.
        objective: the cost of the predicted latents (default: ``GoalCost`` with the model's ``proprio_dim``).
        info_keys: the info name of each observation key, then of each goal key.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> costable = AsCostable(model)
        >>> info = {"observation": torch.zeros(3, 8, 2), "goal": torch.ones(3, 8, 2)}
        >>> costable.get_cost(info, torch.zeros(3, 8, 5, 2)).shape
        torch.Size([3, 8])
    """

    def __init__(self, world_model: PlanningWorldModel, *, objective: GoalCost | None = None,
                 info_keys: Sequence[str] | None = None) -> None:
        require(world_model, PlanningWorldModel, "AsCostable")
        self.world_model = world_model
        self.objective = objective if objective is not None else GoalCost(proprio_dim=proprio_dim(world_model))
        keys = [*world_model.observation_keys, *world_model.goal_keys]
        names = list(info_keys) if info_keys is not None else [k if isinstance(k, str) else ".".join(k) for k in keys]
        if len(names) != len(keys):
            raise ValueError(f"info_keys must name {len(keys)} entries (for {keys}), got {names}")
        n = len(world_model.observation_keys)
        self.observation_names, self.goal_names = names[:n], names[n:]

    def _latent(self, info_dict: dict, names: list[str]) -> torch.Tensor:
        missing = [name for name in names if name not in info_dict]
        if missing:
            raise KeyError(f"info_dict lacks {missing}; it has {sorted(info_dict)}")
        dtype = model_dtype(self.world_model)
        return self.world_model.encode(*(cast_float(torch.as_tensor(info_dict[name]), dtype) for name in names))

    def criterion(self, info_dict: dict, action_candidates: torch.Tensor) -> torch.Tensor:
        """The same as :meth:`get_cost` (stable-worldmodel's protocol names both)."""
        return self.get_cost(info_dict, action_candidates)

    def get_cost(self, info_dict: dict, action_candidates: torch.Tensor) -> torch.Tensor:
        """Costs ``(B, S)`` of candidates ``(B, S, H, A)``."""
        wm, h = self.world_model, self.world_model.num_hist
        z = self._latent(info_dict, self.observation_names)
        z_goal = self._latent(info_dict, self.goal_names) if self.goal_names else None
        z_hist = z.unsqueeze(-2).expand(*z.shape[:-1], h, z.shape[-1])
        a_hist = action_candidates.new_zeros(*action_candidates.shape[:-2], h - 1, action_candidates.shape[-1])
        return self.objective(wm.rollout(z_hist, a_hist, action_candidates), z_goal)
