"""Tests for the wall task: physics, env contract, pair sampling and dataset."""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from torchrl_gbp.tasks import Task, WallEnv, WallTask, make_task
from torchrl_gbp.tasks.wall import WALL_HALF_THICKNESS, crossing_fraction, wall_step

DOOR_HALF_WIDTH = 0.15


def in_door(y: torch.Tensor) -> torch.Tensor:
    return y.abs() <= DOOR_HALF_WIDTH


def assert_outside_slab_or_in_door(position: torch.Tensor) -> None:
    inside_slab = position[..., 0].abs() <= WALL_HALF_THICKNESS
    assert not (inside_slab & ~in_door(position[..., 1])).any()


def test_pushing_across_the_wall_outside_the_door_never_crosses() -> None:
    g = torch.Generator().manual_seed(0)
    n = 4096
    side = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    x = side * (0.06 + 0.3 * torch.rand(n, generator=g))
    y = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) * (
        0.16 + 0.8 * torch.rand(n, generator=g)
    )
    position = torch.stack([x, y], dim=-1)
    push = torch.stack([-side * 5.0, torch.zeros(n)], dim=-1)  # beyond the bounds: clamped
    for _ in range(20):
        position = wall_step(position, push)
        assert (position[:, 0].sign() == side).all()
        assert_outside_slab_or_in_door(position)
    assert torch.allclose(position[:, 1], y)


def test_random_motion_changes_side_only_through_the_door() -> None:
    g = torch.Generator().manual_seed(1)
    n = 2048
    position = torch.rand(n, 2, generator=g) * 2 - 1
    position = wall_step(position, torch.zeros(n, 2))  # moves points started inside the slab out
    for _ in range(200):
        action = torch.rand(n, 2, generator=g) * 2 - 1
        new = wall_step(position, action)
        crossed = (position[:, 0] < -WALL_HALF_THICKNESS) & (new[:, 0] > WALL_HALF_THICKNESS)
        crossed |= (position[:, 0] > WALL_HALF_THICKNESS) & (new[:, 0] < -WALL_HALF_THICKNESS)
        assert not crossed.any()  # one step never jumps over the whole slab
        changed = position[:, 0].sign() != new[:, 0].sign()
        assert in_door(position[changed, 1]).all()
        assert_outside_slab_or_in_door(new)
        assert (new.abs() <= 1).all()
        position = new


def test_crossing_through_the_door() -> None:
    position = torch.tensor([[-0.3, 0.0]])
    for _ in range(10):
        position = wall_step(position, torch.tensor([[1.0, 0.0]]))
    assert position[0, 0] > 0
    assert torch.allclose(position, torch.tensor([[0.7, 0.0]]), atol=1e-5)


def test_set_state_get_state_round_trip_and_shape_error() -> None:
    env = WallEnv(num_envs=3, seed=0)
    env.reset()
    state = torch.tensor([[-0.5, 0.2], [0.3, -0.7], [0.0, 0.1]])
    goal = torch.tensor([[0.5, 0.5], [-0.5, 0.0], [0.9, 0.9]])
    env.set_state(state, goal)
    assert torch.equal(env.get_state(), state)
    assert torch.equal(env.get_goal_state(), goal)
    env.get_state().zero_()  # a copy: the env is unaffected
    assert torch.equal(env.get_state(), state)
    with pytest.raises(ValueError, match=r"\(3, 2\).*got \(2, 2\)"):
        env.set_state(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"goal_state.*\(3, 2\)"):
        env.set_state(state, torch.zeros(3))


def test_batched_stepping_equals_single_env_stepping() -> None:
    g = torch.Generator().manual_seed(2)
    n = 8
    state = torch.rand(n, 2, generator=g) * 1.6 - 0.8
    state[:, 0] = state[:, 0].sign() * state[:, 0].abs().clamp_min(0.1)
    goal = torch.rand(n, 2, generator=g) * 1.6 - 0.8
    actions = torch.rand(10, n, 2, generator=g) * 2 - 1

    batched = WallEnv(num_envs=n, seed=0)
    batched.reset()
    batched.set_state(state, goal)
    singles = [WallEnv(num_envs=1, seed=0) for _ in range(n)]
    for i, env in enumerate(singles):
        env.reset()
        env.set_state(state[i : i + 1], goal[i : i + 1])

    for action in actions:
        out = batched.step(TensorDict(action=action, batch_size=[n]))["next"]
        for i, env in enumerate(singles):
            single = env.step(TensorDict(action=action[i : i + 1], batch_size=[1]))["next"]
            for key in ("observation", "goal", "reward", "done", "truncated"):
                assert torch.equal(single[key][0], out[key][i]), key


@pytest.mark.parametrize("num_envs", [1, 4])
def test_specs(num_envs: int) -> None:
    check_env_specs(WallEnv(num_envs=num_envs, seed=0))


def test_partial_reset_leaves_other_envs_untouched() -> None:
    env = WallEnv(num_envs=4, seed=0)
    td = env.reset()
    td = env.step(td.set("action", torch.ones(4, 2)))
    before, goals = env.get_state(), env.get_goal_state()
    mask = torch.tensor([True, False, True, False]).unsqueeze(-1)
    out = env.reset(td["next"].clone().set("_reset", mask))
    after = env.get_state()
    assert torch.equal(after[1], before[1]) and torch.equal(after[3], before[3])
    assert torch.equal(env.get_goal_state()[[1, 3]], goals[[1, 3]])
    assert not torch.equal(after[[0, 2]], before[[0, 2]])
    assert torch.equal(out["observation"], after)
    # step counts restart only for the reset envs: the others truncate one step earlier
    rest = env.rollout(49, auto_reset=False, tensordict=out, break_when_any_done=False)
    assert rest["next", "truncated"][:, -1].squeeze(-1).tolist() == [False, True, False, True]


