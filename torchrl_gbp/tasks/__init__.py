"""Goal-reaching tasks: a TorchRL env, start/goal sampling, success and offline data per task."""
from __future__ import annotations

import importlib

from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.env import GoalEnv
from torchrl_gbp.tasks.simulator import Simulator
from torchrl_gbp.tasks.wall import WallEnv, WallTask

# name -> (module, class, pip extra). Tasks with extra dependencies are imported on first use.
TASKS: dict[str, tuple[str, str, str | None]] = {
    "wall": ("torchrl_gbp.tasks.wall", "WallTask", None),
    "pointmaze": ("torchrl_gbp.tasks.pointmaze", "PointMazeTask", "pointmaze"),
    "pusht": ("torchrl_gbp.tasks.pusht", "PushTTask", "pusht"),
    "reacher": ("torchrl_gbp.tasks.reacher", "ReacherTask", "dmc"),
}


def task_class(name: str) -> type[Task]:
    """The :class:`Task` subclass registered under ``name``, importing its module on first use.

    Raises ``ValueError`` for an unknown name and ``ImportError`` naming the
    pip extra to install when the task's simulator is missing.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    module_name, class_name, extra = TASKS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(
            f"task {name!r} needs extra dependencies: pip install 'torchrl_gbp[{extra}]' ({error})"
        ) from error
    return getattr(module, class_name)


def make_task(name: str, **kwargs) -> Task:
    """Build the task registered under ``name`` with constructor ``kwargs``.

    Example:
        >>> make_task("wall", door_half_width=0.2).door_half_width
        0.2
    """
    return task_class(name)(**kwargs)


__all__ = ["TASKS", "GoalEnv", "Simulator", "Task", "WallEnv", "WallTask", "make_task", "task_class"]
