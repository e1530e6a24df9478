"""Tests for the goal cost and the gradient, CEM, MPPI, iCEM and GD-CEM planners on known dynamics."""
from __future__ import annotations

import pytest
import torch

from torchrl_gbp.models import StateWorldModel, WorldModelConfig
from torchrl_gbp.planners import (
    CrossEntropyPlanner,
    GoalCost,
    GradientCEMPlanner,
    GradientPlanner,
    ImprovedCEMPlanner,
    PathIntegralPlanner,
    PlanResult,
    SearchBudget,
)

LOW, HIGH = -torch.ones(2), torch.ones(2)


class PointMass:
    """Known differentiable dynamics: each action moves the point by ``0.3 * action``."""

    action_dim = 2
    num_hist = 1

    def __init__(self) -> None:
        self.calls = 0

    def rollout(self, z_hist: torch.Tensor, a_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return z_hist[..., -1:, :] + 0.3 * actions.cumsum(-2)


KINDS = ["gd", "cem", "mppi", "icem", "gd_cem"]
GD_ONLY = {"steps", "lr", "noise_std", "init", "num_restarts", "optimizer", "optimizer_kwargs", "callback"}
SAMPLING_ONLY = {"samples", "elites", "iterations", "init_std", "min_std"}
# Options each kind ignores: those of the other family and the other sampling planners' own.
SKIPPED = {"gd": SAMPLING_ONLY | {"temperature", "noise_beta", "population_decay", "keep_elites"},
           "cem": GD_ONLY | {"temperature", "noise_beta", "population_decay", "keep_elites"},
           "mppi": GD_ONLY | {"noise_beta", "population_decay", "keep_elites"},
           "icem": GD_ONLY | {"temperature"},
           "gd_cem": {"init", "temperature", "noise_beta", "population_decay", "keep_elites"}}


def make_planner(kind: str, model=None, objective=None, **kwargs):
    """A bounded planner of ``kind``; options that belong to the other family are ignored."""
    model = PointMass() if model is None else model
    bounds = dict(action_low=LOW, action_high=HIGH)
    kwargs = {k: v for k, v in kwargs.items() if k not in SKIPPED[kind]}
    if kind == "gd":
        defaults = dict(horizon=5, steps=100, lr=0.1, noise_std=0.0)
        return GradientPlanner(model, objective=objective, **{**defaults, **bounds, **kwargs})
    if kind == "gd_cem":
        defaults = dict(horizon=5, samples=200, elites=20, iterations=3, steps=30, lr=0.1, noise_std=0.0)
        return GradientCEMPlanner(model, objective=objective, **{**defaults, **bounds, **kwargs})
    defaults = dict(horizon=5, samples=200, elites=20, iterations=15)
    cls = {"cem": CrossEntropyPlanner, "mppi": PathIntegralPlanner, "icem": ImprovedCEMPlanner}[kind]
    return cls(model, objective=objective, **{**defaults, **bounds, **kwargs})


def start_and_goals(n: int = 8, seed: int = 0, reach: float = 0.9):
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, 1, 2, generator=g) * 0.4 - 0.2
    sign = torch.where(torch.rand(n, 2, generator=g) < 0.5, -1.0, 1.0)
    goal = z[:, 0] + sign * (0.2 + 0.8 * torch.rand(n, 2, generator=g)) * reach
    return z, torch.zeros(n, 0, 2), goal


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def in_bounds(actions: torch.Tensor, low=LOW, high=HIGH) -> bool:
    return bool(torch.isfinite(actions).all() and (actions >= low).all() and (actions <= high).all())


# ---------------------------------------------------------------- GoalCost
def test_goal_cost_last_scores_only_the_final_step() -> None:
    traj = torch.zeros(3, 4, 2)
    traj[:, -1] = 1.0
    goal = torch.zeros(3, 2)
    torch.testing.assert_close(GoalCost("last")(traj, goal), torch.ones(3))
    traj[:, :-1] = 5.0  # earlier steps are ignored
    torch.testing.assert_close(GoalCost("last")(traj, goal), torch.ones(3))


