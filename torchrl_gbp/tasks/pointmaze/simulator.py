"""The PointMaze physics: maze layouts, their MuJoCo model and the batched simulator."""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import mujoco
import numpy as np
import torch

from torchrl_gbp.checks import check_positive_int
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.simulator import Simulator

#: gymnasium-robotics' U-maze (``1`` = wall block).
U_MAZE = (
    (1, 1, 1, 1, 1),
    (1, 0, 0, 0, 1),
    (1, 1, 1, 0, 1),
    (1, 0, 0, 0, 1),
    (1, 1, 1, 1, 1),
)


#: gymnasium-robotics' medium maze.
MEDIUM_MAZE = (
    (1, 1, 1, 1, 1, 1, 1, 1),
    (1, 0, 0, 1, 1, 0, 0, 1),
    (1, 0, 0, 1, 0, 0, 0, 1),
    (1, 1, 0, 0, 0, 1, 1, 1),
    (1, 0, 0, 1, 0, 0, 0, 1),
    (1, 0, 1, 0, 0, 1, 0, 1),
    (1, 0, 0, 0, 1, 0, 0, 1),
    (1, 1, 1, 1, 1, 1, 1, 1),
)


MAZES = {"u": U_MAZE, "medium": MEDIUM_MAZE}


CELL_SIZE = 1.0


BALL_RADIUS = 0.1


BALL_MASS = 1.0


JOINT_DAMPING = 5.0


MOTOR_GEAR = 10.0


TIMESTEP = 0.01


SUBSTEPS = 10  # MuJoCo steps per env step: an env step is 0.1 s


_MODEL_CACHE: dict[tuple[tuple[int, ...], ...], mujoco.MjModel] = {}


