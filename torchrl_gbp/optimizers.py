"""The optimisers the library takes by name: world-model training and gradient planning share this one table."""
from __future__ import annotations

import torch

# Name -> ``torch.optim`` class. Training takes ``"adam"`` or ``"adamw"`` (``train_world_model(optimizer=...)``);
# gradient planning any of them (``GradientOptions(optimizer=...)``; the paper's ``"sgd"`` and ``"adam"``).
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
}


def optimizer_class(name: str, allowed: tuple[str, ...] = tuple(OPTIMIZERS)) -> type[torch.optim.Optimizer]:
    """The ``torch.optim`` class named ``name``, one of ``allowed``; a clear error otherwise.

    Example:
        >>> optimizer_class("sgd").__name__
        'SGD'
        >>> optimizer_class("sgd", allowed=("adam", "adamw"))
        Traceback (most recent call last):
            ...
        ValueError: optimizer must be one of ('adam', 'adamw'), got 'sgd'
    """
    if name not in allowed:
        raise ValueError(f"optimizer must be one of {allowed}, got {name!r}")
    return OPTIMIZERS[name]
