"""The paper's protocol: dataset-segment goals, open-loop and MPC cells, sticky success, Table 1's layout."""
import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.evaluate import episode_metrics, evaluate, evaluation_pairs
from torchrl_gbp.experiments import pipeline
from torchrl_gbp.experiments.cli import main
from torchrl_gbp.experiments.pipeline import finetune_model, finetuning_options, make_policy, model_config
from torchrl_gbp.experiments.protocol import (
    OUR_CHOICES,
    REFERENCE_CHOICES,
    MPCBudget,
    PaperSettings,
    ProtocolChoices,
    evaluate_mpc_budget,
    evaluate_open_loop,
    evaluate_paper_cell,
    paper_planner,
    paper_settings,
    reference_loop_env_steps,
    segment_pairs,
)
from torchrl_gbp.experiments.recipes import REFERENCE_FINETUNING, apply_profile, recipe_for
from torchrl_gbp.experiments.reporting import (
    format_ablations,
    format_paper_table,
    paper_protocol_claims,
    protocol_choices_note,
    summarize,
    tables_from_raw,
)
from torchrl_gbp.experiments.reproduce import finetuned_checkpoint
from torchrl_gbp.models import StateWorldModel, WorldModelConfig, load_checkpoint
from torchrl_gbp.planners import RESULT_RULES, GoalCost, GradientOptions, GradientPlanner, MPCPolicy, make_planner
from torchrl_gbp.synthesis import make_synthesis
from torchrl_gbp.tasks import WallTask
from torchrl_gbp.train import build_world_model, train_world_model

TASK = WallTask()


@pytest.fixture(scope="module")
def ablations(benchmarks):
    """``benchmarks/ablations.py`` as a module."""
    return benchmarks.benchmark_module("ablations")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    data = TASK.generate_dataset(200, seed=0)
    model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5, hidden_dim=64), data)
    train_world_model(model, make_window_buffer(data, frames=3, frameskip=5, batch_size=64), steps=300,
                      progress=False)
    return model


def test_segment_pairs_come_from_held_out_trajectories() -> None:
    pairs = segment_pairs(TASK, 6, seed=3, segment_steps=25)
    held_out = TASK.generate_dataset(6, seed=10_003)
    states = torch.cat([held_out["state"], held_out["next", "state"][:, -1:]], dim=1)  # (N, T + 1, 2)
    for start, goal in zip(pairs["start_state"], pairs["goal_state"]):
        hits = (states == start).all(-1).nonzero()
        assert len(hits), "every start is a held-out state"
        i, t = hits[0].tolist()
        assert torch.equal(states[i, t + 25], goal)  # the goal is 25 env steps later on the same trajectory
    training = TASK.generate_dataset(6, seed=3)
    assert not any((training["state"] == s).all(-1).any() for s in pairs["start_state"])
    torch.testing.assert_close(segment_pairs(TASK, 6, seed=3)["goal_state"], pairs["goal_state"])  # seeded


def test_open_loop_executes_one_plan_and_scores_sticky_success(model) -> None:
    settings = paper_settings("wall", quick=True)
    pairs = segment_pairs(TASK, 8, seed=0, segment_steps=25)
    planner = paper_planner("adam", model, TASK, settings, "open loop")
    metrics = evaluate_open_loop(planner, TASK, pairs)
    assert metrics["sticky_success_rate"] >= metrics["success_rate"]
    assert len(metrics["episodes"]["sticky_success"]) == 8
    # the gradient planner reaches most 25-step segment goals of a trained model in one open-loop plan
    assert metrics["sticky_success_rate"] >= 0.5
    assert metrics["plan_seconds"] > 0


def test_paper_planners_follow_the_paper_settings(model) -> None:
    settings = PaperSettings()
    sgd = paper_planner("sgd", model, TASK, settings, "mpc")
    adam = paper_planner("adam", model, TASK, settings, "open loop")
    cem = paper_planner("cem", model, TASK, settings, "mpc")
    assert sgd.optimizer is torch.optim.SGD and (sgd.steps, sgd.lr, sgd.noise_std) == (100, 0.2, 0.003)
    assert adam.optimizer is torch.optim.Adam and (adam.steps, adam.lr) == (300, 0.3)
    assert (cem.samples, cem.elites, cem.iterations, cem.horizon) == (300, 30, 30, 5)
    assert paper_settings("pointmaze").alpha == 0.0 and paper_settings("pusht").pairs == "segments"
    with pytest.raises(ValueError, match="planner"):
        paper_planner("bfgs", model, TASK, settings, "mpc")


