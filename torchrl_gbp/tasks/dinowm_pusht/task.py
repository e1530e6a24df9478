"""DINO-WM's PushT, replicated: relative PD targets on gym-pusht's physics, the goal T drawn on every frame.

DINO-WM (``env/pusht`` of gaoyuezhou/dino_wm) and the gradient-planning paper
evaluate PushT models here. An action ``a`` moves the PD target to ``agent +
100 a`` (not clamped); one env step is 10 Hz control over 100 Hz physics
(``k_p`` 100, ``k_v`` 20) on pymunk, the same world as our ``pusht`` task. A
state is the 10 numbers of :class:`~torchrl_gbp.tasks.pusht.PushTSimulator`
(DINO-WM's 7 plus the block's velocity and angular velocity, so ``set_state``
restores the dynamics). Success is DINO-WM's: the agent and block positions
within 20 jointly (the norm of the 4-vector) and the block angle within pi/9.
"""
from __future__ import annotations

import math

import torch
from tensordict import TensorDict

from torchrl_gbp.checks import check_last_dim, check_positive_int
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.dinowm_pusht.renderer import render_dinowm_pusht
from torchrl_gbp.tasks.dinowm_pusht.simulator import ACTION_SCALE, DinoWMPushTSimulator
from torchrl_gbp.tasks.env import GoalEnv
from torchrl_gbp.tasks.pusht import ARENA_SIZE, PushTTask, scripted_push_action, tee_clearance
from torchrl_gbp.tasks.pusht.simulator import STATE_DIM, _wrap_angle, block_center_of_mass

# DINO-WM's random states: agent xy uniform integers in [50, 450), block xy in [100, 400), angle 2 pi N(0, 1) - pi.
_AGENT_LOW, _AGENT_HIGH, _BLOCK_LOW, _BLOCK_HIGH = 50, 450, 100, 400


# Starting agents keep this clearance from the T (DINO-WM lets the first physics step push an overlapped T away).
_START_CLEARANCE = 5.0


# Noisy scripted pushes: segment lengths (env steps), the lateral offset and lead of the pusher, target noise.
_SEGMENT_LOW, _SEGMENT_HIGH = 8, 25


_LATERAL_MAX, _LEAD_LOW, _LEAD_HIGH, _TARGET_NOISE = 30.0, 12.0, 28.0, 8.0


# Our PushT, whose observation vector this one extends.
_PUSHT = PushTTask()


# Held-out trajectories for the (start, goal) segments: this long, from seeds at and above this base.
_HELD_OUT_STEPS, _HELD_OUT_SEED_BASE = 50, 1 << 40


