"""A learned reward head: the reward of a model step from the latent it reaches and the action taken."""
from __future__ import annotations

import torch
from torch import nn

from .encoders import mlp


class RewardHead(nn.Module):
    """Small MLP ``(z_next (..., D), action (..., A)) -> reward (...,)``.

    ``z_next`` is the latent after the model step and ``action`` the
    normalised model action that led to it; with a frameskip the target is the
    sum of the env rewards of the step's env actions. Trained by
    :class:`~torchrl_gbp.models.TeacherForcingLoss` (``loss_reward``) and read
    by :class:`~torchrl_gbp.planners.ReturnObjective`.

    Example:
        >>> head = RewardHead(latent_dim=4, action_dim=2)
        >>> head(torch.zeros(8, 5, 4), torch.zeros(8, 5, 2)).shape
        torch.Size([8, 5])
    """

    def __init__(self, latent_dim: int, action_dim: int, hidden_dim: int = 128, depth: int = 2) -> None:
        super().__init__()
        self.latent_dim, self.action_dim = latent_dim, action_dim
        self.net = mlp(latent_dim + action_dim, 1, hidden_dim, depth)

    def forward(self, z_next: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Predicted rewards ``(...,)``."""
        if z_next.shape[-1] != self.latent_dim or action.shape[-1] != self.action_dim:
            raise ValueError(f"RewardHead expects z_next (..., {self.latent_dim}) and action (..., {self.action_dim}); "
                             f"got {tuple(z_next.shape)} and {tuple(action.shape)}")
        return self.net(torch.cat([z_next, action], dim=-1)).squeeze(-1)