def test_mpc_cells_replan_on_the_paper_schedule(model) -> None:
    settings = paper_settings("wall", quick=True)
    pairs = segment_pairs(TASK, 4, seed=1)
    adam = evaluate_paper_cell(model, TASK, "adam", "mpc", pairs, settings)
    cem = evaluate_paper_cell(model, TASK, "cem", "mpc", pairs, settings)
    model_steps = TASK.episode_steps // TASK.frameskip
    assert adam["planning_calls"] == model_steps  # GD replans after every executed model step
    assert cem["planning_calls"] == model_steps // settings.horizon  # CEM executes its whole horizon first
    open_loop = evaluate_paper_cell(model, TASK, "cem", "open loop", pairs, settings)
    assert open_loop["planning_calls"] == 1


def test_cells_record_which_episodes_start_solved_and_tables_leave_them_out(model, tmp_path) -> None:
    pairs = segment_pairs(TASK, 4, seed=1)
    pairs["goal_state"][:2] = pairs["start_state"][:2]  # the first two episodes start on their goal
    settings = paper_settings("wall", quick=True)
    for planner, mode in (("adam", "open loop"), ("cem", "mpc")):
        metrics = evaluate_paper_cell(model, TASK, planner, mode, pairs, settings)
        assert metrics["episodes"]["solved_at_start"] == [True, True, False, False]

    def unit(seed: int, sticky: list[bool], solved: list[bool]) -> dict:
        run = {"model": "base", "mode": "mpc", "planner": "adam", "seed": seed, "success_rate": 0.0,
               "sticky_success_rate": sum(sticky) / len(sticky), "final_distance": 1.0, "plan_seconds": 1.0,
               "plan_seconds_per_env": 0.1, "planning_seconds_total": 2.0,
               "episodes": {"sticky_success": sticky, "solved_at_start": solved}}
        return {"fingerprint": {"unit_seed": seed, "method": "base", "protocol": "paper"}, "runs": [run]}

    (tmp_path / "paper_base_seed0.json").write_text(json.dumps(unit(0, [True, True, True, False],
                                                                       [True, True, False, False])))
    (tmp_path / "paper_base_seed1.json").write_text(json.dumps(unit(1, [True, False, True, False],
                                                                       [False, False, False, False])))
    (tmp_path / "paper_base_seed2.json").write_text(json.dumps(unit(2, [True, True, True, True],
                                                                       [True, True, True, True])))
    table, _, more = tables_from_raw(tmp_path)
    assert "| base + MPC | - | 75.0 +- 20.4 |" in table  # all episodes
    caption, unsolved = more[-1]
    assert "episodes kept per seed: seed 0: 2, seed 1: 4, seed 2: 0" in caption
    # seed 0: 1 of 2 kept, seed 1: 2 of 4; seed 2 has no episode left, so no rate (not 0 %)
    assert "| base + MPC | - | 50.0 +- 0.0 |" in unsolved


def test_table_one_layout_and_claims() -> None:
    runs = [{"model": m, "mode": mode, "planner": p, "seed": s, "success_rate": 0.5, "final_distance": 0.1,
             "sticky_success_rate": rate, "plan_seconds": t, "plan_seconds_per_env": t / 10,
             "planning_seconds_total": t * calls}
            for s in (0, 1)
            for m, mode, p, rate, t, calls in [("base", "mpc", "cem", 0.8, 10.0, 2), ("base", "mpc", "adam", 0.6, 1.0, 10),
                                               ("online", "mpc", "adam", 0.9 - 0.1 * s, 1.0, 10),
                                               ("base", "open loop", "sgd", 0.2, 2.0, 1)]]
    rows = summarize(runs, by=("model", "mode", "planner"), success="sticky_success_rate")
    table = format_paper_table(rows)
    assert "| base + MPC | - | 60.0 +- 0.0 | 80.0 +- 0.0 | - | 0.100 | 0.500 |" in table
    assert "| base, open loop | 20.0 +- 0.0 | - | - | - |" in table
    claims = paper_protocol_claims(rows)
    assert "Adam MPC on online (85.0 +- 5.0%) >= CEM MPC on base (80.0 +- 0.0%): holds (+5.0 points" in claims
    assert "Adam MPC on base (60.0 +- 0.0%) >= CEM MPC on base (80.0 +- 0.0%): does not hold" in claims


