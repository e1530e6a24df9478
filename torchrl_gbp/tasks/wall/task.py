"""Two-room navigation: a point agent must pass a door in a wall to reach its goal.

The arena is ``[-1, 1]^2`` with a vertical wall slab at ``x = 0`` (half
thickness :data:`WALL_HALF_THICKNESS`) pierced by one door. State and
observation are both the position ``(x, y)``. :func:`wall_step` is the only
transition function; the env and the dataset generator both use it.
"""
from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase

from torchrl_gbp.checks import check_last_dim, check_positive_int
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.env import GoalEnv
from torchrl_gbp.tasks.wall.renderer import render_wall
from torchrl_gbp.tasks.wall.simulator import WALL_HALF_THICKNESS, WallSimulator, wall_step

PAIR_MODES = ("opposite", "same", "random")


# Sampled start/goal positions: |x| in [_SAMPLE_X_MIN, _SAMPLE_X_MAX], |y| <= _SAMPLE_Y_MAX.
_SAMPLE_X_MIN, _SAMPLE_X_MAX, _SAMPLE_Y_MAX = 0.1, 0.9, 0.9


# Dataset: AR(1) random-walk coefficients and the door seekers' waypoints and noise.
_WALK_DECAY, _WALK_NOISE = 0.8, 0.6


_SEEK_WAYPOINT_X, _SEEK_NOISE = 0.2, 0.3


