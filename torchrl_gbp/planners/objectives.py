"""The goal cost every planner, diagnostic and synthesis method shares."""
from __future__ import annotations

import torch


class GoalCost:
    """Mean squared distance between predicted latents and a goal latent.

    Args:
        mode: ``"last"`` scores the final predicted step only; ``"all"`` weights
            step ``t`` (0-based) by ``base ** t``, normalised to sum to one.
        base: geometric weight for ``mode="all"``.
        alpha: weight of the proprioceptive part of the latent.
        proprio_dim: the last ``proprio_dim`` latent entries form the
            proprioceptive part (0: the latent has a single part).

    Example:
        >>> cost = GoalCost(mode="all", base=0.5)
        >>> cost(torch.zeros(3, 5, 2), torch.ones(3, 2))
        tensor([1., 1., 1.])
    """

    def __init__(self, mode: str = "all", base: float = 0.5, alpha: float = 1.0, proprio_dim: int = 0) -> None:
        if mode not in ("last", "all"):
            raise ValueError(f"GoalCost mode must be 'last' or 'all', got {mode!r}")
        if proprio_dim < 0:
            raise ValueError(f"GoalCost proprio_dim must be >= 0, got {proprio_dim}")
        if not base > 0:
            raise ValueError(f"GoalCost base must be > 0, got {base!r}")
        if not alpha >= 0:
            raise ValueError(f"GoalCost alpha must be >= 0, got {alpha!r}")
        self.mode = mode
        self.base = base
        self.alpha = alpha
        self.proprio_dim = proprio_dim

    def step_costs(self, z_traj: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        """Per-step cost ``(..., H)`` of ``z_traj`` ``(..., H, D)`` against ``z_goal`` ``(..., D)``."""
        sq = (z_traj - z_goal.unsqueeze(-2)).pow(2)
        p, d = self.proprio_dim, sq.shape[-1]
        if p > d:
            raise ValueError(f"GoalCost proprio_dim={p} exceeds the latent size {d}")
        if p == 0:
            return sq.mean(-1)
        if p == d:
            return self.alpha * sq.mean(-1)
        return sq[..., :-p].mean(-1) + self.alpha * sq[..., -p:].mean(-1)

    def weights(self, horizon: int, like: torch.Tensor) -> torch.Tensor:
        """Step weights ``(H,)`` that sum to one."""
        if self.mode == "last":
            w = torch.zeros(horizon, dtype=like.dtype, device=like.device)
            w[-1] = 1.0
            return w
        w = self.base ** torch.arange(horizon, dtype=like.dtype, device=like.device)
        return w / w.sum()

    def __call__(self, z_traj: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        """Total cost ``(...,)`` of each trajectory."""
        steps = self.step_costs(z_traj, z_goal)
        return steps @ self.weights(steps.shape[-1], steps)

    def __repr__(self) -> str:
        return f"GoalCost(mode={self.mode!r}, base={self.base}, alpha={self.alpha}, proprio_dim={self.proprio_dim})"
