"""PushT: a disc agent pushes a T-shaped block to a goal pose, on gym-pusht's pymunk physics.

The arena, the T, the agent disc and the PD controller are gym-pusht's
(``gym_pusht.envs.pusht.PushTEnv``): an env action is a target position for
the agent in ``[0, 512]^2`` and one env step runs 10 physics substeps of
0.01 s with the PD law ``v += (100 (target - p) - 20 v) dt``.

A state (10 numbers, float32) is everything an env step depends on::

    agent_x, agent_y, block_x, block_y, block_angle,
    agent_vx, agent_vy, block_vx, block_vy, block_angular_velocity

(block position = the T's body origin, the middle of the top edge of its bar,
as in gym-pusht; block velocity = the velocity of its centre of mass). Every
env step starts from the float32 state: the bodies are set from it, their
contacts are cleared (so no warm-start impulses carry over) and the result is
rounded back to float32. The step is thus a pure function of (state, action)
and ``set_state`` followed by ``step`` replays the original exactly.
"""
from __future__ import annotations

import math

import torch
from tensordict import TensorDict

from torchrl_gbp.checks import check_last_dim, check_positive_int
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.env import GoalEnv
from torchrl_gbp.tasks.pusht.renderer import render_pusht
from torchrl_gbp.tasks.pusht.scripted import (
    _AGENT_CLEARANCE,
    _CONTACT_GAP,
    _LATERAL_MAX,
    _ORBIT_RADIUS,
    scripted_push_action,
)
from torchrl_gbp.tasks.pusht.simulator import (
    AGENT_RADIUS,
    ARENA_SIZE,
    STATE_DIM,
    PushTSimulator,
    _wrap_angle,
    block_center_of_mass,
    tee_clearance,
)

PAIR_MODES = ("pushed", "approach", "random")


# Sampled starts: block origin in [_BLOCK_LOW, _BLOCK_HIGH]^2, any angle; agent in
# [_AGENT_LOW, _AGENT_HIGH]^2, at least _AGENT_CLEARANCE from the T's outline.
_BLOCK_LOW, _BLOCK_HIGH = 160.0, 352.0


_AGENT_LOW, _AGENT_HIGH = 40.0, 472.0


_LEAD_LOW, _LEAD_HIGH = 12.0, 28.0


# After a push the agent backs off this far in this many env steps, so goals have it clear of the T.
_RETREAT_DISTANCE, _RETREAT_STEPS = 40.0, 5


# A (start, goal) pair is kept only if the block moved this many thresholds (position or angle).
_MIN_GOAL_MARGIN = 1.5


# Dataset random-walk targets stay this far inside the arena (a kinematic agent can squeeze the T through a wall).
_WALK_LOW = 100.0


_MAX_REJECTION_ROUNDS = 50


# The block's pose alone, or the reference code's test of the agent's and the block's positions jointly.
SUCCESS_RULES = ("block", "agent_and_block")


