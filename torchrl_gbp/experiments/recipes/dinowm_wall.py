"""The recipe of DINO-WM's Wall replica: our Wall's defaults (a 4-d state model); pixels with one history frame, as
DINO-WM's Wall model reads, at 64 pixels (the renderer draws DINO-WM's 224 with ``image_size=224``)."""
from torchrl_gbp.experiments.recipes import PIXEL_DEFAULTS, Recipe

RECIPE = Recipe(pixel_overrides={"model": {**PIXEL_DEFAULTS["model"], "num_hist": 1}})
