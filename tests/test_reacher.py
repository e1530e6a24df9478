"""Tests for the dm_control reacher task: kinematics, exact state setting, env contract, sampling, dataset."""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

pytest.importorskip("dm_control")

from torchrl_gbp.tasks import make_task
from torchrl_gbp.tasks.reacher import ReacherEnv, ReacherTask, arm_geometry


@pytest.fixture(scope="module")
def task() -> ReacherTask:
    return ReacherTask()


def random_states(n: int, seed: int, velocity: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    state = ReacherTask.random_joint_states(torch.rand(n, 2, generator=g))
    state[:, 2:] = velocity * (torch.rand(n, 2, generator=g) * 2 - 1)
    return state


def test_geometry_is_read_from_the_dm_control_model() -> None:
    easy, hard = arm_geometry("easy"), arm_geometry("hard")
    assert easy["link1"] == pytest.approx(0.12) and easy["link2"] == pytest.approx(0.12)
    assert ReacherTask().success_threshold == pytest.approx(0.05 + 0.01)
    assert hard["target_size"] == pytest.approx(0.015)
    assert ReacherTask(difficulty="hard").success_threshold == pytest.approx(0.015 + 0.01)


def test_forward_kinematics_matches_the_physics(task: ReacherTask) -> None:
    state = random_states(6, seed=0)
    simulator = task.make_simulator(6)
    simulator.set_state(state)
    for i in range(6):
        finger = simulator._physics(i).named.data.geom_xpos["finger", :2]
        assert torch.allclose(task.fingertip(state[i]), torch.as_tensor(finger, dtype=torch.float32), atol=1e-6)


def test_inverse_kinematics_reaches_the_target_with_either_elbow(task: ReacherTask) -> None:
    g = torch.Generator().manual_seed(0)
    angle, radius = 2 * math.pi * torch.rand(256, generator=g), 0.05 + 0.15 * torch.rand(256, generator=g)
    target = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1)
    for elbow in (1.0, -1.0):
        goal = task.goal_state_at(target, elbow=elbow)
        assert torch.allclose(task.fingertip(goal), target, atol=1e-5)
        assert (goal[:, 1].sign() == elbow).all() and (goal[:, 1].abs() <= math.radians(160)).all()
        assert (goal[:, 2:] == 0).all()
    with pytest.raises(ValueError, match="too close to the base"):
        task.goal_state_at(torch.tensor([[0.01, 0.0]]))
    with pytest.raises(ValueError, match="target"):
        task.goal_state_at(torch.zeros(3))


@pytest.mark.parametrize("num_envs", [1, 3])
def test_specs(num_envs: int, task: ReacherTask) -> None:
    check_env_specs(task.make_env(num_envs=num_envs, seed=0))


def test_set_state_then_step_equals_stepping_the_original(task: ReacherTask) -> None:
    g = torch.Generator().manual_seed(1)
    a = task.make_env(num_envs=4, seed=0)
    td = a.reset()
    for _ in range(15):
        td = a.step(td.set("action", torch.rand(4, 2, generator=g) * 2 - 1))["next"]
    state, goal = a.get_state(), a.get_goal_state()
    assert (state[:, 2:].abs() > 0.1).any()  # moving, not at rest
    b = task.make_env(num_envs=4, seed=5)
    b.reset()
    b.set_state(state, goal)
    assert torch.equal(b.get_state(), state)
    for _ in range(30):
        action = TensorDict(action=torch.rand(4, 2, generator=g) * 2 - 1, batch_size=[4])
        out_a, out_b = a.step(action.clone())["next"], b.step(action.clone())["next"]
        assert torch.equal(a.get_state(), b.get_state())
        assert torch.equal(out_a["observation"], out_b["observation"])
        assert torch.equal(out_a["reward"], out_b["reward"])


def test_batched_stepping_equals_single_env_stepping(task: ReacherTask) -> None:
    n = 4
    g = torch.Generator().manual_seed(2)
    start, goal = task.sample_start_goal(n, g)
    actions = torch.rand(12, n, 2, generator=g) * 2 - 1
    batched = task.make_env(num_envs=n, seed=0)
    batched.reset(TensorDict(start_state=start, goal_state=goal, batch_size=[n]), set_state=True)
    singles = [task.make_env(num_envs=1, seed=0) for _ in range(n)]
    for i, env in enumerate(singles):
        env.reset(TensorDict(start_state=start[i : i + 1], goal_state=goal[i : i + 1], batch_size=[1]), set_state=True)
    for action in actions:
        out = batched.step(TensorDict(action=action, batch_size=[n]))["next"]
        for i, env in enumerate(singles):
            single = env.step(TensorDict(action=action[i : i + 1], batch_size=[1]))["next"]
            for key in ("observation", "goal", "reward", "done"):
                assert torch.equal(single[key][0], out[key][i]), key


def test_success_agrees_with_dm_control_reward(task: ReacherTask) -> None:
    start, goal = task.sample_start_goal(8, torch.Generator().manual_seed(3))
    env = task.make_env(num_envs=8, seed=0)
    env.reset(TensorDict(start_state=start, goal_state=goal, batch_size=[8]), set_state=True)
    assert not task.success(start, goal).any()
    assert (env.simulator.dm_control_rewards() < 1).all()
    env.set_state(goal)  # the goal state itself: success, and dm_control agrees
    assert task.success(env.get_state(), env.get_goal_state()).all()
    assert (env.simulator.dm_control_rewards() == 1).all()
    # a fingertip moved radially: inside the easy radius, outside the hard one
    tip = task.fingertip(goal)
    inside = task.goal_state_at(tip * (1 + 0.03 / tip.norm(dim=-1, keepdim=True)))  # 0.03 further out
    assert task.success(inside, goal).all()
    outside = task.goal_state_at(tip * (1 + 0.035 / tip.norm(dim=-1, keepdim=True)))
    assert not ReacherTask(difficulty="hard").success(outside, goal).any()
    far = goal.clone()
    far[:, 0] += math.pi  # the arm rotated by half a turn: fingertips at least 0.1 apart
    assert not task.success(far, goal).any()


