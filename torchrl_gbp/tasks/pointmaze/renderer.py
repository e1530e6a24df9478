"""Pixels of PointMaze: a top view of the maze's walls and the ball."""
from __future__ import annotations

import torch

from torchrl_gbp.tasks.pointmaze.simulator import BALL_RADIUS, CELL_SIZE
from torchrl_gbp.tasks.rendering import (
    MIN_RADIUS_PIXELS,
    disc_coverage,
    fill,
    paint,
    pixel_axes,
    render_states,
)

FLOOR, WALL, BALL = (236, 236, 224), (80, 100, 135), (235, 125, 20)


# Wall edges are anti-aliased by averaging this many samples per pixel side.
_SUPERSAMPLE = 4


def render_pointmaze(states: torch.Tensor, maze: tuple[tuple[int, ...], ...], size: int = 64) -> torch.Tensor:
    """Images ``(..., size, size, 3)`` uint8 of ball states ``(..., 4)`` (``x, y, vx, vy``) in ``maze``.

    A top view, y up, of the whole map (a square of its longer side, centred
    at the origin like the MuJoCo model): wall cells in slate blue, free
    floor in light grey, the ball as an orange disc of radius
    :data:`BALL_RADIUS` (at least :data:`MIN_RADIUS_PIXELS` pixels).
    Velocities are not visible; they are in the proprioception.

    Example:
        >>> from torchrl_gbp.tasks.pointmaze.simulator import U_MAZE
        >>> image = render_pointmaze(torch.tensor([[-1.0, 1.0, 0.0, 0.0]]), U_MAZE, size=50)
        >>> image[0, 15, 15].tolist() == list(BALL), image[0, 25, 15].tolist() == list(WALL)  # ball, inner wall
        (True, True)
    """
    n_rows, n_cols = len(maze), len(maze[0])
    half = 0.5 * CELL_SIZE * max(n_rows, n_cols)
    walls = torch.tensor(maze, dtype=torch.float32)

    def draw(state: torch.Tensor, size: int) -> torch.Tensor:
        device = state.device
        x, y = pixel_axes(size * _SUPERSAMPLE, -half, half, device=device)
        col = torch.round(x / CELL_SIZE + (n_cols - 1) / 2).long()
        row = torch.round((n_rows - 1) / 2 - y / CELL_SIZE).long()
        inside = (col >= 0) & (col < n_cols) & (row >= 0) & (row < n_rows)
        wall = torch.where(inside, walls.to(device)[row.clamp(0, n_rows - 1), col.clamp(0, n_cols - 1)], 1.0)
        wall = wall.reshape(1, size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(dim=(2, 4))
        scene = paint(fill(size, FLOOR, device), wall, WALL)
        x, y = pixel_axes(size, -half, half, device=device)
        pixel = 2 * half / size
        radius = max(BALL_RADIUS, MIN_RADIUS_PIXELS * pixel)
        return paint(scene, disc_coverage(x, y, state[:, :2], radius, pixel), BALL)

    return render_states(states, size, 4, draw)
