"""Diagnostics: model error on planner-visited states, cost landscapes, gradient norms, the report."""
from __future__ import annotations

import copy

import pytest
import torch

from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.diagnostics import (
    compare_planned_state_error,
    cost_landscape,
    execute_open_loop,
    goal_cost_agreement,
    gradient_norm_statistics,
    landscape_directions,
    landscape_roughness,
    make_bounded_gradient_planner,
    planned_state_error,
    planning_inputs,
    plot_landscapes,
    rank_correlation,
    sample_pairs,
)
from torchrl_gbp.experiments.diagnostics import diagnose
from torchrl_gbp.models import StateWorldModel, WorldModelConfig, save_checkpoint
from torchrl_gbp.planners import GoalCost, GradientPlanner
from torchrl_gbp.tasks import WallTask
from torchrl_gbp.train import build_world_model, train_world_model

TASK = WallTask()
CONFIG = WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5, hidden_dim=32, depth=1)
GRAD_KEYS = {"grad_norm_mean", "grad_norm_median", "grad_norm_max", "spike_fraction", "steps"}


class WallOracle(StateWorldModel):
    """Exact model: the identity latent rolled out with the true wall dynamics in normalised space."""

    def __init__(self, config: WorldModelConfig, task: WallTask) -> None:
        super().__init__(config)
        self.task = task

    def rollout(self, z_hist, a_hist, actions):
        position = self.obs_normalizer.denormalize(z_hist[..., -1, :])
        env_actions = self.denormalize_action(actions).unflatten(-1, (self.frameskip, -1))
        frames = []
        for t in range(actions.shape[-2]):
            for k in range(self.frameskip):
                position = self.task.step(position, env_actions[..., t, k, :])
            frames.append(self.obs_normalizer.normalize(position))
        return torch.stack(frames, dim=-2)


@pytest.fixture(scope="module")
def data():
    return WallTask().generate_dataset(200, seed=0)


@pytest.fixture(scope="module")
def untrained(data):
    torch.manual_seed(0)
    return build_world_model(CONFIG, data)


@pytest.fixture(scope="module")
def trained(data):
    torch.manual_seed(1)
    model = build_world_model(CONFIG, data)
    buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=64, generator=torch.Generator().manual_seed(0))
    train_world_model(model, buffer, steps=300, lr=3e-3, progress=False)
    return model


@pytest.fixture(scope="module")
def oracle(data):
    model = WallOracle(CONFIG, TASK)
    model.fit_normalization(data["observation"], data["action"][:, :50].reshape(200, 10, 10))
    return model


def planner_for(model, steps: int = 30) -> GradientPlanner:
    return make_bounded_gradient_planner(model, TASK, horizon=5, steps=steps, lr=0.3)


def problems(model, n: int = 4, seed: int = 0):
    start, goal = sample_pairs(TASK, n, seed)
    return planning_inputs(model, TASK.observe(start), TASK.observe(goal))


