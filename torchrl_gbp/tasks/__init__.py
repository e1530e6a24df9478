"""Goal-reaching tasks: a TorchRL env, start/goal sampling, success and offline data per task.

Each task is a folder ``torchrl_gbp/tasks/<name>/`` (``task.py``, ``simulator.py``,
renderer, scripted data) plus one line in :data:`TASKS`; its experiment recipe lives in
``torchrl_gbp/experiments/recipes/<name>.py``.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.env import GoalEnv
from torchrl_gbp.tasks.pixels import PixelTask
from torchrl_gbp.tasks.simulator import Simulator
from torchrl_gbp.tasks.wall import WallEnv, WallTask

# name -> (package, task class, pip extra). Tasks with extra dependencies are imported on first use.
TASKS: dict[str, tuple[str, str, str | None]] = {
    "wall": ("torchrl_gbp.tasks.wall", "WallTask", None),
    "pointmaze": ("torchrl_gbp.tasks.pointmaze", "PointMazeTask", "pointmaze"),
    "pusht": ("torchrl_gbp.tasks.pusht", "PushTTask", "pusht"),
    "reacher": ("torchrl_gbp.tasks.reacher", "ReacherTask", "dmc"),
    # Replicas of the environments DINO-WM and the paper evaluate on (their constants and rules; ours above keep theirs).
    "dinowm_wall": ("torchrl_gbp.tasks.dinowm_wall", "DinoWMWallTask", None),
    "dinowm_pusht": ("torchrl_gbp.tasks.dinowm_pusht", "DinoWMPushTTask", "pusht"),
    "dinowm_pointmaze": ("torchrl_gbp.tasks.dinowm_pointmaze", "DinoWMPointMazeTask", "pointmaze"),
}
# Task names "gym:<env id>" build a GymnasiumTask of that Gymnasium env (torchrl_gbp.tasks.gymnasium).
GYM_PREFIX = "gym:"


def task_module(name: str, part: str | None = None) -> ModuleType:
    """The package of the task registered under ``name`` (or its module ``part``, e.g. ``"recipe"``).

    Raises ``ValueError`` for an unknown name and ``ImportError`` naming the
    pip extra to install when the task's simulator is missing.

    Example:
        >>> task_module("wall").__name__
        'torchrl_gbp.tasks.wall'
        >>> task_module("wall", "simulator").WallSimulator.__name__
        'WallSimulator'
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    package, _, extra = TASKS[name]
    try:
        return importlib.import_module(package if part is None else f"{package}.{part}")
    except ImportError as error:
        raise ImportError(
            f"task {name!r} needs extra dependencies: pip install 'torchrl_gbp[{extra}]' ({error})"
        ) from error


def task_class(name: str) -> type[Task]:
    """The :class:`Task` subclass registered under ``name``, importing its package on first use.

    Example:
        >>> cls = task_class("wall")
        >>> cls.__name__, cls().name
        ('WallTask', 'wall')
    """
    return getattr(task_module(name), TASKS[name][1])


# What the agent and the world model see: the task's state observation, or rendered images plus proprio.
OBSERVATIONS = ("state", "pixels")


def check_observation(obs: str) -> str:
    """Return ``obs`` if it is one of :data:`OBSERVATIONS`, else raise a ``ValueError`` naming it."""
    if obs not in OBSERVATIONS:
        raise ValueError(f"obs must be one of {OBSERVATIONS}, got {obs!r}")
    return obs


def make_task(name: str, obs: str = "state", image_size: int = 64, **kwargs) -> Task:
    """Build the task registered under ``name`` with constructor ``kwargs``; ``obs="pixels"`` wraps it in a
    :class:`PixelTask` at ``image_size``.

    Example:
        >>> make_task("wall", door_half_width=0.2).door_half_width
        0.2
        >>> make_task("wall", obs="pixels").image_size
        64
    """
    if name.startswith(GYM_PREFIX):
        from torchrl_gbp.tasks.gymnasium import GymnasiumTask
        return GymnasiumTask(name[len(GYM_PREFIX):], **kwargs)
    task = task_class(name)(**kwargs)
    if check_observation(obs) == "pixels":
        return PixelTask(task, image_size)
    return task


__all__ = ["OBSERVATIONS", "TASKS", "GoalEnv", "PixelTask", "Simulator", "Task", "WallEnv", "WallTask", "make_task",
           "task_class", "task_module"]
