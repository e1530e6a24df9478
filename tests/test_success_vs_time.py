"""The success-vs-time sweep: its budget specs parse (its page is checked with every page: test_provenance.py)."""
import argparse

import pytest

from torchrl_gbp.experiments.recipes import recipe_for


def test_budget_specs_parse_and_the_recipe_budget_is_always_swept(benchmarks) -> None:
    sweep = benchmarks.benchmark_module("success_vs_time")
    assert sweep.parse_gd_cem("3x300+30") == (3, 300, 30)
    with pytest.raises(argparse.ArgumentTypeError, match="ITERATIONSxSAMPLES\\+STEPS"):
        sweep.parse_gd_cem("3x300")
    recipe = recipe_for("wall")
    assert [sweep.budget_label("gd_cem", b) for b in sweep.gd_cem_budgets(recipe, None, False)] == [
        "3x300+10", "3x300+30"]
    assert [sweep.budget_label("icem", b) for b in sweep.cem_budgets(recipe, ["5x100"], False, "icem")] == [
        "5x100", "10x300"]
    reacher = recipe_for("reacher")  # no iCEM budget of its own in its recipe: ICEMOptions' defaults
    assert sweep.cem_budgets(reacher, None, False, "icem")[-1] == {"iterations": 10, "samples": 300, "elites": 30}