def resolve_maze(maze: str | Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """A maze name (``"u"``, ``"medium"``) or a 0/1 map -> the map as a tuple of row tuples.

    A map must be rectangular, contain only 0 and 1, have a wall border and
    at least two free cells, all connected.

    Example:
        >>> len(resolve_maze("medium")), resolve_maze([[1, 1, 1, 1], [1, 0, 0, 1], [1, 1, 1, 1]])[1]
        (8, (1, 0, 0, 1))
    """
    if isinstance(maze, str):
        if maze not in MAZES:
            raise ValueError(f"unknown maze {maze!r}; expected one of {sorted(MAZES)} or a 0/1 map")
        return MAZES[maze]
    rows = tuple(tuple(int(v) for v in row) for row in maze)
    if len(rows) < 3 or len({len(r) for r in rows}) != 1 or len(rows[0]) < 3:
        raise ValueError(f"maze must be a rectangular map of at least 3 x 3 cells, got row lengths "
                         f"{[len(r) for r in rows]}")
    if any(v not in (0, 1) for row in rows for v in row):
        raise ValueError("maze map entries must be 0 (free) or 1 (wall)")
    border = rows[0] + rows[-1] + tuple(r[0] for r in rows) + tuple(r[-1] for r in rows)
    if not all(border):
        raise ValueError("maze map must have a wall (1) border")
    free = [(i, j) for i, row in enumerate(rows) for j, v in enumerate(row) if v == 0]
    if len(free) < 2:
        raise ValueError(f"maze needs at least two free cells, got {len(free)}")
    if len(_bfs(rows, free[0])) != len(free):
        raise ValueError("maze free cells must all be connected")
    return rows


def _bfs(rows: tuple[tuple[int, ...], ...], source: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Path lengths (in cells) from ``source`` to every reachable free cell."""
    dist, queue = {source: 0}, deque([source])
    while queue:
        i, j = queue.popleft()
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            cell = (i + di, j + dj)
            if rows[cell[0]][cell[1]] == 0 and cell not in dist:
                dist[cell] = dist[(i, j)] + 1
                queue.append(cell)
    return dist


def maze_xml(rows: tuple[tuple[int, ...], ...]) -> str:
    """The MJCF of a maze map: one box per wall cell and the ball on slide joints x, y.

    Zero gravity and no floor (the ball has no z joint); frictionless contacts
    (``condim=1``) so the ball slides along walls; solver warm start disabled
    so each step depends only on ``qpos``, ``qvel`` and ``ctrl``.
    """
    n_rows, n_cols = len(rows), len(rows[0])
    half = CELL_SIZE / 2
    walls = []
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            if v:
                x, y = (j - (n_cols - 1) / 2) * CELL_SIZE, ((n_rows - 1) / 2 - i) * CELL_SIZE
                walls.append(f'<geom name="wall_{i}_{j}" type="box" pos="{x:g} {y:g} 0" '
                             f'size="{half:g} {half:g} {half:g}" contype="1" conaffinity="1" condim="1"/>')
    wall_lines = "\n".join("    " + wall for wall in walls)
    return f"""<mujoco model="pointmaze">
  <option timestep="{TIMESTEP:g}" gravity="0 0 0">
    <flag warmstart="disable"/>
  </option>
  <worldbody>
{wall_lines}
    <body name="ball">
      <joint name="x" type="slide" axis="1 0 0" damping="{JOINT_DAMPING:g}"/>
      <joint name="y" type="slide" axis="0 1 0" damping="{JOINT_DAMPING:g}"/>
      <geom name="ball" type="sphere" size="{BALL_RADIUS:g}" mass="{BALL_MASS:g}" contype="1" conaffinity="1"
            condim="1"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="fx" joint="x" gear="{MOTOR_GEAR:g}" ctrlrange="-1 1" ctrllimited="true"/>
    <motor name="fy" joint="y" gear="{MOTOR_GEAR:g}" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


def maze_model(rows: tuple[tuple[int, ...], ...]) -> mujoco.MjModel:
    """The compiled ``MjModel`` of a maze map, built once and cached."""
    if rows not in _MODEL_CACHE:
        _MODEL_CACHE[rows] = mujoco.MjModel.from_xml_string(maze_xml(rows))
    return _MODEL_CACHE[rows]


class PointMazeSimulator(Simulator):
    """``num_envs`` MuJoCo point masses in one maze, stepped in a Python loop.

    Each env step sets the clamped action as ``ctrl``, clips the velocity to
    ``+-velocity_limit`` when that is set, runs ``substeps`` MuJoCo steps
    (:data:`SUBSTEPS` here) and rounds ``qpos``/``qvel`` to float32, so the
    float32 state returned by :meth:`get_state` is the whole simulator state.
    Subclasses change the model (:meth:`compiled_model`), ``substeps`` and
    ``velocity_limit``.
    """

    substeps: int = SUBSTEPS
    velocity_limit: float | None = None

    def __init__(self, task: Task, num_envs: int, device: torch.device | str = "cpu") -> None:
        num_envs = check_positive_int("num_envs", num_envs)
        self.task = task
        self.device = torch.device(device)
        self.model = self.compiled_model(task)
        self.data = [mujoco.MjData(self.model) for _ in range(num_envs)]
        self._state = np.zeros((num_envs, 4), dtype=np.float32)
        start, _ = task.sample_start_goal(num_envs, torch.Generator().manual_seed(0), mode="random")
        self.set_state(start)

    def compiled_model(self, task: Task) -> mujoco.MjModel:
        """The ``MjModel`` every env steps: :func:`maze_model` of ``task.maze``."""
        return maze_model(task.maze)

    def get_state(self) -> torch.Tensor:
        """States ``(num_envs, 4)``: ``(x, y, vx, vy)`` as float32 (a copy)."""
        return torch.from_numpy(self._state.copy()).to(self.device)

    def set_state(self, state: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Reset the ``MjData`` of the envs flagged by ``mask`` (all when ``None``) and write ``qpos``/``qvel``."""
        num_envs = len(self.data)
        if not isinstance(state, torch.Tensor) or tuple(state.shape) != (num_envs, 4):
            got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise ValueError(f"state must have shape (num_envs, 4) = ({num_envs}, 4), got {got}")
        values = state.detach().to("cpu", torch.float32).numpy()
        rows = range(num_envs) if mask is None else mask.reshape(num_envs).nonzero().flatten().tolist()
        for i in rows:
            data = self.data[i]
            mujoco.mj_resetData(self.model, data)
            data.qpos[:] = values[i, :2]
            data.qvel[:] = values[i, 2:]
            self._state[i] = values[i]

    def step(self, action: torch.Tensor) -> None:
        """Apply ``action`` ``(num_envs, 2)`` (clamped to ``[-1, 1]``) for one env step in every env."""
        num_envs = len(self.data)
        if tuple(action.shape) != (num_envs, 2):
            raise ValueError(f"action must have shape (num_envs, 2) = ({num_envs}, 2), got {tuple(action.shape)}")
        ctrl = action.detach().to("cpu", torch.float32).clamp(-1.0, 1.0).numpy()
        for i, data in enumerate(self.data):
            data.ctrl[:] = ctrl[i]
            if self.velocity_limit is not None:
                data.qvel[:] = np.clip(data.qvel, -self.velocity_limit, self.velocity_limit)
            mujoco.mj_step(self.model, data, nstep=self.substeps)
            self._state[i, :2] = data.qpos
            self._state[i, 2:] = data.qvel
            data.qpos[:] = self._state[i, :2]
            data.qvel[:] = self._state[i, 2:]
