"""Affine normalisation with statistics taken from a dataset."""
from __future__ import annotations

import torch
from torch import nn


class Normalizer(nn.Module):
    """Z-scores the last dimension with stored mean and std buffers.

    The statistics are buffers, so they travel with ``state_dict`` and
    checkpoints.

    Example:
        >>> norm = Normalizer(2)
        >>> norm.fit(torch.randn(100, 2) * 3 + 1)
        >>> x = torch.randn(5, 2)
        >>> torch.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-6)
        True
    """

    def __init__(self, dim: int, min_std: float = 1e-4) -> None:
        super().__init__()
        self.dim = dim
        self.min_std = min_std
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, data: torch.Tensor) -> None:
        """Set mean and std from ``data`` of shape ``(..., dim)``."""
        if data.shape[-1] != self.dim:
            raise ValueError(
                f"Normalizer.fit expected data with last dimension {self.dim}, got shape {tuple(data.shape)}"
            )
        flat = data.reshape(-1, self.dim).to(self.mean)
        self.mean.copy_(flat.mean(0))
        self.std.copy_(flat.std(0).clamp_min(self.min_std))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map raw values to z-scores."""
        return (x - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map z-scores back to raw values."""
        return x * self.std + self.mean
