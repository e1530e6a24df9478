"""The recipe of DINO-WM's Wall replica: our Wall's."""
from torchrl_gbp.experiments.recipes.wall import PROFILES, RECIPE

__all__ = ["PROFILES", "RECIPE"]
