"""Pixels of the Wall task: the arena, the wall slab with its door, and the agent dot."""
from __future__ import annotations

import torch

from torchrl_gbp.tasks.rendering import (
    MIN_RADIUS_PIXELS,
    box_distance,
    coverage,
    disc_coverage,
    fill,
    paint,
    pixel_axes,
    render_states,
)
from torchrl_gbp.tasks.wall.simulator import WALL_HALF_THICKNESS

BACKGROUND, WALL, AGENT = (240, 240, 232), (70, 70, 82), (220, 40, 40)


#: Radius of the agent dot (arena units; the arena is ``[-1, 1]^2``), at least :data:`MIN_RADIUS_PIXELS` pixels.
AGENT_RADIUS = 0.06


def render_wall(
    states: torch.Tensor, size: int = 64, door_center: float = 0.0, door_half_width: float = 0.15
) -> torch.Tensor:
    """Images ``(..., size, size, 3)`` uint8 of agent positions ``(..., 2)`` in the wall arena ``[-1, 1]^2``.

    The view is the whole arena, y up: a light floor, the dark wall slab at
    ``x = 0`` (half thickness :data:`WALL_HALF_THICKNESS`) open at the door
    ``door_center +- door_half_width``, and the red agent dot.

    Example:
        >>> image = render_wall(torch.tensor([[-0.5, 0.0], [0.5, 0.5]]), size=32)
        >>> image.shape, image.dtype
        (torch.Size([2, 32, 32, 3]), torch.uint8)
        >>> image[0, 16, 8].tolist() == list(AGENT), image[0, 16, 16].tolist() == list(BACKGROUND)  # agent, door
        (True, True)
    """

    def draw(position: torch.Tensor, size: int) -> torch.Tensor:
        x, y = pixel_axes(size, -1.0, 1.0, device=position.device)
        pixel = 2.0 / size
        low, high = door_center - door_half_width, door_center + door_half_width
        slab = torch.minimum(box_distance(x, y, (-WALL_HALF_THICKNESS, -1.5, WALL_HALF_THICKNESS, low)),
                             box_distance(x, y, (-WALL_HALF_THICKNESS, high, WALL_HALF_THICKNESS, 1.5)))
        scene = paint(fill(size, BACKGROUND, position.device), coverage(slab, pixel), WALL)
        radius = max(AGENT_RADIUS, MIN_RADIUS_PIXELS * pixel)
        return paint(scene, disc_coverage(x, y, position, radius, pixel), AGENT)

    return render_states(states, size, 2, draw)
