"""Tests for the MPC policy: env rollouts, collectors, the evaluator, state handling and determinism."""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.collectors import Collector, Evaluator
from torchrl.data import Bounded, Unbounded
from torchrl.envs.utils import ExplorationType, set_exploration_type, step_mdp

from torchrl_gbp.models import StateWorldModel, TeacherForcingLoss, WorldModelConfig
from torchrl_gbp.planners import (
    CrossEntropyPlanner,
    GoalCost,
    GradientPlanner,
    MPCPolicy,
)
from torchrl_gbp.tasks import WallTask

FRAMESKIP = WallTask().frameskip
EPISODE = WallTask().episode_steps


def make_model(seed: int = 0, num_hist: int = 1) -> StateWorldModel:
    torch.manual_seed(seed)
    config = WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=FRAMESKIP, num_hist=num_hist,
                              hidden_dim=16, depth=1, action_embed_dim=4)
    return StateWorldModel(config)


def make_planner(kind: str, model: StateWorldModel, **kwargs):
    if kind == "gd":
        return GradientPlanner(model, **{"horizon": 3, "steps": 2, **kwargs})
    return CrossEntropyPlanner(model, **{"horizon": 3, "samples": 16, "elites": 4, "iterations": 2, **kwargs})


def make_policy(env, kind: str = "gd", model_seed: int = 0, num_hist: int = 1, planner_kwargs=None, **kwargs):
    model = make_model(model_seed, num_hist)
    return MPCPolicy(make_planner(kind, model, **(planner_kwargs or {})), env.action_spec, **kwargs)


def make_env(num_envs: int = 2, seed: int = 0, **task_kwargs):
    return WallTask(**task_kwargs).make_env(num_envs=num_envs, seed=seed)


def env_with_primer(policy: MPCPolicy, num_envs: int = 2, seed: int = 0, **task_kwargs):
    env = make_env(num_envs, seed, **task_kwargs)
    return env.append_transform(policy.make_tensordict_primer())


def assert_actions_in_spec(actions: torch.Tensor) -> None:
    assert torch.isfinite(actions).all()
    assert (actions >= -1).all() and (actions <= 1).all()


# ------------------------------------------------------------ env.rollout
@pytest.mark.parametrize("kind", ["gd", "cem"])
@pytest.mark.parametrize("no_grad", [False, True])
def test_policy_runs_in_env_rollout(kind: str, no_grad: bool) -> None:
    policy = make_policy(make_env(), kind)
    env = env_with_primer(policy)
    with torch.set_grad_enabled(not no_grad):
        rollout = env.rollout(12, policy)
    assert rollout.batch_size == (2, 12)
    assert rollout["action"].shape == (2, 12, 2)
    assert_actions_in_spec(rollout["action"])
    assert env.action_spec.is_in(rollout["action"][:, 0])
    assert torch.isfinite(rollout["planner", "cost"]).all()
    assert (rollout["planner", "seconds"][rollout["planner", "replanned"]] > 0).all()
    # the agents actually moved
    assert not torch.equal(rollout["next", "observation"][:, -1], rollout["observation"][:, 0])


def test_policy_reads_planning_seconds_from_its_clock() -> None:
    ticks = iter(range(0, 1000, 3))  # every read advances 3 "seconds": each planning call measures 3
    policy = make_policy(make_env(), "gd", clock=lambda: float(next(ticks)))
    rollout = env_with_primer(policy).rollout(2 * FRAMESKIP, policy)
    replanned = rollout["planner", "replanned"]
    assert replanned.any()
    assert (rollout["planner", "seconds"][replanned] == 3.0).all()


