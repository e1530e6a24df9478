"""The scripted pushing controller that PushT datasets are made with."""
from __future__ import annotations

import torch

from torchrl_gbp.tasks.pusht.simulator import AGENT_RADIUS, ARENA_SIZE, TEE_RADIUS, _wrap_angle, block_center_of_mass

_AGENT_CLEARANCE = AGENT_RADIUS + 10.0


# Scripted pusher: orbit radius around the T's centre of mass, lateral offset and lead ranges.
_ORBIT_RADIUS = TEE_RADIUS + AGENT_RADIUS + 12.0


_LATERAL_MAX = 30.0


# "pushed" starts put the agent this far from the T's outline (the first push step touches it).
_CONTACT_GAP = 2.0


def scripted_push_action(
    state: torch.Tensor, direction: torch.Tensor, lateral: torch.Tensor, lead: torch.Tensor
) -> torch.Tensor:
    """The scripted pusher's env action ``(n, 2)`` (a target position) in states ``(n, 10)``.

    It pushes the T along the unit vectors ``direction`` ``(n, 2)``, through a
    contact line offset by ``lateral`` ``(n,)`` from its centre of mass (an
    offset turns the block). Behind the block on that line it targets
    ``lead`` ``(n,)`` units ahead of the agent (a steady push of about
    ``lead / 2`` units per env step); elsewhere it first moves out to a circle
    around the T and orbits to the push start, so it never hits the block on
    the way. A pure function of the state, used for goals and data alike.

    Example:
        >>> state = torch.zeros(1, 10)
        >>> state[0, :5] = torch.tensor([256.0, 200.0, 256.0, 256.0, 0.0])  # the agent just behind the T
        >>> scripted_push_action(state, torch.tensor([[0.0, 1.0]]), torch.zeros(1), torch.full((1,), 20.0))
        tensor([[256., 220.]])
    """
    agent = state[:, :2]
    com = block_center_of_mass(state)
    normal = torch.stack([-direction[:, 1], direction[:, 0]], dim=-1)
    rel = agent - com
    behind = -(rel * direction).sum(-1)
    side = (rel * normal).sum(-1) - lateral
    pushing = (behind > 0.0) & (behind < _ORBIT_RADIUS + 8.0) & (side.abs() < 12.0)
    push = agent + lead.unsqueeze(-1) * direction

    start = com - _ORBIT_RADIUS * direction + lateral.unsqueeze(-1) * normal
    radius = torch.linalg.vector_norm(rel, dim=-1)
    agent_angle = torch.atan2(rel[:, 1], rel[:, 0])
    start_rel = start - com
    turn = _wrap_angle(torch.atan2(start_rel[:, 1], start_rel[:, 0]) - agent_angle)
    heading = agent_angle + turn.clamp(-0.6, 0.6)
    orbit = com + (_ORBIT_RADIUS + 5.0) * torch.stack([torch.cos(heading), torch.sin(heading)], dim=-1)
    close_to_start = (turn.abs() < 0.3).unsqueeze(-1)
    outward = com + (_ORBIT_RADIUS + 8.0) * rel / radius.clamp_min(1e-6).unsqueeze(-1)
    approach = torch.where(close_to_start, start, orbit)
    approach = torch.where((radius < _ORBIT_RADIUS - 4.0).unsqueeze(-1) & ~close_to_start, outward, approach)
    action = torch.where(pushing.unsqueeze(-1), push, approach)
    return action.clamp(0.0, ARENA_SIZE)
