"""dm_control's two-link reacher, through TorchRL's ``DMControlEnv``: bring the fingertip onto a target.

The true dynamics are MuJoCo's, stepped through one
:class:`torchrl.envs.DMControlEnv` ``("reacher", "easy" | "hard")`` per env.
The state is the joint state ``(shoulder, wrist, shoulder velocity, wrist
velocity)`` (float32); a goal is a target *position* of the fingertip,
represented in state space by the zero-velocity joint configuration that puts
the fingertip there (analytic inverse kinematics, :meth:`ReacherTask.goal_state_at`).
The target is also written into each dm_control physics
(``geom_pos['target']``), so dm_control's own reward agrees with
:meth:`ReacherTask.success`.

Observations are ``(finger x, finger y, cos q1, sin q1, cos q2, sin q2, dq1, dq2)``:
the fingertip first, the six proprioceptive entries last (``proprio_dim=6``
in :class:`~torchrl_gbp.models.WorldModelConfig`), so a goal cost can weigh
the fingertip most (two joint configurations reach one fingertip position).
"""
from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase

from torchrl_gbp.checks import check_last_dim, check_positive_int
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.env import GoalEnv
from torchrl_gbp.tasks.reacher.renderer import render_reacher
from torchrl_gbp.tasks.reacher.simulator import (
    DIFFICULTIES,
    ReacherSimulator,
    arm_geometry,
)

PAIR_MODES = ("random", "far")


PROPRIO_DIM = 6


# dm_control's target distribution: angle U(0, 2 pi), radius U(0.05, 0.20); wrist range +-160 degrees.
_TARGET_RADIUS = (0.05, 0.20)


_WRIST_LIMIT = math.radians(160.0)


# "far" pairs start the fingertip at least this far from the target.
_FAR_DISTANCE = 0.15


# Dataset: noisy joint-space PD reaching (gains in units of the unit action) and AR(1) random torques.
_PD_KP, _PD_KD, _PD_NOISE = 4.0, 0.4, 0.3


_WALK_DECAY, _WALK_NOISE = 0.8, 0.5


# Dataset trajectories are simulated this many at a time.
_DATASET_CHUNK = 64


