"""Data on disk, training, evaluation and the command line, as a user runs them."""
import json
import os
from types import SimpleNamespace

import pytest
import torch

from torchrl_gbp.data import (
    load_dataset,
    make_window_buffer,
    model_actions,
    save_dataset,
)
from torchrl_gbp.evaluate import evaluate
from torchrl_gbp.experiments.cli import main
from torchrl_gbp.experiments.pipeline import make_policy
from torchrl_gbp.experiments.recipes import PROFILES, apply_profile, recipe_for
from torchrl_gbp.experiments.reporting import format_table, paper_claims, summarize
from torchrl_gbp.experiments.reproduce import ReproduceOptions, longest_first
from torchrl_gbp.models import WorldModelConfig, load_checkpoint
from torchrl_gbp.planners import GradientOptions, GradientPlanner, MPCPolicy
from torchrl_gbp.synthesis import METHODS
from torchrl_gbp.tasks import WallTask
from torchrl_gbp.train import build_world_model, train_world_model


@pytest.fixture(scope="module")
def data():
    return WallTask().generate_dataset(100, seed=0)


def test_dataset_round_trip_is_atomic_and_exact(tmp_path, data):
    path = save_dataset(data, tmp_path / "ds")
    loaded = load_dataset(path)
    for key in ("observation", "state", "action", "episode"):
        assert torch.equal(loaded[key], data[key])
    # Overwriting replaces the folder only once the new data is complete; no temp folders left behind.
    save_dataset(data[:10], path)
    assert load_dataset(path).shape[0] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_load_dataset_names_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_dataset(tmp_path / "nope")


def test_windows_follow_model_steps(data):
    buffer = make_window_buffer(data, frames=4, frameskip=5, batch_size=16,
                                generator=torch.Generator().manual_seed(0))
    batch = buffer.sample()
    assert batch["observation"].shape == (16, 4, 2)
    assert batch["action"].shape == (16, 3, 10)
    # Each window replays exactly under the true dynamics: frame k+1 = 5 env steps of block k from frame k.
    task = WallTask()
    pos = batch["state"][:, 0]
    for k in range(3):
        for a in batch["action"][:, k].reshape(16, 5, 2).unbind(1):
            pos = task.step(pos, a)
        torch.testing.assert_close(pos, batch["state"][:, k + 1])


def test_window_longer_than_trajectory_is_rejected(data):
    with pytest.raises(ValueError, match="shorter than one window"):
        make_window_buffer(data, frames=20, frameskip=5, batch_size=4)


def test_training_lowers_the_loss_and_checkpoints(tmp_path, data):
    torch.manual_seed(0)
    config = WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5, hidden_dim=64, depth=2)
    model = build_world_model(config, data)
    torch.testing.assert_close(model.obs_normalizer.mean, data["observation"].reshape(-1, 2).mean(0))
    torch.testing.assert_close(model.action_normalizer.mean, model_actions(data, 5).reshape(-1, 10).mean(0))
    buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=64,
                                generator=torch.Generator().manual_seed(0))
    first = train_world_model(model, buffer, steps=1, log_every=1, progress=False)["loss_prediction"]
    last = train_world_model(model, buffer, steps=200, log_every=200, progress=False,
                             checkpoint_path=tmp_path / "m.pt")["loss_prediction"]
    assert last < 0.5 * first
    loaded, extra = load_checkpoint(tmp_path / "m.pt")
    assert extra["step"] == 200
    z = torch.randn(4, 1, 2)
    actions = torch.randn(4, 5, 10)
    assert torch.equal(loaded.rollout(z, z[:, :0, :0].new_zeros(4, 0, 10), actions),
                       model.rollout(z, z.new_zeros(4, 0, 10), actions))


def test_evaluate_reports_metrics_on_shared_pairs(data):
    task = WallTask()
    model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5, hidden_dim=16, depth=1),
                              data)
    policy = MPCPolicy(GradientPlanner(model, steps=2), task.action_spec)
    a = evaluate(policy, task, episodes=4, seed=3, max_steps=10)
    b = evaluate(policy, task, episodes=4, seed=3, max_steps=10)
    assert 0.0 <= a["success_rate"] <= 1.0 and a["plan_seconds"] > 0
    assert a["final_distance"] == b["final_distance"]  # same pairs, deterministic policy


