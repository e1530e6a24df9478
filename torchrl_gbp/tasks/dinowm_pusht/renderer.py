"""Pixels of DINO-WM's PushT: pymunk's debug drawing on a 512-pixel pygame canvas, the goal T drawn on every
frame, resized bilinearly as OpenCV does."""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from torchrl_gbp.tasks.pusht.simulator import AGENT_RADIUS, ARENA_SIZE, STATE_DIM, TEE_RECTS
from torchrl_gbp.tasks.rendering import fill, paint, pixel_axes, render_states

#: The goal pose of the T, ``(x, y, angle)``, drawn in light green on every frame (DINO-WM's ``goal_pose``).
GOAL_POSE = (256.0, 256.0, math.pi / 4)


# pygame's named colours as DINO-WM draws them; pymunk's debug drawing fills shapes 1.2 times lighter than their
# colour (rounded) and outlines polygons in the colour itself.
FLOOR, GOAL = (255, 255, 255), (144, 238, 144)
WALL = (211, 211, 211)
AGENT, AGENT_INSIDE = (65, 105, 225), (78, 126, 255)
BLOCK_EDGE, BLOCK_FILL = (119, 136, 153), (143, 163, 184)


#: pymunk draws the walls and the T's outline as segments of this radius (pixels of the 512 canvas).
OUTLINE_RADIUS = 2


# The four walls (DINO-WM's ``_setup``) and the inner circle pymunk draws inside the agent (radius - 4).
_WALLS = (((5, 506), (5, 5)), ((5, 5), (506, 5)), ((506, 5), (506, 506)), ((5, 506), (506, 506)))


_AGENT_DISC_RADIUS = round(AGENT_RADIUS)
_AGENT_INSIDE_RADIUS = _AGENT_DISC_RADIUS - 4


# Canvases drawn at once (the 512-pixel canvas is 1 MB per float channel).
_CANVAS_CHUNK = 8


def tee_vertices(pose: torch.Tensor) -> torch.Tensor:
    """Corners ``(B, 2, 4, 2)`` of the T's bar and stem at poses ``(B, 3)``, rounded to pixels as pygame draws them."""
    rects = torch.tensor(TEE_RECTS, dtype=pose.dtype, device=pose.device)  # (2, 4): x0, y0, x1, y1
    x0, y0, x1, y1 = rects.unbind(-1)
    local = torch.stack([torch.stack([x0, y0], -1), torch.stack([x1, y0], -1),
                         torch.stack([x1, y1], -1), torch.stack([x0, y1], -1)], dim=1)  # (2, 4, 2)
    c, s = pose[:, 2].cos()[:, None, None], pose[:, 2].sin()[:, None, None]
    world_x = pose[:, 0, None, None] + c * local[..., 0] - s * local[..., 1]
    world_y = pose[:, 1, None, None] + s * local[..., 0] + c * local[..., 1]
    return torch.stack([world_x, world_y], dim=-1).round()


@lru_cache(maxsize=8)
def _disc_half_widths(radius: int) -> tuple[int, ...]:
    """Half widths of pygame's filled circle (its midpoint algorithm) on the rows ``-radius .. radius - 1`` around
    the centre: row ``dy`` covers columns ``-w .. w - 1``."""
    widths = [0] * (2 * radius)
    f, ddf_x, ddf_y, x, y = 1 - radius, 0, -2 * radius, 0, radius

    def span(row: int, half: int) -> None:
        if -radius <= row < radius:
            widths[row + radius] = max(widths[row + radius], half)

    while x < y:
        if f >= 0:
            y, ddf_y = y - 1, ddf_y + 2
            f += ddf_y
        x, ddf_x = x + 1, ddf_x + 2
        f += ddf_x + 1
        if f >= 0:
            span(y - 1, x)
            span(-y, x)
        span(x - 1, y)
        span(-x, y)
    return tuple(widths)


def _disc(x: torch.Tensor, y: torch.Tensor, center: torch.Tensor, radius: int) -> torch.Tensor:
    """pygame's filled circle ``(B, H, W)`` of ``radius`` at integer centres ``(B, 2)``: ``2 radius`` pixels across,
    from ``center - radius`` to ``center + radius - 1``, row by row as its midpoint algorithm draws them."""
    widths = torch.tensor(_disc_half_widths(radius), dtype=x.dtype, device=x.device)
    cx, cy = center[:, 0, None, None], center[:, 1, None, None]
    row = y - cy + radius  # (B, H, 1)
    half = widths[row.clamp(0, 2 * radius - 1).long()]
    return (row >= 0) & (row < 2 * radius) & (x >= cx - half) & (x <= cx + half - 1)


