"""Behaviour of iCEM (coloured noise, elite carry-over, shrinking population) and GD-CEM (CEM, then gradient steps).

The planner-wide contracts (reaching goals, bounds, determinism, budgets, shapes) are checked for every planner,
these two included, in test_planners.py; here are what sets them apart.
"""
from __future__ import annotations

import pytest
import torch
from test_planners import PointMass, gen, start_and_goals

from torchrl_gbp.experiments.cli import parse
from torchrl_gbp.experiments.pipeline import make_policy
from torchrl_gbp.experiments.recipes import recipe_for
from torchrl_gbp.models import StateWorldModel, WorldModelConfig
from torchrl_gbp.planners import (
    PLANNER_OPTIONS,
    CrossEntropyPlanner,
    GoalCost,
    GradientCEMPlanner,
    ImprovedCEMPlanner,
    coloured_noise,
    make_planner,
)
from torchrl_gbp.tasks import make_task

BOUNDS = dict(action_low=-torch.ones(2), action_high=torch.ones(2))


class RecordingPointMass(PointMass):
    """:class:`PointMass` that keeps every batch of candidates it rolls out, ``(B, N, H, A)``."""

    def __init__(self) -> None:
        super().__init__()
        self.candidates: list[torch.Tensor] = []

    def rollout(self, z_hist, a_hist, actions):
        self.candidates.append(actions.detach().clone())
        return super().rollout(z_hist, a_hist, actions)


class PointMass8D(PointMass):
    """:class:`PointMass` with an 8-D action and latent."""

    action_dim = 8


def lag1_autocorrelation(x: torch.Tensor) -> float:
    """Lag-1 autocorrelation along dim -2 (time) of zero-mean sequences ``(..., T, A)``."""
    return float((x[..., 1:, :] * x[..., :-1, :]).mean() / x.pow(2).mean())


# ------------------------------------------------------------ coloured noise
def test_coloured_noise_is_time_correlated_for_beta_above_zero_and_white_at_zero() -> None:
    like = torch.zeros(())
    white = coloured_noise((4000, 16, 2), 0.0, like, gen(0))
    pink = coloured_noise((4000, 16, 2), 1.0, like, gen(0))
    red = coloured_noise((4000, 16, 2), 2.0, like, gen(0))
    assert abs(lag1_autocorrelation(white)) < 0.03
    assert 0.2 < lag1_autocorrelation(pink) < lag1_autocorrelation(red)
    assert lag1_autocorrelation(red) > 0.6
    for noise in (white, pink, red):  # unit variance at every step, zero mean
        torch.testing.assert_close(noise.var(dim=(0, 2)), torch.ones(16), atol=0.1, rtol=0)
        assert abs(float(noise.mean())) < 0.05
    # also over the short horizons planners use, and one step is plain white noise
    assert lag1_autocorrelation(coloured_noise((4000, 5, 2), 2.0, like, gen(1))) > 0.3
    torch.testing.assert_close(coloured_noise((3, 1, 2), 2.0, like, gen(2)), torch.randn(3, 1, 2, generator=gen(2)))


@pytest.mark.parametrize("noise_beta", [0.0, 2.0])
def test_icem_samples_plans_with_the_noise_colour_asked_for(noise_beta: float) -> None:
    model = RecordingPointMass()
    planner = ImprovedCEMPlanner(model, horizon=16, samples=500, elites=10, iterations=1, noise_beta=noise_beta)
    planner.plan(torch.zeros(4, 1, 2), torch.zeros(4, 0, 2), torch.ones(4, 2), generator=gen())
    first = model.candidates[0]  # unbounded, mean zero, std one: the candidates are the noise itself
    if noise_beta == 0:
        assert abs(lag1_autocorrelation(first)) < 0.05
    else:
        assert lag1_autocorrelation(first) > 0.6