@pytest.mark.slow
def test_cli_collect_train_evaluate(tmp_path, capsys):
    ds, ckpt = tmp_path / "ds", tmp_path / "m.pt"
    assert main(["collect", "--task", "wall", "--out", str(ds), "--data.num-trajectories", "40"]) == 0
    assert main(["train", "--task", "wall", "--dataset", str(ds), "--out", str(ckpt), "--training.steps", "20",
                 "--model.hidden-dim", "32", "--model.depth", "1", "--log-dir", str(tmp_path / "logs")]) == 0
    model, extra = load_checkpoint(ckpt)
    assert model.config.hidden_dim == 32 and extra["task"] == "wall"
    assert any((tmp_path / "logs").rglob("*.csv"))
    capsys.readouterr()
    assert main(["evaluate", "--task", "wall", "--checkpoint", str(ckpt), "--planner", "cem",
                 "--evaluation.episodes", "2", "--planners.cem.samples", "16", "--planners.cem.elites", "4",
                 "--planners.cem.iterations", "2"]) == 0
    assert '"success_rate"' in capsys.readouterr().out
    assert main(["evaluate", "--task", "wall", "--checkpoint", str(ckpt), "--planner", "gd",
                 "--evaluation.episodes", "2", "--planners.gd.steps", "1000", "--budget.max-seconds", "0.05",
                 "--budget.patience", "3"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["plan_seconds"] > 0  # the budget itself is tested on a simulated clock (test_planners)
    # the planner's options map one to one onto the Python API, also through a ParallelEnv
    assert main(["evaluate", "--task", "wall", "--checkpoint", str(ckpt), "--planner", "gd",
                 "--evaluation.episodes", "4", "--seed", "3", "--planners.gd.steps", "5", "--evaluation.horizon", "3",
                 "--planners.gd.optimizer", "sgd", "--planners.gd.num-restarts", "2", "--planners.gd.noise-std", "0",
                 "--pair-mode", "random", "--num-workers", "2"]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    task = WallTask()
    recipe = apply_profile(recipe_for("wall"), {"evaluation.horizon": 3})
    policy = make_policy(model, task, GradientOptions(steps=5, optimizer="sgd", num_restarts=2, noise_std=0.0),
                         recipe)
    assert policy.planner.horizon == 3
    direct = evaluate(policy, task, episodes=4, seed=3, pair_mode="random")
    assert (from_cli["success_rate"], from_cli["final_distance"]) == (direct["success_rate"],
                                                                      direct["final_distance"])


def test_cli_reports_bad_input(tmp_path, capsys):
    assert main(["evaluate", "--task", "wall", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert main(["collect", "--task", "nosuchtask", "--out", str(tmp_path / "x")]) == 2
    assert "nosuchtask" in capsys.readouterr().err


def test_format_table_reports_time_per_episode_relative_to_cem():
    runs = [{"model": "base", "planner": p, "seed": 0, "success_rate": s, "final_distance": 0.25, "plan_seconds": t,
             "plan_seconds_per_env": t / 50, "planning_seconds_total": 10 * t, "episodes": {"success": [True] * 20},
             "budget": b} for p, s, t, b in [("cem", 0.8, 2.0, "CEM, 300 samples x 30 iterations, 5 executed per plan"),
                                            ("gd", 0.7, 0.2, "Adam, 100 steps, 1 executed per plan")]]
    table = format_table(summarize(runs))
    gd_row = next(line for line in table.splitlines() if line.startswith("| base | gd |"))
    cells = [cell.strip() for cell in gd_row.strip("|").split("|")]
    assert cells[2] == "Adam, 100 steps, 1 executed per plan" and cells[3] == "70.0"  # no spread from one seed
    assert cells[-2] == "0.1000"  # 2.0 planning seconds over 20 episodes
    assert cells[-1] == "0.100"  # GD's 0.1 s per episode over CEM's 1.0 s


def test_paper_claims_compare_float32_rates_and_report_noise():
    runs = [{"model": m, "planner": p, "success_rate": float(torch.tensor(s, dtype=torch.float32)),
             "final_distance": 0.1, "plan_seconds": t, "plan_seconds_per_env": t, "planning_seconds_total": t,
             "episodes": {"success": [True]}}
            for m, p, s, t in [("base", "cem", 0.7, 2.0), ("base", "gd", 0.6, 0.2), ("online", "gd", 0.7, 0.2)]]
    claims = paper_claims(summarize(runs)).splitlines()
    assert claims[0].startswith("- gd on base (60.0%) trails CEM on base (70.0%)") and ": holds" in claims[0]
    assert "online (70.0%) matches or beats CEM on base (70.0%) at 0.100 of its planning time" in claims[1]
    assert "one seed: no noise estimate" in claims[1]  # 0.7f == 0.7f, not below
    assert claims[2] == "Rows that match or beat CEM on base: online/gd at 0.100 of its time."
    second = [dict(r, success_rate=r["success_rate"] - 0.1) for r in runs]
    claims = paper_claims(summarize(runs + second)).splitlines()
    assert "-0.0 points" not in claims[1] and "within seed noise (std 5.0)" in claims[1]


def test_quick_recipe_is_smaller():
    full, quick = recipe_for("wall"), recipe_for("wall", quick=True)
    assert quick.training.steps < full.training.steps and quick.data.num_trajectories < full.data.num_trajectories
    assert len(quick.evaluation.seeds) < len(full.evaluation.seeds)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["online", "adversarial", "both"])
def test_cli_finetune_each_method_and_reload(tmp_path, data, method):
    ds, base, tuned = tmp_path / "ds", tmp_path / "base.pt", tmp_path / f"{method}.pt"
    save_dataset(data, ds)
    assert main(["train", "--task", "wall", "--dataset", str(ds), "--out", str(base), "--training.steps", "30",
                 "--model.hidden-dim", "32", "--model.depth", "1"]) == 0
    assert main(["finetune", "--task", "wall", "--base", str(base), "--method", method, "--out", str(tuned),
                 "--dataset", str(ds), "--finetuning.steps", "12", "--finetuning.predictor-lr", "1e-3"]) == 0
    before, _ = load_checkpoint(base)
    after, extra = load_checkpoint(tuned)
    assert extra["method"] == method
    z, a_hist, actions = torch.randn(3, 1, 2), torch.zeros(3, 0, 10), torch.randn(3, 5, 10)
    changed = after.rollout(z, a_hist, actions)
    assert not torch.equal(changed, before.rollout(z, a_hist, actions))  # finetuning moved the predictor
    # the observation encoder stays frozen; reloading gives identical outputs
    assert torch.equal(after.obs_normalizer.mean, before.obs_normalizer.mean)
    again, _ = load_checkpoint(tuned)
    assert torch.equal(again.rollout(z, a_hist, actions), changed)


def test_cli_finetune_rejects_unknown_method(tmp_path):
    with pytest.raises(SystemExit):
        main(["finetune", "--base", str(tmp_path / "x.pt"), "--method", "magic", "--out", str(tmp_path / "y.pt")])


@pytest.mark.slow
def test_reproduce_quick_on_the_ray_backend_writes_table_and_plot(tmp_path, capsys):
    pytest.importorskip("ray")
    assert main(["reproduce", "--task", "wall", "--quick", "--evaluation.episodes", "10", "--out", str(tmp_path),
                 "--backend", "ray", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    for model in ("base", "online", "adversarial"):  # the default methods
        assert all(f"| {model} | {planner} |" in out for planner in ("cem", "gd", "gd_warm"))
    root = tmp_path / "wall"
    assert (root / "results.md").read_text().startswith("| model | planner |")
    assert (root / "success_vs_seconds.png").stat().st_size > 10_000
    assert {p.name for p in root.glob("*.pt")} == {"base.pt", "online_seed0.pt", "adversarial_seed0.pt"}

    # the rows come from Ray workers: evaluating a checkpoint they wrote here, with their thread count,
    # gives the same success and distance as the table's row
    recipe = recipe_for("wall", quick=True)
    model, _ = load_checkpoint(root / "online_seed0.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        task = WallTask()
        metrics = evaluate(make_policy(model, task, "gd", recipe), task, episodes=10, seed=1000)
    finally:
        torch.set_num_threads(threads)
    assert f"| {100 * metrics['success_rate']:.1f} | {metrics['final_distance']:.3f} |" in \
        next(line for line in out.splitlines() if line.startswith("| online | gd |"))
    assert "on Ray (2 workers)" in out


def test_units_go_to_workers_longest_first_and_keep_their_relative_order():
    jobs = [SimpleNamespace(method=method, seed=seed) for seed in range(3) for method in ("base", *METHODS)]
    order = [(jobs[i].method, jobs[i].seed) for i in longest_first(jobs)]
    online_first = [(m, s) for s in range(3) for m in ("online", "both")]
    assert order[:6] == sorted(online_first, key=lambda unit: unit[1])
    assert order[6:] == [("base", s) for s in range(3)] + [("adversarial", s) for s in range(3)]
    assert sorted(longest_first(jobs)) == list(range(len(jobs)))


def test_reproduce_rejects_zero_workers(tmp_path):
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        ReproduceOptions(task="wall", out=str(tmp_path), quick=True, planners=("gd",), methods=(), workers=0)
    with pytest.raises(ValueError, match="unknown \\['sgd'\\]"):
        ReproduceOptions(planners=("gd", "sgd"))


@pytest.mark.slow
def test_reproduce_after_kill_keeps_finished_units(tmp_path, capsys, monkeypatch):
    import signal
    import subprocess
    import sys
    import time

    command = ["reproduce", "--task", "wall", "--quick", "--evaluation.episodes", "10", "--planners", "gd",
               "--methods", "adversarial",
               "--out", str(tmp_path)]
    process = subprocess.Popen([sys.executable, "-m", "torchrl_gbp.experiments.cli", *command], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    first_unit = tmp_path / "wall" / "units" / "base_seed0.json"
    try:
        for _ in range(600):  # at most 5 minutes; the first unit ends after the base model, in well under one
            if first_unit.exists() or process.poll() is not None:
                break
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert first_unit.exists()
    (tmp_path / "wall" / "units" / "adversarial_seed0.json").unlink(missing_ok=True)  # as if killed before it
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "kept 1 finished unit(s) of an earlier run: base/seed 0" in out
    assert "| base | gd |" in out and "| adversarial | gd |" in out
    # a damaged result file is not kept
    (tmp_path / "wall" / "units" / "base_seed0.json").write_text('{"fingerprint": ')
    assert main(command) == 0
    assert "kept 1 finished unit(s) of an earlier run: adversarial/seed 0" in capsys.readouterr().out
    # the task's pixel profile changing does not make a state run "another configuration"
    monkeypatch.setitem(PROFILES, "pixels", {**PROFILES["pixels"], "data.num_trajectories": 7})
    assert main(command) == 0
    assert "kept 2 finished unit(s) of an earlier run" in capsys.readouterr().out
