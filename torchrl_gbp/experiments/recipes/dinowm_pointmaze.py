"""The recipe of DINO-WM's PointMaze replica: our PointMaze's, unchanged. Its state is the same ``(x, y, vx, vy)``
(a 4-d state model whose last two numbers, the velocity, form the proprio part of the cost), and its pixel models
read one history frame at 64 pixels through the blur encoder, as our PointMaze's do and for the same reasons
(``experiments/recipes/pointmaze.py``); DINO-WM reads 3 frames of 224 (the renderer draws 224 with
``image_size=224``)."""
from torchrl_gbp.experiments.recipes.pointmaze import PROFILES, RECIPE

__all__ = ["PROFILES", "RECIPE"]