# ------------------------------------------------------- population schedule
def test_icem_population_shrinks_by_the_decay_down_to_twice_the_elites() -> None:
    model = RecordingPointMass()
    planner = ImprovedCEMPlanner(model, horizon=5, samples=100, elites=10, iterations=6, population_decay=1.5,
                                 keep_elites=0.3, **BOUNDS)
    z, a_hist, goal = start_and_goals(2)
    planner.plan(z, a_hist, goal, init=torch.zeros(2, 5, 2), generator=gen())
    drawn = [100, 67, 44, 30, 20, 20]  # 100 / 1.5**i, never under 2 * elites
    assert [planner.population_size(i) for i in range(6)] == drawn
    # scored per iteration: the draws, plus the warm start at iteration 0 and 3 carried elites after it;
    # then the final mean
    assert [c.shape[1] for c in model.candidates] == [101, 70, 47, 33, 23, 23, 1]
    flat = ImprovedCEMPlanner(PointMass(), samples=100, elites=10, population_decay=1.0)
    assert {flat.population_size(i) for i in range(10)} == {100}
    small = ImprovedCEMPlanner(PointMass(), samples=12, elites=10)  # never more than samples
    assert small.population_size(5) == 12


# ------------------------------------------------------- elite carry-over
def iteration_best_costs(keep_elites: float, seed: int) -> list[float]:
    model = RecordingPointMass()
    objective = GoalCost("last")
    planner = ImprovedCEMPlanner(model, objective=objective, horizon=5, samples=16, elites=4, iterations=12,
                                 keep_elites=keep_elites, init_std=1.0, min_std=0.3, **BOUNDS)
    z, a_hist, goal = start_and_goals(4, seed=seed)
    planner.plan(z, a_hist, goal, generator=gen(seed))
    rollouts = model.candidates[:-1]  # the last one scores the final mean
    costs = [objective(PointMass().rollout(z.unsqueeze(1), None, c), goal.unsqueeze(1)) for c in rollouts]
    return [float(c.min(dim=1).values.sum()) for c in costs]


def test_carried_elites_make_the_best_cost_of_each_iteration_non_increasing() -> None:
    for seed in range(3):
        best = iteration_best_costs(0.5, seed)
        assert all(b <= a + 1e-6 for a, b in zip(best, best[1:])), best
    # without carry-over (a wide std keeps resampling) some iteration's best is worse than the one before
    increases = [b > a + 1e-6 for seed in range(3)
                 for a, b in zip(iteration_best_costs(0.0, seed), iteration_best_costs(0.0, seed)[1:])]
    assert any(increases)


def test_icem_keeps_a_good_warm_start() -> None:
    """The warm start (the shifted previous plan in MPC) is scored at iteration 0, so it is never lost."""
    objective = GoalCost("last")
    z, a_hist, goal = start_and_goals(8)
    solved = make_planner("gd", PointMass(), objective=objective, steps=200, lr=0.1, noise_std=0.0,
                          **BOUNDS).plan(z, a_hist, goal, generator=gen())
    planner = ImprovedCEMPlanner(PointMass(), objective=objective, samples=16, elites=4, iterations=2, init_std=1.0, **BOUNDS)
    warm = planner.plan(z, a_hist, goal, init=solved.actions, generator=gen())
    assert (warm.cost <= solved.cost + 1e-7).all()
    planner.keep_elites = 0.0  # nothing carried: the wide first draws lose the warm start's cost
    assert (planner.plan(z, a_hist, goal, init=solved.actions, generator=gen()).cost > solved.cost).any()


# ---------------------------------------------------------------- GD-CEM
def test_gd_cem_without_gradient_steps_is_its_cem_stage() -> None:
    z, a_hist, goal = start_and_goals(4)
    cem = CrossEntropyPlanner(PointMass(), samples=32, elites=4, iterations=3, **BOUNDS)
    hybrid = GradientCEMPlanner(PointMass(), samples=32, elites=4, iterations=3, steps=0, **BOUNDS)
    expected, result = cem.plan(z, a_hist, goal, generator=gen(3)), hybrid.plan(z, a_hist, goal, generator=gen(3))
    torch.testing.assert_close(result.actions, expected.actions)
    torch.testing.assert_close(result.cost, expected.cost)