@pytest.mark.parametrize("n_taken", [1, 2, 3])
def test_policy_replans_every_n_taken_actions_times_frameskip(n_taken: int) -> None:
    policy = make_policy(make_env(), "gd", n_taken_actions=n_taken)
    env = env_with_primer(policy)
    steps = 2 * n_taken * FRAMESKIP + 3
    rollout = env.rollout(steps, policy)
    period = n_taken * FRAMESKIP
    t = torch.arange(steps)
    expected = (t % period == 0).expand(2, steps)
    assert torch.equal(rollout["planner", "replanned"].squeeze(-1), expected)
    assert torch.equal(rollout["planner", "steps_since_plan"].squeeze(-1), (t % period + 1).expand(2, steps))
    # the cost is only reported on replanning steps
    cost = rollout["planner", "cost"].squeeze(-1)
    assert (cost[~expected] == 0).all() and (cost[expected] > 0).all()


def test_policy_executes_the_plan_in_env_units() -> None:
    """Env action t is entry (t mod frameskip) of block (t div frameskip) of the denormalised plan."""
    policy = make_policy(make_env(), "cem", n_taken_actions=2)
    g = torch.Generator().manual_seed(0)
    policy.world_model.fit_normalization(torch.randn(100, 2, generator=g),
                                         torch.rand(100, 10, generator=g) * 0.8 - 0.3)
    env = env_with_primer(policy)
    rollout = env.rollout(10, policy)
    plan = rollout["planner", "plan"][:, 0]  # (B, H, 10), normalised
    env_units = policy.world_model.denormalize_action(plan).reshape(2, -1, FRAMESKIP, 2)
    expected = env_units[:, :2].reshape(2, 10, 2).clamp(-1, 1)
    torch.testing.assert_close(rollout["action"], expected)
    # the plan is kept unchanged between replans
    assert torch.equal(rollout["planner", "plan"][:, 9], plan)


@pytest.mark.parametrize("n_taken", [1, 2])
def test_policy_tracks_observation_and_action_history(n_taken: int) -> None:
    policy = make_policy(make_env(), "gd", num_hist=2, n_taken_actions=n_taken)
    g = torch.Generator().manual_seed(0)  # non-trivial statistics: the history holds normalised actions
    policy.world_model.fit_normalization(torch.randn(100, 2, generator=g), torch.rand(100, 10, generator=g) - 0.3)
    env = env_with_primer(policy)
    rollout = env.rollout(2 * FRAMESKIP + 1, policy)
    z = policy.world_model.encode(rollout["observation"])
    # on the first step the latent history repeats the first frame, with neutral past actions
    torch.testing.assert_close(rollout["planner", "latent_history"][:, 0], z[:, 0:1].expand(2, 2, 2))
    torch.testing.assert_close(rollout["planner", "goal_latent"][:, 0], policy.world_model.encode(rollout["goal"][:, 0]))
    assert (rollout["planner", "action_history"][:, 0] == 0).all()
    # after each completed model step the newest frame's latent and executed block are pushed
    for k in (1, 2):
        t = k * FRAMESKIP
        torch.testing.assert_close(rollout["planner", "latent_history"][:, t],
                                   torch.stack([z[:, t - FRAMESKIP], z[:, t]], 1))
        block = rollout["action"][:, t - FRAMESKIP:t].reshape(2, 1, 2 * FRAMESKIP)
        torch.testing.assert_close(rollout["planner", "action_history"][:, t],
                                   policy.world_model.normalize_action(block))
        torch.testing.assert_close(rollout["planner", "current_block"][:, t - 1], block[:, 0])


@pytest.mark.parametrize("n_taken", [1, 2])
def test_warm_start_reuses_the_shifted_previous_plan(n_taken: int) -> None:
    bounds = dict(action_low=-0.5 * torch.ones(10), action_high=0.5 * torch.ones(10))
    policy = make_policy(make_env(), "gd", n_taken_actions=n_taken, planner_kwargs=dict(steps=0, horizon=4, **bounds))
    env = env_with_primer(policy)
    period = n_taken * FRAMESKIP
    rollout = env.rollout(2 * period + 1, policy)
    first, second, third = (rollout["planner", "plan"][:, t] for t in (0, period, 2 * period))
    low, high = policy.planner.action_low, policy.planner.action_high
    pad = torch.zeros(2, n_taken, 10)
    assert first.abs().sum() > 0
    torch.testing.assert_close(second, torch.cat([first[:, n_taken:], pad], 1).clamp(low, high))
    torch.testing.assert_close(third, torch.cat([second[:, n_taken:], pad], 1).clamp(low, high))


