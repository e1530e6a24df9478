"""The synthesis transform of a finetuning method, by name."""
from __future__ import annotations

import torch
from torchrl.envs import Compose, Transform

from torchrl_gbp.tasks import Task

from .adversarial import AdversarialSynthesis
from .online import OnlineSynthesis

METHODS = ("online", "adversarial", "both")


def make_synthesis(method: str, world_model, task: Task, online: dict | None = None,
                   adversarial: dict | None = None, seed: int = 0, slice_len: int | None = None) -> Transform:
    """The replay-buffer transform of ``method``: ``"online"``, ``"adversarial"`` or ``"both"`` (online, then adversarial).

    ``online`` and ``adversarial`` are keyword arguments of
    :class:`OnlineSynthesis` and :class:`AdversarialSynthesis`; ``seed`` seeds
    both; ``slice_len`` selects the flat ``SliceSampler`` layout.

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
        parts.append(OnlineSynthesis(world_model, task, seed=seed, slice_len=slice_len, **(online or {})))
    if method in ("adversarial", "both"):
        parts.append(AdversarialSynthesis(world_model, generator=torch.Generator().manual_seed(seed),
                                          slice_len=slice_len, **(adversarial or {})))
    return parts[0] if len(parts) == 1 else Compose(*parts)
