"""Tests of the recipes: quick runs and the fingerprint that tells whether a finished run can be kept."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace

import pytest

from torchrl_gbp.experiments.recipes import Recipe, recipe_for

TASKS = ("wall", "pusht", "pointmaze", "reacher", "dinowm_wall", "dinowm_pusht", "dinowm_pointmaze")


@dataclass(kw_only=True)
class RecipeWithANewField(Recipe):
    """A later version of :class:`Recipe`: one more field, with a default."""

    new_option: int = 3


@pytest.mark.parametrize("obs", ["state", "pixels"])
@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("name", TASKS)
def test_adding_a_field_with_a_default_keeps_every_fingerprint(name: str, quick: bool, obs: str) -> None:
    recipe = recipe_for(name, quick=quick, obs=obs)
    later = RecipeWithANewField(**{f.name: getattr(recipe, f.name) for f in fields(recipe)})
    assert later.fingerprint() == recipe.fingerprint()
    assert json.loads(json.dumps(recipe.fingerprint())) == recipe.fingerprint()  # as run.json reads it back
    assert replace(later, new_option=4).fingerprint() == {**recipe.fingerprint(), "new_option": 4}


def test_the_fingerprint_holds_the_settings_that_make_a_run() -> None:
    recipe = recipe_for("pusht", quick=True)
    assert recipe.fingerprint() != recipe_for("pusht").fingerprint()
    assert replace(recipe, lr=2e-3).fingerprint() == {**recipe.fingerprint(), "lr": 2e-3}
    # what pixels() and quick() have already applied never changes it
    changed = replace(recipe, pixel_overrides={"num_trajectories": 7}, quick_run={"train_steps": 1})
    assert changed.fingerprint() == recipe.fingerprint()
    assert Recipe().fingerprint() == {}
