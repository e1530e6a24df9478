"""DINO-WM's Wall dynamics: the dot moves by ``2 a`` pixels and is pushed back half a pixel where it hits a wall.

A state is four float32 numbers ``(x, y, wall_x, door_y)`` in pixels of the
65-pixel canvas (``x`` along columns, ``y`` along rows, so ``y`` grows
downwards): the dot and the episode's layout, which the dynamics depend on.
"""
from __future__ import annotations

import torch

from torchrl_gbp.checks import check_last_dim
from torchrl_gbp.tasks.simulator import Simulator

#: The canvas is ``CANVAS x CANVAS`` pixels.
CANVAS = 65


#: The border walls are the rows and columns at these indices (DINO-WM's ``border_wall_loc - 1`` and ``-border_wall_loc``).
BORDER_LOW, BORDER_HIGH = 4, CANVAS - 5


#: The middle wall spans ``wall_x +- WALL_HALF_WIDTH`` columns; its door spans ``door_y +- DOOR_HALF_HEIGHT`` rows.
WALL_HALF_WIDTH, DOOR_HALF_HEIGHT = 3, 4


#: An env step moves the dot by ``STEP_SCALE * action`` pixels (no bound on the action).
STEP_SCALE = 2.0


#: A blocked dot is put back at the hit point plus this push-back per axis (pixels).
PUSH_BACK = 0.5


#: A pushed-back dot that would land on or beyond a bounding line is placed this far inside it instead.
LINE_GAP = 0.3


#: DINO-WM's default layout (its Wall env's ``fix_wall_location`` and ``fix_door_location``).
DEFAULT_WALL_X, DEFAULT_DOOR_Y = 32, 30


STATE_DIM = 4


def _crossing_x(p1: torch.Tensor, delta: torch.Tensor, line_y: torch.Tensor) -> torch.Tensor:
    """x where the moves ``p1 -> p1 + delta`` meet the row ``y = line_y`` (the start's x for a move along it)."""
    dx, dy = delta.unbind(-1)
    safe = torch.where(dy == 0, torch.ones_like(dy), dy)
    return torch.where(dy == 0, p1[..., 0], p1[..., 0] + (line_y - p1[..., 1]) * dx / safe)


def _crossing_y(p1: torch.Tensor, delta: torch.Tensor, line_x: torch.Tensor) -> torch.Tensor:
    """y where the moves ``p1 -> p1 + delta`` meet the column ``x = line_x`` (the start's y for a move along it)."""
    dx, dy = delta.unbind(-1)
    safe = torch.where(dx == 0, torch.ones_like(dx), dx)
    return torch.where(dx == 0, p1[..., 1], p1[..., 1] + (line_x - p1[..., 0]) * dy / safe)


def _crosses(a: torch.Tensor, b: torch.Tensor, line: torch.Tensor | float) -> torch.Tensor:
    """True where ``a`` and ``b`` lie on different sides of ``line`` or either lies on it."""
    return torch.sign(a - line) * torch.sign(b - line) <= 0