def test_ablation_tables_average_a_setting_over_tuning_seeds() -> None:
    def row(seed: int, setting: str, sticky: float) -> dict:
        return {"ablation": "finetune", "setting": setting, "model": "adversarial", "seed": seed, "episodes": 50,
                "sticky_success_rate": sticky, "success_rate": sticky / 2, "final_distance": 1.0,
                "planned_error": 0.01 * seed / 5000, "plan_seconds": 0.5}

    rows = [row(5000, "lr 1e-5", 0.4), row(5000, "lr 1e-4", 0.2), row(5001, "lr 1e-5", 0.6),
            row(5001, "lr 1e-4", 0.2)]
    text = format_ablations(rows, {"finetune": "`cmd`"})
    assert "Tuning pair seed(s) [5000, 5001], 50 episodes per row and seed (mean +- std" in text
    # one row per setting, in the order they first ran; std over the two seeds
    assert text.index("| lr 1e-5 | adversarial | 50.0 +- 10.0 | 25.0 +- 5.0 | 1.000 | 0.0100 | 0.500 |") < \
        text.index("| lr 1e-4 | adversarial | 20.0 +- 0.0 | 10.0 +- 0.0 |")


def test_an_ablation_run_replaces_only_the_rows_it_writes_again(ablations) -> None:

    def replaced(ablation: str, model: str, seed: int) -> bool:
        row = {"ablation": ablation, "model": model, "seed": seed}
        return ablations.replaced_by_run(row, ["finetune", "online"], [5000], ("online",))

    # online finetuning rows of seed 5000 are written again; the adversarial ones of that seed are kept
    assert replaced("finetune", "online", 5000) and not replaced("finetune", "adversarial", 5000)
    assert replaced("online", "online", 5000)
    assert not replaced("online", "online", 5001) and not replaced("adversarial", "adversarial", 5000)


def test_ablation_notes_keep_every_run_that_left_rows(ablations) -> None:
    merged = ablations.merged_note
    # a run whose rows replace all others starts the note afresh
    assert merged("old run", None, "A so far", keeps_others=False) == "A so far"
    # two runs side by side on other seeds: each joins, then updates only its own part
    note = merged("old run", None, "A so far", keeps_others=True)
    note = merged(note, None, "B so far", keeps_others=True)
    note = merged(note, "A so far", "A done", keeps_others=True)
    assert note == "old run Other rows: A done Other rows: B so far"