class PushTTask(Task):
    """Push a T-shaped block to a goal pose with a disc agent (gym-pusht physics).

    Success (``success_rule="block"``, the default): the block's position is
    within ``success_threshold`` = 20 units (the arena is 512 wide; the T's bar
    is 120 long) AND its angle within ``angle_threshold`` = pi/9 (20 degrees)
    of the goal's; the agent's own position does not matter.
    ``success_rule="agent_and_block"`` is the reference code's test: the
    agent's and the block's positions within 20 jointly (the norm of the
    4-vector of both errors) AND the angle within pi/9. :meth:`distance` is one scalar, ``position error +
    (180 / pi) * |angle error|``, i.e. units plus degrees.

    Observation (6): ``((block_x, block_y) - 256) / 256``, ``cos`` and ``sin``
    of the block angle (no wrap at 2 pi), then the agent position
    ``((agent_x, agent_y) - 256) / 256`` last, so a world model's
    ``proprio_dim=2`` picks the agent. Velocities are in the state but not in
    the observation: gym-pusht's space damping of 0 removes the block's
    momentum every substep (the block moves only while pushed) and the PD
    agent settles within a model step. Actions are target positions for the agent in ``[0, 512]^2``.

    Pairs (``pair_mode``): ``"pushed"`` (default) draws a random block pose
    and a scripted push (:func:`scripted_push_action`: direction toward the
    arena's centre +- 90 degrees, lateral offset, speed), starts the agent at
    rest on that push line, 2 units clear of the T behind it (so every push
    step pushes), and runs the push for ``push_steps`` env steps; the agent
    then backs off 40 units against the push direction (5 env steps, the T
    stays put) and the goal is that state, so goals are reachable by
    construction (DINO-WM style) and mostly have the agent clear of the T.
    The goal's agent position (part of the goal observation) thus tells a
    planner to back off and leave the block alone once it is placed: success
    is scored on the final state only, and an agent that keeps moving around
    a placed T knocks it off its pose.
    ``"approach"`` makes the same goals but starts the agent anywhere clear
    of the T (the planner must first reach the push line: harder). ``"random"`` draws the goal block
    pose independently (hardest). A pair is redrawn unless the block moved by
    1.5 thresholds (30 units or 30 degrees), so no episode starts solved.

    Args:
        push_steps: env steps of scripted pushing that make a ``"pushed"`` goal.
        episode_steps: env steps per evaluation episode.
        frameskip: default env actions per world-model step.
        pair_mode: default (start, goal) sampling: ``"pushed"``, ``"approach"`` or ``"random"``.

    Example:
        >>> task = PushTTask()
        >>> start, goal = task.sample_start_goal(4, torch.Generator().manual_seed(0))
        >>> start.shape, task.observation_from_state(goal).shape
        (torch.Size([4, 10]), torch.Size([4, 6]))
        >>> task.success(goal, goal).tolist(), task.success(start, goal).tolist()
        ([True, True, True, True], [False, False, False, False])
        >>> task.generate_dataset(2, trajectory_steps=10, seed=0).batch_size
        torch.Size([2, 10])
    """

    name = "pusht"
    obs_dim = 6
    state_dim = STATE_DIM
    action_dim = 2
    success_threshold = 20.0
    angle_threshold = math.pi / 9
    action_bounds = (0.0, ARENA_SIZE)
    observation_bounds = None
    pair_modes = PAIR_MODES
    proprio_dim = 4

    def __init__(
        self, push_steps: int = 15, episode_steps: int = 50, frameskip: int = 5, pair_mode: str = "pushed",
        success_rule: str = "block",
    ) -> None:
        if success_rule not in SUCCESS_RULES:
            raise ValueError(f"success_rule must be one of {SUCCESS_RULES}, got {success_rule!r}")
        self.success_rule = success_rule
        self.push_steps = check_positive_int("push_steps", push_steps)
        self.episode_steps = check_positive_int("episode_steps", episode_steps)
        self.frameskip = check_positive_int("frameskip", frameskip)
        self.pair_mode = self.check_pair_mode(pair_mode)

    def make_simulator(self, num_envs: int, device: torch.device | str = "cpu") -> PushTSimulator:
        """``num_envs`` gym-pusht worlds (:class:`PushTSimulator`)."""
        return PushTSimulator(num_envs, device)

    def env_type(self) -> type[GoalEnv]:
        """:meth:`make_env` builds the shared :class:`~torchrl_gbp.tasks.env.GoalEnv`."""
        return GoalEnv

    # --- pairs ---------------------------------------------------------------------------------

    def _sample_starts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Random block poses and agent positions clear of the T, at rest, ``(n, 10)`` on CPU."""
        u = torch.rand(n, 3, generator=generator, device=generator.device).cpu().double()
        block = torch.stack([
            _BLOCK_LOW + (_BLOCK_HIGH - _BLOCK_LOW) * u[:, 0],
            _BLOCK_LOW + (_BLOCK_HIGH - _BLOCK_LOW) * u[:, 1],
            math.pi * (2.0 * u[:, 2] - 1.0),
        ], dim=-1)
        # A fixed number of candidate agent positions per start keeps draws aligned across calls.
        candidates = _AGENT_LOW + (_AGENT_HIGH - _AGENT_LOW) * torch.rand(
            n, 16, 2, generator=generator, device=generator.device
        ).cpu().double()
        clear = tee_clearance(candidates, block.unsqueeze(1)) > _AGENT_CLEARANCE
        first = torch.argmax(clear.int(), dim=1)  # every T leaves most of the arena free
        agent = candidates[torch.arange(n), first]
        state = torch.zeros(n, self.state_dim, dtype=torch.float64)
        state[:, :2], state[:, 2:5] = agent, block
        return state.float()

    def _push_parameters(self, start: torch.Tensor, generator: torch.Generator):
        """Scripted pusher parameters (direction, lateral, lead) for starts ``(n, 10)``."""
        u = torch.rand(start.shape[0], 3, generator=generator, device=generator.device).cpu()
        to_center = ARENA_SIZE / 2 - block_center_of_mass(start)
        angle = torch.atan2(to_center[:, 1], to_center[:, 0]) + math.pi * (u[:, 0] - 0.5)
        direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
        lateral = _LATERAL_MAX * (2.0 * u[:, 1] - 1.0)
        lead = _LEAD_LOW + (_LEAD_HIGH - _LEAD_LOW) * u[:, 2]
        return direction, lateral, lead

    def run_scripted_pusher(
        self, start: torch.Tensor, steps: int, direction: torch.Tensor, lateral: torch.Tensor, lead: torch.Tensor
    ) -> torch.Tensor:
        """States ``(n, 10)`` after ``steps`` env steps of :func:`scripted_push_action` from ``start``."""
        simulator = self.make_simulator(start.shape[0])
        simulator.set_state(start)
        for _ in range(steps):
            simulator.step(scripted_push_action(simulator.get_state(), direction, lateral, lead))
        return simulator.get_state()

    @staticmethod
    def _contact_start(start: torch.Tensor, direction: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        """Agent positions ``(n, 2)`` on the push lines, ``_CONTACT_GAP`` units clear of the T behind it.

        Walks in from the push start (``_ORBIT_RADIUS`` behind the T's centre of
        mass) and stops at the last point before the clearance drops below
        ``AGENT_RADIUS + _CONTACT_GAP``, so the first push step touches the T
        (a line that misses the T keeps the push start).
        """
        normal = torch.stack([-direction[:, 1], direction[:, 0]], dim=-1)
        line = block_center_of_mass(start) + lateral.unsqueeze(-1) * normal
        back = torch.linspace(_ORBIT_RADIUS, 0.0, math.ceil(_ORBIT_RADIUS) + 1, dtype=start.dtype)  # <= 1-unit steps
        points = line.unsqueeze(1) - back.view(1, -1, 1) * direction.unsqueeze(1)  # (n, steps, 2)
        clear = tee_clearance(points, start[:, None, 2:5].expand(-1, back.numel(), 3)) >= AGENT_RADIUS + _CONTACT_GAP
        last = torch.argmin(clear.int(), dim=1) - 1  # the point before the first blocked one
        return points[torch.arange(start.shape[0]), last.clamp_min(0)]

    def _retreat(self, state: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        """States ``(n, 10)`` after the agent backs off ``_RETREAT_DISTANCE`` against the push ``direction`` ``(n, 2)``.

        Takes ``_RETREAT_STEPS`` env steps. Behind a push the agent moves away
        from the T, which has no momentum and so stays put.
        """
        simulator = self.make_simulator(state.shape[0])
        simulator.set_state(state)
        target = (state[:, :2] - _RETREAT_DISTANCE * direction).clamp(0.0, ARENA_SIZE)
        for _ in range(_RETREAT_STEPS):
            simulator.step(target)
        return simulator.get_state()

    def _far_enough(self, start: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        moved = torch.linalg.vector_norm(goal[:, 2:4] - start[:, 2:4], dim=-1)
        turned = _wrap_angle(goal[:, 4] - start[:, 4]).abs()
        return (moved >= _MIN_GOAL_MARGIN * self.success_threshold) | (
            turned >= _MIN_GOAL_MARGIN * self.angle_threshold
        )

    def sample_start_goal(
        self, n: int, generator: torch.Generator, mode: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` (start, goal) state pairs ``(n, 10)`` (CPU), see the class docstring.

        Pairs whose block moved less than 1.5 thresholds are redrawn (in the
        same order, so a seed always gives the same pairs).
        """
        n = check_positive_int("n", n)
        mode = self.check_pair_mode(self.pair_mode if mode is None else mode)
        start = torch.zeros(n, self.state_dim)
        goal = torch.zeros(n, self.state_dim)
        todo = torch.arange(n)
        for _ in range(_MAX_REJECTION_ROUNDS):
            s = self._sample_starts(len(todo), generator)
            if mode == "random":
                g = self._sample_starts(len(todo), generator)
            else:
                direction, lateral, lead = self._push_parameters(s, generator)
                pusher = s.clone()  # the scripted push starts on the push line, just clear of the T behind it
                pusher[:, :2] = self._contact_start(s, direction, lateral)
                g = self._retreat(self.run_scripted_pusher(pusher, self.push_steps, direction, lateral, lead),
                                  direction)
                if mode == "pushed":
                    s = pusher
            start[todo], goal[todo] = s, g
            todo = todo[~self._far_enough(s, g)]
            if len(todo) == 0:
                return start, goal
        raise RuntimeError(f"could not draw {n} pairs whose block moves; increase push_steps={self.push_steps}")

    # --- observation, distance, success ----------------------------------------------------------

    def observation_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """``(..., 10)`` states -> ``(..., 6)`` observations: block xy, cos/sin angle, agent xy (xy scaled to ~[-1, 1])."""
        check_last_dim("state", state, self.state_dim)
        half = ARENA_SIZE / 2
        angle = state[..., 4]
        return torch.stack([
            (state[..., 2] - half) / half, (state[..., 3] - half) / half, torch.cos(angle), torch.sin(angle),
            (state[..., 0] - half) / half, (state[..., 1] - half) / half,
        ], dim=-1)

    def render(self, states: torch.Tensor, size: int = 64) -> torch.Tensor:
        """Images ``(..., size, size, 3)`` uint8 of the arena with the T block and the agent disc.

        See :func:`~torchrl_gbp.tasks.pusht.renderer.render_pusht`.
        """
        return render_pusht(states, size)

    def proprio_from_state(self, states: torch.Tensor) -> torch.Tensor:
        """Agent position and velocity ``(..., 4)`` float32, in the observation's units.

        DINO-WM's PushT proprio (agent position and velocity), scaled like
        :meth:`observation_from_state`: ``(p - 256) / 256`` and ``v / 256``.
        """
        check_last_dim("states", states, self.state_dim)
        half = ARENA_SIZE / 2
        return torch.cat([(states[..., 0:2] - half) / half, states[..., 5:7] / half], dim=-1).float()

    def pose_errors(self, state: torch.Tensor, goal_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block position error (units) and absolute wrapped angle error (radians), each ``(...,)``."""
        check_last_dim("state", state, self.state_dim)
        check_last_dim("goal_state", goal_state, self.state_dim)
        position = torch.linalg.vector_norm(state[..., 2:4] - goal_state[..., 2:4], dim=-1)
        return position, _wrap_angle(state[..., 4] - goal_state[..., 4]).abs()

    def distance(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """``position error + (180 / pi) * angle error``: units plus degrees, ``(...,)``."""
        position, angle = self.pose_errors(state, goal_state)
        return position + math.degrees(1.0) * angle

    def success(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """Block (and, under ``success_rule="agent_and_block"``, agent) within 20 units AND the block within
        pi/9 of the goal pose, ``(...,)`` bool.

        Example:
            >>> goal = torch.zeros(1, 10)
            >>> moved_agent = goal.clone(); moved_agent[:, 0] = 30.0
            >>> PushTTask().success(moved_agent, goal).item(), PushTTask(success_rule="agent_and_block").success(
            ...     moved_agent, goal).item()
            (True, False)
        """
        position, angle = self.pose_errors(state, goal_state)
        if self.success_rule == "agent_and_block":
            position = torch.linalg.vector_norm(state[..., 0:4] - goal_state[..., 0:4], dim=-1)
        return (position < self.success_threshold) & (angle < self.angle_threshold)

    # --- offline data ----------------------------------------------------------------------------

    def generate_dataset(
        self, num_trajectories: int, trajectory_steps: int | None = None, seed: int = 0
    ) -> TensorDict:
        """Seeded trajectories of a noisy scripted pusher mixed with random-target segments.

        Each trajectory starts like an ``"approach"`` start and is cut into
        segments of 8 to 24 env steps: a :func:`scripted_push_action` push
        (probability 0.6; fresh direction within 90 degrees of the arena's
        centre, lateral offset and lead, plus Gaussian noise of 8 units), a
        random walk of targets within 150 units of the T's centre of mass
        (0.2), or one far target anywhere at least 100 units inside the walls,
        reached fast and then held (0.2). So the block is pushed, turned,
        swept, missed and left alone in varied ways. All
        randomness is drawn in fixed-size blocks per step (same seed, same
        tensors). Keys as in :meth:`Task.generate_dataset`; tensors on CPU.
        """
        n, steps, generator = self.dataset_arguments(num_trajectories, trajectory_steps, seed)
        start = self._sample_starts(n, generator)
        simulator = self.make_simulator(n)
        simulator.set_state(start)

        remaining = torch.zeros(n, dtype=torch.int64)
        kind = torch.zeros(n)  # segment kind: < 0.6 push, < 0.8 walk around the T, else go to a far target
        direction, lateral, lead = self._push_parameters(start, generator)
        wander = torch.zeros(n, 2)
        far_target = torch.zeros(n, 2)
        states, actions = [start], []
        for _ in range(steps):
            state = simulator.get_state()
            u = torch.rand(n, 10, generator=generator)
            noise = torch.randn(n, 2, generator=generator)
            new_segment = remaining <= 0
            remaining = torch.where(new_segment, (8 + 17 * u[:, 0]).long(), remaining - 1)
            kind = torch.where(new_segment, u[:, 1], kind)
            to_center = ARENA_SIZE / 2 - block_center_of_mass(state)
            angle = torch.atan2(to_center[:, 1], to_center[:, 0]) + math.pi * (u[:, 2] - 0.5)
            fresh_direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
            direction = torch.where(new_segment.unsqueeze(-1), fresh_direction, direction)
            lateral = torch.where(new_segment, _LATERAL_MAX * (2 * u[:, 3] - 1), lateral)
            lead = torch.where(new_segment, _LEAD_LOW + (_LEAD_HIGH - _LEAD_LOW) * u[:, 4], lead)
            far = _WALK_LOW + (ARENA_SIZE - 2 * _WALK_LOW) * u[:, 7:9]
            far_target = torch.where(new_segment.unsqueeze(-1), far, far_target)
            # Random targets: an AR(1) offset around the T's centre of mass, bounded by 150 units.
            wander = 0.7 * wander + 60.0 * (2 * u[:, 5:7] - 1)
            wander = wander * (150.0 / torch.linalg.vector_norm(wander, dim=-1, keepdim=True).clamp_min(150.0))
            push = scripted_push_action(state, direction, lateral, lead) + 8.0 * noise
            walk = (block_center_of_mass(state) + wander).clamp(_WALK_LOW, ARENA_SIZE - _WALK_LOW)
            action = torch.where((kind < 0.6).unsqueeze(-1), push, torch.where((kind < 0.8).unsqueeze(-1), walk, far_target))
            action = action.clamp(0.0, ARENA_SIZE)
            simulator.step(action)
            states.append(simulator.get_state())
            actions.append(action)

        return self.trajectories(torch.stack(states, dim=1), torch.stack(actions, dim=1))
