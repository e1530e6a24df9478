"""Argument checks shared across the package: each raises a ``ValueError`` that names the argument."""
from __future__ import annotations

import torch


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive ``int``, else raise a ``ValueError`` naming it.

    Example:
        >>> check_positive_int("num_envs", 4)
        4
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_last_dim(name: str, tensor: torch.Tensor, size: int) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``tensor`` has shape ``(..., size)``.

    Example:
        >>> check_last_dim("action", torch.zeros(4, 2), 2)  # the right shape: nothing happens
        >>> check_last_dim("action", torch.zeros(4, 3), 2)
        Traceback (most recent call last):
            ...
        ValueError: action must have shape (..., 2), got (4, 3)
    """
    if tensor.ndim < 1 or tensor.shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}), got {tuple(tensor.shape)}")
