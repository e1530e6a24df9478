"""Tests for the PushT task: exact replay, batching, pairs, success, dataset and the quick pipeline."""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

pytest.importorskip("gym_pusht")

from torchrl_gbp.tasks import make_task  # noqa: E402
from torchrl_gbp.tasks.pusht import (  # noqa: E402
    AGENT_RADIUS,
    PushTTask,
    block_center_of_mass,
    pusht_step,
    scripted_push_action,
    tee_clearance,
)


def random_actions(steps: int, n: int, seed: int) -> torch.Tensor:
    return torch.rand(steps, n, 2, generator=torch.Generator().manual_seed(seed)) * 512


@pytest.mark.parametrize("num_envs", [1, 3])
def test_specs(num_envs: int) -> None:
    check_env_specs(PushTTask().make_env(num_envs=num_envs, seed=0))


def test_set_state_then_step_replays_the_original_exactly() -> None:
    task = PushTTask()
    first = task.make_env(num_envs=4, seed=0)
    # The scripted pusher starts just behind the T, so the replay covers pushes, not just free motion.
    direction = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    start = torch.zeros(4, 10)
    start[:, 2:4] = 256.0
    start[:, :2] = block_center_of_mass(start) - 100.0 * direction
    first.reset(TensorDict(start_state=start, goal_state=start.clone(), batch_size=[4]), set_state=True)
    state = first.get_state()
    for _ in range(8):
        action = scripted_push_action(state, direction, torch.full((4,), 10.0), torch.full((4,), 30.0))
        first.step(TensorDict(action=action, batch_size=[4]))
        state = first.get_state()
    assert (state[:, 7:10].abs().sum(-1) > 0).any()  # a block is moving mid-replay
    second = task.make_env(num_envs=4, seed=123)
    second.reset()
    second.set_state(state, first.get_goal_state())
    assert torch.equal(second.get_state(), state)
    for action in random_actions(15, 4, seed=1):
        a = first.step(TensorDict(action=action, batch_size=[4]))["next"]
        b = second.step(TensorDict(action=action, batch_size=[4]))["next"]
        assert torch.equal(first.get_state(), second.get_state())
        assert torch.equal(a["observation"], b["observation"]) and torch.equal(a["reward"], b["reward"])


def test_batched_env_equals_per_env_envs() -> None:
    task = PushTTask()
    n = 3
    start, goal = task.sample_start_goal(n, torch.Generator().manual_seed(5))
    batched = task.make_env(num_envs=n, seed=0)
    batched.reset(TensorDict(start_state=start, goal_state=goal, batch_size=[n]), set_state=True)
    singles = [task.make_env(num_envs=1, seed=0) for _ in range(n)]
    for i, env in enumerate(singles):
        env.reset(TensorDict(start_state=start[i : i + 1], goal_state=goal[i : i + 1], batch_size=[1]), set_state=True)
    for action in random_actions(10, n, seed=2):
        out = batched.step(TensorDict(action=action, batch_size=[n]))["next"]
        for i, env in enumerate(singles):
            single = env.step(TensorDict(action=action[i : i + 1], batch_size=[1]))["next"]
            for key in ("observation", "goal", "reward", "done"):
                assert torch.equal(single[key][0], out[key][i]), key
            assert torch.equal(env.get_state()[0], batched.get_state()[i])


def test_observation_is_a_pure_function_of_the_state() -> None:
    task = PushTTask()
    env = task.make_env(num_envs=2, seed=0)
    td = env.reset()
    assert torch.equal(td["observation"], task.observation_from_state(env.get_state()))
    assert torch.equal(td["goal"], task.observation_from_state(env.get_goal_state()))
    state = env.get_state()
    turned = state.clone()
    turned[:, 4] += 2 * math.pi  # the angle enters through cos / sin only
    assert torch.allclose(task.observation_from_state(turned), task.observation_from_state(state), atol=1e-5)
    assert task.observation_from_state(torch.zeros(5, 7, 10)).shape == (5, 7, 6)


def test_pairs_are_seeded_reachable_and_never_start_solved() -> None:
    task = PushTTask()
    start, goal = task.sample_start_goal(32, torch.Generator().manual_seed(0))
    again = task.sample_start_goal(32, torch.Generator().manual_seed(0))
    assert torch.equal(start, again[0]) and torch.equal(goal, again[1])
    assert not torch.equal(start, task.sample_start_goal(32, torch.Generator().manual_seed(1))[0])
    assert not task.success(start, goal).any()
    assert (task.distance(start, goal) >= 1.5 * task.success_threshold).all()
    # Starts are at rest with the agent just behind the T (the first push step touches it); goals keep the
    # block in the arena and, after the agent backs off, mostly have the agent clear of the T.
    assert (start[:, 5:] == 0).all()
    start_gap = tee_clearance(start[:, :2], start[:, 2:5]) - AGENT_RADIUS
    assert ((start_gap > 0) & (start_gap < 5)).all()
    goal_gap = tee_clearance(goal[:, :2], goal[:, 2:5]) - AGENT_RADIUS
    assert (goal_gap > 10).float().mean() > 0.6 and goal_gap.median() > 25
    assert ((goal[:, 2:4] > 20) & (goal[:, 2:4] < 492)).all()
    # The scripted pusher moves the block along its push direction.
    direction = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    pushed = task.run_scripted_pusher(start[:2], 40, direction, torch.zeros(2), torch.full((2,), 20.0))
    assert ((pushed[:, 2:4] - start[:2, 2:4]) * direction).sum(-1).min() > 20
    start, goal = task.sample_start_goal(8, torch.Generator().manual_seed(3), mode="random")
    assert not task.success(start, goal).any()