@pytest.mark.slow
def test_reproduce_with_the_paper_protocol_then_ablations(tmp_path, capsys, ablations) -> None:
    assert main(["reproduce", "--task", "wall", "--quick", "--evaluation.episodes", "10", "--protocol", "paper",
                 "--methods", "online", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| base, open loop |" in out and "| base + MPC |" in out and "| online + MPC |" in out
    table = (tmp_path / "wall" / "results_paper.md").read_text()
    assert table.startswith("| model | SGD | Adam | CEM | MPPI |")
    assert "| base + MPC |" in table and table.splitlines()[0].endswith("| paper SGD / Adam / CEM |")
    assert (tmp_path / "wall" / "units" / "paper_base_seed0.json").exists()

    # The ablations start from that run's models, on tuning pairs only.
    with pytest.raises(ValueError, match="tuning pair seeds"):
        ablations.run("wall", tmp_path, ["steps"], seed=1000, episodes=2, quick=True)
    rows = ablations.run("wall", tmp_path, ["steps", "open_loop_steps", "adversarial", "horizon", "model", "recipe",
                                              "reference", "ours_steps"],
                         seed=5000, episodes=3, quick=True)
    for name, label in (("steps", "MPC"), ("open_loop_steps", "open loop")):
        assert [(r["model"], r["setting"]) for r in rows if r["ablation"] == name] == [
            ("base", f"Adam {label}, 10 steps per call"), ("base", f"Adam {label}, 30 steps per call"),
            ("online", f"Adam {label}, 10 steps per call"), ("online", f"Adam {label}, 30 steps per call"),
            ("base", f"CEM {label} at the paper's budget")]
    assert len([r for r in rows if r["ablation"] == "adversarial"]) == 6
    horizon = [r for r in rows if r["ablation"] == "horizon"]
    assert [r["setting"].split(", ")[:2] for r in horizon[::3]] == [
        ["Adam MPC", "horizon 3"], ["Adam MPC", "horizon 5"], ["Adam MPC", "horizon 8"], ["CEM MPC", "horizon 5"]]
    assert [r["setting"].split(", ")[2].split()[0] for r in horizon[:3]] == ["nearest", "middle", "farthest"]
    assert all(r["episodes"] == 1 for r in horizon)  # each third of the 3 pairs
    model = [r["setting"] for r in rows if r["ablation"] == "model"]
    width = recipe_for("wall").model.hidden_dim
    assert model[:2] == [f"hidden_dim {width // 2}: Adam MPC", f"hidden_dim {width // 2}: CEM MPC"]
    assert len(model) == 6 and (tmp_path / "wall" / "ablation_models").is_dir()
    assert all(r["seed"] == 5000 and r["planned_error"] >= 0 and 0 <= r["sticky_success_rate"] <= 1 for r in rows)

    # The recipe ablation is our own protocol: its "(recipe)" Adam row is what `evaluate` gives the recipe's policy.
    recipe_rows = {r["setting"]: r for r in rows if r["ablation"] == "recipe"}
    quick = recipe_for("wall", quick=True)
    own = recipe_rows[f"Adam MPC, {quick.planners.gd.steps} steps per call (recipe)"]
    model, _ = load_checkpoint(tmp_path / "wall" / "base.pt")
    metrics = evaluate(make_policy(model, WallTask(), "gd", quick), WallTask(), episodes=3, seed=5000)
    assert own["success_rate"] == pytest.approx(metrics["success_rate"])
    assert own["final_distance"] == pytest.approx(metrics["final_distance"], rel=1e-5)
    assert sum("CEM MPC, init std" in name and "(recipe)" in name for name in recipe_rows) == 1
    assert sum("alpha 0.1 (recipe 1)" in name for name in recipe_rows) == 2
    ours_steps = [(r["model"], r["setting"]) for r in rows if r["ablation"] == "ours_steps"]
    budgets = [f"Adam MPC, our protocol, {n} steps per call" for n in ablations.own_step_budgets(quick)[:2]]
    assert ours_steps == [(model, setting) for model in ("base", "online") for setting in budgets]
    reference = {r["setting"]: r for r in rows if r["ablation"] == "reference"}
    steps = {r["setting"]: r for r in rows if r["ablation"] == "steps" and r["model"] == "base"}
    for key in ("sticky_success_rate", "success_rate", "final_distance", "planned_error"):  # same pairs, same plans
        cem = "CEM MPC at the paper's budget"
        assert reference[cem][key] == steps[cem][key]


# ------------------------------------------------ the reference code's choices, one setting each
def test_the_reference_all_cost_matches_its_formula_on_an_h_plus_one_frame_trajectory() -> None:
    g = torch.Generator().manual_seed(0)
    frames, goal = torch.randn(4, 6, 5, generator=g), torch.randn(4, 5, generator=g)  # start frame + H = 5
    base, alpha, p = 0.5, 0.7, 2
    # the reference's formula: base**i over the H + 1 frames, normalised, weighted per-frame MSEs averaged
    coeffs = torch.tensor([base ** i for i in range(6)])
    coeffs = coeffs / coeffs.sum()
    visual = (frames[..., :-p] - goal[:, None, :-p]).pow(2).mean(-1)
    proprio = (frames[..., -p:] - goal[:, None, -p:]).pow(2).mean(-1)
    reference = (visual * coeffs).mean(1) + alpha * (proprio * coeffs).mean(1)
    cost = GoalCost("all", base=base, alpha=alpha, proprio_dim=p, include_start=True)
    torch.testing.assert_close(cost(frames, goal), reference)
    ours = GoalCost("all", base=base, alpha=alpha, proprio_dim=p)(frames[:, 1:], goal)
    assert (cost(frames, goal) < 0.25 * ours).all()  # per step a fraction of ours: SGD steps that much shorter
    last = GoalCost("last", alpha=alpha, proprio_dim=p)
    torch.testing.assert_close(GoalCost("last", alpha=alpha, proprio_dim=p, include_start=True)(frames, goal),
                               last(frames[:, 1:], goal))


def test_planners_give_the_reference_cost_the_start_frame(model) -> None:
    z_hist, a_hist, z_goal = torch.randn(3, 1, 2), torch.zeros(3, 0, 10), torch.randn(3, 2)
    candidates = torch.randn(3, 4, 5, 10)
    cost = GoalCost(include_start=True)
    planner = GradientPlanner(model, objective=cost, horizon=5, steps=0)
    rolled = model.rollout(z_hist.unsqueeze(1).expand(3, 4, 1, 2), a_hist.unsqueeze(1).expand(3, 4, 0, 10), candidates)
    with_start = torch.cat([z_hist.unsqueeze(1).expand(3, 4, 1, 2), rolled], dim=-2)
    torch.testing.assert_close(planner.score(z_hist, a_hist, z_goal, candidates), cost(with_start, z_goal[:, None]))


class Line(torch.nn.Module):
    """z' = z + a: every plan's cost is known in closed form."""

    action_dim, num_hist = 1, 1

    def rollout(self, z_hist, a_hist, actions):
        return z_hist[..., -1:, :] + actions.cumsum(-2)


@pytest.mark.parametrize("kind", ["gd", "cem"])
def test_the_final_result_rule_returns_where_the_search_ended_and_best_the_cheapest_it_passed(kind) -> None:
    z, a_hist, goal = torch.zeros(4, 1, 1), torch.zeros(4, 0, 1), torch.zeros(4, 1)
    init = torch.zeros(4, 3, 1)  # already at the goal: every later iterate or mean costs more
    options = ({"steps": 3, "lr": 0.5, "optimizer": torch.optim.SGD, "noise_std": 0.5} if kind == "gd"
               else {"samples": 16, "elites": 4, "iterations": 2, "init_std": 2.0})
    plans = {rule: make_planner(kind, Line(), 3, GoalCost("last"), result=rule, **options).plan(
        z, a_hist, goal, init=init, generator=torch.Generator().manual_seed(0)) for rule in RESULT_RULES}
    assert (plans["final"].cost > 0).all() and (plans["best"].cost <= plans["final"].cost).all()
    assert (plans["best"].cost < plans["final"].cost).any()  # the search passed a cheaper plan than its end
    if kind == "gd":  # the gradient search started at the goal: best-of keeps that start
        assert (plans["best"].cost == 0).all() and (plans["best"].actions == 0).all()
    torch.testing.assert_close(plans["final"].cost, plans["final"].actions.sum(1).squeeze(-1).pow(2))
    with pytest.raises(ValueError, match="result"):
        make_planner(kind, Line(), 3, result="median")


def test_success_is_checked_at_executed_block_ends_under_the_reference_rule() -> None:
    success = torch.zeros(2, 10, 1, dtype=torch.bool)
    success[0, 2] = True  # held between two checks only
    success[1, 4] = True  # held at the end of the first block of 5
    rollout = TensorDict({"next": {"success": success, "distance": torch.ones(2, 10, 1)}}, [2, 10])
    assert episode_metrics(rollout)["episodes"]["sticky_success"] == [True, True]
    assert episode_metrics(rollout, check_every=5)["episodes"]["sticky_success"] == [False, True]
    assert episode_metrics(rollout, check_every=5)["success_rate"] == 0.0  # final state: neither


def test_pusht_reference_success_includes_the_agent_position() -> None:
    from torchrl_gbp.tasks.pusht.task import PushTTask

    goal = torch.zeros(3, 10)
    state = goal.clone().repeat(1, 1)
    state[0, 0] = 15.0                     # agent 15 off: both tests pass
    state[1, 0], state[1, 2] = 15.0, 15.0  # agent and block 15 off each: jointly 21.2, the reference fails
    state[2, 4] = 0.5                      # block turned beyond pi/9: both fail
    assert PushTTask().success(state, goal).tolist() == [True, True, False]
    assert PushTTask(success_rule="agent_and_block").success(state, goal).tolist() == [True, False, False]
    assert paper_settings("pusht").task_options("pusht") == {"success_rule": "agent_and_block"}


def test_paper_cells_follow_the_protocol_choices_and_name_them(model) -> None:
    reference = paper_settings("wall", quick=True)
    ours = replace(reference, choices=OUR_CHOICES)
    for settings, bounded, rule, frames in ((reference, False, "final", True), (ours, True, "best", False)):
        planner = paper_planner("sgd", model, TASK, settings, "mpc")
        assert (planner.action_low is not None) == bounded and planner.result == rule
        assert planner.objective.include_start == frames
    pairs = segment_pairs(TASK, 4, seed=1)
    cell = evaluate_paper_cell(model, TASK, "cem", "mpc", pairs, reference)
    assert cell["protocol_choices"] == reference.choices.record()
    assert cell["protocol_choices"]["success_rule"] == "reference"
    # reference MPC success is sticky at the ends of CEM's executed blocks (5 model steps of 5 env steps)
    assert cell["reported_success_rate"] == cell["sticky_success_rate"]
    open_loop = evaluate_paper_cell(model, TASK, "adam", "open loop", pairs, reference)
    assert open_loop["reported_success_rate"] == open_loop["success_rate"]  # the final state only
    with pytest.raises(ValueError, match="success_rule"):
        ProtocolChoices(success_rule="sometimes")


# ------------------------------------------------ the reference code's finetuning
def test_the_paper_protocol_finetunes_as_the_reference_and_keeps_those_models_apart() -> None:
    settings = paper_settings("wall")
    assert settings.choices == REFERENCE_CHOICES
    assert settings.choices.record()["online_schedule"] == "append" and settings.choices.finetuning == "reference"
    assert settings.choices.finetunes_as() == {"online_schedule": "append", "finetuning": "reference"}
    assert OUR_CHOICES.finetunes_as() == {"online_schedule": "replace", "finetuning": "ours"}
    root = Path("runs/wall")
    assert finetuned_checkpoint(root, "online", 1, settings) == root / "paper_online_seed1.pt"
    evaluated_as_reference = replace(settings, choices=OUR_CHOICES.evaluated_as(REFERENCE_CHOICES))
    assert finetuned_checkpoint(root, "online", 1, evaluated_as_reference) == \
        finetuned_checkpoint(root, "online", 1) == root / "online_seed1.pt"  # shared with our protocol
    for name, value in (("online_schedule", "prepend"), ("finetuning", "theirs")):
        with pytest.raises(ValueError, match=name):
            ProtocolChoices(**{name: value})


def test_reference_finetuning_uses_adamw_its_rates_dropout_and_appended_steps(tmp_path) -> None:
    data = TASK.generate_dataset(40, seed=0)
    recipe = apply_profile(recipe_for("wall"), {"training.batch_size": 8, "model.hidden_dim": 32, "model.depth": 1,
                                                "synthesis.every": 2, "online.planner_steps": 1,
                                                "finetuning.steps": 3})
    results = {}
    for finetuning, schedule in (("ours", "replace"), ("reference", "append")):
        model = build_world_model(model_config(TASK, recipe), data)
        path = tmp_path / f"{finetuning}.pt"
        finetune_model(model, TASK, data, "online", recipe, checkpoint_path=path, progress=False,
                       finetuning=finetuning_options(recipe, finetuning), online_schedule=schedule)
        payload = torch.load(path, weights_only=False)
        groups = payload["training"]["optimizer"]["param_groups"]
        results[finetuning] = (payload["training"]["optimizer_kind"], {g["name"]: g["lr"] for g in groups},
                               groups[0]["weight_decay"], model.config.dropout,
                               int(payload["training"]["optimizer"]["state"][0]["step"]), payload["extra"])
    kind, rates, decay, dropout, steps, extra = results["reference"]  # first pass: one cached set per batch
    assert (kind, rates, decay, dropout) == ("adamw", {"predictor": 1e-5, "action_encoder": 5e-4}, 0.01, 0.1)
    assert steps == 3 + 3 and extra["finetuning"] == asdict(REFERENCE_FINETUNING) | {"steps": 3}
    assert extra["online_schedule"] == "append"
    kind, rates, decay, dropout, steps, extra = results["ours"]
    assert (kind, rates, decay, dropout, steps) == ("adam", {"predictor": 1e-4, "action_encoder": 5e-4}, 0.0, 0.0, 3)


def test_reference_finetuning_attacks_in_train_mode_with_the_reference_radius(monkeypatch) -> None:
    data = TASK.generate_dataset(20, seed=0)
    recipe = apply_profile(recipe_for("wall"), {"training.batch_size": 8, "model.hidden_dim": 32, "model.depth": 1,
                                                "finetuning.steps": 1})
    made = []

    def recording(*args, **kwargs):
        made.append(make_synthesis(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(pipeline, "make_synthesis", recording)
    for finetuning in ("ours", "reference"):
        finetune_model(build_world_model(model_config(TASK, recipe), data), TASK, data, "adversarial", recipe,
                       progress=False, finetuning=finetuning_options(recipe, finetuning))
    assert [transform.options.attack_mode for transform in made] == ["eval", "train"]
    assert [transform.options.radius_statistic for transform in made] == ["batch", "per_window"]
    assert recipe.adversarial.attack_mode == "eval"  # the recipe itself is left as it was


def test_choices_a_run_did_not_record_were_ours() -> None:
    earlier = {"objective_frames": "with_start", "success_rule": "reference", "result_rule": "final",
               "bounds": "none"}
    note = protocol_choices_note([{"protocol_choices": earlier}])
    assert "finetuning=ours" in note and "online_schedule=replace" in note  # unrecorded: finetuned our way
    assert "budget_unit=env_steps" in note  # unrecorded: our budget, env steps per episode
    ours_recorded = {**earlier, "online_schedule": "replace", "finetuning": "ours"}
    both = protocol_choices_note([{"protocol_choices": earlier}, {"protocol_choices": ours_recorded}])
    assert "finetuning=ours" in both and "online_schedule=replace" in both
    with pytest.raises(ValueError, match="mix protocol choices"):
        protocol_choices_note([{"protocol_choices": earlier},
                               {"protocol_choices": {**ours_recorded, "finetuning": "reference"}}])


# ------------------------------------------------ the MPC budget: env steps (ours) or MPC iterations (reference)
def _still_policy(n_taken_actions: int = 1) -> MPCPolicy:
    """An MPC policy that never moves: zero plans, no search (the agent stays where it starts)."""
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
    planner = GradientPlanner(model, horizon=5, steps=0, init="zeros", noise_std=0.0)
    return MPCPolicy(planner, TASK.action_spec, n_taken_actions=n_taken_actions)


def _pairs(solved: int, episodes: int = 4):
    """Evaluation pairs whose first ``solved`` episodes start at their goal; the others cannot succeed standing."""
    pairs = evaluation_pairs(TASK, episodes, seed=0)
    pairs["goal_state"][:solved] = pairs["start_state"][:solved]
    assert not TASK.success(pairs["start_state"][solved:], pairs["goal_state"][solved:]).any()
    return pairs


def test_the_iteration_budget_runs_the_cap_in_planning_calls_of_one_executed_block_each() -> None:
    budget = MPCBudget(unit="mpc_iterations", max_iterations=3)
    gd = evaluate_mpc_budget(_still_policy(1), TASK, _pairs(solved=2), budget, block=5)
    assert (gd["mpc_iterations"], gd["planning_calls"], gd["episode_env_steps"]) == (3, 3, 15)
    assert gd["episodes"]["sticky_success"] == [True, True, False, False] and gd["budget_unit"] == "mpc_iterations:cap=3"
    assert gd["episodes"]["first_success_step"] == [5, 5, None, None]  # checked at the end of each block
    # CEM executes 5 model steps per call: the same cap is 5x the env steps, past the task's 50-step episode
    cem = evaluate_mpc_budget(_still_policy(5), TASK, _pairs(solved=2), budget, block=25)
    assert (cem["mpc_iterations"], cem["planning_calls"], cem["episode_env_steps"]) == (3, 3, 75)
    with pytest.raises(ValueError, match="max_iterations must be a positive int"):
        MPCBudget(unit="mpc_iterations", max_iterations=0)


def test_the_iteration_loop_stops_once_every_episode_succeeded_and_env_steps_do_not() -> None:
    budget = MPCBudget(unit="mpc_iterations", max_iterations=3)
    solved = evaluate_mpc_budget(_still_policy(1), TASK, _pairs(solved=4), budget, block=5)
    assert (solved["mpc_iterations"], solved["planning_calls"], solved["episode_env_steps"]) == (1, 1, 5)
    assert solved["sticky_success_rate"] == 1.0
    ours = evaluate_mpc_budget(_still_policy(1), TASK, _pairs(solved=4), MPCBudget(env_steps=15), block=5)
    assert (ours["mpc_iterations"], ours["planning_calls"], ours["budget_unit"]) == (3, 3, "env_steps=15")


def test_the_loop_counts_success_at_block_ends_only() -> None:
    success = torch.zeros(2, 15, 1, dtype=torch.bool)
    success[0, 2] = True   # held between two checks only: not a success at block ends
    success[1, 9] = True   # held at the end of the second block of 5
    rollout = TensorDict({"next": {"success": success, "distance": torch.ones(2, 15, 1)}}, [2, 15])
    first = episode_metrics(rollout, check_every=5)["episodes"]["first_success_step"]
    assert first == [None, 10]
    assert reference_loop_env_steps(first, block=5, limit=15) == 15  # one never succeeded: the cap
    assert reference_loop_env_steps([5, 10], block=5, limit=15) == 10  # both by the second block: it stops there
    # checked at every env step (our sticky rule), the loop still stops at the end of a block
    assert episode_metrics(rollout)["episodes"]["first_success_step"] == [3, 10]
    assert reference_loop_env_steps([3, 10], block=5, limit=15) == 10


def test_no_cap_needs_a_safety_limit_in_env_steps_which_bounds_the_episode_and_is_recorded() -> None:
    with pytest.raises(ValueError, match="safety_env_steps"):
        MPCBudget(unit="mpc_iterations")
    with pytest.raises(ValueError, match="belongs to unit='env_steps'"):
        MPCBudget(unit="mpc_iterations", max_iterations=3, env_steps=50)
    with pytest.raises(ValueError, match="budget_unit|unit must be one of"):
        MPCBudget(unit="seconds")
    budget = MPCBudget(unit="mpc_iterations", safety_env_steps=12)
    metrics = evaluate_mpc_budget(_still_policy(1), TASK, _pairs(solved=1), budget, block=5)
    assert (metrics["mpc_iterations"], metrics["episode_env_steps"]) == (2, 10)  # whole blocks within 12 env steps
    assert metrics["budget_unit"] == "mpc_iterations:no_cap;safety=12_env_steps"
    choices = replace(REFERENCE_CHOICES, budget=budget)
    assert choices.record()["budget_unit"] == budget.label()
    note = protocol_choices_note([{"protocol_choices": choices.record()}])
    assert "budget_unit=mpc_iterations:no_cap;safety=12_env_steps" in note
    with pytest.raises(TypeError, match="MPCBudget"):
        ProtocolChoices(budget="mpc_iterations")


def test_a_capped_run_is_the_first_iterations_of_a_longer_one_in_either_unit(model) -> None:
    settings = replace(paper_settings("wall", quick=True), mpc_gradient=GradientOptions(steps=3))
    pairs = segment_pairs(TASK, 4, seed=1)
    runs = {label: evaluate_paper_cell(model, TASK, "adam", "mpc", pairs,
                                       replace(settings, choices=replace(settings.choices, budget=budget)))
            for label, budget in (("cap 2", MPCBudget(unit="mpc_iterations", max_iterations=2)),
                                  ("cap 4", MPCBudget(unit="mpc_iterations", max_iterations=4)),
                                  ("20 env steps", MPCBudget(env_steps=20)))}
    assert runs["cap 4"]["protocol_choices"]["budget_unit"] == "mpc_iterations:cap=4"
    assert runs["20 env steps"]["planning_calls"] == 4 and runs["20 env steps"]["episode_env_steps"] == 20
    # the same episodes, read in either unit (GD executes 5 env steps per iteration)
    assert runs["cap 4"]["episodes"]["first_success_step"] == runs["20 env steps"]["episodes"]["first_success_step"]
    by_two = [step is not None and step <= 10 for step in runs["20 env steps"]["episodes"]["first_success_step"]]
    assert runs["cap 2"]["episodes"]["sticky_success"] == by_two


def test_reproduce_keeps_another_budget_apart_and_the_command_line_maps_onto_the_budget(tmp_path, capsys) -> None:
    from torchrl_gbp.experiments.cli import parse
    from torchrl_gbp.experiments.reproduce import ReproduceOptions, budget_tag

    capped = MPCBudget(unit="mpc_iterations", max_iterations=10)
    assert budget_tag(MPCBudget()) == "" and budget_tag(capped) == "mpc_iterations_cap_10_"
    with pytest.raises(ValueError, match="needs protocol='paper'"):
        ReproduceOptions(out=str(tmp_path), quick=True, budget=capped)
    _, options, _, _ = parse(["reproduce", "--protocol", "paper", "--budget.unit", "mpc_iterations",
                              "--budget.max-iterations", "none", "--budget.safety-env-steps", "500"])
    assert options.budget == MPCBudget(unit="mpc_iterations", max_iterations=None, safety_env_steps=500)
    assert main(["reproduce", "--protocol", "paper", "--budget.unit", "mpc_iterations", "--out", str(tmp_path)]) == 2
    assert "safety_env_steps" in capsys.readouterr().err  # no cap and no safety limit: refused before anything runs
