"""The success-vs-time sweep: its saved reports are what its raw rows give, and its budget specs parse."""
import argparse
import importlib.util
import json
from pathlib import Path

import pytest

from torchrl_gbp.experiments.recipes import recipe_for

ROOT = Path(__file__).resolve().parent.parent


def _sweep():
    spec = importlib.util.spec_from_file_location("success_vs_time", ROOT / "benchmarks" / "success_vs_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_saved_sweep_report_matches_its_raw_rows() -> None:
    sweep = _sweep()
    raws = sorted((ROOT / "benchmarks" / "results" / "sweeps").glob("*.json"))
    if not raws:
        pytest.skip("no sweep raw rows saved yet")
    for path in raws:
        raw = json.loads(path.read_text())
        report = ROOT / raw["out"]
        assert sweep.raw_path(Path(raw["out"])) == path.relative_to(ROOT)
        assert report.read_text() == sweep.report_text(raw), (
            f"{raw['out']} differs from python benchmarks/success_vs_time.py --from-raw {path.relative_to(ROOT)}")


def test_budget_specs_parse_and_the_recipe_budget_is_always_swept() -> None:
    sweep = _sweep()
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
