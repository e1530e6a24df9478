"""The synthesis transform of a finetuning method, by name."""
from __future__ import annotations

from dataclasses import fields, replace
from functools import partial

import torch
from torchrl.envs import Compose, EnvBase, Transform

from torchrl_gbp.objectives import ReturnObjective
from torchrl_gbp.tasks import Task

from .adversarial import AdversarialOptions, AdversarialSynthesis
from .online import OnlineOptions, OnlineSynthesis

METHODS = ("online", "adversarial", "both")


def make_synthesis(method: str, world_model, task: Task, *, online: dict | None = None,
                   adversarial: dict | None = None, seed: int = 0) -> Transform:
    """The replay-buffer transform of ``method``: ``"online"``, ``"adversarial"`` or ``"both"`` (online, then adversarial).

    ``online`` and ``adversarial`` are keyword arguments of
    :class:`OnlineSynthesis` and :class:`AdversarialSynthesis`, where the fields of
    their option objects (:class:`OnlineOptions`, :class:`AdversarialOptions`) may
    be given flat; ``seed`` seeds
    both. Online synthesis simulates in ``task``'s envs (``task.make_env``,
    seeded with ``seed``) and, for tasks without a goal (``task.has_goal``
    False), plans the predicted return (:class:`~torchrl_gbp.planners.ReturnObjective`).
    Tasks whose state cannot be set (``task.check_settable_state``) are refused.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> type(make_synthesis("both", model, WallTask())).__name__
        'Compose'
    """
    if method not in METHODS:
        raise ValueError(f"unknown finetuning method {method!r}; expected one of {list(METHODS)}")
    parts = []
    if method in ("online", "both"):
        check_settable = getattr(task, "check_settable_state", None)
        if check_settable is not None:
            check_settable("online synthesis")
        arguments = _with_options(OnlineOptions, online)
        if not getattr(task, "has_goal", True) and arguments["options"].objective is None:
            arguments["options"] = replace(arguments["options"], objective=ReturnObjective(world_model))
        parts.append(OnlineSynthesis(world_model, partial(_task_env, task, seed), seed=seed, **arguments))
    if method in ("adversarial", "both"):
        parts.append(AdversarialSynthesis(world_model, generator=torch.Generator().manual_seed(seed),
                                          **_with_options(AdversarialOptions, adversarial)))
    return parts[0] if len(parts) == 1 else Compose(*parts)


def _with_options(options_type: type, arguments: dict | None) -> dict:
    """Constructor arguments with the fields of ``options_type`` given flat gathered into ``options``."""
    arguments = dict(arguments or {})
    names = {field.name for field in fields(options_type)}
    flat = {name: arguments.pop(name) for name in list(arguments) if name in names}
    arguments["options"] = replace(arguments.get("options") or options_type(), **flat)
    return arguments


def _task_env(task: Task, seed: int, num_envs: int) -> EnvBase:
    """``task``'s batched env of ``num_envs`` envs (a module-level function, so transforms stay picklable)."""
    return task.make_env(num_envs=num_envs, seed=seed)