def test_sampled_pairs_are_seeded_unsolved_and_like_dm_control(task: ReacherTask) -> None:
    start, goal = task.sample_start_goal(512, torch.Generator().manual_seed(7))
    again = task.sample_start_goal(512, torch.Generator().manual_seed(7))
    assert torch.equal(start, again[0]) and torch.equal(goal, again[1])
    assert not torch.equal(start, task.sample_start_goal(512, torch.Generator().manual_seed(8))[0])
    assert (task.distance(start, goal) >= task.success_threshold).all()
    radius = task.fingertip(goal).norm(dim=-1)
    assert (radius >= 0.05 - 1e-5).all() and (radius <= 0.2 + 1e-5).all()
    assert (start[:, 2:] == 0).all() and (goal[:, 2:] == 0).all()
    assert (start[:, 1].sign() == goal[:, 1].sign()).all()
    start, goal = task.sample_start_goal(256, torch.Generator().manual_seed(7), mode="far")
    assert (task.distance(start, goal) >= 0.15).all()
    with pytest.raises(ValueError, match="far"):
        task.sample_start_goal(4, torch.Generator(), mode="near")


def test_doing_nothing_solves_nothing(task: ReacherTask) -> None:
    env = task.make_env(num_envs=16, seed=0)
    rollout = env.rollout(20, lambda td: td.set("action", torch.zeros(16, 2)))
    assert torch.equal(rollout["observation"][:, 0], rollout["next", "observation"][:, -1])
    assert not task.success(env.get_state(), env.get_goal_state()).any()


def test_observation_is_a_function_of_the_state(task: ReacherTask) -> None:
    state = random_states(5, seed=4, velocity=3.0)
    obs = task.observation_from_state(state)
    assert obs.shape == (5, 8)
    assert torch.allclose(obs[:, :2], task.fingertip(state))
    assert torch.allclose(obs[:, 2:6], torch.stack([state[:, 0].cos(), state[:, 0].sin(),
                                                    state[:, 1].cos(), state[:, 1].sin()], -1))
    assert torch.equal(obs[:, 6:], state[:, 2:])
    assert torch.equal(task.observation_from_state(state.unsqueeze(0))[0], obs)


def test_dataset_contract_determinism_and_replay(task: ReacherTask) -> None:
    data = task.generate_dataset(6, trajectory_steps=30, seed=0)
    assert data.batch_size == torch.Size([6, 30])
    for key, size in [("observation", 8), ("state", 4), ("action", 2), (("next", "observation"), 8),
                      (("next", "state"), 4)]:
        assert data[key].shape == (6, 30, size), key
    assert data["episode"].dtype == torch.int64 and torch.equal(data["episode"][:, 0], torch.arange(6))
    assert (data["action"].abs() <= 1).all()
    assert torch.equal(data["state"][:, 1:], data["next", "state"][:, :-1])
    assert torch.equal(data["observation"], task.observation_from_state(data["state"]))
    assert (data["state"][:, 0, 2:] == 0).all()

    again = task.generate_dataset(6, trajectory_steps=30, seed=0)
    assert all(torch.equal(data[k], again[k]) for k in data.keys(True, True))
    assert not torch.equal(data["action"], task.generate_dataset(6, trajectory_steps=30, seed=1)["action"])
    assert task.generate_dataset(3).batch_size == torch.Size([3, task.episode_steps])

    # the transitions are the simulator's: replaying them from the recorded states reproduces them exactly
    simulator = task.make_simulator(6)
    for t in (0, 17):
        simulator.set_state(data["state"][:, t])
        simulator.step(data["action"][:, t])
        assert torch.equal(simulator.get_state(), data["next", "state"][:, t])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ReacherTask(difficulty="medium"), "difficulty"),
        (lambda: ReacherTask(pair_mode="near"), "pair mode"),
        (lambda: ReacherTask(episode_steps=0), "episode_steps"),
        (lambda: ReacherTask().generate_dataset(0), "num_trajectories"),
        (lambda: ReacherTask().generate_dataset(2, trajectory_steps=-1), "trajectory_steps"),
        (lambda: ReacherTask().generate_dataset(2, seed=1.5), "seed"),
        (lambda: ReacherTask().make_simulator(2).set_state(torch.zeros(3, 4)), r"state.*\(2, 4\)"),
        (lambda: ReacherTask().make_simulator(2).step(torch.zeros(2, 3)), r"action.*\(2, 2\)"),
        (lambda: ReacherTask().make_env(num_envs=2).set_state(torch.zeros(2, 2)), r"state.*\(2, 4\)"),
        (lambda: ReacherTask().distance(torch.zeros(4), torch.zeros(2)), "goal_state"),
    ],
)
def test_bad_inputs(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_registry() -> None:
    task = make_task("reacher", difficulty="hard")
    assert isinstance(task, ReacherTask) and task.difficulty == "hard"
    assert isinstance(task.make_env(num_envs=2, seed=0), ReacherEnv)


@pytest.mark.slow
def test_quick_reproduce_end_to_end(tmp_path) -> None:
    from torchrl_gbp.experiments.cli import main

    main(["reproduce", "--task", "reacher", "--quick", "--out", str(tmp_path)])
    root = tmp_path / "reacher"
    table = (root / "results.md").read_text()
    assert "| base | cem |" in table and "| base | gd |" in table
    assert (root / "success_vs_seconds.png").stat().st_size > 0
    assert (root / "base.pt").exists()