def test_reset_to_given_pairs() -> None:
    env = WallEnv(num_envs=2, seed=0)
    start = torch.tensor([[-0.5, 0.3], [0.4, -0.2]])
    goal = -start
    td = env.reset(TensorDict(start_state=start, goal_state=goal, batch_size=[2]), set_state=True)
    assert torch.equal(td["observation"], start) and torch.equal(td["goal"], goal)
    with pytest.raises(ValueError, match="goal_state"):
        env.reset(TensorDict(start_state=start, batch_size=[2]), set_state=True)


def test_same_seed_same_pairs_and_opposite_sides() -> None:
    def pairs(env: WallEnv) -> list[torch.Tensor]:
        return [torch.cat([td["observation"], td["goal"]], -1) for td in (env.reset() for _ in range(5))]

    a, b = pairs(WallEnv(num_envs=64, seed=7)), pairs(WallEnv(num_envs=64, seed=7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], pairs(WallEnv(num_envs=64, seed=8))[0])
    for pair in a:  # default mode "opposite"
        assert (pair[:, 0].sign() != pair[:, 2].sign()).all()
        assert (pair[:, [0, 2]].abs() >= 0.1).all() and (pair.abs() <= 0.9).all()


def test_pair_modes() -> None:
    task = WallTask()
    start, goal = task.sample_start_goal(512, torch.Generator().manual_seed(0), mode="same")
    assert (start[:, 0].sign() == goal[:, 0].sign()).all()
    start, goal = task.sample_start_goal(512, torch.Generator().manual_seed(0), mode="random")
    same = (start[:, 0].sign() == goal[:, 0].sign()).float().mean()
    assert 0.4 < same < 0.6
    with pytest.raises(ValueError, match="opposite"):
        task.sample_start_goal(4, torch.Generator(), mode="diagonal")


def test_success() -> None:
    task = WallTask()
    goal = torch.tensor([[0.5, 0.5], [-0.3, 0.1]])
    assert task.success(goal, goal).all()
    assert not task.success(goal, -goal).any()
    assert task.success(goal + 0.05, goal).all()


def test_dataset_contract_and_determinism() -> None:
    task = WallTask()
    data = task.generate_dataset(200, seed=0)
    assert data.batch_size == torch.Size([200, 50])
    for key in ["observation", "state", "action", ("next", "observation"), ("next", "state")]:
        assert data[key].shape == (200, 50, 2), key
    assert data["episode"].dtype == torch.int64
    assert torch.equal(data["episode"][:, 0], torch.arange(200))
    assert (data["episode"] == data["episode"][:, :1]).all()
    assert (data["action"].abs() <= 1).all()
    assert torch.equal(data["state"][:, 1:], data["next", "state"][:, :-1])
    assert torch.equal(data["next", "state"], wall_step(data["state"], data["action"]))
    assert_outside_slab_or_in_door(data["next", "state"])

    again = task.generate_dataset(200, seed=0)
    assert all(torch.equal(data[k], again[k]) for k in data.keys(True, True))
    assert not torch.equal(data["action"], task.generate_dataset(200, seed=1)["action"])
    assert task.generate_dataset(3, trajectory_steps=7).batch_size == torch.Size([3, 7])


def test_dataset_crosses_often() -> None:
    assert crossing_fraction(WallTask().generate_dataset(2000, seed=0)) >= 0.3


def test_crossing_fraction_counts_trajectories_visiting_both_rooms() -> None:
    state = torch.tensor([[[-0.5, 0.0], [-0.3, 0.0]], [[-0.5, 0.0], [0.0, 0.0]]])
    next_state = torch.tensor([[[-0.3, 0.0], [0.2, 0.0]], [[0.0, 0.0], [-0.1, 0.0]]])
    data = TensorDict(state=state, next=TensorDict(state=next_state), batch_size=[2, 2])
    assert crossing_fraction(data) == 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_trajectories": 0}, "num_trajectories"),
        ({"num_trajectories": 2, "trajectory_steps": -1}, "trajectory_steps"),
        ({"num_trajectories": 2, "seed": 1.5}, "seed"),
    ],
)
def test_dataset_argument_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WallTask().generate_dataset(**kwargs)


def test_trajectories_rejects_states_not_one_longer_than_actions() -> None:
    with pytest.raises(ValueError, match=r"states must be \(N, T \+ 1, state_dim\) = \(3, 8, \.\.\.\).*\(3, 7, 2\)"):
        WallTask().trajectories(torch.zeros(3, 7, 2), torch.zeros(3, 7, 2))


def test_rollout_truncates_at_episode_steps() -> None:
    env = WallEnv(num_envs=3, seed=0)
    rollout = env.rollout(50)
    truncated = rollout["next", "truncated"].squeeze(-1)
    assert rollout.batch_size == torch.Size([3, 50])
    assert truncated[:, -1].all() and not truncated[:, :-1].any()
    assert not rollout["next", "terminated"].any()
    assert torch.equal(rollout["next", "done"], rollout["next", "truncated"])
    reward = rollout["next", "reward"].squeeze(-1)
    assert torch.allclose(reward, -(rollout["next", "observation"] - rollout["goal"]).norm(dim=-1))

    long = env.rollout(120, break_when_any_done=False)  # auto-resets after each episode
    assert long["next", "truncated"].squeeze(-1).sum(-1).tolist() == [2, 2, 2]


def test_make_task() -> None:
    task = make_task("wall", door_half_width=0.2)
    assert isinstance(task, Task) and task.door_half_width == 0.2
    assert isinstance(task.make_env(num_envs=2, seed=0), WallEnv)
    with pytest.raises(ValueError, match="wall"):
        make_task("maze")
