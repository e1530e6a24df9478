"""Latent dynamics predictors: (latent history, action-embedding history) -> next latent."""
from __future__ import annotations

import torch
from torch import nn

from .encoders import mlp


class ResidualMLPPredictor(nn.Module):
    """Predicts ``z_{t+1} = z_t + MLP([z_{t-h+1..t}, e_{t-h+1..t}])``.

    Args:
        latent_dim: size of one latent.
        action_embed_dim: size of one action embedding.
        num_hist: number of history frames ``h`` the predictor reads.
        hidden_dim, depth: MLP width and number of hidden layers.

    Example:
        >>> pred = ResidualMLPPredictor(2, 4, num_hist=3, hidden_dim=32, depth=2)
        >>> pred(torch.zeros(5, 3, 2), torch.zeros(5, 3, 4)).shape
        torch.Size([5, 2])
    """

    def __init__(self, latent_dim: int, action_embed_dim: int, num_hist: int = 1,
                 hidden_dim: int = 256, depth: int = 3) -> None:
        super().__init__()
        self.num_hist = num_hist
        self.net = mlp(num_hist * (latent_dim + action_embed_dim), latent_dim, hidden_dim, depth)

    def forward(self, z_hist: torch.Tensor, e_hist: torch.Tensor) -> torch.Tensor:
        """``z_hist``: ``(..., h, D)``, ``e_hist``: ``(..., h, E)`` -> ``(..., D)``."""
        features = torch.cat([z_hist.flatten(-2), e_hist.flatten(-2)], dim=-1)
        return z_hist[..., -1, :] + self.net(features)
