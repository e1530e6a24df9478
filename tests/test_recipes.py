"""Tests of the recipes: typed options, profiles, and the fingerprint that tells whether a finished run can be kept."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace

import pytest

from torchrl_gbp.experiments.recipes import (
    PROFILES,
    EvaluationOptions,
    Recipe,
    TrainingOptions,
    apply_profile,
    flatten,
    recipe_for,
)
from torchrl_gbp.planners import CEMOptions, GradientOptions

TASKS = ("wall", "pusht", "pointmaze", "reacher", "dinowm_wall", "dinowm_pusht", "dinowm_pointmaze")


@dataclass(frozen=True, kw_only=True)
class RecipeWithANewField(Recipe):
    """A later version of :class:`Recipe`: one more field, with a default."""

    new_option: int = 3


@dataclass(frozen=True, kw_only=True)
class TrainingWithANewField(TrainingOptions):
    """A later version of a section: one more field, with a default."""

    warmup: int = 0


@pytest.mark.parametrize("obs", ["state", "pixels"])
@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("name", TASKS)
def test_adding_a_field_with_a_default_keeps_every_fingerprint(name: str, quick: bool, obs: str) -> None:
    recipe = recipe_for(name, quick=quick, obs=obs)
    later = RecipeWithANewField(**{f.name: getattr(recipe, f.name) for f in fields(recipe)})
    assert later.fingerprint() == recipe.fingerprint()
    assert json.loads(json.dumps(recipe.fingerprint())) == recipe.fingerprint()  # as run.json reads it back
    assert replace(later, new_option=4).fingerprint() == {**recipe.fingerprint(), "new_option": 4}


def test_the_fingerprint_holds_each_changed_field_by_its_path() -> None:
    recipe = recipe_for("pusht", quick=True)
    assert recipe.fingerprint() != recipe_for("pusht").fingerprint()
    changed = apply_profile(recipe, {"training.lr": 2e-3})
    assert changed.fingerprint() == {**recipe.fingerprint(), "training.lr": 2e-3}
    assert Recipe().fingerprint() == {}
    # a section that gains a field with a default: the fingerprint is the same
    assert Recipe(training=TrainingWithANewField()).fingerprint() == {}


def test_profiles_are_data_applied_by_one_mechanism() -> None:
    wall, quick = recipe_for("wall"), recipe_for("wall", quick=True)
    assert quick == apply_profile(wall, PROFILES["quick"])
    assert quick.planners.cem == wall.planners.cem == CEMOptions()  # the main job keeps the paper's CEM budget
    pusht = recipe_for("pusht", quick=True)  # a task's profile entry is merged over the shared one
    assert pusht.planners.cem.samples == 30 and pusht.planners.cem.init_std == 0.25
    pixels = recipe_for("pointmaze", obs="pixels")
    assert (pixels.model.encoder, pixels.model.num_hist, pixels.training.encoder_steps) == ("blur", 1, 0)


def test_a_profile_naming_an_unknown_field_or_a_wrong_type_is_refused() -> None:
    with pytest.raises(KeyError, match="Recipe.planners has no field 'sgd'"):
        apply_profile(Recipe(), {"planners.sgd.steps": 3})
    with pytest.raises(TypeError, match=r"training.steps must be int, got '10' \(str\)"):
        apply_profile(Recipe(), {"training.steps": "10"})
    with pytest.raises(TypeError, match="planners.gd must be GradientOptions"):
        apply_profile(Recipe(), {"planners.gd": CEMOptions()})
    assert apply_profile(Recipe(), {"training.lr": 1}).training.lr == 1  # an int is a float
    assert apply_profile(Recipe(), {"planners.gd": GradientOptions(steps=3)}).planners.gd.steps == 3


def test_options_are_frozen_and_flatten_to_their_paths() -> None:
    with pytest.raises(AttributeError):
        Recipe().training.steps = 3  # type: ignore[misc]
    paths = flatten(Recipe())
    assert paths["planners.gd_warm.steps"] == 3 and paths["evaluation.seeds"] == (0, 1, 2)
    assert paths["online.objective"] is None  # an objective object set here would have no path (not a plain value)
    assert EvaluationOptions(sampling_executes=2).executed(CEMOptions()) == 2