# ---------------------------------------------------------------- (a)
def test_executing_in_the_simulator_matches_the_true_dynamics():
    start = torch.tensor([[-0.5, 0.0], [0.4, 0.6]])
    actions = torch.rand(2, 3, 5, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    observations, final = execute_open_loop(TASK, start, actions)
    position = start
    for t in range(3):
        for k in range(5):
            position = TASK.step(position, actions[:, t, k])
        torch.testing.assert_close(observations["observation"][:, t], position)
    torch.testing.assert_close(final, position)


def test_exact_model_has_no_error_on_planned_states_and_an_untrained_one_does(oracle, untrained):
    exact = planned_state_error(oracle, TASK, planner_for(oracle), num_pairs=16, seed=0)
    assert set(exact) == {"error_per_step", "mean_error", "final_distance", "success_rate", "plan_cost"}
    assert len(exact["error_per_step"]) == 5
    assert exact["mean_error"] < 1e-10
    rough = planned_state_error(untrained, TASK, planner_for(untrained), num_pairs=16, seed=0)
    assert rough["mean_error"] > 1e-3
    assert 0.0 <= rough["success_rate"] <= 1.0 and rough["final_distance"] > 0


def test_training_lowers_the_error_on_planned_states(untrained, trained):
    results = compare_planned_state_error({"untrained": untrained, "trained": trained}, TASK, planner_for,
                                          num_pairs=16, seed=0)
    assert list(results) == ["untrained", "trained"]
    assert results["trained"]["mean_error"] < results["untrained"]["mean_error"]


def test_planned_state_error_is_reproducible_and_checks_its_arguments(trained, untrained):
    planner = planner_for(trained, steps=5)
    assert planned_state_error(trained, TASK, planner, 4, seed=3) == planned_state_error(trained, TASK, planner, 4,
                                                                                          seed=3)
    with pytest.raises(ValueError, match="num_pairs"):
        planned_state_error(trained, TASK, planner, num_pairs=0)
    with pytest.raises(ValueError, match="world_model"):
        planned_state_error(untrained, TASK, planner, num_pairs=2)


# ---------------------------------------------------------------- (b)
def test_landscape_has_the_grid_shape_and_the_plan_at_its_center(trained, tmp_path):
    z_hist, a_hist, z_goal = problems(trained, n=1)
    planner = planner_for(trained)
    center = planner.plan(z_hist, a_hist, z_goal, generator=torch.Generator().manual_seed(0)).actions[0]
    alphas, betas, costs = cost_landscape(trained, planner.objective, z_hist[0], a_hist[0], z_goal[0], center,
                                          resolution=21, span=0.5)
    assert alphas.shape == betas.shape == (21,) and costs.shape == (21, 21)
    center_cost = planner.score(z_hist, a_hist, z_goal, center[None, None])[0, 0]
    torch.testing.assert_close(costs[10, 10], center_cost)
    assert torch.isfinite(costs).all()
    path = plot_landscapes({"trained": (alphas, betas, costs), "also": (alphas, betas, 2 * costs)},
                           tmp_path / "sub" / "landscape.png")
    assert path.is_file() and path.stat().st_size > 1000


def test_landscape_directions_are_filter_normalised_and_argument_errors_name_the_argument(trained):
    center = torch.zeros(5, 10)
    center[0] = 3.0
    d = landscape_directions(center, seed=1)
    torch.testing.assert_close(d.norm(dim=-1)[:, 0], torch.full((2,), 3.0 * 10 ** 0.5))
    torch.testing.assert_close(d.norm(dim=-1)[:, 1:], torch.ones(2, 4))
    z_hist, a_hist, z_goal = problems(trained, n=1)
    with pytest.raises(ValueError, match="center_actions"):
        cost_landscape(trained, None, z_hist[0], a_hist[0], z_goal[0], torch.zeros(5, 3))
    with pytest.raises(ValueError, match="directions"):
        cost_landscape(trained, None, z_hist[0], a_hist[0], z_goal[0], center, directions=torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="resolution"):
        cost_landscape(trained, None, z_hist[0], a_hist[0], z_goal[0], center, resolution=2)


def test_roughness_ranks_a_noisy_landscape_above_a_smooth_one():
    a = torch.linspace(-1, 1, 41)
    bowl = a[:, None] ** 2 + 0.5 * a[None, :] ** 2
    noisy = bowl + 0.05 * torch.randn(41, 41, generator=torch.Generator().manual_seed(0))
    assert landscape_roughness(bowl) < 0.01 < landscape_roughness(noisy)
    assert landscape_roughness(a[:, None] + a[None, :]) == pytest.approx(0.0, abs=1e-6)  # a plane
    assert landscape_roughness(torch.ones(5, 5)) == 0.0
    assert landscape_roughness(10 * bowl + 3) == pytest.approx(landscape_roughness(bowl))
    with pytest.raises(ValueError, match="costs"):
        landscape_roughness(torch.ones(2, 5))


def test_plot_landscapes_rejects_an_empty_dict(tmp_path):
    with pytest.raises(ValueError, match="landscapes"):
        plot_landscapes({}, tmp_path / "x.png")


# ---------------------------------------------------------------- (c)
def test_gradient_norm_statistics_are_finite_with_the_documented_keys(trained):
    z_hist, a_hist, z_goal = problems(trained, n=4)
    stats = gradient_norm_statistics(trained, planner_for(trained, steps=20), z_hist, a_hist, z_goal, seed=0)
    assert set(stats) == GRAD_KEYS
    assert stats["steps"] == 20
    assert all(torch.isfinite(torch.tensor(float(v))) for v in stats.values())
    assert 0 < stats["grad_norm_median"] <= stats["grad_norm_max"]
    assert 0.0 <= stats["spike_fraction"] <= 1.0
    with pytest.raises(ValueError, match="steps"):
        gradient_norm_statistics(trained, planner_for(trained, steps=0), z_hist, a_hist, z_goal)


class RecordingCost(GoalCost):
    """The goal cost, remembering every batch of costs it computed."""

    def __init__(self) -> None:
        super().__init__(mode="all")
        self.seen: list[torch.Tensor] = []

    def __call__(self, z_traj, z_goal):
        cost = super().__call__(z_traj, z_goal)
        self.seen.append(cost.detach().clone())
        return cost


def test_gradient_recording_retraces_the_planners_own_search(trained):
    """Same seed, same optimiser: the recorded run visits exactly the plans GradientPlanner.plan visits."""
    from torchrl_gbp.diagnostics import _record_with_hook

    z_hist, a_hist, z_goal = problems(trained, n=3)
    objective = RecordingCost()
    planner = make_bounded_gradient_planner(trained, TASK, steps=12, lr=0.3, objective=objective, num_restarts=2)
    planner.plan(z_hist, a_hist, z_goal, generator=torch.Generator().manual_seed(5))
    searched, objective.seen = objective.seen[:-1], []  # plan scores the final actions once more
    norms = _record_with_hook(planner, z_hist, a_hist, z_goal, None, torch.Generator().manual_seed(5))
    assert len(norms) == 12 and norms[0].shape == (3 * 2,)
    torch.testing.assert_close(torch.stack(objective.seen[:-1]), torch.stack(searched), rtol=0, atol=0)


# ---------------------------------------------------------------- (d)
def test_the_cost_of_an_exact_model_ranks_goal_distance_and_a_blind_encoders_does_not(oracle, monkeypatch):
    seen = goal_cost_agreement(oracle, TASK, GoalCost(), num_pairs=200)
    assert seen["cost"] > 0.95 and seen["latent"] == seen["cost"]
    assert seen["proprio"] != seen["proprio"]  # NaN: this model has no proprio part
    blind = copy.deepcopy(oracle)
    noise = torch.Generator().manual_seed(0)
    monkeypatch.setattr(blind, "encode", lambda obs: torch.randn(obs.shape[0], 2, generator=noise))
    assert abs(goal_cost_agreement(blind, TASK, GoalCost(), num_pairs=200)["cost"]) < 0.25
    assert rank_correlation(torch.arange(5.0), -torch.arange(5.0)) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="rank_correlation"):
        rank_correlation(torch.zeros(3), torch.zeros(4))


def test_diagnose_writes_the_plot_and_the_table(tmp_path, untrained, trained):
    save_checkpoint(tmp_path / "base.pt", untrained)
    save_checkpoint(tmp_path / "tuned.pt", trained)
    result = diagnose("wall", {"base": tmp_path / "base.pt", "tuned": tmp_path / "tuned.pt"}, tmp_path / "out",
                      num_pairs=6, landscape_pairs=2, planner_steps=10, resolution=9)
    plot, table = tmp_path / "out" / "landscape.png", tmp_path / "out" / "diagnostics.md"
    assert result["paths"] == {"plot": plot, "table": table}
    assert plot.stat().st_size > 1000
    text = table.read_text()
    assert "| base |" in text and "| tuned |" in text and "roughness" in text and "cost vs distance" in text
    for numbers in result["models"].values():
        assert GRAD_KEYS <= set(numbers) and {"mean_error", "roughness", "success_rate"} <= set(numbers)
    with pytest.raises(ValueError, match="checkpoints"):
        diagnose("wall", {}, tmp_path / "none")