class WallTask(Task):
    """Reach a goal position in the two-room wall arena; the door is the only way across.

    Args:
        door_center: y coordinate of the door's center.
        door_half_width: the door spans ``door_center +- door_half_width``.
        speed: displacement per env step at full action.
        episode_steps: env steps per evaluation episode.
        frameskip: default env actions per world-model step.
        pair_mode: default (start, goal) sampling: ``"opposite"`` (different
            rooms), ``"same"`` (same room) or ``"random"``.

    Example:
        >>> task = WallTask()
        >>> data = task.generate_dataset(num_trajectories=8, seed=0)
        >>> data.batch_size, data["action"].shape
        (torch.Size([8, 50]), torch.Size([8, 50, 2]))
        >>> start, goal = task.sample_start_goal(3, torch.Generator().manual_seed(0))
        >>> bool((start[:, 0].sign() != goal[:, 0].sign()).all())
        True
        >>> task.success(goal, goal).tolist()
        [True, True, True]
    """

    name = "wall"
    obs_dim = 2
    state_dim = 2
    action_dim = 2
    success_threshold = 0.1
    observation_bounds = (-1.0, 1.0)
    pair_modes = PAIR_MODES
    proprio_dim = 2

    def __init__(
        self,
        door_center: float = 0.0,
        door_half_width: float = 0.15,
        speed: float = 0.1,
        episode_steps: int = 50,
        frameskip: int = 5,
        pair_mode: str = "opposite",
    ) -> None:
        if not -1.0 < door_center < 1.0:
            raise ValueError(f"door_center must lie in (-1, 1), got {door_center}")
        if door_half_width <= 0:
            raise ValueError(f"door_half_width must be > 0, got {door_half_width}")
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.door_center = float(door_center)
        self.door_half_width = float(door_half_width)
        self.speed = float(speed)
        self.episode_steps = check_positive_int("episode_steps", episode_steps)
        self.frameskip = check_positive_int("frameskip", frameskip)
        self.pair_mode = self.check_pair_mode(pair_mode)

    def step(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Apply :func:`wall_step` with this task's door and speed."""
        return wall_step(
            state,
            action,
            speed=self.speed,
            door_center=self.door_center,
            door_half_width=self.door_half_width,
        )

    def make_simulator(self, num_envs: int, device: torch.device | str = "cpu") -> WallSimulator:
        """Vectorised wall dynamics for ``num_envs`` envs."""
        return WallSimulator(self, num_envs, device)

    def env_type(self) -> type[WallEnv]:
        """:meth:`make_env` builds a :class:`WallEnv`."""
        return WallEnv

    def sample_start_goal(
        self, n: int, generator: torch.Generator, mode: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` (start, goal) position pairs ``(n, 2)`` on ``generator``'s device.

        Positions have ``|x|`` in [0.1, 0.9] and ``y`` in [-0.9, 0.9]. ``mode``
        (default: the task's ``pair_mode``) sets the rooms: ``"opposite"``
        puts start and goal on different sides (start side drawn at random),
        ``"same"`` on one side, ``"random"`` draws each side independently.
        """
        check_positive_int("n", n)
        mode = self.check_pair_mode(self.pair_mode if mode is None else mode)
        # A fixed number of draws per pair whatever the mode, so sequences stay aligned.
        u = torch.rand(n, 6, generator=generator, device=generator.device)
        start_side = torch.where(u[:, 0] < 0.5, -1.0, 1.0)
        if mode == "opposite":
            goal_side = -start_side
        elif mode == "same":
            goal_side = start_side
        else:
            goal_side = torch.where(u[:, 1] < 0.5, -1.0, 1.0)

        def place(side: torch.Tensor, ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
            x = side * (_SAMPLE_X_MIN + (_SAMPLE_X_MAX - _SAMPLE_X_MIN) * ux)
            y = _SAMPLE_Y_MAX * (2.0 * uy - 1.0)
            return torch.stack([x, y], dim=-1)

        return place(start_side, u[:, 2], u[:, 3]), place(goal_side, u[:, 4], u[:, 5])

    def observation_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """The observation is the position itself (a copy)."""
        check_last_dim("state", state, self.state_dim)
        return state.clone()

    def render(self, states: torch.Tensor, size: int = 64) -> torch.Tensor:
        """Images ``(..., size, size, 3)`` uint8 of the arena, the wall with this task's door and the agent dot.

        See :func:`~torchrl_gbp.tasks.wall.renderer.render_wall`.
        """
        return render_wall(states, size, self.door_center, self.door_half_width)

    def proprio_from_state(self, states: torch.Tensor) -> torch.Tensor:
        """The agent position ``(..., 2)`` float32 (DINO-WM's Wall proprio)."""
        check_last_dim("states", states, self.state_dim)
        return states.float().clone()

    def distance(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """Euclidean distance between positions, shape ``(...,)``."""
        check_last_dim("state", state, self.state_dim)
        check_last_dim("goal_state", goal_state, self.state_dim)
        return torch.linalg.vector_norm(state - goal_state, dim=-1)

    def generate_dataset(
        self, num_trajectories: int, trajectory_steps: int | None = None, seed: int = 0
    ) -> TensorDict:
        """Seeded trajectories, half smooth random walks and half noisy door seekers.

        Even-indexed trajectories follow a door-seeking controller (to the
        door, through it, then to a random point in the other room) with
        Gaussian action noise, so most of them cross; odd-indexed ones are
        AR(1) random walks ``a_t = clip(0.8 a_{t-1} + 0.6 eps)``. Starts are
        drawn like evaluation starts. See :meth:`Task.generate_dataset` for
        the keys; all tensors are on CPU.
        """
        n, steps, generator = self.dataset_arguments(num_trajectories, trajectory_steps, seed)
        start, target = self.sample_start_goal(n, generator, mode="opposite")
        noise = torch.randn(steps, n, self.action_dim, generator=generator)
        seeking = (torch.arange(n) % 2 == 0).unsqueeze(-1)
        start_side = start[:, 0].sign()

        position, action = start, torch.zeros(n, self.action_dim)
        states, actions = [position], []
        for t in range(steps):
            walk = _WALK_DECAY * action + _WALK_NOISE * noise[t]
            seek = self._door_seeking_action(position, start_side, target) + _SEEK_NOISE * noise[t]
            action = torch.where(seeking, seek, walk).clamp(-1.0, 1.0)
            position = self.step(position, action)
            states.append(position)
            actions.append(action)

        return self.trajectories(torch.stack(states, dim=1), torch.stack(actions, dim=1))

    def _door_seeking_action(
        self, position: torch.Tensor, start_side: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """Unit-bounded action toward the current waypoint: door front, door back, then target."""
        x, y = position.unbind(-1)
        crossed = x * start_side < -WALL_HALF_THICKNESS
        at_door = ((y - self.door_center).abs() < 0.5 * self.door_half_width) | (
            x.abs() <= WALL_HALF_THICKNESS
        )
        door_y = torch.full_like(y, self.door_center)
        front = torch.stack([start_side * _SEEK_WAYPOINT_X, door_y], dim=-1)
        back = torch.stack([-start_side * _SEEK_WAYPOINT_X, door_y], dim=-1)
        waypoint = torch.where(
            crossed.unsqueeze(-1), target, torch.where(at_door.unsqueeze(-1), back, front)
        )
        delta = (waypoint - position) / self.speed
        return delta / torch.linalg.vector_norm(delta, dim=-1, keepdim=True).clamp_min(1.0)


def crossing_fraction(dataset: TensorDictBase) -> float:
    """Fraction of trajectories that visit both rooms (beyond the slab on each side).

    Reads ``"state"`` and ``("next", "state")`` of shape ``(N, T, 2)``.

    Example:
        >>> crossing_fraction(WallTask().generate_dataset(200, seed=0)) >= 0.3
        True
    """
    x = torch.cat([dataset.get("state")[:, :1, 0], dataset.get(("next", "state"))[..., 0]], dim=1)
    left = (x < -WALL_HALF_THICKNESS).any(dim=1)
    right = (x > WALL_HALF_THICKNESS).any(dim=1)
    return (left & right).float().mean().item()


class WallEnv(GoalEnv):
    """Batched TorchRL env for :class:`WallTask` (a :class:`GoalEnv` with a default task).

    Observations and goals are positions in ``[-1, 1]^2``, actions lie in
    ``[-1, 1]^2``; see :class:`GoalEnv` for keys, resets and seeding.

    Example:
        >>> env = WallEnv(num_envs=4, seed=0)
        >>> rollout = env.rollout(50)
        >>> rollout.shape, bool(rollout["next", "truncated"][:, -1].all())
        (torch.Size([4, 50]), True)
        >>> start, goal = torch.tensor([-0.5, 0.0]), torch.tensor([0.5, 0.25])
        >>> pairs = TensorDict(
        ...     start_state=start.expand(4, 2), goal_state=goal.expand(4, 2), batch_size=[4]
        ... )
        >>> env.reset(pairs, set_state=True)["goal"][0].tolist()
        [0.5, 0.25]
    """

    def __init__(
        self,
        task: WallTask | None = None,
        num_envs: int = 1,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        pair_mode: str | None = None,
    ) -> None:
        super().__init__(WallTask() if task is None else task, num_envs, seed, device, pair_mode)
