"""Goal-reaching tasks: a TorchRL env, start/goal sampling, success and offline data per task."""
from __future__ import annotations

from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.wall import WallEnv, WallTask

TASKS: dict[str, type[Task]] = {WallTask.name: WallTask}


def make_task(name: str, **kwargs) -> Task:
    """Build the task registered under ``name`` with constructor ``kwargs``.

    Example:
        >>> make_task("wall", door_half_width=0.2).door_half_width
        0.2
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name](**kwargs)


__all__ = ["TASKS", "Task", "WallEnv", "WallTask", "make_task"]