@pytest.mark.parametrize("seed", [0, 2])
def test_approach_pairs_share_the_pushed_goals_with_the_agent_away(seed: int) -> None:
    task = PushTTask()
    pushed = task.sample_start_goal(64, torch.Generator().manual_seed(seed), mode="pushed")
    approach = task.sample_start_goal(64, torch.Generator().manual_seed(seed), mode="approach")
    assert torch.equal(approach[1], pushed[1]) and torch.equal(approach[0][:, 2:], pushed[0][:, 2:])
    gap = tee_clearance(approach[0][:, :2], approach[0][:, 2:5]) - AGENT_RADIUS
    assert (gap >= 10).all() and gap.median() > 2 * (tee_clearance(pushed[0][:, :2], pushed[0][:, 2:5]) -
                                                     AGENT_RADIUS).max()


def test_success_and_distance() -> None:
    task = PushTTask()
    start, goal = task.sample_start_goal(4, torch.Generator().manual_seed(0))
    assert task.success(goal, goal).all() and (task.distance(goal, goal) == 0).all()
    near = goal.clone()
    near[:, 2] += 15.0
    near[:, 4] += math.radians(15)
    near[:, :2] += 100.0  # the agent's position does not matter
    assert task.success(near, goal).all()
    assert torch.allclose(task.distance(near, goal), torch.full((4,), 30.0), atol=1e-3)
    far = goal.clone()
    far[:, 2] += 25.0
    assert not task.success(far, goal).any()
    turned = goal.clone()
    turned[:, 4] += math.radians(25)
    assert not task.success(turned, goal).any()
    wrapped = goal.clone()
    wrapped[:, 4] += 2 * math.pi  # the same pose
    assert task.success(wrapped, goal).all()


def test_dataset_contract_and_determinism() -> None:
    task = PushTTask()
    data = task.generate_dataset(12, trajectory_steps=30, seed=0)
    assert data.batch_size == torch.Size([12, 30])
    assert data["state"].shape == (12, 30, 10) and data["observation"].shape == (12, 30, 6)
    assert data["next", "state"].shape == (12, 30, 10) and data["action"].shape == (12, 30, 2)
    assert data["episode"].dtype == torch.int64 and torch.equal(data["episode"][:, 0], torch.arange(12))
    assert ((data["action"] >= 0) & (data["action"] <= 512)).all()
    assert torch.equal(data["state"][:, 1:], data["next", "state"][:, :-1])
    assert torch.equal(data["observation"], task.observation_from_state(data["state"]))
    # Transitions are the simulator's own.
    for i, t in [(0, 0), (5, 17), (11, 29)]:
        replay = pusht_step(data["state"][i, t].double().tolist(), data["action"][i, t].double().tolist())
        assert torch.equal(torch.tensor(replay, dtype=torch.float32), data["next", "state"][i, t])
    moved = (data["next", "state"][:, -1, 2:4] - data["state"][:, 0, 2:4]).norm(dim=-1)
    assert (moved > 5).float().mean() > 0.5  # most trajectories push the block
    again = task.generate_dataset(12, trajectory_steps=30, seed=0)
    assert all(torch.equal(data[k], again[k]) for k in data.keys(True, True))
    other = task.generate_dataset(12, trajectory_steps=30, seed=1)
    assert not torch.equal(data["action"], other["action"])
    assert task.generate_dataset(2).batch_size == torch.Size([2, task.episode_steps])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: PushTTask(push_steps=0), "push_steps"),
        (lambda: PushTTask(episode_steps=-1), "episode_steps"),
        (lambda: PushTTask(pair_mode="teleport"), "pushed"),
        (lambda: PushTTask().sample_start_goal(2, torch.Generator(), mode="teleport"), "teleport"),
        (lambda: PushTTask().generate_dataset(0), "num_trajectories"),
        (lambda: PushTTask().generate_dataset(2, trajectory_steps=0), "trajectory_steps"),
        (lambda: PushTTask().generate_dataset(2, seed=0.5), "seed"),
        (lambda: PushTTask().observation_from_state(torch.zeros(3, 5)), r"state.*\(\.\.\., 10\)"),
        (lambda: PushTTask().distance(torch.zeros(3, 10), torch.zeros(3, 9)), "goal_state"),
        (lambda: PushTTask().make_simulator(2).set_state(torch.zeros(3, 10)), r"\(2, 10\)"),
        (lambda: PushTTask().make_simulator(2).step(torch.zeros(2, 3)), "action"),
        (lambda: PushTTask().make_env(num_envs=2).set_state(torch.zeros(2, 5)), r"\(2, 10\)"),
    ],
)
def test_bad_inputs_raise(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_make_task_registry() -> None:
    task = make_task("pusht", push_steps=10)
    assert isinstance(task, PushTTask) and task.push_steps == 10


@pytest.mark.slow
def test_quick_reproduce_end_to_end(tmp_path) -> None:
    from torchrl_gbp.experiments.cli import main

    main(["reproduce", "--task", "pusht", "--quick", "--out", str(tmp_path)])
    root = tmp_path / "pusht"
    table = (root / "results.md").read_text()
    assert "| base | cem |" in table and "| base | gd |" in table
    assert (root / "success_vs_seconds.png").stat().st_size > 0
    assert (root / "base.pt").exists()