def test_without_warm_start_each_plan_starts_cold() -> None:
    policy = make_policy(make_env(), "gd", warm_start=False, planner_kwargs=dict(steps=0))
    env = env_with_primer(policy)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout = env.rollout(FRAMESKIP + 1, policy)
    first, second = rollout["planner", "plan"][:, 0], rollout["planner", "plan"][:, FRAMESKIP]
    assert first.abs().sum() > 0
    # the deterministic generator is re-seeded on every call: the same cold start
    torch.testing.assert_close(second, first)


def test_the_policy_plans_with_the_planner_as_given_and_projects_only_the_env_action() -> None:
    env = make_env()
    model = make_model()
    g = torch.Generator().manual_seed(0)
    model.fit_normalization(torch.randn(50, 2, generator=g), torch.randn(50, 10, generator=g) * 3.0 + 0.1)
    unbounded = make_planner("gd", model, steps=0, init="randn")
    policy = MPCPolicy(unbounded, env.action_spec)
    assert policy.planner is unbounded and unbounded.action_low is None  # no hidden bounded copy
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        td = policy(env.reset())
    plan = model.denormalize_action(td["planner", "plan"][:, 0]).reshape(2, FRAMESKIP, 2)
    assert (plan.abs() > 1).any()  # the unbounded plan leaves the spec...
    torch.testing.assert_close(td["action"], plan[:, 0].clamp(-1, 1))  # ...the env action is projected into it
    own = make_planner("cem", model, action_low=-0.5 * torch.ones(10), action_high=0.5 * torch.ones(10))
    assert MPCPolicy(own, env.action_spec).planner is own


def test_outputs_match_the_primer_specs() -> None:
    """What the policy writes fits the specs its primer declares (collectors preallocate from them)."""
    policy = make_policy(make_env(), "gd", num_hist=3)
    env = env_with_primer(policy)
    reset = env.reset()
    spec = env.full_state_spec["planner"]
    assert "planner" not in env.full_observation_spec.keys()  # state side only: never copied under "next"
    # the primer zero-fills every state entry on reset
    assert spec.is_in(reset["planner"])
    assert not reset["planner", "initialized"].any()
    td = policy(reset)
    assert set(spec.keys()) == {k[1] for k in policy.out_keys if isinstance(k, tuple)}
    for key in spec.keys():
        assert td["planner", key].shape == spec[key].shape, key
        assert td["planner", key].dtype == spec[key].dtype, key
    assert spec.is_in(td["planner"])
    assert td["planner", "initialized"].all()


# -------------------------------------------------------------- collector
def test_policy_runs_in_a_collector_with_partial_resets() -> None:
    num_envs = 4

    def env_fn():
        return make_env(num_envs, seed=3)

    policy = make_policy(make_env(num_envs), "cem")
    frames_per_batch = num_envs * (EPISODE + 15)
    collector = Collector(env_fn, policy, frames_per_batch=frames_per_batch, total_frames=frames_per_batch,
                          auto_register_policy_transforms=True)
    try:
        batches = list(collector)
    finally:
        collector.shutdown()
    assert len(batches) == 1
    data = batches[0]
    assert data.batch_size == (num_envs, EPISODE + 15)
    assert_actions_in_spec(data["action"])
    is_init = data["is_init"].squeeze(-1)
    # the collection crossed an episode boundary in every env
    assert data["next", "truncated"].squeeze(-1).sum(1).eq(1).all()
    assert is_init.sum(1).eq(2).all()
    # after a reset the policy state is cleared
    assert data["planner", "replanned"].squeeze(-1)[is_init].all()
    assert data["planner", "steps_since_plan"].squeeze(-1)[is_init].eq(1).all()
    torch.testing.assert_close(data["planner", "latent_history"][is_init],
                               policy.world_model.encode(data["observation"][is_init]).unsqueeze(1))
    assert "planner" not in data["next"].keys()
    # replanning follows the episode clock, not the collector's
    replanned = data["planner", "replanned"].squeeze(-1)
    for env_idx in range(num_envs):
        starts = is_init[env_idx].nonzero().squeeze(-1).tolist()
        assert starts[0] == 0 and starts[1] == EPISODE
        t = torch.arange(data.shape[1])
        since_start = torch.where(t >= starts[1], t - starts[1], t)
        assert torch.equal(replanned[env_idx], since_start % FRAMESKIP == 0)


