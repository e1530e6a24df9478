"""Pixels of the reacher: a top view of the two-link arm (dm_control's fixed camera, drawn in plain torch)."""
from __future__ import annotations

import torch

from torchrl_gbp.tasks.rendering import (
    MIN_RADIUS_PIXELS,
    coverage,
    disc_coverage,
    fill,
    paint,
    pixel_axes,
    render_states,
    segment_distance,
)

FLOOR, BASE, UPPER_ARM, FOREARM, FINGERTIP = (
    (225, 230, 240), (60, 60, 70), (215, 130, 50), (70, 150, 80), (200, 30, 60))


#: Half side of the view: dm_control's arena is ``[-0.3, 0.3]^2``.
ARENA_HALF = 0.3


#: Drawn radii (arena units, at least :data:`MIN_RADIUS_PIXELS` pixels): links, the base and the fingertip.
LINK_RADIUS, BASE_RADIUS, FINGERTIP_RADIUS = 0.012, 0.02, 0.025


def render_reacher(states: torch.Tensor, link1: float = 0.12, link2: float = 0.12, size: int = 64) -> torch.Tensor:
    """Images ``(..., size, size, 3)`` uint8 of reacher states ``(..., 4)`` (``q1, q2, dq1, dq2``).

    A top view of dm_control's ``[-0.3, 0.3]^2`` arena, y up: the upper arm
    (orange) from the base (dark) to the elbow, the forearm (green) to the
    fingertip (crimson disc). Two joint configurations never give one image,
    so the image fixes ``q1, q2``; velocities are not visible. The target is
    not in the state: a goal image (the goal state's arm, fingertip on the
    target) shows where it is.

    Example:
        >>> image = render_reacher(torch.tensor([[0.0, 0.0, 0.0, 0.0]]), size=64)  # arm along +x
        >>> image[0, 32, 40].tolist() == list(UPPER_ARM), image[0, 32, 56].tolist() == list(FINGERTIP)
        (True, True)
    """

    def draw(state: torch.Tensor, size: int) -> torch.Tensor:
        device = state.device
        x, y = pixel_axes(size, -ARENA_HALF, ARENA_HALF, device=device)
        pixel = 2 * ARENA_HALF / size
        q1, q12 = state[:, 0], state[:, 0] + state[:, 1]
        base = torch.zeros(1, 2, device=device)
        elbow = link1 * torch.stack([q1.cos(), q1.sin()], dim=-1)
        tip = elbow + link2 * torch.stack([q12.cos(), q12.sin()], dim=-1)
        link = max(LINK_RADIUS, 0.5 * MIN_RADIUS_PIXELS * pixel)
        image = paint(fill(size, FLOOR, device), coverage(segment_distance(x, y, base, elbow) - link, pixel),
                      UPPER_ARM)
        image = paint(image, coverage(segment_distance(x, y, elbow, tip) - link, pixel), FOREARM)
        image = paint(image, disc_coverage(x, y, base, max(BASE_RADIUS, MIN_RADIUS_PIXELS * pixel), pixel), BASE)
        return paint(image, disc_coverage(x, y, tip, max(FINGERTIP_RADIUS, MIN_RADIUS_PIXELS * pixel), pixel),
                     FINGERTIP)

    return render_states(states, size, 4, draw)