def test_gd_cem_refines_below_its_cem_stage_and_below_cem_with_as_many_iterations() -> None:
    """On a 40-dimensional search (8-D point mass, 5 steps), 12 gradient steps after 3 CEM iterations beat both
    those 3 iterations and 15 CEM iterations."""
    model = PointMass8D()
    z = torch.rand(8, 1, 8, generator=gen()) * 0.4 - 0.2
    goal = z[:, 0] + torch.rand(8, 8, generator=gen(1)) * 1.2 - 0.6
    a_hist = torch.zeros(8, 0, 8)
    options = dict(horizon=5, samples=64, elites=8, action_low=-torch.ones(8), action_high=torch.ones(8))
    cem_stage = CrossEntropyPlanner(model, iterations=3, **options).plan(z, a_hist, goal, generator=gen(2))
    hybrid = GradientCEMPlanner(model, iterations=3, steps=12, lr=0.1, noise_std=0.0, num_restarts=2, **options)
    refined = hybrid.plan(z, a_hist, goal, generator=gen(2))
    assert (refined.cost <= cem_stage.cost + 1e-7).all() and refined.cost.mean() < 0.5 * cem_stage.cost.mean()
    longer_cem = CrossEntropyPlanner(model, iterations=15, **options).plan(z, a_hist, goal, generator=gen(2))
    assert (refined.cost < longer_cem.cost).all()
    assert refined.iterations == 15  # both stages count: 3 CEM iterations, 12 gradient steps


def test_gd_cem_refines_the_best_candidates_in_parallel() -> None:
    steps = []
    hybrid = GradientCEMPlanner(PointMass(), samples=32, elites=4, iterations=2, steps=3, num_restarts=3,
                                callback=lambda step, actions, cost, grad: steps.append(actions.shape), **BOUNDS)
    hybrid.plan(*start_and_goals(5), generator=gen())
    assert steps == [torch.Size([5, 3, 5, 2])] * 3


# ------------------------------------------------------- names and arguments
@pytest.mark.parametrize(
    ("cls", "kwargs", "argument"),
    [(ImprovedCEMPlanner, {"noise_beta": -0.5}, "noise_beta"),
     (ImprovedCEMPlanner, {"population_decay": 0.8}, "population_decay"),
     (ImprovedCEMPlanner, {"keep_elites": 1.5}, "keep_elites"),
     (ImprovedCEMPlanner, {"samples": 4, "elites": 5}, "elites"),
     (ImprovedCEMPlanner, {"iterations": 0}, "iterations"),
     (GradientCEMPlanner, {"elites": 4, "num_restarts": 5}, "num_restarts"),
     (GradientCEMPlanner, {"lr": 0.0}, "lr"),
     (GradientCEMPlanner, {"steps": -1}, "steps"),
     (GradientCEMPlanner, {"iterations": 0}, "iterations"),
     (GradientCEMPlanner, {"noise_std": -1.0}, "noise_std")],
)
def test_bad_arguments_raise_naming_them(cls, kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        cls(PointMass(), **kwargs)


@pytest.mark.parametrize("name", ["icem", "gd_cem"])
def test_planner_names_work_in_the_factory_the_policy_and_the_command_line(name: str) -> None:
    task = make_task("wall")
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5, hidden_dim=16, depth=1))
    budget = {"samples": 16, "elites": 4, "iterations": 2, **({"steps": 2} if name == "gd_cem" else {})}
    policy = make_policy(model, task, PLANNER_OPTIONS[name](**budget), recipe_for("wall"))
    assert type(policy.planner) is {"icem": ImprovedCEMPlanner, "gd_cem": GradientCEMPlanner}[name]
    env = task.make_env(num_envs=2, seed=0)
    env.append_transform(policy.make_tensordict_primer())
    actions = env.rollout(6, policy)["action"]
    assert actions.shape == (2, 6, 2) and actions.abs().max() <= 1
    _, options, _, _ = parse(["evaluate", "--checkpoint", "base.pt", "--planner", name])
    assert options.planner == name
    assert parse(["reproduce"])[1].planners == ("cem", "gd", "gd_warm")  # the default comparison
