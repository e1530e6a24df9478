"""The Wall recipe: the defaults of :class:`~torchrl_gbp.experiments.recipes.Recipe`; pixels with one history frame, as
DINO-WM's Wall."""
from torchrl_gbp.experiments.recipes import PIXEL_DEFAULTS, Recipe

RECIPE = Recipe(pixel_overrides={"model": {**PIXEL_DEFAULTS["model"], "num_hist": 1}})
