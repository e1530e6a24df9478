"""Helpers both synthesis transforms share: window checks, row choice, the model mode while synthesising."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from torchrl_gbp.data import SliceLayout


@contextmanager
def synthesis_mode(model: nn.Module) -> Iterator[None]:
    """Run a block with ``model`` in eval mode and gradients enabled, then restore every submodule's mode.

    Replay buffers may sample under ``torch.no_grad()``, in a prefetch thread,
    or while the model is in train mode; synthesis must behave the same in all.

    Example:
        >>> model = torch.nn.Linear(2, 2).train()
        >>> with torch.no_grad(), synthesis_mode(model):
        ...     model.training, torch.is_grad_enabled()
        (False, True)
        >>> model.training
        True
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def check_fraction(fraction: float) -> float:
    """Return ``fraction`` if it lies in ``[0, 1]``, else raise a ``ValueError`` naming it."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    return float(fraction)


def choose_rows(batch: int, fraction: float, generator: torch.Generator | None) -> torch.Tensor:
    """Indices of a random subset of ``round(fraction * batch)`` rows, on ``generator``'s device."""
    device = None if generator is None else generator.device
    return torch.randperm(batch, generator=generator, device=device)[: round(fraction * batch)]


def window_tensors(tensordict: TensorDictBase, keys: Sequence[NestedKey], num_hist: int,
                   layout: SliceLayout | None = None) -> list[torch.Tensor]:
    """The ``keys`` of a batch as model-step windows, checked against the window layout.

    ``keys[0]`` is the observation and ``keys[1]`` the action. Windows:
    the action ``(B, T - 1, ...)`` and every other key ``(B, T, ...)``, with
    ``T > num_hist`` frames (``T`` from the observation). With ``layout`` the
    batch is a flat batch of env-step slices (TorchRL's ``SliceSampler``
    layout), cut into windows by :class:`~torchrl_gbp.data.SliceLayout`.
    """
    present = list(tensordict.keys(True))
    missing = [key for key in keys if key not in present]
    if missing:
        raise KeyError(f"a batch of windows needs keys {missing}; found {present}")
    action_key = keys[1]
    if layout is None:
        tensors = [tensordict.get(key) for key in keys]
    else:
        tensors = [layout.model_actions_of(key, tensordict.get(key)) if key == action_key
                   else layout.frames_of(key, tensordict.get(key)) for key in keys]
    obs = tensors[0]
    if obs.ndim < 3 or obs.shape[1] <= num_hist:
        hint = " (a flat batch of env-step slices needs slice_len)" if layout is None and obs.ndim == 2 else ""
        raise ValueError(f"{keys[0]!r} must be (B, T, ...) windows with T > num_hist={num_hist}, "
                         f"got {tuple(obs.shape)}{hint}")
    for key, value in zip(keys, tensors):
        frames = obs.shape[1] - 1 if key == action_key else obs.shape[1]
        if value.ndim < 3 or tuple(value.shape[:2]) != (obs.shape[0], frames):
            raise ValueError(
                f"{key!r} must have shape ({obs.shape[0]}, {frames}, ...) to match {keys[0]!r} "
                f"{tuple(obs.shape)}; got {tuple(value.shape)}"
            )
    return tensors


def slice_layout(slice_len: int | None, world_model) -> SliceLayout | None:
    """The :class:`~torchrl_gbp.data.SliceLayout` of flat batches of ``slice_len`` env steps (``None``: windows)."""
    return None if slice_len is None else SliceLayout(slice_len, world_model.frameskip)
