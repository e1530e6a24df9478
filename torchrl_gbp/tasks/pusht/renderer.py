"""Pixels of PushT: the T-shaped block at its pose and the agent disc, in gym-pusht's colours."""
from __future__ import annotations

import torch

from torchrl_gbp.tasks.pusht.simulator import AGENT_RADIUS, ARENA_SIZE, STATE_DIM, TEE_RECTS
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

# gym-pusht's render: a white floor, a LightSlateGray T and a RoyalBlue agent.
FLOOR, BLOCK, AGENT = (250, 250, 250), (119, 136, 153), (65, 105, 225)


def render_pusht(states: torch.Tensor, size: int = 64) -> torch.Tensor:
    """Images ``(..., size, size, 3)`` uint8 of PushT states ``(..., 10)``.

    The whole ``[0, 512]^2`` arena, rows along y as in gym-pusht's own
    render: the T (its 120 x 30 bar and 30 x 90 stem, :data:`TEE_RECTS`,
    posed by the block position and angle; a T has no rotational symmetry, so
    its angle is unambiguous) and the agent disc on top (radius
    :data:`AGENT_RADIUS`, at least :data:`MIN_RADIUS_PIXELS` pixels).
    Velocities are not visible.

    Example:
        >>> state = torch.tensor([[400.0, 100.0, 256.0, 256.0, 0.0, 0, 0, 0, 0, 0]])
        >>> image = render_pusht(state, size=64)
        >>> image[0, 12, 50].tolist() == list(AGENT), image[0, 40, 32].tolist() == list(BLOCK)  # agent, stem
        (True, True)
        >>> image[0, 40, 20].tolist() == list(FLOOR)  # beside the stem, under the bar
        True
    """

    def draw(state: torch.Tensor, size: int) -> torch.Tensor:
        device = state.device
        x, y = pixel_axes(size, 0.0, ARENA_SIZE, y_up=False, device=device)
        pixel = ARENA_SIZE / size
        dx, dy = x - state[:, 2, None, None], y - state[:, 3, None, None]
        c, s = state[:, 4].cos()[:, None, None], state[:, 4].sin()[:, None, None]
        local_x, local_y = c * dx + s * dy, c * dy - s * dx  # pixel centres in the block's frame
        block = torch.minimum(*(box_distance(local_x, local_y, rect) for rect in TEE_RECTS))
        scene = paint(fill(size, FLOOR, device), coverage(block, pixel), BLOCK)
        radius = max(AGENT_RADIUS, MIN_RADIUS_PIXELS * pixel)
        return paint(scene, disc_coverage(x, y, state[:, :2], radius, pixel), AGENT)

    return render_states(states, size, STATE_DIM, draw)