def _line(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor, width: int = 1) -> torch.Tensor:
    """pygame's line ``(B, H, W)`` of ``width`` pixels from ``a`` to ``b`` (integer points ``(B, 2)``).

    Each step of the (rounded) centre line adds ``width`` pixels across: along
    x where the line is steep, along y elsewhere, from ``width // 2 - 1 +
    width % 2`` pixels before the centre to ``width // 2`` after."""
    ax, ay, bx, by = (v[:, None, None] for v in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]))
    dx, dy = bx - ax, by - ay
    across_x = (ax + (y - ay) * dx / torch.where(dy == 0, torch.ones_like(dy), dy)).round()
    across_y = (ay + (x - ax) * dy / torch.where(dx == 0, torch.ones_like(dx), dx)).round()
    before, after = width // 2 - 1 + width % 2, width // 2
    steep = (y >= torch.minimum(ay, by)) & (y <= torch.maximum(ay, by)) & (x >= across_x - before) & (
        x <= across_x + after)
    shallow = (x >= torch.minimum(ax, bx)) & (x <= torch.maximum(ax, bx)) & (y >= across_y - before) & (
        y <= across_y + after)
    return torch.where(dx.abs() <= dy.abs(), steep, shallow)


def _polygon(x: torch.Tensor, y: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """pygame's filled convex polygon ``(B, H, W)`` of integer ``corners`` ``(B, K, 2)``, by its scanline rule.

    Each row ``y`` from the top corner to the bottom one is filled between the
    x where it meets the edges (top end included, bottom end excluded but on
    the bottom row), each ``x1`` plus the floor of ``(y - y1) (x2 - x1) / (y2 -
    y1)``."""
    top, bottom = corners[..., 1].amin(1)[:, None, None], corners[..., 1].amax(1)[:, None, None]
    low = torch.full_like(y.expand_as(top + y), float("inf"))
    high = torch.full_like(low, -float("inf"))
    count = torch.zeros_like(low)
    for k in range(corners.shape[1]):
        a, b = corners[:, k - 1], corners[:, k]
        down = (a[:, 1] < b[:, 1])[:, None, None]
        x1, y1 = (torch.where(down, a[:, i, None, None], b[:, i, None, None]) for i in (0, 1))
        x2, y2 = (torch.where(down, b[:, i, None, None], a[:, i, None, None]) for i in (0, 1))
        meets = (y1 != y2) & (((y >= y1) & (y < y2)) | ((y == bottom) & (y2 == bottom)))
        across = torch.div((y - y1) * (x2 - x1), torch.where(y1 == y2, torch.ones_like(y1), y2 - y1),
                           rounding_mode="floor") + x1
        low = torch.where(meets, torch.minimum(low, across), low)
        high = torch.where(meets, torch.maximum(high, across), high)
        count = count + meets
    return (count >= 2) & (x >= low) & (x <= high)


def _fat_segment(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pixels ``(B, H, W)`` of pymunk's fat segment of radius 2 from ``a`` to ``b`` (integer points ``(B, 2)``) as
    its pygame debug drawing paints it: a 4-pixel line, a quad offset by the rounded ``(|dy|, |dx|)`` scaled to
    length 2 (the absolute values skew it, flat on lines that fall to the right) and a disc of radius 2 at each
    end."""
    offset = torch.stack([(b[:, 1] - a[:, 1]).abs(), (b[:, 0] - a[:, 0]).abs()], dim=-1)
    offset = (offset * OUTLINE_RADIUS / torch.linalg.vector_norm(offset, dim=-1, keepdim=True).clamp_min(1e-12)).round()
    quad = torch.stack([a - offset, a + offset, b + offset, b - offset], dim=1)
    flat = (offset[:, 0] * (b - a)[:, 1] - offset[:, 1] * (b - a)[:, 0]) == 0  # the quad has no area
    quad_pixels = _polygon(x, y, quad) & ~flat[:, None, None]
    ends = _disc(x, y, a, OUTLINE_RADIUS) | _disc(x, y, b, OUTLINE_RADIUS)
    return _line(x, y, a, b, width=2 * OUTLINE_RADIUS) | quad_pixels | ends


@lru_cache(maxsize=4)
def _background(device: torch.device) -> torch.Tensor:
    """The 512 canvas before the agent and the block: floor, the goal T, the walls ``(1, 512, 512, 3)``."""
    x, y = pixel_axes(int(ARENA_SIZE), -0.5, ARENA_SIZE - 0.5, y_up=False, device=device)
    canvas = fill(int(ARENA_SIZE), FLOOR, device)
    for corners in tee_vertices(torch.tensor([GOAL_POSE], device=device)).unbind(1):
        canvas = paint(canvas, _polygon(x, y, corners).float(), GOAL)
    for a, b in _WALLS:
        ends = torch.tensor([a, b], dtype=torch.float32, device=device)
        canvas = paint(canvas, _fat_segment(x, y, ends[None, 0], ends[None, 1]).float(), WALL)
    return canvas


def _paint_window(canvas: torch.Tensor, low: torch.Tensor, high: torch.Tensor, mask, colour: tuple) -> torch.Tensor:
    """Paint ``colour`` on one canvas ``(1, 512, 512, 3)`` (in place) where ``mask(x, y)`` holds, evaluated only on
    the pixels between ``low`` and ``high`` ``(2,)`` (a shape's bounding box) for speed."""
    side = int(ARENA_SIZE)
    x0, y0 = (int(v) for v in low.floor().clamp(0, side - 1).tolist())
    x1, y1 = (int(v) for v in high.ceil().clamp(0, side - 1).tolist())
    if x1 < x0 or y1 < y0:
        return canvas
    x = torch.arange(x0, x1 + 1, dtype=canvas.dtype, device=canvas.device).view(1, 1, -1)
    y = torch.arange(y0, y1 + 1, dtype=canvas.dtype, device=canvas.device).view(1, -1, 1)
    window = canvas[:, y0:y1 + 1, x0:x1 + 1]
    window.copy_(paint(window, mask(x, y).float(), colour))
    return canvas


def _canvas(state: torch.Tensor) -> torch.Tensor:
    """The 512-pixel canvas ``(1, 512, 512, 3)`` of one state ``(1, 10)``: background, agent, then the T on top."""
    canvas = _background(state.device).clone()
    center = state[:, :2].round()
    for radius, colour in ((_AGENT_DISC_RADIUS, AGENT), (_AGENT_INSIDE_RADIUS, AGENT_INSIDE)):
        _paint_window(canvas, center[0] - radius, center[0] + radius,
                      lambda x, y, r=radius: _disc(x, y, center, r), colour)
    reach = OUTLINE_RADIUS + 2  # an outline's reach past its corners
    for corners in tee_vertices(state[:, 2:5]).unbind(1):  # the bar, then the stem, each outlined edge by edge
        _paint_window(canvas, corners[0].amin(0), corners[0].amax(0),
                      lambda x, y, c=corners: _polygon(x, y, c), BLOCK_FILL)
        for k in range(4):
            a, b = corners[:, k], corners[:, (k + 1) % 4]
            _paint_window(canvas, torch.minimum(a, b)[0] - reach, torch.maximum(a, b)[0] + reach,
                          lambda x, y, a=a, b=b: _fat_segment(x, y, a, b), BLOCK_EDGE)
    return canvas


def render_dinowm_pusht(states: torch.Tensor, size: int = 224) -> torch.Tensor:
    """Images ``(..., size, size, 3)`` uint8 of PushT states ``(..., 10)`` as DINO-WM's PushT env renders them.

    DINO-WM's env draws a 512-pixel pygame canvas (rows along y): white, the
    goal T in light green at :data:`GOAL_POSE`, then pymunk's debug drawing of
    the walls (light grey), the agent (a royal blue disc of radius 15, 1.2
    times lighter inside radius 11) and the T (filled 1.2 times lighter than
    light slate grey, outlined 2 pixels wide in it), every vertex and centre
    rounded to a pixel; OpenCV then resizes the canvas bilinearly (no
    antialiasing) to its ``render_size``, 224. Drawn here with hard-edged
    masks in plain torch; ``size=512`` gives the canvas itself.

    Example:
        >>> state = torch.tensor([[100.0, 400.0, 300.0, 150.0, 0.0, 0, 0, 0, 0, 0]])
        >>> image = render_dinowm_pusht(state, size=512)
        >>> image[0, 400, 100].tolist(), image[0, 256, 256].tolist(), image[0, 200, 300].tolist()  # agent, goal, stem
        ([78, 126, 255], [144, 238, 144], [143, 163, 184])
    """

    def draw(part: torch.Tensor, size: int) -> torch.Tensor:
        images = []
        for chunk in part.split(_CANVAS_CHUNK):
            canvas = torch.cat([_canvas(state) for state in chunk.split(1)])
            if size != int(ARENA_SIZE):
                canvas = F.interpolate(canvas.permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                                       align_corners=False).permute(0, 2, 3, 1)
            images.append(canvas)
        return torch.cat(images)

    return render_states(states, size, STATE_DIM, draw)
