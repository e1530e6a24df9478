"""The Wall recipe: the defaults of :class:`~torchrl_gbp.recipes.Recipe`."""
from torchrl_gbp.recipes import Recipe

RECIPE = Recipe()
