"""One way to build a planner by name, and one way to read action bounds from a TorchRL spec."""
from __future__ import annotations

import torch
from tensordict.utils import NestedKey
from torchrl.data import Bounded, Composite, TensorSpec

from ..models.contract import action_interface
from ..objectives import GoalCost
from .base import Planner
from .budget import SearchBudget
from .gradient import GradientPlanner
from .hybrid import GradientCEMPlanner
from .options import PlannerOptions
from .sampling import CrossEntropyPlanner, ImprovedCEMPlanner, PathIntegralPlanner

PLANNER_CLASSES: dict[str, type[Planner]] = {
    "gd": GradientPlanner, "cem": CrossEntropyPlanner, "mppi": PathIntegralPlanner,
    "icem": ImprovedCEMPlanner, "gd_cem": GradientCEMPlanner,
}


def env_action_bounds(action_spec: TensorSpec, env_action_dim: int,
                      action_key: NestedKey = "action") -> tuple[torch.Tensor, torch.Tensor]:
    """Low and high ``(env_action_dim,)`` of one env action, from a (batched) ``Bounded`` spec or a ``Composite``.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> low, high = env_action_bounds(WallTask().make_env(num_envs=3).action_spec, 2)
        >>> low.tolist(), high.tolist()
        ([-1.0, -1.0], [1.0, 1.0])
    """
    spec = action_spec
    if isinstance(spec, Composite):
        keys = list(spec.keys(True, True))
        if action_key not in keys:
            raise KeyError(f"the action spec has no {action_key!r}; it has {keys}")
        spec = spec[action_key]
    if not isinstance(spec, Bounded) or not spec.dtype.is_floating_point:
        raise TypeError(f"gradient planning needs continuous actions: a float Bounded action spec for {action_key!r}, "
                        f"got {type(spec).__name__} of dtype {spec.dtype} ({spec})")
    if spec.shape[-1] != env_action_dim:
        raise ValueError(f"the action spec has last dimension {spec.shape[-1]}; the world model expects "
                         f"env_action_dim={env_action_dim}")
    low = spec.space.low.reshape(-1, env_action_dim)[0].clone()
    high = spec.space.high.reshape(-1, env_action_dim)[0].clone()
    return low, high


def model_action_bounds(world_model, action_spec: TensorSpec,
                        action_key: NestedKey = "action") -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds ``(action_dim,)`` of the world model's normalised action that keep env actions inside ``action_spec``.

    Through the model's :class:`~torchrl_gbp.models.ActionInterface` (the identity when it has none).

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> model.fit_normalization(torch.zeros(2, 2), torch.stack([torch.zeros(10), torch.ones(10)]))
        >>> low, high = model_action_bounds(model, WallTask().action_spec)  # env actions in [-1, 1]
        >>> low.shape, round(low[0].item(), 2), round(high[0].item(), 2)  # (bound - mean 0.5) / std 0.71
        (torch.Size([10]), -2.12, 0.71)
    """
    interface = action_interface(world_model)
    low, high = env_action_bounds(action_spec, interface.env_action_dim, action_key)
    return interface.model_bounds(low, high)


def make_planner(planner: str | PlannerOptions, world_model, horizon: int = 5, objective: GoalCost | None = None,
                 action_spec: TensorSpec | None = None, **kwargs) -> Planner:
    """Build ``planner`` on ``world_model``: its option object (:class:`GradientOptions`, :class:`CEMOptions`,
    :class:`MPPIOptions`, :class:`ICEMOptions`, :class:`GDCEMOptions`), or its name (a key of
    :data:`PLANNER_CLASSES`: ``"gd"``, ``"cem"``, ``"mppi"``, ``"icem"``, ``"gd_cem"``) with the class's defaults.

    With ``action_spec`` the planner's actions are bounded to it (unless
    ``kwargs`` give ``action_low``/``action_high``). Other ``kwargs`` go to the
    planner class (what every planner shares: ``budget``, a :class:`SearchBudget`, ``compile``, ``result``,
    ``memory``; or single settings on top of the option object).

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> planner = make_planner("cem", model, action_spec=WallTask().action_spec, samples=20, elites=4)
        >>> type(planner).__name__, planner.action_low.shape
        ('CrossEntropyPlanner', torch.Size([10]))
        >>> from torchrl_gbp.planners import GradientOptions
        >>> planner = make_planner(GradientOptions(steps=10, optimizer="sgd"), model, horizon=3)
        >>> planner.steps, planner.optimizer.__name__
        (10, 'SGD')
    """
    if isinstance(planner, str):
        name = planner
    else:
        name, kwargs = planner.planner, {**planner.arguments(), **kwargs}
    if name not in PLANNER_CLASSES:
        raise ValueError(f"unknown planner {name!r}; expected one of {sorted(PLANNER_CLASSES)}")
    if "budget" in kwargs and not isinstance(kwargs["budget"], SearchBudget | None):
        raise TypeError(f"budget must be a SearchBudget or None, got {kwargs['budget']!r}")
    if action_spec is not None and kwargs.get("action_low") is None:
        low, high = model_action_bounds(world_model, action_spec)
        kwargs = {**kwargs, "action_low": low, "action_high": high}
    return PLANNER_CLASSES[name](world_model, objective=objective, horizon=horizon, **kwargs)
