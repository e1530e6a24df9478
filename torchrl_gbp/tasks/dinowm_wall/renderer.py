"""Pixels of DINO-WM's Wall: a white canvas, black walls and a red Gaussian dot, drawn on 65 pixels and resized."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from torchrl_gbp.tasks.dinowm_wall.simulator import (
    BORDER_HIGH,
    BORDER_LOW,
    CANVAS,
    DOOR_HALF_HEIGHT,
    STATE_DIM,
    WALL_HALF_WIDTH,
)
from torchrl_gbp.tasks.rendering import box_distance, coverage, fill, paint, pixel_axes, render_states

BACKGROUND, WALL, DOT = (255, 255, 255), (0, 0, 0), (255, 0, 0)


#: The dot is a Gaussian of this standard deviation (pixels of the 65-pixel canvas).
DOT_STD = 1.7


def _canvas(states: torch.Tensor) -> torch.Tensor:
    """Float images ``(B, 65, 65, 3)`` in colour units of states ``(B, 4)``, exactly as DINO-WM's env draws them."""
    device = states.device
    x, y = pixel_axes(CANVAS, -0.5, CANVAS - 0.5, y_up=False, device=device)  # pixel centres at 0, 1, ..., 64
    dot_x, dot_y = (states[:, i, None, None] for i in range(2))
    # The dot's intensity is normalised to 1 at the nearest pixel; DINO-WM then truncates it to 8 bits.
    nearest_x = dot_x.round().clamp(0, CANVAS - 1)
    nearest_y = dot_y.round().clamp(0, CANVAS - 1)
    squared = (x - dot_x) ** 2 + (y - dot_y) ** 2 - ((nearest_x - dot_x) ** 2 + (nearest_y - dot_y) ** 2)
    intensity = torch.floor(255.0 * torch.exp(-squared / (2 * DOT_STD**2))) / 255.0
    scene = paint(fill(CANVAS, BACKGROUND, device), intensity, DOT)

    wall_x, door_y = (states[:, i, None, None] for i in range(2, 4))
    half = 0.5  # boxes reach half a pixel past the centres of their first and last pixels
    column = box_distance(x, y, (wall_x - WALL_HALF_WIDTH - half, -1.0, wall_x + WALL_HALF_WIDTH + half, CANVAS))
    door = box_distance(x, y, (-1.0, door_y - DOOR_HALF_HEIGHT - half, CANVAS, door_y + DOOR_HALF_HEIGHT + half))
    walls = torch.maximum(column, -door)
    for line in (BORDER_LOW, BORDER_HIGH):
        walls = torch.minimum(walls, box_distance(x, y, (line - half, -1.0, line + half, CANVAS)))
        walls = torch.minimum(walls, box_distance(x, y, (-1.0, line - half, CANVAS, line + half)))
    return paint(scene, coverage(walls, 1.0), WALL)


def render_dinowm_wall(states: torch.Tensor, size: int = 224) -> torch.Tensor:
    """Images ``(..., size, size, 3)`` uint8 of Wall states ``(..., 4)`` (``x, y, wall_x, door_y``).

    DINO-WM's Wall env draws a 65-pixel canvas (row ``i``, column ``j`` at
    ``(x, y) = (j, i)``): white, the border rows and columns 4 and 60 and the
    wall (columns ``wall_x +- 3`` outside the door rows ``door_y +- 4``) black,
    elsewhere the dot as red ``(255, 255 - d, 255 - d)`` with ``d`` its
    Gaussian intensity (std :data:`DOT_STD`, 1 at the nearest pixel) times 255,
    truncated. Then it resizes the canvas bilinearly (antialiased, as
    torchvision's ``Resize`` on tensors); 224 pixels is what its world models
    see. ``size=65`` gives the canvas itself.

    Example:
        >>> image = render_dinowm_wall(torch.tensor([[16.0, 20.0, 32.0, 30.0]]), size=65)
        >>> image[0, 20, 16].tolist(), image[0, 4, 10].tolist(), image[0, 30, 32].tolist()  # dot, border, door
        ([255, 0, 0], [0, 0, 0], [255, 255, 255])
    """

    def draw(part: torch.Tensor, size: int) -> torch.Tensor:
        canvas = _canvas(part)
        if size == CANVAS:
            return canvas
        resized = F.interpolate(canvas.permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                                align_corners=False, antialias=True)
        return resized.permute(0, 2, 3, 1).clamp(0.0, 255.0)

    return render_states(states, size, STATE_DIM, draw)
