"""The synthesis transform of a finetuning method, by name."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import torch
from torchrl.envs import Compose, EnvBase, Transform

from torchrl_gbp.objectives import ReturnObjective
from torchrl_gbp.tasks import Task

from .adversarial import AdversarialOptions, AdversarialSynthesis
from .online import OnlineOptions, OnlineSynthesis

METHODS = ("online", "adversarial", "both")


@dataclass(frozen=True, kw_only=True)
class SynthesisShares:
    """How much synthetic data :func:`make_synthesis` brings in: online synthesis every ``every`` sampled batches
    replacing a share ``online_fraction`` of the rows, adversarial synthesis perturbing a share
    ``adversarial_fraction`` (the ``every`` and ``fraction`` arguments of :class:`OnlineSynthesis` and
    :class:`AdversarialSynthesis`).

    Example:
        >>> SynthesisShares(every=20).online_fraction
        0.5
    """

    every: int = 10
    online_fraction: float = 0.5
    adversarial_fraction: float = 1.0


def make_synthesis(method: str, world_model, task: Task, *, online: OnlineOptions = OnlineOptions(),
                   adversarial: AdversarialOptions = AdversarialOptions(), shares: SynthesisShares = SynthesisShares(),
                   seed: int = 0) -> Transform:
    """The replay-buffer transform of ``method``: ``"online"``, ``"adversarial"`` or ``"both"`` (online, then adversarial).

    ``online``, ``adversarial`` and ``shares`` configure :class:`OnlineSynthesis` and
    :class:`AdversarialSynthesis`; ``seed`` seeds
    both. Online synthesis simulates in ``task``'s envs (``task.make_env``,
    seeded with ``seed``) and, for tasks without a goal (``task.has_goal``
    False), plans the predicted return (:class:`~torchrl_gbp.planners.ReturnObjective`).
    Tasks whose state cannot be set (``task.check_settable_state``) are refused.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> type(make_synthesis("both", model, WallTask(), online=OnlineOptions(planner_steps=30))).__name__
        'Compose'
    """
    if method not in METHODS:
        raise ValueError(f"unknown finetuning method {method!r}; expected one of {list(METHODS)}")
    parts = []
    if method in ("online", "both"):
        check_settable = getattr(task, "check_settable_state", None)
        if check_settable is not None:
            check_settable("online synthesis")
        if not getattr(task, "has_goal", True) and online.objective is None:
            online = replace(online, objective=ReturnObjective(world_model))
        parts.append(OnlineSynthesis(world_model, partial(_task_env, task, seed), every=shares.every,
                                     fraction=shares.online_fraction, options=online, seed=seed))
    if method in ("adversarial", "both"):
        parts.append(AdversarialSynthesis(world_model, fraction=shares.adversarial_fraction, options=adversarial,
                                          generator=torch.Generator().manual_seed(seed)))
    return parts[0] if len(parts) == 1 else Compose(*parts)


def _task_env(task: Task, seed: int, num_envs: int) -> EnvBase:
    """``task``'s batched env of ``num_envs`` envs (a module-level function, so transforms stay picklable)."""
    return task.make_env(num_envs=num_envs, seed=seed)
