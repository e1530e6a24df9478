"""The Wall task (pure torch): two rooms, one door."""
from torchrl_gbp.tasks.wall.simulator import WALL_HALF_THICKNESS, WallSimulator, wall_step
from torchrl_gbp.tasks.wall.task import PAIR_MODES, WallEnv, WallTask, crossing_fraction

__all__ = ["PAIR_MODES", "WALL_HALF_THICKNESS", "WallEnv", "WallSimulator", "WallTask", "crossing_fraction", "wall_step"]
