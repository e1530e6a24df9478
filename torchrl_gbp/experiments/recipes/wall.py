"""The Wall recipe: the defaults of :class:`~torchrl_gbp.experiments.recipes.Recipe`; pixels with one history frame, as
DINO-WM's Wall."""
from dataclasses import replace

from torchrl_gbp.experiments.recipes import PIXEL_MODEL, Recipe

RECIPE = Recipe()
PROFILES = {"pixels": {"model": replace(PIXEL_MODEL, num_hist=1)}}
