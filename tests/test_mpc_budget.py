"""The MPC budget sweep: one rollout read in both units, tuning seeds only, its report from raw rows."""
from dataclasses import replace

import pytest

from torchrl_gbp.experiments.protocol import paper_settings
from torchrl_gbp.io import pyplot
from torchrl_gbp.models import StateWorldModel, WorldModelConfig, save_checkpoint
from torchrl_gbp.planners import CEMOptions


@pytest.fixture(scope="module")
def sweep(benchmarks):
    return benchmarks.benchmark_module("mpc_budget")


def _row(planner, steps, block, first, seed=5000, env_steps=50):
    return {"seed": seed, "planner": planner, "steps": steps, "episodes": len(first), "block": block,
            "env_steps": env_steps, "first_success_step": first, "call_seconds": [1.0] * (env_steps // block)}


def test_an_iteration_cap_is_5x_more_env_steps_for_cem_than_for_gd(sweep) -> None:
    cem, gd = _row("cem", None, 25, [50, None]), _row("adam", 3, 5, [10, 30])
    # 2 iterations: CEM's two blocks of 25 env steps, GD's two of 5
    assert sweep.point(cem, "mpc_iterations", 2) == {"success": 0.5, "seconds_per_episode": 1.0, "env_steps": 50,
                                                     "iterations": 2}
    assert sweep.point(gd, "mpc_iterations", 2) == {"success": 0.5, "seconds_per_episode": 1.0, "env_steps": 10,
                                                    "iterations": 2}
    # the loop stops once both episodes succeeded (6 iterations), whatever the cap; env steps run the whole budget
    assert sweep.point(gd, "mpc_iterations", 10)["iterations"] == 6
    assert sweep.point(gd, "env_steps", 50)["iterations"] == 10
    assert sweep.point(cem, "mpc_iterations", 3) is None  # beyond the rollout


def test_the_sweep_refuses_the_reported_seeds_and_reports_only_seeds_every_planner_finished(sweep) -> None:
    with pytest.raises(ValueError, match="never the reported seeds"):
        sweep.SweepOptions(seeds=(5000, 1001))
    rows = [_row("cem", None, 25, [25, 50]), _row("adam", 3, 5, [5, None]), _row("cem", None, 25, [None, None], 5001)]
    assert {row["seed"] for row in sweep.complete_seeds(rows)} == {5000}
    assert sweep.closest_cap(rows, level=0.82) is None  # no rollout reaches 5 CEM iterations (125 env steps)
    longer = [_row("cem", None, 25, [100, 200], env_steps=250), _row("adam", 3, 5, [5, None], env_steps=250)]
    assert sweep.closest_cap(longer, level=0.9)[0] == 8  # all succeed by 200 env steps: the 8th iteration
    assert sweep.closest_cap(longer, level=0.5)[0] == 5  # the fewest iterations on a tie
    text = sweep.report_text({"task": "dinowm_wall", "rows": rows, "command": "cmd", "machine": "cpu"})
    assert "paper's base-model MPC levels: GD 12, Adam 80, CEM 82" in text and "| 50 |" in text


def test_a_tiny_sweep_writes_a_row_per_seed_and_planner(sweep, tmp_path, monkeypatch) -> None:
    save_checkpoint(tmp_path / "base.pt", StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2,
                                                                           frameskip=5)))
    monkeypatch.setattr(sweep, "PLANNERS", (("cem", None), ("adam", 2)))
    monkeypatch.setattr(sweep, "paper_settings", lambda name: replace(
        paper_settings(name), sampling=CEMOptions(samples=8, elites=2, iterations=1)))  # a cheap CEM
    raw, saves = {"task": "wall", "rows": [], "command": "cmd", "machine": "cpu"}, []
    sweep.run_task(raw, tmp_path, sweep.SweepOptions(seeds=(5000,), episodes=2, env_steps=50),
                   lambda: saves.append(len(raw["rows"])))
    assert saves == [1, 2]  # saved as each row finished
    cem, adam = raw["rows"]
    assert (cem["block"], len(cem["call_seconds"]), adam["block"], len(adam["call_seconds"])) == (25, 2, 5, 10)
    assert cem["protocol_choices"]["budget_unit"] == "env_steps=50"
    assert "MPC budget sweep: wall" in sweep.report_text(raw)
    figure = sweep.figures(raw)[""]()  # the page's one figure: both units
    assert [ax.get_xlabel() for ax in figure.axes] == ["MPC iterations (cap; the reference's unit)",
                                                       "env steps per episode (ours; log)"]
    pyplot().close(figure)