@pytest.mark.parametrize(("kind", "planner_kwargs"), [("cem", {}), ("gd", {"steps": 0})])
def test_only_the_rows_flagged_is_init_are_reset(kind: str, planner_kwargs: dict) -> None:
    """Rows that start an episode mid-plan replan alone, from a cold start (no warm start from the old
    episode's plan: with ``steps=0`` the GD plan is its start); the others keep their plan and clock."""
    policy = make_policy(make_env(3), kind, num_hist=2, planner_kwargs=planner_kwargs)
    env = env_with_primer(policy, num_envs=3)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout = env.rollout(FRAMESKIP + 3, policy)
        td = step_mdp(rollout[:, -1])  # the input of the next step, the policy's state carried along
        td.set("is_init", torch.tensor([[False], [True], [False]]))
        new_obs = torch.tensor([[0.5, 0.5], [-0.5, -0.5], [0.2, 0.2]])
        td.set("observation", new_obs)
        out = policy(td.clone())
    assert out["planner", "replanned"].squeeze(-1).tolist() == [False, True, False]
    assert out["planner", "steps_since_plan"].squeeze(-1).tolist() == [4, 1, 4]
    torch.testing.assert_close(out["planner", "latent_history"][1], policy.world_model.encode(new_obs[1]).expand(2, 2))
    assert (out["planner", "action_history"][1] == 0).all()
    for row in (0, 2):
        assert torch.equal(out["planner", "plan"][row], td["planner", "plan"][row])
        assert torch.equal(out["planner", "latent_history"][row], td["planner", "latent_history"][row])
    assert not torch.equal(out["planner", "plan"][1], td["planner", "plan"][1])
    # the fresh row plans as if it were alone in a fresh episode
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        alone = policy(TensorDict({"observation": new_obs[1:2], "goal": td["goal"][1:2]}, batch_size=[1]))
    torch.testing.assert_close(out["planner", "plan"][1], alone["planner", "plan"][0])
    torch.testing.assert_close(out["action"][1], alone["action"][0])


# -------------------------------------------------------------- evaluator
def test_policy_runs_under_the_evaluator() -> None:
    def env_fn():
        return make_env(2, seed=5)

    policy = make_policy(make_env(2), "gd")
    replan_rates = []

    def metrics_fn(td):
        rate = td["planner", "replanned"].float().mean().item()
        replan_rates.append(rate)
        return {"replan_rate": rate}

    evaluator = Evaluator(env=env_fn, policy=policy, num_trajectories=2, max_steps=EPISODE, backend="thread",
                          collector_kwargs={"auto_register_policy_transforms": True, "traj_format": "padded"}, metrics_fn=metrics_fn)
    try:
        metrics = evaluator.evaluate()
    finally:
        evaluator.shutdown()
    assert metrics, "the evaluator returned no metrics"
    for name, value in metrics.items():
        assert math.isfinite(float(value)), name
    assert metrics["eval/num_episodes"] == 2
    assert metrics["eval/episode_length"] == EPISODE
    assert metrics["eval/reward"] < 0  # minus the distance to the goal, summed
    # the policy state was carried between steps: one replan per model step
    assert replan_rates and all(r == pytest.approx(1 / FRAMESKIP, abs=0.02) for r in replan_rates)


