"""The Gymnasium adapter: goal envs (gymnasium-robotics PointMaze), reward envs (InvertedPendulum), refusals."""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs import TransformedEnv
from torchrl.envs.utils import check_env_specs

from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.experiments.pipeline import make_policy
from torchrl_gbp.experiments.recipes import apply_profile, recipe_for
from torchrl_gbp.models import TeacherForcingLoss, WorldModelConfig
from torchrl_gbp.planners import CEMOptions, GradientOptions, ReturnObjective
from torchrl_gbp.synthesis import (
    AdversarialSynthesis,
    OnlineOptions,
    OnlineSynthesis,
    SynthesisShares,
    make_synthesis,
)
from torchrl_gbp.tasks import make_task
from torchrl_gbp.tasks.gymnasium import GymnasiumTask
from torchrl_gbp.train import build_world_model

pytest.importorskip("gymnasium_robotics")


@pytest.fixture(scope="module")
def maze():
    return GymnasiumTask("PointMaze_UMaze-v3", episode_steps=40, frameskip=5)


@pytest.fixture(scope="module")
def pendulum():
    return GymnasiumTask("InvertedPendulum-v5", episode_steps=40)


def test_goal_env_keys_specs_and_chosen_pairs(maze):
    assert (maze.has_goal, maze.settable, maze.obs_dim, maze.state_dim, maze.success_threshold) == (True, True, 4, 4,
                                                                                                    0.45)
    env = maze.make_env(num_envs=2, seed=0)
    check_env_specs(env)
    start = torch.tensor([[-1.0, 1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0]])
    goal = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0]])
    td = env.reset(TensorDict(start_state=start, goal_state=goal, batch_size=[2]), set_state=True)
    torch.testing.assert_close(td["state"], start)
    torch.testing.assert_close(td["goal"], goal)  # the observation at the goal state
    torch.testing.assert_close(td["distance"].squeeze(-1), torch.tensor([2.0, 0.0]))
    assert td["success"].squeeze(-1).tolist() == [False, True]
    rollout = env.rollout(3, tensordict=td, auto_reset=False)
    assert rollout["next", "distance"].shape == (2, 3, 1)


def test_set_state_round_trip(maze, pendulum):
    for task in (maze, pendulum):
        start, goal = task.sample_start_goal(3, torch.Generator().manual_seed(0))
        env = task.make_env(num_envs=3)
        td = env.reset(TensorDict(start_state=start, goal_state=goal, batch_size=[3]), set_state=True)
        torch.testing.assert_close(td["state"], start)
        torch.testing.assert_close(td["observation"], task.observation_from_state(start))
    start, goal = maze.sample_start_goal(8, torch.Generator().manual_seed(1))
    assert bool((maze.distance(start, goal) >= maze.success_threshold).all())  # no pair starts solved


def test_reward_env_dataset_splits_episodes_at_done(pendulum):
    assert (pendulum.has_goal, pendulum.settable, pendulum.action_bounds) == (False, True, ([-3.0], [3.0]))
    check_env_specs(pendulum.make_env(num_envs=2, seed=0))
    data = pendulum.generate_dataset(4, 30, seed=0)
    again = pendulum.generate_dataset(4, 30, seed=0)
    assert torch.equal(data["observation"], again["observation"])  # seeded
    done = data["next", "done"].squeeze(-1)
    assert done.any()  # random actions drop the pole within 30 steps
    row, step = done.nonzero()[0].tolist()
    if step + 1 < 30:
        assert data["episode"][row, step + 1] == data["episode"][row, step] + 1
    assert set(data["next", "reward"].unique().tolist()) <= {0.0, 1.0}


def test_reward_env_model_trains_and_synthesis_runs(pendulum):
    data = pendulum.generate_dataset(16, 40, seed=0)
    model = build_world_model(WorldModelConfig(obs_dim=4, env_action_dim=1, hidden_dim=32, depth=1,
                                               reward_head=True), data)
    online = make_synthesis("online", model, pendulum, online=OnlineOptions(planner_steps=2),
                            shares=SynthesisShares(every=1))
    assert isinstance(online, OnlineSynthesis) and isinstance(online.options.objective, ReturnObjective)
    adversarial = AdversarialSynthesis(model, fraction=0.5)
    buffer = make_window_buffer(data, frames=3, frameskip=1, batch_size=8, transform=online)
    batch = adversarial(buffer.sample())
    assert int(batch["synthetic"].sum()) == 4 and int(batch["adversarial"].sum()) == 4
    assert batch["next", "reward"].shape == (8, 2, 1)
    losses = TeacherForcingLoss(model)(batch)
    assert {"loss_prediction", "loss_reward"} <= set(losses.keys())


def test_registry_recipe_and_policy_for_a_reward_env():
    task = make_task("gym:InvertedPendulum-v5", episode_steps=10)
    recipe = recipe_for("gym:InvertedPendulum-v5")
    assert recipe.model.reward_head and recipe.objective.discount == 0.99
    data = task.generate_dataset(4, 10, seed=0)
    model = build_world_model(WorldModelConfig(obs_dim=4, env_action_dim=1, hidden_dim=16, depth=1,
                                               reward_head=True), data)
    policy = make_policy(model, task, CEMOptions(samples=8, elites=2, iterations=2),
                         apply_profile(recipe, {"evaluation.horizon": 3}))
    assert policy.goal_keys == [] and policy.in_keys[0] == "observation"
    env = TransformedEnv(task.make_env(num_envs=2, seed=0), policy.make_tensordict_primer())
    rollout = env.rollout(5, policy, break_when_any_done=False)
    assert rollout["action"].abs().max() <= 3.0


def test_unsettable_env_refuses_online_synthesis_and_the_rest_works():
    task = GymnasiumTask("Pendulum-v1", episode_steps=20)
    assert not task.settable and not task.has_goal
    data = task.generate_dataset(4, 20, seed=0)
    model = build_world_model(WorldModelConfig(obs_dim=3, env_action_dim=1, hidden_dim=16, depth=1,
                                               reward_head=True), data)
    with pytest.raises(ValueError, match=r"online synthesis.*'Pendulum-v1'.*set_state"):
        make_synthesis("online", model, task)
    with pytest.raises(ValueError, match="'Pendulum-v1'"):
        task.make_env(num_envs=1).reset(TensorDict(start_state=torch.zeros(1, 3), goal_state=torch.zeros(1, 3),
                                                   batch_size=[1]), set_state=True)
    policy = make_policy(model, task, GradientOptions(steps=2),
                         apply_profile(recipe_for("gym:Pendulum-v1"), {"evaluation.horizon": 3}))
    env = TransformedEnv(task.make_env(num_envs=2, seed=0), policy.make_tensordict_primer())
    assert env.rollout(4, policy)["next", "reward"].shape == (2, 4, 1)
