"""The reacher task (dm_control): bring a two-link arm's fingertip onto a target."""
from torchrl_gbp.tasks.reacher.simulator import DIFFICULTIES, ReacherSimulator, arm_geometry
from torchrl_gbp.tasks.reacher.task import PAIR_MODES, PROPRIO_DIM, ReacherEnv, ReacherTask

__all__ = ["DIFFICULTIES", "PAIR_MODES", "PROPRIO_DIM", "ReacherEnv", "ReacherSimulator", "ReacherTask", "arm_geometry"]