def dinowm_wall_step(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """DINO-WM's Wall transition of states ``(..., 4)`` under actions ``(..., 2)``, batched.

    The dot moves from ``p`` to ``p + 2 a``. Only the first hit counts:

    1. moving up (down) across the door's top (bottom) row inside the wall's
       columns: back to the hit point, shifted by ``(+0.5, -0.5)``
       (``(+0.5, +0.5)``);
    2. otherwise the columns that bound the dot's side (the border column and
       the wall face towards the other side, passable through the door rows)
       and the border rows; of a column hit and a row hit the one nearer to
       ``p`` counts. The dot goes back to the hit point shifted half a pixel
       back across a column (``y + 0.5``) or a row (``x + 0.5``), kept inside
       those bounds and 0.3 pixels off them.

    These are the rules of DINO-WM's ``check_wall_intersect`` (``env/wall``),
    step for step. One difference: there, a move exactly parallel to an axis
    that reaches a line divides by zero (the dot passes the door's top or
    bottom row into the wall, or leaves the canvas with a NaN coordinate);
    here the hit point of such a move is exact.

    Example:
        >>> state = torch.tensor([[20.0, 10.0, 32.0, 30.0], [55.0, 12.0, 32.0, 30.0]])
        >>> dinowm_wall_step(state, torch.tensor([[1.0, 0.5], [4.0, 0.25]]))
        tensor([[22.0000, 11.0000, 32.0000, 30.0000],
                [59.5000, 12.8125, 32.0000, 30.0000]])
    """
    check_last_dim("state", state, STATE_DIM)
    check_last_dim("action", action, 2)
    p1, wall_x, door_y = state[..., :2], state[..., 2], state[..., 3]
    delta = STEP_SCALE * action.to(state)
    p2 = p1 + delta
    (x1, y1), (x2, y2), dy = p1.unbind(-1), p2.unbind(-1), delta[..., 1]
    wall_low, wall_high = wall_x - WALL_HALF_WIDTH, wall_x + WALL_HALF_WIDTH
    door_low, door_high = door_y - DOOR_HALF_HEIGHT, door_y + DOOR_HALF_HEIGHT

    # 1. the door's top and bottom rows, inside the wall's columns
    top_x, bottom_x = _crossing_x(p1, delta, door_high), _crossing_x(p1, delta, door_low)
    hits_top = (dy > 0) & (y2 > door_high) & (y1 < door_high) & (wall_low <= top_x) & (top_x <= wall_high)
    hits_bottom = (dy < 0) & (y2 < door_low) & (y1 > door_low) & (wall_low <= bottom_x) & (bottom_x <= wall_high)
    from_top = torch.stack([top_x + PUSH_BACK, door_high - PUSH_BACK], dim=-1)
    from_bottom = torch.stack([bottom_x + PUSH_BACK, door_low + PUSH_BACK], dim=-1)

    # 2. the columns bounding the dot's side, then the border rows
    left_of_wall = wall_x > x1
    low_x = torch.where(left_of_wall, torch.full_like(x1, BORDER_LOW), wall_high)
    high_x = torch.where(left_of_wall, wall_low, torch.full_like(x1, BORDER_HIGH))

    def column_hit(line: torch.Tensor, has_door: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = _crossing_y(p1, delta, line)
        through_door = has_door & (y >= door_low) & (y <= door_high)
        return _crosses(x1, x2, line) & ~through_door, y

    low_hit, low_y = column_hit(low_x, ~left_of_wall)
    high_hit, high_y = column_hit(high_x, left_of_wall)
    column = torch.where(low_hit, low_x, high_x)
    column_point = torch.stack([column, torch.where(low_hit, low_y, high_y)], dim=-1)
    column_hit_any = low_hit | high_hit

    top_row_hit = _crosses(y1, y2, BORDER_LOW)
    row = torch.where(top_row_hit, torch.full_like(y1, BORDER_LOW), torch.full_like(y1, BORDER_HIGH))
    row_hit_any = top_row_hit | _crosses(y1, y2, BORDER_HIGH)
    row_point = torch.stack([_crossing_x(p1, delta, row), row], dim=-1)

    column_first = column_hit_any & (~row_hit_any | (torch.linalg.vector_norm(p1 - column_point, dim=-1)
                                                     < torch.linalg.vector_norm(p1 - row_point, dim=-1)))
    half = torch.full_like(x1, PUSH_BACK)
    back = torch.where(column_first.unsqueeze(-1),
                       torch.stack([PUSH_BACK * torch.sign(x1 - column), half], dim=-1),
                       torch.stack([half, PUSH_BACK * torch.sign(y1 - row)], dim=-1))
    pushed = torch.where(column_first.unsqueeze(-1), column_point, row_point) + back
    x = pushed[..., 0].clamp(min=low_x, max=high_x)
    y = pushed[..., 1].clamp(min=BORDER_LOW, max=BORDER_HIGH)
    x = torch.where(x <= low_x, low_x + LINE_GAP, torch.where(x >= high_x, high_x - LINE_GAP, x))
    y = torch.where(y <= BORDER_LOW, y.new_tensor(BORDER_LOW + LINE_GAP),
                    torch.where(y >= BORDER_HIGH, y.new_tensor(BORDER_HIGH - LINE_GAP), y))
    blocked = torch.stack([x, y], dim=-1)

    position = torch.where((column_hit_any | row_hit_any).unsqueeze(-1), blocked, p2)
    position = torch.where(hits_bottom.unsqueeze(-1), from_bottom, position)
    position = torch.where(hits_top.unsqueeze(-1), from_top, position)
    return torch.cat([position, state[..., 2:]], dim=-1)


class DinoWMWallSimulator(Simulator):
    """``num_envs`` Wall states ``(x, y, wall_x, door_y)`` stepped together by :func:`dinowm_wall_step` (pure torch).

    Example:
        >>> simulator = DinoWMWallSimulator(num_envs=2)
        >>> simulator.set_state(torch.tensor([[20.0, 30.0, 32.0, 30.0], [44.0, 10.0, 32.0, 30.0]]))
        >>> simulator.step(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        >>> simulator.get_state()[:, :2].tolist()
        [[24.0, 30.0], [44.0, 12.0]]
    """

    def __init__(self, *, num_envs: int, device: torch.device | str = "cpu") -> None:
        default = torch.tensor([CANVAS // 4, CANVAS // 2, DEFAULT_WALL_X, DEFAULT_DOOR_Y], dtype=torch.float32)
        self.state = default.to(device).expand(num_envs, STATE_DIM).clone()

    def get_state(self) -> torch.Tensor:
        """States ``(num_envs, 4)`` (a copy)."""
        return self.state.clone()

    def set_state(self, state: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Put the envs flagged by ``mask`` (all when ``None``) in ``state`` ``(num_envs, 4)``."""
        if tuple(state.shape) != tuple(self.state.shape):
            raise ValueError(f"state must have shape (num_envs, 4) = {tuple(self.state.shape)}, got {tuple(state.shape)}")
        state = state.to(self.state)
        self.state = state.clone() if mask is None else torch.where(mask.reshape(-1, 1), state, self.state)

    def step(self, action: torch.Tensor) -> None:
        """One :func:`dinowm_wall_step` for every env under ``action`` ``(num_envs, 2)``."""
        self.state = dinowm_wall_step(self.state, action)
