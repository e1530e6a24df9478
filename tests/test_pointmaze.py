"""Tests for the PointMaze task: exact replay, batching, walls, pairs, success, dataset and the quick pipeline."""
from __future__ import annotations

from functools import partial

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs import ParallelEnv, TransformedEnv
from torchrl.envs.utils import ExplorationType, check_env_specs, set_exploration_type

from torchrl_gbp.experiments.cli import main
from torchrl_gbp.models import StateWorldModel, WorldModelConfig
from torchrl_gbp.planners import GradientPlanner, MPCPolicy
from torchrl_gbp.tasks import make_task
from torchrl_gbp.tasks.pointmaze import (
    BALL_RADIUS,
    MEDIUM_MAZE,
    PointMazeTask,
    maze_model,
)


@pytest.fixture(scope="module")
def task() -> PointMazeTask:
    return PointMazeTask()


def random_actions(steps: int, n: int, seed: int) -> torch.Tensor:
    return torch.rand(steps, n, 2, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def step(env, td: TensorDict, action: torch.Tensor) -> TensorDict:
    return env.step(td.set("action", action))["next"]


def test_registry_builds_the_task() -> None:
    task = make_task("pointmaze", maze="medium")
    assert isinstance(task, PointMazeTask) and task.maze == MEDIUM_MAZE
    assert (task.obs_dim, task.state_dim, task.action_dim) == (4, 4, 2)


@pytest.mark.parametrize("num_envs", [1, 3])
def test_specs(task: PointMazeTask, num_envs: int) -> None:
    check_env_specs(task.make_env(num_envs=num_envs, seed=0))


def test_set_state_then_step_equals_stepping_the_original(task: PointMazeTask) -> None:
    env_a = task.make_env(num_envs=3, seed=0)
    td_a = env_a.reset()
    for action in random_actions(25, 3, seed=1):  # moving, and some envs pressed against walls
        td_a = step(env_a, td_a, action)
    env_b = task.make_env(num_envs=3, seed=5)
    td_b = env_b.reset()
    env_b.set_state(env_a.get_state(), env_a.get_goal_state())
    for action in random_actions(30, 3, seed=2):
        td_a, td_b = step(env_a, td_a, action), step(env_b, td_b, action)
        assert torch.equal(env_a.get_state(), env_b.get_state())  # exact: float32 state, no warm start
    assert torch.equal(td_a["observation"], td_b["observation"])
    assert torch.equal(td_a["reward"], td_b["reward"])


def test_batched_env_equals_single_envs(task: PointMazeTask) -> None:
    n = 4
    start, goal = task.sample_start_goal(n, torch.Generator().manual_seed(3))
    batched = task.make_env(num_envs=n, seed=0)
    td = batched.reset(TensorDict(start_state=start, goal_state=goal, batch_size=[n]), set_state=True)
    singles = [task.make_env(num_envs=1, seed=0) for _ in range(n)]
    single_tds = [env.reset(TensorDict(start_state=start[i:i + 1], goal_state=goal[i:i + 1], batch_size=[1]), set_state=True)
                  for i, env in enumerate(singles)]
    for action in random_actions(20, n, seed=4):
        td = step(batched, td, action)
        for i, env in enumerate(singles):
            single_tds[i] = step(env, single_tds[i], action[i:i + 1])
            for key in ("observation", "goal", "reward", "done"):
                assert torch.equal(single_tds[i][key][0], td[key][i]), key


def test_partial_reset_keeps_other_envs(task: PointMazeTask) -> None:
    env = task.make_env(num_envs=4, seed=0)
    td = step(env, env.reset(), torch.ones(4, 2))
    before = env.get_state()
    env.reset(td.clone().set("_reset", torch.tensor([True, False, True, False]).unsqueeze(-1)))
    after = env.get_state()
    assert torch.equal(after[[1, 3]], before[[1, 3]])
    assert (after[[0, 2], 2:] == 0).all()  # reset envs start at rest


def test_walls_block_the_ball(task: PointMazeTask) -> None:
    # From the U's top-left end, pushing down (into the inner wall) for 3 s never crosses it.
    start = torch.tensor([[-1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    env = task.make_env(num_envs=2, seed=0)
    td = env.reset(TensorDict(start_state=start, goal_state=-start, batch_size=[2]), set_state=True)
    for _ in range(30):
        td = step(env, td, torch.tensor([[0.0, -1.0], [0.0, -1.0]]))
    state = env.get_state()
    assert (state[:, 1] > 0.5 + BALL_RADIUS - 0.02).all() and (state[:, 1] < 0.7).all()
    # Pushing right then down reaches the right arm: free motion is fast (about 2 cells per second).
    td = env.reset(TensorDict(start_state=start[:1].expand(2, 4).clone(), goal_state=-start, batch_size=[2]), set_state=True)
    for _ in range(15):
        td = step(env, td, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert (env.get_state()[:, 0] > 1.3).all()


def test_success_accepts_goal_rejects_far_state(task: PointMazeTask) -> None:
    _, goal = task.sample_start_goal(5, torch.Generator().manual_seed(0))
    assert task.success(goal, goal).all()
    moving = goal.clone()
    moving[:, 2:] = 1.0  # velocity is not judged
    assert task.success(moving, goal).all()
    near, far = goal.clone(), goal.clone()
    near[:, 0] += 0.44
    far[:, :2] = -goal[:, :2] + 0.7
    assert task.success(near, goal).all()
    assert not task.success(far, goal).any()
    assert torch.allclose(task.distance(near, goal), torch.full((5,), 0.44), atol=1e-5)


def test_pairs_are_seeded_distinct_and_never_solved_at_start(task: PointMazeTask) -> None:
    def pairs(seed: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        return task.sample_start_goal(500, torch.Generator().manual_seed(seed), mode)

    for mode in task.pair_modes:
        start, goal = pairs(0, mode)
        assert torch.equal(start, pairs(0, mode)[0]) and not torch.equal(start, pairs(1, mode)[0])
        assert (task.distance(start, goal) > task.success_threshold).all()
        assert (start[:, 2:] == 0).all() and (goal[:, 2:] == 0).all()
        cells = task.cell_of(torch.cat([start, goal])[:, :2])
        assert (cells >= 0).all()
    start, goal = pairs(0, "far")
    ends = {task.free_cells[k] for k in task.cell_of(torch.cat([start, goal])[:, :2]).tolist()}
    assert ends == {(1, 1), (3, 1)}
    assert (start[:, 1].sign() != goal[:, 1].sign()).all()
    start, goal = pairs(0, "random")
    assert len(set(task.cell_of(start[:, :2]).tolist())) == len(task.free_cells)
    env_a, env_b = task.make_env(num_envs=8, seed=7), task.make_env(num_envs=8, seed=7)
    assert torch.equal(env_a.reset()["goal"], env_b.reset()["goal"])


def test_dataset_is_seeded_and_consistent(task: PointMazeTask) -> None:
    data = task.generate_dataset(40, seed=0)
    assert data.batch_size == torch.Size([40, task.episode_steps])
    assert torch.equal(data["observation"], task.generate_dataset(40, seed=0)["observation"])
    assert not torch.equal(data["observation"], task.generate_dataset(40, seed=1)["observation"])
    assert torch.equal(data["state"][:, 1:], data["next", "state"][:, :-1])
    assert torch.equal(data["observation"], data["state"]) and data["action"].abs().max() <= 1.0
    assert torch.equal(data["episode"][:, 0], torch.arange(40))
    # every free cell is visited and the ball never enters a wall cell
    cells = task.cell_of(data["next", "state"][..., :2])
    assert (cells >= 0).all() and len(cells.unique()) == len(task.free_cells)
    # the recorded transitions are the simulator's
    sim = task.make_simulator(40)
    sim.set_state(data["state"][:, 10])
    sim.step(data["action"][:, 10])
    assert torch.equal(sim.get_state(), data["next", "state"][:, 10])


def test_medium_maze_and_model_cache() -> None:
    task = PointMazeTask(maze="medium", pair_mode="far")
    assert maze_model(task.maze) is maze_model(MEDIUM_MAZE)
    start, goal = task.sample_start_goal(10, torch.Generator().manual_seed(0))
    assert (task.path_length[task.cell_of(start[:, :2]), task.cell_of(goal[:, :2])] == task.path_length.max()).all()
    data = task.generate_dataset(4, trajectory_steps=10, seed=0)
    assert data.batch_size == torch.Size([4, 10])


def test_bad_inputs_raise(task: PointMazeTask) -> None:
    with pytest.raises(ValueError, match="unknown maze"):
        PointMazeTask(maze="large")
    with pytest.raises(ValueError, match="wall"):
        PointMazeTask(maze=[[0, 0, 0], [0, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="connected"):
        PointMazeTask(maze=[[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [1, 1, 1, 1, 1]])
    with pytest.raises(ValueError, match="pair mode"):
        PointMazeTask(pair_mode="opposite")
    with pytest.raises(ValueError, match="episode_steps"):
        PointMazeTask(episode_steps=0)
    with pytest.raises(ValueError, match="num_trajectories"):
        task.generate_dataset(0)
    with pytest.raises(ValueError, match="seed"):
        task.generate_dataset(2, seed=1.5)
    with pytest.raises(ValueError, match=r"state.*\(\.\.\., 4\)"):
        task.distance(torch.zeros(3, 2), torch.zeros(3, 4))
    sim = task.make_simulator(2)
    with pytest.raises(ValueError, match=r"state must have shape \(num_envs, 4\)"):
        sim.set_state(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"action must have shape \(num_envs, 2\)"):
        sim.step(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="num_envs"):
        task.make_env(num_envs=0)


@pytest.mark.slow
def test_quick_reproduce_end_to_end(tmp_path) -> None:
    assert main(["reproduce", "--task", "pointmaze", "--quick", "--out", str(tmp_path)]) == 0
    root = tmp_path / "pointmaze"
    assert (root / "results.md").read_text().startswith("| model | planner |")
    assert (root / "success_vs_seconds.png").stat().st_size > 10_000
    assert (root / "base.pt").exists()


def make_seeded_env(seed: int):
    """A one-env PointMaze, built in a ParallelEnv worker (module level, so spawned workers can import it)."""
    return PointMazeTask().make_env(num_envs=1, seed=seed)


@pytest.mark.slow
def test_mpc_policy_runs_over_torchrl_parallel_env() -> None:
    # MuJoCo is not batched: TorchRL's ParallelEnv runs one simulator per process; the MPC policy drives it
    # unchanged, and each worker's episode equals the same seeded env stepped here (zero init, no noise: the
    # plan of one env does not depend on the others in its batch).
    model = StateWorldModel(WorldModelConfig(obs_dim=4, env_action_dim=2, frameskip=PointMazeTask().frameskip))
    penv = ParallelEnv(2, [partial(make_seeded_env, 0), partial(make_seeded_env, 1)])
    try:
        policy = MPCPolicy(GradientPlanner(model, steps=3, init="zeros", noise_std=0.0), penv.action_spec)
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            parallel = TransformedEnv(penv, policy.make_tensordict_primer()).rollout(4, policy,
                                                                                   break_when_any_done=False)
            local = TransformedEnv(make_seeded_env(1), policy.make_tensordict_primer()).rollout(
                4, policy, break_when_any_done=False)
    finally:
        penv.close()
    assert parallel.batch_size == torch.Size([2, 1, 4])
    torch.testing.assert_close(parallel[1]["action"], local["action"], atol=1e-5, rtol=0)
    torch.testing.assert_close(parallel[1]["next", "observation"], local["next", "observation"], atol=1e-5, rtol=0)
    assert not torch.equal(parallel[0]["goal"], parallel[1]["goal"])
