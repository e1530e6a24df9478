"""Pixels of DINO-WM's PointMaze: the top-down MuJoCo camera of its env, ray cast in plain torch.

DINO-WM's env renders ``sim.render(224, 224)`` with mujoco-py's default free
camera turned to azimuth 90, elevation -90 (``prepare_for_render``):
mujoco-py points it at the median of the geoms' positions, ``(3, 3, 0)`` in
world coordinates for the U-maze, from the model's extent, ``9.7348`` (MuJoCo's
bounding box of the model, the floor plane counting a tenth of its 40 half
size), with MuJoCo's default 45 degree field of view. The view is a
perspective one looking straight down, x along columns, y along rows; mujoco-py
returns OpenGL's rows bottom first, so row 0 shows the smallest y.

Drawn here by casting each pixel's ray: the wall tops (z = 0.2) over the
green ball marker (a sphere of radius 0.2 at z = 0) over the wall sides and
the checkered floor (z = -0.1, checks of 2 units). Colours and shading are
MuJoCo's classic renderer's on this model (measured on MuJoCo 3 with EGL,
``tests/fixtures/make_dinowm_pointmaze_fixture.py``): the floor texture unlit,
the headlight's ambient 0.4 plus diffuse 0.8 on lit faces, ambient only on the
wall sides, and a specular highlight (0.1 x 0.5, shininess 64) seen from the
camera.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from torchrl_gbp.tasks.dinowm_pointmaze.simulator import (
    BODY_OFFSET,
    FLOOR_Z,
    MARKER_RADIUS,
    U_MAZE,
    WALL_HALF_HEIGHT,
    WALL_HALF_SIZE,
)
from torchrl_gbp.tasks.rendering import disc_coverage, pixel_axes, render_states

#: The camera: looks at world ``(3, 3, 0)`` from ``CAMERA_DISTANCE`` above it, vertical field of view 45 degrees.
LOOKAT, CAMERA_DISTANCE, FOVY_DEGREES = (3.0, 3.0), 9.734846922834954, 45.0


#: Colours (RGB, 0-255): the floor's two checks (texture ``rgb1``, ``rgb2``), the wall material, the ball marker.
FLOOR_LIGHT, FLOOR_DARK = (51.0, 76.5, 102.0), (25.5, 51.0, 76.5)


WALL, BALL = (178.5, 127.5, 76.5), (76.5, 153.0, 76.5)


# Headlight terms: ambient, diffuse, and the specular peak (light 0.1 x material 0.5, in colour units) and exponent.
_AMBIENT, _DIFFUSE, _SPECULAR, _SHININESS = 0.4, 0.8, 0.05 * 255.0, 64.0


# Floor checks are CHECK world units wide; a check whose two indices sum to an even number is dark.
_CHECK = 2.0


# Subsamples per pixel side for the state-independent layers (MuJoCo renders with 4x multisampling).
_SUPERSAMPLE = 4


def _half_width(z: float) -> float:
    """Half the side of the square the camera sees at height ``z`` (world units)."""
    return (CAMERA_DISTANCE - z) * math.tan(math.radians(FOVY_DEGREES) / 2)


def _axes(size: int, z: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """World x ``(1, 1, W)`` and y ``(1, H, 1)`` where pixel rays meet the plane at height ``z`` (row 0: low y)."""
    half = _half_width(z)
    x, y = pixel_axes(size, -half, half, y_up=False, device=device)
    return x + LOOKAT[0], y + LOOKAT[1]


def _specular(nx: torch.Tensor, ny: torch.Tensor, nz: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
              z: float) -> torch.Tensor:
    """The headlight's highlight (colour units) on a surface of normal ``n`` at ``(x, y, z)``, seen from the camera."""
    vx, vy, vz = LOOKAT[0] - x, LOOKAT[1] - y, CAMERA_DISTANCE - z
    norm = torch.sqrt(vx * vx + vy * vy + vz * vz)
    hx, hy, hz = vx / norm, vy / norm, vz / norm + 1.0  # light along +z: half vector of (0, 0, 1) and the view
    cosine = (nx * hx + ny * hy + nz * hz) / torch.sqrt(hx * hx + hy * hy + hz * hz)
    return _SPECULAR * cosine.clamp(min=0.0) ** _SHININESS