@pytest.mark.parametrize("base", [0.5, 1.0, 2.0])
def test_goal_cost_all_uses_normalised_geometric_weights(base: float) -> None:
    horizon = 4
    per_step = torch.tensor([1.0, 2.0, 3.0, 4.0])
    traj = per_step.sqrt()[None, :, None].expand(2, horizon, 3)  # squared distance = per_step
    goal = torch.zeros(2, 3)
    w = base ** torch.arange(horizon, dtype=torch.float32)
    expected = (w / w.sum() * per_step).sum()
    torch.testing.assert_close(GoalCost("all", base=base)(traj, goal), expected.expand(2))
    weights = GoalCost("all", base=base).weights(horizon, goal)
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))


def test_goal_cost_default_is_all_with_base_one_half() -> None:
    cost = GoalCost()
    assert cost.mode == "all" and cost.base == 0.5 and cost.alpha == 1.0 and cost.proprio_dim == 0
    torch.testing.assert_close(cost.weights(3, torch.zeros(1)), torch.tensor([4.0, 2.0, 1.0]) / 7)


def test_goal_cost_alpha_weights_the_proprioceptive_tail() -> None:
    goal = torch.zeros(1, 4)
    visual_off = torch.tensor([[[2.0, 0.0, 0.0, 0.0]]])   # error in the visual part only
    proprio_off = torch.tensor([[[0.0, 0.0, 0.0, 2.0]]])  # error in the single proprio entry
    for alpha in (0.0, 0.5, 3.0):
        cost = GoalCost("last", alpha=alpha, proprio_dim=1)
        torch.testing.assert_close(cost(visual_off, goal), torch.tensor([4.0 / 3]))  # mean over 3 visual dims
        torch.testing.assert_close(cost(proprio_off, goal), torch.tensor([alpha * 4.0]))
    # without a proprio part alpha is ignored and all dims are averaged together
    torch.testing.assert_close(GoalCost("last", alpha=7.0)(proprio_off, goal), torch.tensor([1.0]))


def test_goal_cost_broadcasts_over_candidates() -> None:
    traj = torch.randn(3, 6, 5, 2, generator=gen())
    goal = torch.randn(3, 1, 2, generator=gen(1))
    cost = GoalCost()(traj, goal)
    assert cost.shape == (3, 6)
    torch.testing.assert_close(cost[1, 4], GoalCost()(traj[1, 4][None], goal[1])[0])


def test_goal_cost_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode"):
        GoalCost("first")
    with pytest.raises(ValueError, match="proprio_dim"):
        GoalCost(proprio_dim=-1)


def test_goal_cost_with_a_fully_proprioceptive_latent_is_finite() -> None:
    cost = GoalCost("last", alpha=2.0, proprio_dim=2)(torch.zeros(3, 4, 2), torch.ones(3, 2))
    torch.testing.assert_close(cost, torch.full((3,), 2.0))


def test_goal_cost_with_proprio_dim_larger_than_the_latent_raises() -> None:
    with pytest.raises(ValueError, match="proprio_dim"):
        GoalCost("last", proprio_dim=3)(torch.zeros(3, 4, 2), torch.ones(3, 2))


# -------------------------------------------------------- reaching goals
@pytest.mark.parametrize("kind", KINDS)
def test_planner_reaches_reachable_goals(kind: str) -> None:
    model = PointMass()
    planner = make_planner(kind, model, GoalCost("last"))
    z, a_hist, goal = start_and_goals(8)
    result = planner.plan(z, a_hist, goal, generator=gen(1))
    assert isinstance(result, PlanResult)
    assert result.actions.shape == (8, 5, 2) and result.cost.shape == (8,)
    assert in_bounds(result.actions)
    final = model.rollout(z, a_hist, result.actions)[:, -1]
    error = (final - goal).norm(dim=-1)
    assert (error < 0.02).all(), error
    # the returned cost is the cost of the returned plan
    torch.testing.assert_close(result.cost, GoalCost("last")(model.rollout(z, a_hist, result.actions), goal))
    assert not result.actions.requires_grad and not result.cost.requires_grad


