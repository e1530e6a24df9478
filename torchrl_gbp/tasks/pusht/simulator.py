"""The PushT physics (gym-pusht on pymunk): geometry helpers and the batched simulator."""
from __future__ import annotations

import math
import os

import torch

from torchrl_gbp.checks import check_positive_int
from torchrl_gbp.tasks.simulator import Simulator

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # gym-pusht imports pygame; keep it quiet
import pymunk  # noqa: E402
from gym_pusht.envs.pusht import PushTEnv  # noqa: E402

ARENA_SIZE = 512.0


# gym-pusht's physics constants (PushTEnv.__init__ and PushTEnv.step).
PD_KP, PD_KV, PHYSICS_DT, SUBSTEPS = 100.0, 20.0, 0.01, 10


AGENT_RADIUS = 15.0


# The T in its body frame (PushTEnv.add_tee, scale 30): a 120 x 30 bar on top of a 30 x 90 stem.
TEE_RECTS = ((-60.0, 0.0, 60.0, 30.0), (-15.0, 30.0, 15.0, 120.0))  # (x0, y0, x1, y1)


TEE_COM = (0.0, 45.0)  # its centre of mass in the body frame


# agent xy, block xy, block angle, agent velocity xy, block velocity xy, block angular velocity
STATE_DIM = 10
_WALLS = (((5, 506), (5, 5)), ((5, 5), (506, 5)), ((506, 5), (506, 506)), ((5, 506), (506, 506)))


TEE_RADIUS = math.hypot(15.0, 120.0 - 45.0)  # farthest point of the T from its centre of mass


def _wrap_angle(angle: torch.Tensor) -> torch.Tensor:
    """Angles mapped into ``[-pi, pi)``."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def _rotate(vector: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate 2D vectors ``(..., 2)`` by ``angle`` ``(...)``."""
    c, s = torch.cos(angle), torch.sin(angle)
    x, y = vector.unbind(-1)
    return torch.stack([c * x - s * y, s * x + c * y], dim=-1)


def block_center_of_mass(state: torch.Tensor) -> torch.Tensor:
    """World position ``(..., 2)`` of the T's centre of mass in states ``(..., 10)``."""
    com = torch.tensor(TEE_COM, dtype=state.dtype, device=state.device)
    return state[..., 2:4] + _rotate(com.expand_as(state[..., 2:4]), state[..., 4])


def tee_clearance(point: torch.Tensor, block_pose: torch.Tensor) -> torch.Tensor:
    """Distance ``(...,)`` from world points ``(..., 2)`` to the T at poses ``(..., 3)`` (0 inside).

    Example:
        >>> pose = torch.tensor([256.0, 256.0, 0.0])
        >>> tee_clearance(torch.tensor([[256.0, 300.0], [256.0, 206.0]]), pose).tolist()
        [0.0, 50.0]
    """
    local = _rotate(point - block_pose[..., :2], -block_pose[..., 2])
    gaps = []
    for x0, y0, x1, y1 in TEE_RECTS:
        dx = torch.clamp(torch.maximum(x0 - local[..., 0], local[..., 0] - x1), min=0.0)
        dy = torch.clamp(torch.maximum(y0 - local[..., 1], local[..., 1] - y1), min=0.0)
        gaps.append(torch.hypot(dx, dy))
    return torch.minimum(*gaps)


def pusht_step(state: list[float], target: tuple[float, float]) -> list[float]:
    """One env step (10 PD substeps toward ``target``) from a 10-number ``state``; returns the new state.

    The walls, agent and T are built anew by gym-pusht's own constructors
    (``PushTEnv.add_segment/add_circle/add_tee``) in a fresh space at the
    state's poses and velocities: pymunk keeps hidden per-body solver state
    (bias velocities, cached contacts) that would otherwise leak from one env
    step into the next, and rebuilding costs about as much as the 10 substeps.

    Example:
        >>> new = pusht_step([256.0, 100.0, 256.0, 300.0, 0.0, 0, 0, 0, 0, 0], (256.0, 110.0))
        >>> round(new[1], 3), new[2:5]
        (102.957, [256.0, 300.0, 0.0])
    """
    space = pymunk.Space()
    space.gravity = (0.0, 0.0)
    space.damping = 0.0
    space.add(*(PushTEnv.add_segment(space, a, b, 2) for a, b in _WALLS))
    agent = PushTEnv.add_circle(space, (state[0], state[1]), AGENT_RADIUS)
    block, _ = PushTEnv.add_tee(space, (state[2], state[3]), state[4])  # sets the angle, then the position
    agent.velocity = (state[5], state[6])
    block.velocity = (state[7], state[8])
    block.angular_velocity = state[9]
    tx, ty = target
    for _ in range(SUBSTEPS):
        (px, py), (vx, vy) = agent.position, agent.velocity
        agent.velocity = (
            vx + (PD_KP * (tx - px) - PD_KV * vx) * PHYSICS_DT,
            vy + (PD_KP * (ty - py) - PD_KV * vy) * PHYSICS_DT,
        )
        space.step(PHYSICS_DT)
    return [*agent.position, *block.position, block.angle, *agent.velocity, *block.velocity, block.angular_velocity]


class PushTSimulator(Simulator):
    """``num_envs`` PushT worlds stepped one after the other with :func:`pusht_step`.

    Actions are clamped into ``[0, 512]^2`` before use. States are float32 on
    ``device``; see the module docstring for the layout.
    """

    def __init__(self, num_envs: int, device: torch.device | str = "cpu") -> None:
        self.num_envs = check_positive_int("num_envs", num_envs)
        self.device = torch.device(device)
        default = torch.tensor([256.0, 400.0, 256.0, 300.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        self._state = default.expand(num_envs, STATE_DIM).clone().to(self.device)

    def get_state(self) -> torch.Tensor:
        """States ``(num_envs, 10)`` (a copy)."""
        return self._state.clone()

    def set_state(self, state: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Put the envs flagged by ``mask`` (all when ``None``) in ``state`` ``(num_envs, 10)``."""
        expected = (self.num_envs, STATE_DIM)
        if tuple(state.shape) != expected:
            raise ValueError(f"state must have shape (num_envs, state_dim) = {expected}, got {tuple(state.shape)}")
        state = state.to(device=self.device, dtype=torch.float32)
        if not torch.isfinite(state).all():
            raise ValueError("state must be finite")
        if mask is None:
            self._state = state.clone()
        else:
            self._state = torch.where(mask.reshape(-1, 1).to(self.device), state, self._state)

    def step(self, action: torch.Tensor) -> None:
        """One env step for every env under target positions ``action`` ``(num_envs, 2)``."""
        if tuple(action.shape) != (self.num_envs, 2):
            raise ValueError(f"action must have shape (num_envs, 2) = ({self.num_envs}, 2), got {tuple(action.shape)}")
        targets = action.detach().to("cpu", torch.float64).clamp(0.0, ARENA_SIZE).tolist()
        states = self._state.to("cpu", torch.float64).tolist()
        new = [pusht_step(s, t) for s, t in zip(states, targets)]
        self._state = torch.tensor(new, dtype=torch.float32).to(self.device)
