"""Plain-torch rasterisation shared by the task renderers: pixel axes, soft shapes, colour layers, batching.

A renderer draws a batch of states onto float images ``(B, size, size, 3)``
in colour units ``[0, 255]`` by painting layers: each shape gives a signed
distance per pixel (negative inside), turned into an anti-aliased coverage in
``[0, 1]`` and blended over what is below. Pixel coordinates are broadcast
axes (``x`` ``(1, 1, W)``, ``y`` ``(1, H, 1)``), so axis-aligned work stays
one-dimensional until shapes meet. :func:`render_states` checks the
arguments, runs a drawing function over chunks of the flattened batch
(bounded memory at any size) and returns TorchRL's pixel layout: uint8,
channels last.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from torchrl_gbp.checks import check_last_dim

#: Small objects (an agent dot, a ball) are drawn at least this many pixels in radius, so they stay visible at 64 px.
MIN_RADIUS_PIXELS = 2.0


# Pixels per chunk of states drawn at once: about 16 MB per float32 (B, size, size) tensor.
_CHUNK_PIXELS = 1 << 22


def check_size(size: object) -> int:
    """Return ``size`` if it is an int of at least 8 (image side in pixels), else raise a ``ValueError`` naming it.

    Example:
        >>> check_size(64)
        64
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8 (image side in pixels), got {size!r}")
    return size


def pixel_axes(size: int, low: float, high: float, y_up: bool = True, device: torch.device | str = "cpu"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """World coordinates of the pixel centres of a view of ``[low, high]^2``: ``x`` ``(1, 1, W)``, ``y`` ``(1, H, 1)``.

    Columns run along x; rows run along y, top row at ``high`` when ``y_up``
    (a plot's convention) else at ``low`` (an image's, e.g. gym-pusht's).
    Broadcast them against per-state parameters of shape ``(B, 1, 1)``.

    Example:
        >>> x, y = pixel_axes(8, -1.0, 1.0)
        >>> x[0, 0, :2].tolist(), y[0, :2, 0].tolist()
        ([-0.875, -0.625], [0.875, 0.625])
    """
    step = (high - low) / size
    centers = low + step * (torch.arange(size, device=device, dtype=torch.float32) + 0.5)
    rows = centers.flip(0) if y_up else centers
    return centers.view(1, 1, size), rows.view(1, size, 1)


def coverage(signed_distance: torch.Tensor, pixel: float) -> torch.Tensor:
    """Anti-aliased coverage in ``[0, 1]`` of a shape with ``signed_distance`` (world units, < 0 inside).

    ``pixel`` is the world size of one pixel: coverage ramps over one pixel across the edge.
    """
    return (0.5 - signed_distance / pixel).clamp_(0.0, 1.0)


def disc_coverage(x: torch.Tensor, y: torch.Tensor, center: torch.Tensor, radius: float, pixel: float
                  ) -> torch.Tensor:
    """Coverage ``(B, H, W)`` of discs of ``radius`` at ``center`` ``(B, 2)`` on pixel axes ``x``, ``y``."""
    dx = x - center[:, 0, None, None]
    dy = y - center[:, 1, None, None]
    # 0.5 - (|d| - radius) / pixel, with the per-pixel work in two fused ops
    return torch.sub(0.5 + radius / pixel, (dx * dx + dy * dy).sqrt_(), alpha=1.0 / pixel).clamp_(0.0, 1.0)


def box_distance(x: torch.Tensor, y: torch.Tensor, box: Sequence[float]) -> torch.Tensor:
    """Signed distance (broadcast shape of ``x``, ``y``) from points to the axis-aligned box ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    qx = (x - 0.5 * (x0 + x1)).abs_() - 0.5 * (x1 - x0)
    qy = (y - 0.5 * (y0 + y1)).abs_() - 0.5 * (y1 - y0)
    outside = torch.hypot(qx.clamp(min=0.0), qy.clamp(min=0.0))
    return outside + torch.maximum(qx, qy).clamp_(max=0.0)


def segment_distance(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance ``(B, H, W)`` from pixel axes ``x``, ``y`` to segments ``a -> b`` (each ``(B, 2)``).

    Subtract a radius to get a capsule's signed distance.
    """
    ax, ay = a[:, 0, None, None], a[:, 1, None, None]
    ex, ey = (b - a)[:, 0, None, None], (b - a)[:, 1, None, None]
    px, py = x - ax, y - ay
    t = ((px * ex + py * ey) / (ex * ex + ey * ey).clamp_min(1e-12)).clamp_(0.0, 1.0)
    return torch.hypot(px - t * ex, py - t * ey)


def paint(image: torch.Tensor, alpha: torch.Tensor, colour: Sequence[int]) -> torch.Tensor:
    """Blend ``colour`` (RGB, 0-255) over images ``(..., H, W, 3)`` with coverage ``alpha`` ``(..., H, W)``.

    Returns a new tensor of the broadcast shape, so ``image`` may be an expanded background.
    """
    rgb = torch.tensor(colour, dtype=image.dtype, device=image.device)
    return torch.lerp(image, rgb, alpha.unsqueeze(-1))


def fill(size: int, colour: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """One image ``(1, size, size, 3)`` of one ``colour`` (RGB, 0-255), float; paint on it, then it broadcasts."""
    rgb = torch.tensor(colour, dtype=torch.float32, device=device)
    return rgb.expand(1, size, size, 3).clone()


def render_states(
    states: torch.Tensor,
    size: object,
    state_dim: int,
    draw: Callable[[torch.Tensor, int], torch.Tensor],
) -> torch.Tensor:
    """Render states ``(..., state_dim)`` to uint8 images ``(..., size, size, 3)`` with ``draw``.

    ``draw(states (B, state_dim) float32, size)`` returns float images
    ``(B, size, size, 3)`` (or ``(1, ...)`` for all) in colour units
    ``[0, 255]``; it is called on chunks of the flattened batch so memory
    stays bounded, without gradients.

    Example:
        >>> draw = lambda s, size: fill(size, (255, 0, 0))
        >>> image = render_states(torch.zeros(2, 3, 4), 8, 4, draw)
        >>> image.shape, image.dtype, image[0, 0, 0, 0].tolist()
        (torch.Size([2, 3, 8, 8, 3]), torch.uint8, [255, 0, 0])
    """
    size = check_size(size)
    check_last_dim("states", states, state_dim)
    lead = states.shape[:-1]
    flat = states.detach().reshape(-1, state_dim).float()
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    with torch.no_grad():
        images = [
            # + 0.5 then truncation rounds colours in [0, 255] to the nearest integer
            (draw(part, size) + 0.5).to(torch.uint8).expand(part.shape[0], size, size, 3)
            for part in flat.split(chunk)
        ] if flat.shape[0] else [torch.zeros(0, size, size, 3, dtype=torch.uint8, device=states.device)]
    return torch.cat(images).reshape(*lead, size, size, 3)