@pytest.mark.parametrize("kind", KINDS)
def test_planner_improves_on_the_trivial_plan_with_the_default_cost(kind: str) -> None:
    planner = make_planner(kind, objective=None, horizon=3, steps=30, samples=64, elites=8, iterations=5)
    z, a_hist, goal = start_and_goals(8, seed=1, reach=0.5)
    result = planner.plan(z, a_hist, goal, generator=gen(2))
    idle = GoalCost()(z[:, -1:].expand(-1, 3, -1), goal)  # cost of standing still
    assert (result.cost < 0.3 * idle).all()


@pytest.mark.parametrize("kind", KINDS)
def test_plans_stay_finite_and_in_bounds_for_a_huge_cost(kind: str) -> None:
    planner = make_planner(kind, steps=20, iterations=5)
    z, a_hist, goal = start_and_goals(4)
    far = goal + 1e4
    result = planner.plan(z, a_hist, far, generator=gen(0))
    assert in_bounds(result.actions)
    assert torch.isfinite(result.cost).all()
    # every planner moves toward the far goal on the first step
    assert (result.actions[:, 0] > 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_asymmetric_bounds_are_respected(kind: str) -> None:
    low, high = torch.tensor([-0.2, 0.0]), torch.tensor([0.5, 0.1])
    planner = make_planner(kind, action_low=low, action_high=high, steps=10, iterations=3)
    z, a_hist, goal = start_and_goals(4)
    init = torch.randn(4, 5, 2, generator=gen(3)) * 3
    result = planner.plan(z, a_hist, goal, init=init, generator=gen(0))
    assert in_bounds(result.actions, low, high)
    # a goal far along -x: the plan sits on the lower bound of x
    result = planner.plan(z, a_hist, goal - torch.tensor([100.0, 0.0]), generator=gen(0))
    assert in_bounds(result.actions, low, high)
    assert (result.actions[:, 0, 0] < -0.15).all()


def test_unbounded_planner_is_not_clamped() -> None:
    planner = GradientPlanner(PointMass(), objective=GoalCost("last"), horizon=1, steps=200, lr=0.2, noise_std=0.0)
    z = torch.zeros(2, 1, 2)
    goal = torch.tensor([[3.0, 0.0], [0.0, -3.0]])  # needs |action| = 10 in one step
    result = planner.plan(z, torch.zeros(2, 0, 2), goal, generator=gen())
    torch.testing.assert_close(result.actions[:, 0], goal / 0.3, atol=0.05, rtol=0)


# ---------------------------------------------------------- determinism
@pytest.mark.parametrize("kind", KINDS)
def test_fixed_generator_gives_identical_plans(kind: str) -> None:
    kwargs = dict(steps=10, iterations=3, samples=32, elites=4)
    if kind == "gd":
        kwargs["noise_std"] = 0.01  # noise drawn from the generator too
    planner = make_planner(kind, **kwargs)
    z, a_hist, goal = start_and_goals(4)
    first = planner.plan(z, a_hist, goal, generator=gen(5))
    torch.manual_seed(123)  # the global RNG must not matter
    second = planner.plan(z, a_hist, goal, generator=gen(5))
    assert torch.equal(first.actions, second.actions)
    assert torch.equal(first.cost, second.cost)
    third = planner.plan(z, a_hist, goal, generator=gen(6))
    assert not torch.equal(first.actions, third.actions)


# ------------------------------------------------------------ warm start
@pytest.mark.parametrize("init_mode", ["randn", "zeros"])
def test_gradient_planner_with_zero_steps_returns_the_projected_init(init_mode: str) -> None:
    planner = make_planner("gd", steps=0, init=init_mode)
    z, a_hist, goal = start_and_goals(4)
    init = torch.randn(4, 5, 2, generator=gen(1)) * 2
    result = planner.plan(z, a_hist, goal, init=init, generator=gen())
    torch.testing.assert_close(result.actions, init.clamp(-1, 1))
    torch.testing.assert_close(result.cost, GoalCost()(PointMass().rollout(z, a_hist, result.actions), goal))
    # the init is not modified in place
    assert init.abs().max() > 1


def test_gradient_planner_cold_start_modes() -> None:
    z, a_hist, goal = start_and_goals(4)
    zeros = make_planner("gd", steps=0, init="zeros").plan(z, a_hist, goal, generator=gen())
    assert torch.equal(zeros.actions, torch.zeros(4, 5, 2))
    randn = make_planner("gd", steps=0, init="randn").plan(z, a_hist, goal, generator=gen())
    expected = torch.randn(4, 1, 5, 2, generator=gen())[:, 0].clamp(-1, 1)
    torch.testing.assert_close(randn.actions, expected)


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_sampling_planner_starts_from_init(kind: str) -> None:
    """With a vanishing search std, the plan stays at the (projected) warm start."""
    planner = make_planner(kind, init_std=1e-6, min_std=1e-6, iterations=2, samples=8, elites=2)
    z, a_hist, goal = start_and_goals(4)
    init = torch.randn(4, 5, 2, generator=gen(1)) * 0.5
    result = planner.plan(z, a_hist, goal, init=init, generator=gen())
    assert init.abs().max() > 1  # some entries need projecting
    torch.testing.assert_close(result.actions, init.clamp(-1, 1), atol=1e-4, rtol=0)
    cold = planner.plan(z, a_hist, goal, generator=gen())
    torch.testing.assert_close(cold.actions, torch.zeros(4, 5, 2), atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_one_iteration_refits_the_mean_to_the_elites_and_returns_the_best_plan_seen(kind: str) -> None:
    """CEM: the plain mean of the ``elites`` cheapest samples; MPPI: their exp(-cost / T) weighted mean.

    The plan returned is the cheaper of that mean and the best sample, as for every planner.
    """
    model = PointMass()
    planner = make_planner(kind, model, GoalCost("last"), samples=32, elites=5, iterations=1, init_std=0.7,
                           temperature=0.1)
    z, a_hist, goal = start_and_goals(3)
    init = torch.randn(3, 5, 2, generator=gen(1)) * 0.3
    result = planner.plan(z, a_hist, goal, init=init, generator=gen(4))
    # the same draws, by hand
    noise = torch.randn(3, 32, 5, 2, generator=gen(4))
    candidates = (init.unsqueeze(1) + 0.7 * noise).clamp(-1, 1)
    cost = GoalCost("last")(model.rollout(z.unsqueeze(1), None, candidates), goal.unsqueeze(1))
    elite_cost, index = cost.topk(5, dim=1, largest=False)
    elites = candidates[torch.arange(3)[:, None], index]
    if kind == "cem":
        weights = torch.full((3, 5), 0.2)
    else:
        weights = torch.softmax(-(elite_cost - elite_cost[:, :1]) / 0.1, dim=1)
    mean = (weights[..., None, None] * elites).sum(1)
    mean_cost = GoalCost("last")(model.rollout(z.unsqueeze(1), None, mean.unsqueeze(1)), goal.unsqueeze(1))[:, 0]
    use_mean = mean_cost <= elite_cost[:, 0]
    expected = torch.where(use_mean[:, None, None], mean, elites[:, 0])
    torch.testing.assert_close(result.actions, expected)
    torch.testing.assert_close(result.cost, torch.minimum(mean_cost, elite_cost[:, 0]))


def test_a_good_warm_start_is_kept_by_the_gradient_planner() -> None:
    model = PointMass()
    planner = make_planner("gd", model, GoalCost("last"), steps=5, lr=0.5)
    z, a_hist, goal = start_and_goals(8)
    solved = make_planner("gd", model, GoalCost("last"), steps=150).plan(z, a_hist, goal, generator=gen())
    warm = planner.plan(z, a_hist, goal, init=solved.actions, generator=gen())
    cold = planner.plan(z, a_hist, goal, generator=gen())
    # best-seen tracking: a few large steps never make the result worse than the warm start
    assert (warm.cost <= solved.cost + 1e-7).all()
    assert warm.cost.mean() < cold.cost.mean()


def test_restarts_return_the_best_search() -> None:
    z, a_hist, goal = start_and_goals(4)
    one = make_planner("gd", None, GoalCost("last"), steps=3, lr=0.05, init="randn", num_restarts=1)
    many = make_planner("gd", None, GoalCost("last"), steps=3, lr=0.05, init="randn", num_restarts=16)
    c1 = one.plan(z, a_hist, goal, generator=gen()).cost
    c16 = many.plan(z, a_hist, goal, generator=gen()).cost
    assert (c16 <= c1 + 1e-7).all() and (c16 < c1).any()


# ------------------------------------------------------------ validation
@pytest.mark.parametrize("kind", KINDS)
def test_wrong_shapes_raise_naming_the_expected_shape(kind: str) -> None:
    planner = make_planner(kind, steps=1, iterations=1, samples=4, elites=2)
    z, a_hist, goal = start_and_goals(4)
    with pytest.raises(ValueError, match=r"z_goal must have shape \(4, 2\)"):
        planner.plan(z, a_hist, goal[:, :1])
    with pytest.raises(ValueError, match=r"z_goal must have shape \(4, 2\)"):
        planner.plan(z, a_hist, goal[:3])
    with pytest.raises(ValueError, match=r"init must have shape \(4, 5, 2\)"):
        planner.plan(z, a_hist, goal, init=torch.zeros(4, 4, 2))
    with pytest.raises(ValueError, match=r"a_hist \(B, h - 1, 2\)"):
        planner.plan(z, torch.zeros(4, 0, 3), goal)
    with pytest.raises(ValueError, match=r"z_hist \(B, h, D\)"):
        planner.plan(z[:, 0], a_hist, goal)


def test_planner_constructor_validation() -> None:
    model = PointMass()
    with pytest.raises(ValueError, match="horizon"):
        GradientPlanner(model, horizon=0)
    with pytest.raises(ValueError, match="init"):
        GradientPlanner(model, init="uniform")
    with pytest.raises(ValueError, match="num_restarts"):
        GradientPlanner(model, num_restarts=0)
    with pytest.raises(ValueError, match="elites"):
        CrossEntropyPlanner(model, samples=4, elites=5)
    with pytest.raises(ValueError, match="iterations"):
        CrossEntropyPlanner(model, iterations=0)
    with pytest.raises(ValueError, match="temperature"):
        PathIntegralPlanner(model, temperature=0.0)


# -------------------------------------------------------- batch handling
def test_gradient_planner_is_batch_size_independent() -> None:
    torch.manual_seed(0)
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=2, hidden_dim=32, depth=2))
    planner = GradientPlanner(model, horizon=4, steps=15, lr=0.1, init="zeros", noise_std=0.0,
                              action_low=-torch.ones(4), action_high=torch.ones(4))
    g = gen(0)
    z = torch.randn(4, 1, 2, generator=g)
    goal = torch.randn(4, 2, generator=g)
    a_hist = torch.zeros(4, 0, 4)
    batched = planner.plan(z, a_hist, goal)
    for i in range(4):
        alone = planner.plan(z[i:i + 1], a_hist[i:i + 1], goal[i:i + 1])
        torch.testing.assert_close(alone.actions[0], batched.actions[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(alone.cost[0], batched.cost[i], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(batched.actions[0], batched.actions[1])  # the elements did differ


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_hist", [1, 3])
def test_planners_run_on_the_world_model_with_history(kind: str, num_hist: int) -> None:
    torch.manual_seed(0)
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5, num_hist=num_hist,
                                             hidden_dim=16, depth=1))
    low, high = model.action_interface.model_bounds(-torch.ones(2), torch.ones(2))
    planner = make_planner(kind, model, horizon=3, steps=3, samples=16, elites=4, iterations=2,
                           action_low=low, action_high=high)
    z = model.encode(torch.randn(2, num_hist, 2, generator=gen()))
    a_hist = torch.zeros(2, num_hist - 1, model.action_dim)
    with torch.no_grad():  # callers such as collectors plan under no_grad
        result = planner.plan(z, a_hist, torch.zeros(2, 2), generator=gen())
    assert result.actions.shape == (2, 3, 10)
    assert in_bounds(result.actions, low, high)
    assert not any(p.grad is not None for p in model.parameters())  # planning never trains the model


def test_planner_uses_the_model_rollout_per_search_step() -> None:
    model = PointMass()
    make_planner("gd", model, steps=7).plan(*start_and_goals(2), generator=gen())
    assert model.calls == 8  # one scored rollout per step plus the final check
    model = PointMass()
    make_planner("cem", model, iterations=4, samples=8, elites=2).plan(*start_and_goals(2), generator=gen())
    assert model.calls == 5


# ---------------------------------------------------------- search budget
class SlowPointMass(PointMass):
    """:class:`PointMass` whose rollout costs ``delay`` seconds of a simulated clock (a model too big for the budget).

    Calling the instance reads that clock, so a test measures time without a wall clock.
    """

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def rollout(self, z_hist, a_hist, actions):
        self.now += self.delay
        return super().rollout(z_hist, a_hist, actions)


@pytest.mark.parametrize("kind", KINDS)
def test_time_budget_is_honoured_and_the_best_plan_so_far_returned(kind: str) -> None:
    z, a_hist, goal = start_and_goals(4)
    costs = []
    model = SlowPointMass(0.01)
    planner = make_planner(kind, model, steps=10**6, iterations=10**6, samples=64, elites=8,
                           budget=SearchBudget(max_seconds=0.3, clock=model), callback=lambda s, a, c, g: costs.append(c))
    result = planner.plan(z, a_hist, goal, generator=gen())
    assert model.now <= 0.3 + 1e-9, model.now  # every rollout, the final scoring included, fit in the budget
    assert result.stop_reason == "time" and 25 <= result.iterations < 30
    assert in_bounds(result.actions)
    trivial = planner.score(z, a_hist, goal, torch.zeros(4, 1, 5, 2)).squeeze(1)
    assert (result.cost < trivial).all()
    if kind == "gd":  # no worse than the cheapest plan any iteration scored
        assert (result.cost <= torch.stack(costs).squeeze(-1).min(0).values).all()


@pytest.mark.parametrize("kind", KINDS)
def test_plateau_stops_a_converged_search_early(kind: str) -> None:
    z, a_hist, goal = start_and_goals(8, reach=0.5)
    steps = 2000 if kind == "gd" else 300  # GD-CEM's gradient stage starts from a converged CEM stage
    converged = make_planner(kind, steps=steps, iterations=200).plan(z, a_hist, goal, generator=gen())
    # Each env stops on its own plateau: Adam's overshoots stall one env's best cost for several steps,
    # which a batch total averaged away, so the gradient planners get more patience.
    patience = 15 if kind == "gd" else 5
    planner = make_planner(kind, steps=steps, iterations=200, budget=SearchBudget(patience=patience, tolerance=1e-3))
    result = planner.plan(z, a_hist, goal, generator=gen())
    assert result.stop_reason == "plateau" and converged.stop_reason == "iterations"
    assert result.iterations < {"gd": 1000, "cem": 100, "mppi": 100, "icem": 150, "gd_cem": 1000}[kind]
    assert (result.cost <= converged.cost + 1e-3).all()


def test_a_warm_start_at_the_optimum_plateaus_at_once() -> None:
    z, a_hist, goal = start_and_goals(8, reach=0.5)
    # the optimum: a full search (a plateau budget stops each env on its own, some before the optimum)
    cold = make_planner("gd", steps=500).plan(z, a_hist, goal, generator=gen())
    planner = make_planner("gd", steps=500, budget=SearchBudget(patience=3, tolerance=1e-3))
    warm = planner.plan(z, a_hist, goal, init=cold.actions, generator=gen())
    assert warm.iterations <= 4 < cold.iterations


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_seconds": 0.0}, "max_seconds"), ({"patience": 0}, "patience"), ({"tolerance": -1.0}, "tolerance")],
)
def test_search_budget_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchBudget(**kwargs)