# ----------------------------------------------------------------------------- the task
class ReacherTask(Task):
    """Bring the reacher's fingertip onto a target, with dm_control's physics and success radius.

    A state is ``(q1, q2, dq1, dq2)``; starts are random joint angles (shoulder
    ``U(-pi, pi)``, wrist ``U(-160, 160)`` degrees) at rest, targets are drawn
    like dm_control's (angle ``U(0, 2 pi)``, radius ``U(0.05, 0.20)``) and
    turned into goal states by :meth:`goal_state_at`; pairs whose start already
    succeeds are redrawn. Success: fingertip distance below target size plus
    finger size (0.06 on easy, 0.025 on hard), exactly dm_control's reward radius.

    Args:
        difficulty: ``"easy"`` (target size 0.05) or ``"hard"`` (0.015).
        episode_steps: env steps (of 0.02 s) per evaluation episode.
        frameskip: default env actions per world-model step.
        pair_mode: ``"random"`` (dm_control's distributions) or ``"far"``
            (start fingertip at least 0.15 from the target).

    Example:
        >>> task = ReacherTask()
        >>> start, goal = task.sample_start_goal(4, torch.Generator().manual_seed(0))
        >>> start.shape, bool((start[:, 2:] == 0).all()), bool((goal[:, 2:] == 0).all())
        (torch.Size([4, 4]), True, True)
        >>> task.success(goal, goal).tolist(), task.success(start, goal).tolist()
        ([True, True, True, True], [False, False, False, False])
        >>> target = torch.tensor([[0.1, -0.05]])
        >>> torch.allclose(task.fingertip(task.goal_state_at(target)), target, atol=1e-6)
        True
        >>> task.generate_dataset(2, trajectory_steps=10, seed=0)["observation"].shape
        torch.Size([2, 10, 8])
    """

    name = "reacher"
    obs_dim = 8
    state_dim = 4
    action_dim = 2
    action_bounds = (-1.0, 1.0)
    observation_bounds = None
    pair_modes = PAIR_MODES
    proprio_dim = PROPRIO_DIM

    def __init__(
        self,
        difficulty: str = "easy",
        episode_steps: int = 60,
        frameskip: int = 5,
        pair_mode: str = "random",
    ) -> None:
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
        self.difficulty = difficulty
        self.episode_steps = check_positive_int("episode_steps", episode_steps)
        self.frameskip = check_positive_int("frameskip", frameskip)
        self.pair_mode = self.check_pair_mode(pair_mode)
        geometry = arm_geometry(difficulty)
        self.link1, self.link2 = geometry["link1"], geometry["link2"]
        self.target_size, self.finger_size = geometry["target_size"], geometry["finger_size"]
        self.success_threshold = self.target_size + self.finger_size

    # ------------------------------------------------------------- kinematics
    def fingertip(self, state: torch.Tensor) -> torch.Tensor:
        """Fingertip positions ``(..., 2)`` of states ``(..., 4)`` (forward kinematics)."""
        check_last_dim("state", state, self.state_dim)
        q1, q2 = state[..., 0], state[..., 0] + state[..., 1]
        return torch.stack([self.link1 * q1.cos() + self.link2 * q2.cos(),
                            self.link1 * q1.sin() + self.link2 * q2.sin()], dim=-1)

    def goal_state_at(self, target: torch.Tensor, elbow: torch.Tensor | float = 1.0) -> torch.Tensor:
        """Zero-velocity states ``(..., 4)`` whose fingertip is at ``target`` ``(..., 2)`` (inverse kinematics).

        ``elbow`` (broadcastable to ``(...,)``) picks the wrist's sign of the two
        solutions (``>= 0``: positive). Targets out of reach are pulled onto the
        reachable annulus. Raises ``ValueError`` if the solution leaves the
        wrist's +-160 degree range (targets closer than about 0.04 to the base).
        """
        check_last_dim("target", target, 2)
        l1, l2 = self.link1, self.link2
        radius = torch.linalg.vector_norm(target, dim=-1)
        cos_q2 = ((radius**2 - l1**2 - l2**2) / (2 * l1 * l2)).clamp(-1.0, 1.0)
        sign = torch.where(torch.as_tensor(elbow, dtype=target.dtype, device=target.device) >= 0, 1.0, -1.0)
        q2 = sign * torch.acos(cos_q2)
        if (q2.abs() > _WRIST_LIMIT + 1e-6).any():
            raise ValueError(f"target too close to the base: the wrist would leave its +-160 degree range "
                             f"(smallest radius {float(radius.min()):.4f})")
        q1 = torch.atan2(target[..., 1], target[..., 0]) - torch.atan2(l2 * q2.sin(), l1 + l2 * q2.cos())
        q1 = torch.atan2(q1.sin(), q1.cos())
        zeros = torch.zeros_like(q1)
        return torch.stack([q1, q2, zeros, zeros], dim=-1)

    # --------------------------------------------------------------- contract
    def make_simulator(self, num_envs: int, device: torch.device | str = "cpu") -> ReacherSimulator:
        """``num_envs`` dm_control reacher envs (pooled across simulators)."""
        return ReacherSimulator(self, num_envs, device)

    def env_type(self) -> type[ReacherEnv]:
        """:meth:`make_env` builds a :class:`ReacherEnv`."""
        return ReacherEnv

    def sample_start_goal(
        self, n: int, generator: torch.Generator, mode: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` (start, goal) state pairs ``(n, 4)``; pairs solved at the start are redrawn.

        The goal's wrist bends the same way as the start's. ``"far"`` pairs
        also redraw starts whose fingertip is within 0.15 of the target.
        """
        check_positive_int("n", n)
        mode = self.check_pair_mode(self.pair_mode if mode is None else mode)
        min_distance = self.success_threshold if mode == "random" else max(self.success_threshold, _FAR_DISTANCE)
        starts, goals, found = [], [], 0
        while found < n:
            start, goal = self._draw_pairs(2 * (n - found) + 8, generator)
            keep = self.distance(start, goal) >= min_distance
            starts.append(start[keep])
            goals.append(goal[keep])
            found += int(keep.sum())
        return torch.cat(starts)[:n], torch.cat(goals)[:n]

    def _draw_pairs(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.rand(n, 4, generator=generator, device=generator.device)
        start = self.random_joint_states(u[:, :2])
        angle = 2 * math.pi * u[:, 2]
        radius = _TARGET_RADIUS[0] + (_TARGET_RADIUS[1] - _TARGET_RADIUS[0]) * u[:, 3]
        target = torch.stack([radius * angle.sin(), radius * angle.cos()], dim=-1)  # dm_control's convention
        return start, self.goal_state_at(target, elbow=start[:, 1])

    @staticmethod
    def random_joint_states(u: torch.Tensor) -> torch.Tensor:
        """States at rest from uniforms ``u`` ``(n, 2)``: shoulder ``U(-pi, pi)``, wrist ``U(-160, 160)`` deg."""
        q1 = math.pi * (2 * u[:, 0] - 1)
        q2 = _WRIST_LIMIT * (2 * u[:, 1] - 1)
        zeros = torch.zeros_like(q1)
        return torch.stack([q1, q2, zeros, zeros], dim=-1)

    def observation_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """``(finger x, finger y, cos q1, sin q1, cos q2, sin q2, dq1, dq2)`` of states ``(..., 4)``."""
        check_last_dim("state", state, self.state_dim)
        q, dq = state[..., :2], state[..., 2:]
        angles = torch.stack([q[..., 0].cos(), q[..., 0].sin(), q[..., 1].cos(), q[..., 1].sin()], dim=-1)
        return torch.cat([self.fingertip(state), angles, dq], dim=-1)

    def render(self, states: torch.Tensor, size: int = 64) -> torch.Tensor:
        """Images ``(..., size, size, 3)`` uint8: a top view of the arm (links, base, fingertip).

        See :func:`~torchrl_gbp.tasks.reacher.renderer.render_reacher`.
        """
        return render_reacher(states, self.link1, self.link2, size)

    def proprio_from_state(self, states: torch.Tensor) -> torch.Tensor:
        """``(cos q1, sin q1, cos q2, sin q2, dq1, dq2)`` ``(..., 6)`` float32: the observation's proprio part."""
        check_last_dim("states", states, self.state_dim)
        return self.observation_from_state(states)[..., 2:].float()

    def distance(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """Euclidean distance between the fingertips of ``state`` and ``goal_state``, shape ``(...,)``."""
        check_last_dim("goal_state", goal_state, self.state_dim)
        return torch.linalg.vector_norm(self.fingertip(state) - self.fingertip(goal_state), dim=-1)

    def generate_dataset(
        self, num_trajectories: int, trajectory_steps: int | None = None, seed: int = 0
    ) -> TensorDict:
        """Seeded trajectories simulated by dm_control: half noisy PD reaches, half random torques.

        Every trajectory starts at rest in a random joint configuration.
        Even-indexed trajectories track a PD controller in joint space toward
        the inverse kinematics of a random target (a new target halfway),
        ``a = clip(4 (q* - q) - 0.4 dq + 0.3 eps)`` (shoulder error wrapped); odd-indexed ones apply
        AR(1) torques ``a_t = clip(0.8 a_{t-1} + 0.5 eps)``. See
        :meth:`Task.generate_dataset` for the keys; tensors are on CPU.
        """
        n, steps, generator = self.dataset_arguments(num_trajectories, trajectory_steps, seed)
        start = self.random_joint_states(torch.rand(n, 2, generator=generator))
        targets = []
        for _ in range(2):
            _, goal = self._draw_pairs(n, generator)
            targets.append(goal[:, :2])
        noise = torch.randn(steps, n, self.action_dim, generator=generator)
        reaching = (torch.arange(n) % 2 == 0).unsqueeze(-1)

        simulator = self.make_simulator(min(n, _DATASET_CHUNK))
        states, actions = [], []
        for first in range(0, n, _DATASET_CHUNK):
            rows = slice(first, min(first + _DATASET_CHUNK, n))
            size = rows.stop - rows.start
            state = torch.zeros(simulator.num_envs, self.state_dim)
            state[:size] = start[rows]
            simulator.set_state(state)
            action = torch.zeros(size, self.action_dim)
            chunk_states, chunk_actions = [start[rows]], []
            for t in range(steps):
                target = targets[0][rows] if t < steps // 2 else targets[1][rows]
                error = target - state[:size, :2]
                error[:, 0] = torch.atan2(error[:, 0].sin(), error[:, 0].cos())  # the wrist is limited: no wrap
                pd = _PD_KP * error - _PD_KD * state[:size, 2:] + _PD_NOISE * noise[t, rows]
                walk = _WALK_DECAY * action + _WALK_NOISE * noise[t, rows]
                action = torch.where(reaching[rows], pd, walk).clamp(-1.0, 1.0)
                padded = torch.zeros(simulator.num_envs, self.action_dim)
                padded[:size] = action
                simulator.step(padded)
                state = simulator.get_state()
                chunk_states.append(state[:size])
                chunk_actions.append(action)
            states.append(torch.stack(chunk_states, dim=1))
            actions.append(torch.stack(chunk_actions, dim=1))
        return self.trajectories(torch.cat(states), torch.cat(actions))


class ReacherEnv(GoalEnv):
    """Batched TorchRL env for :class:`ReacherTask`: a :class:`GoalEnv` that keeps dm_control's target in sync.

    Whenever goals change (``reset``, ``set_state`` with goals), each
    dm_control physics gets its target geom at the goal's fingertip, so
    dm_control's own reward (:meth:`ReacherSimulator.dm_control_rewards`)
    agrees with :meth:`ReacherTask.success`. Keys, resets and seeding are
    those of :class:`GoalEnv`; observations are unbounded ``(8,)`` vectors and
    actions torques in ``[-1, 1]^2``.

    Example:
        >>> env = ReacherTask().make_env(num_envs=2, seed=0)
        >>> rollout = env.rollout(5)
        >>> rollout.shape, rollout["observation"].shape
        (torch.Size([2, 5]), torch.Size([2, 5, 8]))
    """

    def __init__(
        self,
        task: ReacherTask | None = None,
        num_envs: int = 1,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        pair_mode: str | None = None,
    ) -> None:
        super().__init__(ReacherTask() if task is None else task, num_envs, seed, device, pair_mode)
        self.simulator.set_targets(self.task.fingertip(self._goal))

    def set_state(self, state: torch.Tensor, goal_state: torch.Tensor | None = None) -> None:
        """Like :meth:`GoalEnv.set_state`; new goals also move dm_control's targets."""
        super().set_state(state, goal_state)
        if goal_state is not None:
            self.simulator.set_targets(self.task.fingertip(self._goal))

    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDict:
        out = super()._reset(tensordict, **kwargs)
        self.simulator.set_targets(self.task.fingertip(self._goal))
        return out