def _in_wall(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """True where world ``(x, y)`` lies in a wall cell of the U-maze (cell ``(r, c)`` centred at ``(r + 1, c + 1)``)."""
    walls = torch.tensor(U_MAZE, dtype=torch.bool, device=x.device)
    row, col = torch.floor(x - 1 + WALL_HALF_SIZE).long(), torch.floor(y - 1 + WALL_HALF_SIZE).long()
    inside = (row >= 0) & (row < walls.shape[0]) & (col >= 0) & (col < walls.shape[1])
    return inside & walls[row.clamp(0, walls.shape[0] - 1), col.clamp(0, walls.shape[1] - 1)]


@lru_cache(maxsize=8)
def _background(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The state-independent layers at ``size``: what lies under the ball ``(1, S, S, 3)`` (floor and wall sides),
    the wall tops' colour ``(1, S, S, 3)`` and their coverage ``(1, S, S)``, each averaged over subsamples."""
    fine = size * _SUPERSAMPLE
    top_z = WALL_HALF_HEIGHT
    x, y = _axes(fine, top_z, device)
    top = _in_wall(x, y).float()
    highlight = _specular(torch.zeros(()), torch.zeros(()), torch.ones(()), x, y, top_z)
    top_colour = (_AMBIENT + _DIFFUSE) * torch.tensor(WALL, device=device) + highlight.unsqueeze(-1)
    x, y = _axes(fine, FLOOR_Z, device)
    dark = (torch.floor(x / _CHECK) + torch.floor(y / _CHECK)).remainder(2) == 0
    floor = torch.where(dark.unsqueeze(-1), torch.tensor(FLOOR_DARK, device=device),
                        torch.tensor(FLOOR_LIGHT, device=device))
    # a ray that misses the wall tops but meets the floor inside a wall cell went in through a side face (unlit)
    side = (_in_wall(x, y) & (top == 0)).unsqueeze(-1)
    under = torch.where(side, _AMBIENT * torch.tensor(WALL, device=device), floor)

    def pool(image: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(image.permute(0, 3, 1, 2), _SUPERSAMPLE).permute(0, 2, 3, 1)

    top_colour = top_colour.expand(1, fine, fine, 3)
    covered = pool(top.expand(1, fine, fine).unsqueeze(-1))
    # the tops' mean colour over the subsamples they cover
    top_mean = pool(top_colour * top.expand(1, fine, fine).unsqueeze(-1)) / covered.clamp(min=1e-6)
    return pool(under.expand(1, fine, fine, 3)), top_mean, covered[..., 0]


def render_dinowm_pointmaze(states: torch.Tensor, size: int = 224) -> torch.Tensor:
    """Images ``(..., size, size, 3)`` uint8 of PointMaze states ``(..., 4)`` (``qpos``, ``qvel``) as DINO-WM's env
    renders them (224 by default; see the module docstring).

    The ball's marker is drawn where the state's ``qpos`` puts it (world
    ``qpos + 1.2``), a sphere lit by the headlight; velocities are not visible.

    Example:
        >>> image = render_dinowm_pointmaze(torch.tensor([[0.5, 0.5, 0.0, 0.0]]))
        >>> image.shape, image[0, 75, 75].tolist()  # the ball: world (1.7, 1.7) is pixel (75, 75) at 224
        (torch.Size([1, 224, 224, 3]), [95, 187, 95])
    """

    def draw(part: torch.Tensor, size: int) -> torch.Tensor:
        device = part.device
        under, top, covered = _background(size, device)
        x, y = _axes(size, 0.0, device)
        center = part[:, :2] + BODY_OFFSET
        dx, dy = x - center[:, 0, None, None], y - center[:, 1, None, None]
        nz = torch.sqrt((1.0 - (dx * dx + dy * dy) / MARKER_RADIUS**2).clamp(min=0.0))
        shade = _AMBIENT + _DIFFUSE * nz
        highlight = _specular(dx / MARKER_RADIUS, dy / MARKER_RADIUS, nz, x, y, 0.0)
        ball = shade.unsqueeze(-1) * torch.tensor(BALL, device=device) + highlight.unsqueeze(-1)
        pixel = 2 * _half_width(0.0) / size
        alpha = disc_coverage(x, y, center, MARKER_RADIUS, pixel).unsqueeze(-1)
        image = torch.lerp(under, ball, alpha)
        return torch.lerp(image, top, covered.unsqueeze(-1)).clamp(0.0, 255.0)

    return render_states(states, size, 4, draw)
