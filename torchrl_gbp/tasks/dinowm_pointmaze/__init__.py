"""DINO-WM's PointMaze, replicated: d4rl's U-maze point mass on MuJoCo 3, its pairs, success test and camera."""
from torchrl_gbp.tasks.dinowm_pointmaze.renderer import render_dinowm_pointmaze
from torchrl_gbp.tasks.dinowm_pointmaze.simulator import (
    DinoWMPointMazeSimulator,
    dinowm_maze_model,
    dinowm_maze_xml,
)
from torchrl_gbp.tasks.dinowm_pointmaze.task import DinoWMPointMazeTask, in_pair_region

__all__ = ["DinoWMPointMazeSimulator", "DinoWMPointMazeTask", "dinowm_maze_model", "dinowm_maze_xml",
           "in_pair_region", "render_dinowm_pointmaze"]
