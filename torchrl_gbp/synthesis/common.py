"""Helpers both synthesis transforms share: window inputs, row choice, the model mode while synthesising."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from torchrl_gbp.data import window_latents


@contextmanager
def synthesis_mode(model: object, train: bool = False) -> Iterator[None]:
    """Run a block with ``model`` in eval mode (``train``: train mode, dropout on) and gradients enabled,
    then restore every submodule's mode (a model that is not an ``nn.Module`` has no mode to set).

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
    modules = model.modules() if isinstance(model, nn.Module) else ()
    modes = [(module, module.training) for module in modules]
    if isinstance(model, nn.Module):
        model.train(train)
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


def window_inputs(world_model, tensordict: TensorDictBase, latent_key: NestedKey,
                  action_key: NestedKey) -> tuple[torch.Tensor, torch.Tensor]:
    """The latents ``(B, T, D)`` (encoded once per batch, :func:`~torchrl_gbp.data.window_latents`) and the
    actions ``(B, T - 1, A)`` of a batch of model-step windows, checked against each other.

    ``T > num_hist`` frames are needed (history plus at least one target).
    """
    if action_key not in tensordict.keys(True):
        raise KeyError(f"a batch of windows needs {action_key!r}; found {list(tensordict.keys(True, True))}")
    action = tensordict.get(action_key)
    z = window_latents(world_model, tensordict, latent_key)
    h = world_model.num_hist
    if z.ndim != 3 or z.shape[1] <= h:
        raise ValueError(f"windows must hold (B, T, ...) frames with T > num_hist={h}, got latents "
                         f"{tuple(z.shape)} (sample windows with torchrl_gbp.data.ModelStepWindows)")
    if action.ndim != 3 or tuple(action.shape[:2]) != (z.shape[0], z.shape[1] - 1):
        raise ValueError(f"{action_key!r} must have shape ({z.shape[0]}, {z.shape[1] - 1}, ...) for windows of "
                         f"{z.shape[1]} frames; got {tuple(action.shape)}")
    return z, action