@pytest.mark.slow
# ------------------------------------------------------------ compilation
@pytest.mark.parametrize("kind", KINDS)
def test_compiled_and_eager_planners_give_the_same_plan(kind: str) -> None:
    torch.manual_seed(0)
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=2, hidden_dim=16, depth=1))
    low, high = model.action_interface.model_bounds(-torch.ones(2), torch.ones(2))
    z, a_hist, goal = model.encode(torch.randn(3, 1, 2, generator=gen())), torch.zeros(3, 0, 4), torch.ones(3, 2)
    plans = []
    for compile in (False, True):
        planner = make_planner(kind, model, horizon=3, steps=20, samples=32, elites=4, iterations=4,
                               noise_std=0.01, action_low=low, action_high=high, compile=compile)
        plans.append(planner.plan(z, a_hist, goal, generator=gen(3)))
    assert planner.compile  # compilation worked; it did not fall back to eager
    torch.testing.assert_close(plans[1].actions, plans[0].actions, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(plans[1].cost, plans[0].cost, atol=1e-5, rtol=1e-4)


def test_a_failing_compiler_falls_back_to_eager_with_a_warning(monkeypatch) -> None:
    def broken_compile(fn, **kwargs):
        def compiled(*args):
            raise RuntimeError("no C++ compiler")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    z, a_hist, goal = start_and_goals(4)
    eager = make_planner("gd", steps=10).plan(z, a_hist, goal, generator=gen())
    planner = make_planner("gd", steps=10, compile=True)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        result = planner.plan(z, a_hist, goal, generator=gen())
    assert not planner.compile
    assert torch.equal(result.actions, eager.actions)


@pytest.mark.parametrize("kind", KINDS)
def test_bfloat16_autocast_scores_in_low_precision_and_returns_float32_costs(kind: str) -> None:
    torch.manual_seed(0)
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=2, hidden_dim=32, depth=2))
    low, high = model.action_interface.model_bounds(-torch.ones(2), torch.ones(2))
    z, a_hist, goal = model.encode(torch.randn(3, 1, 2, generator=gen())), torch.zeros(3, 0, 4), torch.ones(3, 2)
    options = dict(horizon=3, steps=30, samples=64, elites=8, iterations=5, action_low=low, action_high=high)
    full = make_planner(kind, model, **options)
    half = make_planner(kind, model, autocast_dtype=torch.bfloat16, **options)
    candidates = torch.rand(3, 4, 3, 4, generator=gen()) * 2 - 1
    exact, rounded = full.score(z, a_hist, goal, candidates), half.score(z, a_hist, goal, candidates)
    assert rounded.dtype == torch.float32 and not torch.equal(rounded, exact)
    torch.testing.assert_close(rounded, exact, rtol=0.05, atol=1e-3)
    result = half.plan(z, a_hist, goal, generator=gen())
    assert result.cost.dtype == torch.float32 and in_bounds(result.actions, low, high)
    trivial = full.score(z, a_hist, goal, torch.zeros(3, 1, 3, 4)).squeeze(1)
    assert (full.score(z, a_hist, goal, result.actions.unsqueeze(1)).squeeze(1) < trivial).all()


