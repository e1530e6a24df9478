"""Observation encoders (observation -> latent) and their optional decoders."""
from __future__ import annotations

import torch
from torch import nn


def mlp(in_dim: int, out_dim: int, hidden_dim: int, depth: int) -> nn.Sequential:
    """A plain MLP with ``depth`` hidden layers of width ``hidden_dim`` and GELU activations."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden_dim), nn.GELU()]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class IdentityEncoder(nn.Module):
    """The latent is the (normalised) state itself: ``latent_dim == obs_dim``.

    Example:
        >>> enc = IdentityEncoder(3)
        >>> enc.latent_dim, enc(torch.ones(2, 3)).tolist()
        (3, [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    """

    def __init__(self, obs_dim: int) -> None:
        super().__init__()
        self.latent_dim = obs_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Return ``obs`` unchanged."""
        return obs


class MLPEncoder(nn.Module):
    """An MLP from the normalised state to a ``latent_dim`` latent.

    Example:
        >>> enc = MLPEncoder(4, 8, hidden_dim=32, depth=1)
        >>> enc(torch.zeros(3, 4)).shape
        torch.Size([3, 8])
    """

    def __init__(self, obs_dim: int, latent_dim: int, hidden_dim: int = 128, depth: int = 2) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = mlp(obs_dim, latent_dim, hidden_dim, depth)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Encode ``(..., obs_dim)`` to ``(..., latent_dim)``."""
        return self.net(obs)


class ActionEncoder(nn.Module):
    """Linear embedding of the normalised action block (the paper's action encoder).

    Example:
        >>> enc = ActionEncoder(10, 16)                        # a frameskip-5 block of 2-d actions
        >>> enc(torch.zeros(4, 5, 10)).shape
        torch.Size([4, 5, 16])
    """

    def __init__(self, action_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.linear = nn.Linear(action_dim, embed_dim)

    def forward(self, action: torch.Tensor) -> torch.Tensor:
        """Embed ``(..., action_dim)`` to ``(..., embed_dim)``."""
        return self.linear(action)
