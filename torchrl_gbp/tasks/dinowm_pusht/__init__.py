"""DINO-WM's PushT, replicated: relative PD targets on gym-pusht's pymunk physics, DINO-WM's frames and success."""
from torchrl_gbp.tasks.dinowm_pusht.renderer import GOAL_POSE, render_dinowm_pusht
from torchrl_gbp.tasks.dinowm_pusht.simulator import ACTION_SCALE, DinoWMPushTSimulator
from torchrl_gbp.tasks.dinowm_pusht.task import DinoWMPushTTask

__all__ = ["ACTION_SCALE", "GOAL_POSE", "DinoWMPushTSimulator", "DinoWMPushTTask", "render_dinowm_pusht"]
