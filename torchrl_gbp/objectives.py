"""The planning objectives every planner, diagnostic and synthesis method shares: goal cost and predicted return.

An objective is called as ``objective(z_traj, z_goal)`` with the predicted
latents ``(..., H, D)`` and the goal latent ``(..., D)`` (``None`` when the
objective declares ``needs_goal = False``), plus the planned normalised actions
``(..., H, A)`` as a third argument when it declares ``uses_actions = True``;
it returns a cost ``(...,)`` that planners minimise. Any callable of two
arguments is an objective (user costs written for the goal cost keep working).
"""
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
        include_start: score the start frame too, as the reference code's
            ``all`` cost does: planners prepend the last history frame to the
            predicted ones, the ``base ** i`` weights are normalised over those
            ``H + 1`` frames and the weighted costs are averaged over them (with
            ``base=0.5``, ``H=5`` each step weighs about 0.08 of the default's,
            so plain SGD steps that much shorter; Adam is scale-invariant).
            ``mode="last"`` is the same either way.

    Example:
        >>> cost = GoalCost(mode="all", base=0.5)
        >>> cost(torch.zeros(3, 5, 2), torch.ones(3, 2))
        tensor([1., 1., 1.])
        >>> GoalCost(include_start=True)(torch.zeros(3, 6, 2), torch.ones(3, 2))  # start frame + 5 predicted
        tensor([0.1667, 0.1667, 0.1667])
    """

    needs_goal = True

    def __init__(self, mode: str = "all", base: float = 0.5, alpha: float = 1.0, proprio_dim: int = 0,
                 include_start: bool = False) -> None:
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
        self.include_start = bool(include_start)

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

    def __call__(self, z_traj: torch.Tensor, z_goal: torch.Tensor,
                 actions: torch.Tensor | None = None) -> torch.Tensor:
        """Total cost ``(...,)`` of each trajectory (``actions`` are not used); with ``include_start``,
        ``z_traj`` ``(..., H + 1, D)`` begins with the start frame."""
        steps = self.step_costs(z_traj, z_goal)
        total = steps @ self.weights(steps.shape[-1], steps)
        return total / steps.shape[-1] if self.include_start and self.mode == "all" else total

    def __repr__(self) -> str:
        return (f"GoalCost(mode={self.mode!r}, base={self.base}, alpha={self.alpha}, proprio_dim={self.proprio_dim}"
                f"{', include_start=True' if self.include_start else ''})")


class ReturnObjective:
    """Minus the discounted predicted return: ``-sum_t discount**t * r_t``, ``r_t = world_model.predict_reward``.

    ``r_t`` is the reward the world model's reward head predicts for planned
    action ``t`` and the latent it leads to (see
    :meth:`~torchrl_gbp.models.StateWorldModel.predict_reward`). It needs no
    goal (``needs_goal = False``), so :class:`~torchrl_gbp.planners.MPCPolicy`
    with ``goal_key=None`` plans on any env with a reward.

    Args:
        world_model: a model with ``predict_reward(z_next (..., H, D), actions (..., H, A)) -> (..., H)``.
        discount: per-step discount in ``(0, 1]``.

    Example:
        >>> class Model:  # reward = first latent entry
        ...     def predict_reward(self, z, a):
        ...         return z[..., 0]
        >>> objective = ReturnObjective(Model(), discount=0.5)
        >>> objective(torch.ones(2, 3, 4), None, torch.zeros(2, 3, 1))
        tensor([-1.7500, -1.7500])
    """

    needs_goal = False
    uses_actions = True

    def __init__(self, world_model, discount: float = 0.99) -> None:
        if not 0 < discount <= 1:
            raise ValueError(f"ReturnObjective discount must lie in (0, 1], got {discount!r}")
        if not callable(getattr(world_model, "predict_reward", None)):
            raise TypeError(f"ReturnObjective needs a world model with predict_reward; {type(world_model).__name__} "
                            "has none (build it with WorldModelConfig(reward_head=True))")
        self.world_model = world_model
        self.discount = float(discount)

    def __call__(self, z_traj: torch.Tensor, z_goal: torch.Tensor | None, actions: torch.Tensor) -> torch.Tensor:
        """Cost ``(...,)``: minus the discounted sum of the rewards predicted along each plan."""
        if actions is None:
            raise ValueError("ReturnObjective needs the planned actions (..., H, A); got None")
        rewards = self.world_model.predict_reward(z_traj, actions)
        weights = self.discount ** torch.arange(rewards.shape[-1], dtype=rewards.dtype, device=rewards.device)
        return -(rewards @ weights)

    def __repr__(self) -> str:
        return f"ReturnObjective(discount={self.discount})"