class DinoWMPushTTask(Task):
    """DINO-WM's PushT: push the T to the pose of a goal state, with relative PD targets.

    Success (DINO-WM's ``eval_state``): ``||(agent, block)_xy - goal's|| < 20``
    (the 4-vector) and the block angle within pi/9. :meth:`distance` is that
    norm plus the angle error in degrees. Proprio: the agent's position and
    velocity ``(x, y, vx, vy)`` in arena units, DINO-WM's. Observation (state
    models): our PushT's 6 numbers (block xy, cos/sin angle, agent xy, scaled
    by 1/256) and the agent velocity over 256, so the 4 proprio numbers are
    last.

    Pairs (DINO-WM's PushT protocol): a random ``segment_steps``-step segment
    of a held-out trajectory of :meth:`generate_dataset` (start = its first
    state, goal = its last), each trajectory seeded from the pair generator in
    a range the datasets' seeds never reach.

    Actions: DINO-WM does not bound them; the spec's bounds are ``+-5.12``
    (``512 / 100``), so any target in the arena is one step away.

    Args:
        segment_steps: env steps between a pair's start and goal (5 model steps of 5).
        episode_steps: env steps per evaluation episode.
        frameskip: default env actions per world-model step.

    Example:
        >>> task = DinoWMPushTTask()
        >>> start, goal = task.sample_start_goal(2, torch.Generator().manual_seed(0))
        >>> start.shape, task.proprio_from_state(start).shape, task.success(goal, goal).tolist()
        (torch.Size([2, 10]), torch.Size([2, 4]), [True, True])
    """

    name = "dinowm_pusht"
    obs_dim = 8
    state_dim = STATE_DIM
    action_dim = 2
    success_threshold = 20.0
    angle_threshold = math.pi / 9
    action_bounds = (-ARENA_SIZE / ACTION_SCALE, ARENA_SIZE / ACTION_SCALE)
    observation_bounds = None
    pair_modes = ("segments",)
    pair_mode = "segments"
    proprio_dim = 4

    def __init__(self, *, segment_steps: int = 25, episode_steps: int = 50, frameskip: int = 5) -> None:
        self.segment_steps = check_positive_int("segment_steps", segment_steps)
        if segment_steps > _HELD_OUT_STEPS:
            raise ValueError(f"segment_steps must be <= {_HELD_OUT_STEPS} (the held-out trajectories' length), "
                             f"got {segment_steps}")
        self.episode_steps = check_positive_int("episode_steps", episode_steps)
        self.frameskip = check_positive_int("frameskip", frameskip)

    def __repr__(self) -> str:
        return (f"DinoWMPushTTask(segment_steps={self.segment_steps}, episode_steps={self.episode_steps}, "
                f"frameskip={self.frameskip})")

    def env_type(self) -> type[GoalEnv]:
        """:meth:`make_env` builds the shared :class:`~torchrl_gbp.tasks.env.GoalEnv`."""
        return GoalEnv

    def make_simulator(self, num_envs: int, device: torch.device | str = "cpu") -> DinoWMPushTSimulator:
        """``num_envs`` PushT worlds driven by relative targets (:class:`DinoWMPushTSimulator`)."""
        return DinoWMPushTSimulator(num_envs, device)

    def sample_start_goal(
        self, n: int, generator: torch.Generator, mode: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` (start, goal) state pairs ``(n, 10)`` (CPU): segments of held-out trajectories (class docstring)."""
        check_positive_int("n", n)
        self.check_pair_mode(self.pair_mode if mode is None else mode)
        seed = _HELD_OUT_SEED_BASE + int(torch.randint(1 << 31, (), generator=generator, device=generator.device))
        offset = torch.randint(_HELD_OUT_STEPS - self.segment_steps + 1, (n,), generator=generator,
                               device=generator.device).cpu()
        data = self.generate_dataset(n, _HELD_OUT_STEPS, seed)
        rows = torch.arange(n)
        return data["state"][rows, offset].clone(), data["next", "state"][rows, offset + self.segment_steps - 1].clone()

    def observation_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """States ``(..., 10)`` -> ``(..., 8)``: our PushT's observation, then the agent velocity over 256."""
        return torch.cat([_PUSHT.observation_from_state(state), state[..., 5:7] / (ARENA_SIZE / 2)], dim=-1)

    def render(self, states: torch.Tensor, size: int = 224) -> torch.Tensor:
        """Images ``(..., size, size, 3)`` uint8 as DINO-WM's PushT env renders them, the goal T included.

        See :func:`~torchrl_gbp.tasks.dinowm_pusht.renderer.render_dinowm_pusht`.
        """
        return render_dinowm_pusht(states, size)

    def proprio_from_state(self, states: torch.Tensor) -> torch.Tensor:
        """The agent's position and velocity ``(..., 4)`` float32, in arena units (DINO-WM's PushT proprio)."""
        check_last_dim("states", states, self.state_dim)
        return torch.cat([states[..., 0:2], states[..., 5:7]], dim=-1).float()

    def errors(self, state: torch.Tensor, goal_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The joint agent and block position error (units) and the wrapped block angle error (radians), ``(...,)``."""
        check_last_dim("state", state, self.state_dim)
        check_last_dim("goal_state", goal_state, self.state_dim)
        position = torch.linalg.vector_norm(state[..., :4] - goal_state[..., :4], dim=-1)
        return position, _wrap_angle(state[..., 4] - goal_state[..., 4]).abs()

    def distance(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """``position error + (180 / pi) * angle error``, ``(...,)`` (see :meth:`errors`)."""
        position, angle = self.errors(state, goal_state)
        return position + math.degrees(1.0) * angle

    def success(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """DINO-WM's test, ``(...,)`` bool: joint position error < 20 AND angle error < pi/9."""
        position, angle = self.errors(state, goal_state)
        return (position < self.success_threshold) & (angle < self.angle_threshold)

    def _random_states(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """DINO-WM's random states at rest ``(n, 10)``, the agent moved clear of the T (first clear of 16 draws)."""
        block = torch.stack([torch.randint(_BLOCK_LOW, _BLOCK_HIGH, (n,), generator=generator).double(),
                             torch.randint(_BLOCK_LOW, _BLOCK_HIGH, (n,), generator=generator).double(),
                             2 * math.pi * torch.randn(n, generator=generator, dtype=torch.float64) - math.pi], -1)
        agents = torch.randint(_AGENT_LOW, _AGENT_HIGH, (n, 16, 2), generator=generator).double()
        clear = tee_clearance(agents, block.unsqueeze(1)) > _START_CLEARANCE
        state = torch.zeros(n, self.state_dim, dtype=torch.float64)
        state[:, :2], state[:, 2:5] = agents[torch.arange(n), clear.int().argmax(1)], block
        return state.float()

    def generate_dataset(
        self, num_trajectories: int, trajectory_steps: int | None = None, seed: int = 0
    ) -> TensorDict:
        """Seeded trajectories of noisy scripted pushes (in the manner of DINO-WM's ``pusht_noise``).

        Each trajectory starts from a DINO-WM random state and runs segments of
        8 to 24 env steps, each a :func:`~torchrl_gbp.tasks.pusht.scripted_push_action`
        push with fresh parameters (a direction within 90 degrees of the one
        towards the arena's centre, a lateral offset within 30 units, a lead of
        12 to 28 units) whose target gets Gaussian noise of 8 units; the action
        is that target relative to the agent, over 100. Keys as in
        :meth:`Task.generate_dataset`; tensors on CPU.
        """
        n, steps, generator = self.dataset_arguments(num_trajectories, trajectory_steps, seed)
        simulator = self.make_simulator(n)
        simulator.set_state(self._random_states(n, generator))
        remaining = torch.zeros(n, dtype=torch.int64)
        direction, lateral, lead = torch.zeros(n, 2), torch.zeros(n), torch.zeros(n)
        states, actions = [simulator.get_state()], []
        for _ in range(steps):
            state = simulator.get_state()
            u = torch.rand(n, 4, generator=generator)
            noise = torch.randn(n, 2, generator=generator)
            fresh = remaining <= 0
            remaining = torch.where(fresh, _SEGMENT_LOW + (u[:, 0] * (_SEGMENT_HIGH - _SEGMENT_LOW)).long(),
                                    remaining - 1)
            to_center = ARENA_SIZE / 2 - block_center_of_mass(state)
            angle = torch.atan2(to_center[:, 1], to_center[:, 0]) + math.pi * (u[:, 1] - 0.5)
            direction = torch.where(fresh.unsqueeze(-1), torch.stack([angle.cos(), angle.sin()], -1), direction)
            lateral = torch.where(fresh, _LATERAL_MAX * (2 * u[:, 2] - 1), lateral)
            lead = torch.where(fresh, _LEAD_LOW + (_LEAD_HIGH - _LEAD_LOW) * u[:, 3], lead)
            target = scripted_push_action(state, direction, lateral, lead) + _TARGET_NOISE * noise
            low, high = self.action_bounds
            action = ((target - state[:, :2]) / ACTION_SCALE).clamp(low, high)
            simulator.step(action)
            states.append(simulator.get_state())
            actions.append(action)
        return self.trajectories(torch.stack(states, dim=1), torch.stack(actions, dim=1))