def test_plain_adam_steps_as_torch_fused_adam_does() -> None:
    """GD's plain Adam runs as AdamSteps (the functional fused update): the plans of torch.optim.Adam(fused=True)."""
    z, a_hist, goal = start_and_goals(4)
    fast = make_planner("gd", steps=30, noise_std=0.01).plan(z, a_hist, goal, generator=gen())
    torch_adam = make_planner("gd", steps=30, noise_std=0.01, optimizer_kwargs={"fused": True})
    assert torch.equal(torch_adam.plan(z, a_hist, goal, generator=gen()).actions, fast.actions)


def test_plain_adam_steps_follow_stride_zero_gradients_as_torch_adam_does() -> None:
    """Autograd gives a sum's gradient as a stride-0 expansion; the fused step reads it densely (it once moved each
    batch element differently and returned a plan with another plan's cost)."""

    class Sum:
        action_dim = 2

        def rollout(self, z_hist, a_hist, actions):
            return (z_hist[..., -1:, :] + actions.sum(-2, keepdim=True)).expand(*actions.shape[:-1], 2)

    z, a_hist, goal = torch.zeros(3, 1, 2), torch.zeros(3, 0, 2), torch.ones(3, 2)
    planner = GradientPlanner(Sum(), objective=GoalCost("last"), horizon=2, steps=50, lr=0.1, noise_std=0.0,
                              init="zeros")
    result = planner.plan(z, a_hist, goal)
    reference = GradientPlanner(Sum(), objective=GoalCost("last"), horizon=2, steps=50, lr=0.1, noise_std=0.0,
                                init="zeros", optimizer=torch.optim.SGD).plan(z, a_hist, goal)
    assert torch.allclose(result.actions[0], result.actions[1])  # identical problems, identical plans
    torch.testing.assert_close(result.cost, planner.score(z, a_hist, goal, result.actions.unsqueeze(1)).squeeze(1))
    assert (result.cost < 1e-3).all() and (reference.cost < 1e-3).all()