# ------------------------------------------------------------ exploration
def _reset_td(policy: MPCPolicy, seed: int = 0):
    return env_with_primer(policy, seed=seed).reset()


@pytest.mark.parametrize("kind", ["gd", "cem"])
def test_deterministic_exploration_gives_identical_actions(kind: str) -> None:
    policy = make_policy(make_env(), kind)
    td = _reset_td(policy)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        torch.manual_seed(0)
        first = policy(td.clone())
        torch.manual_seed(1)  # the global RNG must not matter
        second = policy(td.clone())
    assert torch.equal(first["action"], second["action"])
    assert torch.equal(first["planner", "plan"], second["planner", "plan"])
    # a policy with another seed searches differently
    other = make_policy(make_env(), kind, seed=1)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        third = other(td.clone())
    assert not torch.equal(first["planner", "plan"], third["planner", "plan"])


def test_deterministic_rollouts_are_reproducible() -> None:
    policy = make_policy(make_env(), "cem")
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        a = env_with_primer(policy, seed=4).rollout(12, policy)
        b = env_with_primer(policy, seed=4).rollout(12, policy)
    assert torch.equal(a["action"], b["action"])


@pytest.mark.parametrize("kind", ["gd", "cem"])
def test_random_exploration_perturbs_actions_within_the_spec(kind: str) -> None:
    policy = make_policy(make_env(), kind, exploration_std=0.5)
    td = _reset_td(policy)
    with set_exploration_type(ExplorationType.RANDOM):
        torch.manual_seed(0)
        first = policy(td.clone())["action"]
        torch.manual_seed(1)
        second = policy(td.clone())["action"]
    assert not torch.equal(first, second)
    assert_actions_in_spec(first)
    assert_actions_in_spec(second)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        clean = policy(td.clone())["action"]
    assert not torch.equal(first, clean)


def test_random_exploration_with_zero_std_adds_no_noise() -> None:
    # zero-step GD from a zero cold start: the plan is fixed, so only the noise could differ
    policy = make_policy(make_env(), "gd", exploration_std=0.0, planner_kwargs=dict(steps=0, init="zeros"))
    td = _reset_td(policy)
    with set_exploration_type(ExplorationType.RANDOM):
        torch.manual_seed(0)
        first = policy(td.clone())["action"]
        torch.manual_seed(1)
        second = policy(td.clone())["action"]
    assert torch.equal(first, second)


# ------------------------------------------------------------ bad inputs
def test_missing_goal_raises_key_error_naming_goal() -> None:
    policy = make_policy(make_env(), "gd")
    td = _reset_td(policy).exclude("goal")
    with pytest.raises(KeyError, match="goal"):
        policy(td)


def test_custom_keys_are_read() -> None:
    env = make_env()
    model = make_model()
    policy = MPCPolicy(make_planner("gd", model), env.action_spec, in_keys=[("obs", "pos"), "target"],
                       out_keys=["act"])
    assert policy.in_keys[:3] == [("obs", "pos"), "target", "is_init"] and policy.out_keys[0] == "act"
    td = TensorDict({("obs", "pos"): torch.zeros(2, 2), "target": torch.ones(2, 2)}, batch_size=[2])
    out = policy(td)
    assert out["act"].shape == (2, 2)
    with pytest.raises(KeyError, match="target"):
        policy(TensorDict({("obs", "pos"): torch.zeros(2, 2), "goal": torch.ones(2, 2)}, batch_size=[2]))


def test_wrong_observation_shape_raises_value_error_naming_key_and_shape() -> None:
    policy = make_policy(make_env(), "gd")
    td = TensorDict({"observation": torch.zeros(2, 3), "goal": torch.zeros(2, 2)}, batch_size=[2])
    with pytest.raises(ValueError, match=r"obs_dim=2, got shape \(2, 3\)"):
        policy(td)
    td = TensorDict({"observation": torch.zeros(2, 2), "goal": torch.zeros(2, 1, 2)}, batch_size=[2])
    with pytest.raises(ValueError, match=r"'goal': \(1, 2\)"):
        policy(td)


