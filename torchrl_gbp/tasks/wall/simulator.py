"""The Wall dynamics: one transition function and its batched simulator."""
from __future__ import annotations

import torch

from torchrl_gbp.checks import check_last_dim
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.simulator import Simulator

WALL_HALF_THICKNESS = 0.05


# Gap kept between a blocked agent and the wall face, so it never sits inside the slab.
_FACE_EPS = 1e-4


def wall_step(
    position: torch.Tensor,
    action: torch.Tensor,
    *,
    speed: float = 0.1,
    door_center: float = 0.0,
    door_half_width: float = 0.15,
) -> torch.Tensor:
    """Move points ``(..., 2)`` by ``speed * clamp(action, -1, 1)`` with wall collisions.

    Axis-separated resolution: (1) the x move is blocked at the wall face on
    the agent's side unless its current y is inside the door; (2) if the new x
    is inside the slab (the door corridor), y is clamped into the door; (3)
    both coordinates are clamped to the arena. Hence no point ever sits inside
    the slab outside the door, and sides change only through the door.

    Example:
        >>> wall_step(torch.tensor([[-0.1, 0.5]]), torch.tensor([[1.0, 0.0]]))
        tensor([[-0.0501,  0.5000]])
        >>> wall_step(torch.tensor([[-0.06, 0.0]]), torch.tensor([[1.0, 0.0]]))
        tensor([[0.0400, 0.0000]])
    """
    check_last_dim("position", position, 2)
    check_last_dim("action", action, 2)
    x, y = position.unbind(-1)
    dx, dy = (speed * action.to(position).clamp(-1.0, 1.0)).unbind(-1)
    door_low, door_high = door_center - door_half_width, door_center + door_half_width
    face = WALL_HALF_THICKNESS + _FACE_EPS

    in_door = (y >= door_low) & (y <= door_high)
    new_x = x + dx
    stay_on_side = torch.where(x < 0, new_x.clamp(max=-face), new_x.clamp(min=face))
    new_x = torch.where(in_door, new_x, stay_on_side)

    new_y = y + dy
    in_slab = new_x.abs() <= WALL_HALF_THICKNESS
    new_y = torch.where(in_slab, new_y.clamp(door_low, door_high), new_y)

    return torch.stack([new_x, new_y], dim=-1).clamp(-1.0, 1.0)


class WallSimulator(Simulator):
    """Vectorised :func:`wall_step` over ``num_envs`` positions (pure torch)."""

    def __init__(self, task: Task, num_envs: int, device: torch.device | str = "cpu") -> None:
        self.task = task
        self.position = torch.zeros(num_envs, task.state_dim, device=device)

    def get_state(self) -> torch.Tensor:
        """Positions ``(num_envs, 2)`` (a copy)."""
        return self.position.clone()

    def set_state(self, state: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Teleport the envs flagged by ``mask`` (all when ``None``) to ``state``."""
        state = state.to(self.position)
        self.position = state.clone() if mask is None else torch.where(mask.unsqueeze(-1), state, self.position)

    def step(self, action: torch.Tensor) -> None:
        """One :meth:`WallTask.step` for every env."""
        self.position = self.task.step(self.position, action)
