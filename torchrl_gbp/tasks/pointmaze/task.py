"""PointMaze: a force-driven ball in a MuJoCo maze must reach a goal cell.

The maze is a grid of unit cells (``1`` = wall block, ``0`` = free), centred
at the origin as in gymnasium-robotics: cell ``(row, col)`` of an ``R x C``
map has centre ``x = col - (C - 1) / 2``, ``y = (R - 1) / 2 - row``. The ball
(radius :data:`BALL_RADIUS`) slides on two joints ``x`` and ``y`` with
viscous damping; the action is a 2D force in ``[-1, 1]^2`` (motor gear
:data:`MOTOR_GEAR`, so full force gives a terminal speed of
``MOTOR_GEAR / JOINT_DAMPING`` = 2 cells per second and a cell takes about 5
env steps). The MJCF is written in code (no gymnasium-robotics), compiled once
per maze and cached; each env owns one ``MjData``.

State and observation are both ``(x, y, vx, vy)`` (float32). Every env step
rounds ``qpos``/``qvel`` to float32 and MuJoCo's solver warm start is
disabled, so a step is a pure function of the float32 state and the action:
``set_state`` followed by ``step`` reproduces the original simulator exactly.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDict

from torchrl_gbp.checks import check_last_dim, check_positive_int
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.env import GoalEnv
from torchrl_gbp.tasks.pointmaze.renderer import render_pointmaze
from torchrl_gbp.tasks.pointmaze.simulator import CELL_SIZE, PointMazeSimulator, _bfs, resolve_maze

PAIR_MODES = ("random", "far")


#: Start and goal positions are cell centres plus uniform noise of this half-width per axis.
POSITION_JITTER = 0.25 * CELL_SIZE


#: gymnasium-robotics' success radius.
SUCCESS_THRESHOLD = 0.45


# Dataset controller: PD gains toward the next BFS waypoint (action units per metre and per m/s),
# its Gaussian action noise, the radius at which a target counts as reached, the per-step switching
# probabilities between waypoint following and random actions, and the AR(1) random-action walk.
_KP, _KD, _SEEK_NOISE, _REACHED = 2.0, 0.5, 0.3, 0.3


_P_TO_RANDOM, _P_TO_SEEK = 0.04, 0.08


_WALK_DECAY, _WALK_NOISE = 0.8, 0.6


class PointMazeTask(Task):
    """Drive a ball through a maze to a goal cell; success within 0.45 of the goal position.

    The success radius, 0.45, is gymnasium-robotics' PointMaze threshold;
    distance is the Euclidean distance between ball positions (velocities are
    ignored). Starts and goals are free-cell centres plus uniform noise of
    +-0.25 per axis, at rest, so a start is never within the threshold of its
    goal and doing nothing never succeeds.

    Pair modes: ``"random"`` (default) draws two distinct free cells; in the
    U-maze about one pair in six lies on the two arms of the U, where the
    inner wall separates start and goal and a planner minimising the
    Euclidean goal cost over a short horizon stalls at the wall. ``"far"``
    always draws the cells furthest apart along the maze (in the U-maze its
    two ends, either way round), so the ball must go around the wall: a hard
    mode that greedy-cost MPC does not solve.

    Args:
        maze: ``"u"`` (gymnasium-robotics' U-maze, default), ``"medium"`` or a 0/1 map.
        episode_steps: env steps (0.1 s each) per evaluation episode.
        frameskip: default env actions per world-model step.
        pair_mode: default (start, goal) sampling, ``"random"`` or ``"far"``.

    Example:
        >>> task = PointMazeTask()
        >>> start, goal = task.sample_start_goal(4, torch.Generator().manual_seed(0), mode="far")
        >>> sorted({task.free_cells[k] for k in task.cell_of(torch.cat([start, goal])[:, :2]).tolist()})
        [(1, 1), (3, 1)]
        >>> task.success(goal, goal).tolist(), bool(task.success(start, goal).any())
        ([True, True, True, True], False)
        >>> data = task.generate_dataset(num_trajectories=4, trajectory_steps=20, seed=0)
        >>> data.batch_size, data["next", "state"].shape
        (torch.Size([4, 20]), torch.Size([4, 20, 4]))
    """

    name = "pointmaze"
    obs_dim = 4
    state_dim = 4
    action_dim = 2
    success_threshold = SUCCESS_THRESHOLD
    action_bounds = (-1.0, 1.0)
    observation_bounds = None
    pair_modes = PAIR_MODES
    proprio_dim = 4

    def __init__(self, maze: str | Sequence[Sequence[int]] = "u", episode_steps: int = 60, frameskip: int = 5,
                 pair_mode: str = "random") -> None:
        self.maze = resolve_maze(maze)
        self.episode_steps = check_positive_int("episode_steps", episode_steps)
        self.frameskip = check_positive_int("frameskip", frameskip)
        self.pair_mode = self.check_pair_mode(pair_mode)
        n_rows, n_cols = len(self.maze), len(self.maze[0])
        self.free_cells = [(i, j) for i, row in enumerate(self.maze) for j, v in enumerate(row) if v == 0]
        index = {cell: k for k, cell in enumerate(self.free_cells)}
        n = len(self.free_cells)
        # cell_index[row * n_cols + col]: free-cell index or -1 for walls.
        self._cell_index = torch.full((n_rows * n_cols,), -1, dtype=torch.int64)
        for (i, j), k in index.items():
            self._cell_index[i * n_cols + j] = k
        self.cell_centers = torch.tensor(
            [[(j - (n_cols - 1) / 2) * CELL_SIZE, ((n_rows - 1) / 2 - i) * CELL_SIZE] for i, j in self.free_cells]
        )
        # path_length[a, b]: moves between free cells a and b; next_cell[a, b]: the neighbour of a on a
        # shortest path to b (a itself when a == b). Both index free_cells.
        self.path_length = torch.zeros(n, n, dtype=torch.int64)
        for b, cell in enumerate(self.free_cells):
            dist = _bfs(self.maze, cell)
            self.path_length[:, b] = torch.tensor([dist[other] for other in self.free_cells])
        self.next_cell = torch.zeros(n, n, dtype=torch.int64)
        for a, (i, j) in enumerate(self.free_cells):
            around = ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1))
            neighbours = torch.tensor([index[c] for c in around if c in index])
            nearest = neighbours[self.path_length[neighbours].argmin(0)]  # first of equals: deterministic
            self.next_cell[a] = torch.where(torch.arange(n) == a, a, nearest)
        # Ordered (start, goal) free-cell pairs at the largest path length, (P, 2).
        self.far_pairs = (self.path_length == self.path_length.max()).nonzero()

    # ------------------------------------------------------------------ geometry
    def cell_of(self, position: torch.Tensor) -> torch.Tensor:
        """Free-cell index ``(...,)`` of positions ``(..., 2)`` (``-1`` inside a wall cell).

        Indices refer to :attr:`free_cells` (row-major order of the free cells).
        """
        check_last_dim("position", position, 2)
        n_rows, n_cols = len(self.maze), len(self.maze[0])
        col = torch.round(position[..., 0] / CELL_SIZE + (n_cols - 1) / 2).long().clamp(0, n_cols - 1)
        row = torch.round((n_rows - 1) / 2 - position[..., 1] / CELL_SIZE).long().clamp(0, n_rows - 1)
        return self._cell_index.to(position.device)[row * n_cols + col]

    # ---------------------------------------------------------------- contract
    def make_simulator(self, num_envs: int, device: torch.device | str = "cpu") -> PointMazeSimulator:
        """``num_envs`` MuJoCo copies of this maze (one cached ``MjModel``, one ``MjData`` each)."""
        return PointMazeSimulator(self, num_envs, device)

    def env_type(self) -> type[GoalEnv]:
        """:meth:`make_env` builds the shared :class:`~torchrl_gbp.tasks.env.GoalEnv`."""
        return GoalEnv

    def sample_start_goal(
        self, n: int, generator: torch.Generator, mode: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` (start, goal) states ``(n, 4)`` at rest, on ``generator``'s device.

        ``"far"``: an ordered pair of cells at the maze's largest path length
        (in the U-maze, its two ends, either way round); ``"random"``: two
        distinct free cells, uniformly. Positions are the cell centres plus
        uniform noise in ``[-0.25, 0.25]`` per axis, so distinct cells are
        always more than the success threshold apart.
        """
        n = check_positive_int("n", n)
        mode = self.check_pair_mode(self.pair_mode if mode is None else mode)
        device = generator.device
        # A fixed number of draws per pair whatever the mode, so sequences stay aligned.
        u = torch.rand(n, 6, generator=generator, device=device)
        if mode == "far":
            count = len(self.far_pairs)
            pairs = self.far_pairs.to(device)[(u[:, 0] * count).long().clamp_max(count - 1)]
            start_cell, goal_cell = pairs[:, 0], pairs[:, 1]
        else:
            count = len(self.free_cells)
            start_cell = (u[:, 0] * count).long().clamp_max(count - 1)
            offset = 1 + (u[:, 1] * (count - 1)).long().clamp_max(count - 2)
            goal_cell = (start_cell + offset) % count
        centers = self.cell_centers.to(device)
        jitter = POSITION_JITTER * (2 * u[:, 2:] - 1)
        rest = torch.zeros(n, 2, device=device)
        start = torch.cat([centers[start_cell] + jitter[:, :2], rest], dim=-1)
        goal = torch.cat([centers[goal_cell] + jitter[:, 2:], rest], dim=-1)
        return start, goal

    def observation_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """The observation is the state ``(x, y, vx, vy)`` itself (a copy)."""
        check_last_dim("state", state, self.state_dim)
        return state.clone()

    def render(self, states: torch.Tensor, size: int = 64) -> torch.Tensor:
        """Images ``(..., size, size, 3)`` uint8: a top view of this maze's walls and the ball.

        See :func:`~torchrl_gbp.tasks.pointmaze.renderer.render_pointmaze`.
        """
        return render_pointmaze(states, self.maze, size)

    def proprio_from_state(self, states: torch.Tensor) -> torch.Tensor:
        """Ball position and velocity ``(..., 4)`` float32 (DINO-WM's PointMaze proprio: qpos, qvel)."""
        check_last_dim("states", states, self.state_dim)
        return states.float().clone()

    def distance(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """Euclidean distance between ball positions (first two entries), shape ``(...,)``."""
        check_last_dim("state", state, self.state_dim)
        check_last_dim("goal_state", goal_state, self.state_dim)
        return torch.linalg.vector_norm(state[..., :2] - goal_state[..., :2], dim=-1)

    def generate_dataset(
        self, num_trajectories: int, trajectory_steps: int | None = None, seed: int = 0
    ) -> TensorDict:
        """Seeded trajectories of a noisy maze-following controller mixed with random-action segments.

        Each trajectory starts at rest at a random free cell and switches, as a
        Markov chain (about two thirds of the steps seeking), between

        * seeking: a PD controller toward the next cell centre on a BFS
          shortest path to a random target cell (then to the target position
          itself), with Gaussian action noise; a reached target is replaced by
          a new random one, so trajectories turn corners and cross the maze;
        * random actions: an AR(1) walk ``a_t = clip(0.8 a_{t-1} + 0.6 eps)``
          that bumps into walls.

        Built with this task's simulator. See :meth:`Task.generate_dataset`
        for the keys; all tensors are on CPU.
        """
        n, steps, generator = self.dataset_arguments(num_trajectories, trajectory_steps, seed)
        start, target = self.sample_start_goal(n, generator, mode="random")
        target = target[:, :2]
        noise = torch.randn(steps, n, self.action_dim, generator=generator)
        switch = torch.rand(steps, n, generator=generator)
        retarget = self.sample_start_goal(n * steps, generator, mode="random")[1][:, :2].reshape(steps, n, 2)
        seeking = torch.rand(n, generator=generator) < 2 / 3

        simulator = self.make_simulator(n)
        simulator.set_state(start)
        state, walk = start, torch.zeros(n, self.action_dim)
        states, actions = [state], []
        for t in range(steps):
            seeking = torch.where(seeking, switch[t] >= _P_TO_RANDOM, switch[t] < _P_TO_SEEK)
            reached = torch.linalg.vector_norm(state[:, :2] - target, dim=-1) < _REACHED
            target = torch.where(reached.unsqueeze(-1), retarget[t], target)
            seek = self._seek_action(state, target) + _SEEK_NOISE * noise[t]
            walk = (_WALK_DECAY * walk + _WALK_NOISE * noise[t]).clamp(-1.0, 1.0)
            action = torch.where(seeking.unsqueeze(-1), seek, walk).clamp(-1.0, 1.0)
            simulator.step(action)
            state = simulator.get_state()
            states.append(state)
            actions.append(action)

        return self.trajectories(torch.stack(states, dim=1), torch.stack(actions, dim=1))

    def _seek_action(self, state: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """PD action toward the next cell centre on the shortest path to ``target`` (the target in its cell)."""
        position, velocity = state[:, :2], state[:, 2:]
        here, there = self.cell_of(position), self.cell_of(target)
        valid = (here >= 0) & (there >= 0) & (here != there)
        hop = self.next_cell[here.clamp_min(0), there.clamp_min(0)]
        waypoint = torch.where(valid.unsqueeze(-1), self.cell_centers[hop], target)
        return (_KP * (waypoint - position) - _KD * velocity).clamp(-1.0, 1.0)