def test_constructor_validation() -> None:
    env = make_env()
    model = make_model()
    planner = make_planner("gd", model)
    with pytest.raises(ValueError, match="n_taken_actions"):
        MPCPolicy(planner, env.action_spec, n_taken_actions=4)
    with pytest.raises(ValueError, match="n_taken_actions"):
        MPCPolicy(planner, env.action_spec, n_taken_actions=0)
    with pytest.raises(TypeError, match="Planner"):
        MPCPolicy(model, env.action_spec)
    with pytest.raises(ValueError, match="in_keys"):
        MPCPolicy(planner, env.action_spec, in_keys=["observation", "goal", "extra"])
    with pytest.raises(TypeError, match="Bounded"):
        MPCPolicy(planner, Unbounded((2, 2)))
    with pytest.raises(ValueError, match="env_action_dim=2"):
        MPCPolicy(planner, Bounded(-1.0, 1.0, shape=(2, 3)))


# ------------------------------------------------------------ batch dims
@pytest.mark.parametrize("kind", ["gd", "cem"])
def test_policy_accepts_any_leading_batch_dims(kind: str) -> None:
    policy = make_policy(make_env(), kind)
    g = torch.Generator().manual_seed(0)
    obs = torch.rand(2, 3, 2, generator=g) * 2 - 1
    goal = torch.rand(2, 3, 2, generator=g) * 2 - 1
    td = TensorDict({"observation": obs, "goal": goal}, batch_size=[2, 3])
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        out = policy(td.clone())
        flat = policy(td.reshape(6).clone())
    assert out["action"].shape == (2, 3, 2)
    assert out["planner", "plan"].shape == (2, 3, 3, 10)
    assert out["planner", "steps_since_plan"].shape == (2, 3, 1)
    assert_actions_in_spec(out["action"])
    torch.testing.assert_close(out["action"].reshape(6, 2), flat["action"])
    # the state written back is read on the next call
    out.set("observation", obs + 0.01)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        again = policy(out)
    assert again["planner", "steps_since_plan"].eq(2).all()
    assert not again["planner", "replanned"].any()


# ---------------------------------------------------------- closed loop
def test_policy_with_a_model_of_known_dynamics_reaches_goals() -> None:
    """End to end: a model trained on the free-space dynamics drives agents to same-room goals."""
    task = WallTask(pair_mode="same")
    model = make_model(seed=3)
    # model-step data of s' = s + speed * sum(actions in the block), away from walls
    g = torch.Generator().manual_seed(0)
    n, steps = 256, 4
    actions = torch.rand(n, steps - 1, FRAMESKIP * 2, generator=g) * 2 - 1
    states = [torch.rand(n, 2, generator=g) - 0.5]
    for t in range(steps - 1):
        states.append(states[-1] + task.speed * actions[:, t].reshape(n, FRAMESKIP, 2).sum(1))
    obs = torch.stack(states, 1)
    model.fit_normalization(obs, actions)
    loss_fn = TeacherForcingLoss(model)
    batch = TensorDict({"observation": obs, "action": actions}, batch_size=[n])  # env units
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        loss = loss_fn(batch)["loss_prediction"]
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert loss.item() < 5e-3

    planner = GradientPlanner(model, objective=GoalCost("last"), horizon=2, steps=30, lr=0.1)
    policy = MPCPolicy(planner, task.action_spec, n_taken_actions=1)
    env = task.make_env(num_envs=8, seed=0).append_transform(policy.make_tensordict_primer())
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        rollout = env.rollout(30, policy)
    start = (rollout["observation"][:, 0] - rollout["goal"][:, 0]).norm(dim=-1)
    final = (rollout["next", "observation"][:, -1] - rollout["goal"][:, -1]).norm(dim=-1)
    assert (start > 0.4).sum() >= 4
    assert (final < task.success_threshold).all(), (start, final)
    assert (final < 0.25 * start).all(), (start, final)
