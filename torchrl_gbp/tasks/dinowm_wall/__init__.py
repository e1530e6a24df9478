"""DINO-WM's Wall, replicated (pure torch): a Gaussian dot, a wall and its door on a 65-pixel canvas."""
from torchrl_gbp.tasks.dinowm_wall.renderer import DOT_STD, render_dinowm_wall
from torchrl_gbp.tasks.dinowm_wall.simulator import DinoWMWallSimulator, dinowm_wall_step
from torchrl_gbp.tasks.dinowm_wall.task import DinoWMWallTask

__all__ = ["DOT_STD", "DinoWMWallSimulator", "DinoWMWallTask", "dinowm_wall_step", "render_dinowm_wall"]
