"""Reward-based planning: the reward head learns, the return objective ranks plans, MPC without a goal key acts."""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import EnvBase, TransformedEnv
from torchrl.envs.utils import ExplorationType, RandomPolicy, set_exploration_type

from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.models import TeacherForcingLoss, WorldModelConfig
from torchrl_gbp.planners import GoalCost, GradientPlanner, MPCPolicy, ReturnObjective
from torchrl_gbp.train import build_world_model, train_world_model

TARGET = 0.5


class LineEnv(EnvBase):
    """A point on a line, ``x' = x + 0.2 a``, reward ``-|x' - 0.5|``; no goal key; starts in [-1, 0]."""

    def __init__(self, num_envs: int = 8, seed: int = 0) -> None:
        super().__init__(batch_size=torch.Size([num_envs]))
        shape = (num_envs,)
        self.observation_spec = Composite(observation=Unbounded((*shape, 1)), shape=shape)
        self.action_spec = Bounded(-1.0, 1.0, (*shape, 1))
        self.reward_spec = Unbounded((*shape, 1))
        self._generator = torch.Generator().manual_seed(seed)
        self._x = torch.zeros(num_envs, 1)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDict:
        self._x = -torch.rand(self.batch_size[0], 1, generator=self._generator)
        return TensorDict(observation=self._x.clone(), batch_size=self.batch_size)

    def _step(self, tensordict: TensorDictBase) -> TensorDict:
        self._x = self._x + 0.2 * tensordict["action"].clamp(-1, 1)
        done = torch.zeros(self.batch_size[0], 1, dtype=torch.bool)
        return TensorDict(observation=self._x.clone(), reward=-(self._x - TARGET).abs(), done=done,
                          terminated=done.clone(), batch_size=self.batch_size)

    def _set_seed(self, seed: int | None) -> None:
        self._generator.manual_seed(seed or 0)


def line_dataset(n: int = 64, steps: int = 20) -> TensorDict:
    """Random-action trajectories of :class:`LineEnv` in the package's trajectory layout."""
    torch.manual_seed(0)
    env = LineEnv(num_envs=n)
    rollout = env.rollout(steps, RandomPolicy(env.action_spec))
    return TensorDict({"observation": rollout["observation"], "state": rollout["observation"],
                       "action": rollout["action"], "episode": torch.arange(n)[:, None].expand(n, steps).clone(),
                       "next": {"observation": rollout["next", "observation"],
                                "reward": rollout["next", "reward"]}}, batch_size=[n, steps])


@pytest.fixture(scope="module")
def line_model():
    """A world model with a reward head trained for 300 steps on random LineEnv data."""
    torch.manual_seed(0)
    data = line_dataset()
    model = build_world_model(WorldModelConfig(obs_dim=1, env_action_dim=1, hidden_dim=64, depth=2,
                                               reward_head=True), data)
    buffer = make_window_buffer(data, frames=4, frameskip=1, batch_size=64,
                                generator=torch.Generator().manual_seed(0))
    first = TeacherForcingLoss(model)(buffer.sample())["loss_reward"].item()
    train_world_model(model, buffer, steps=300, lr=3e-3, progress=False)
    return model, buffer, first


def test_reward_head_learns_a_simple_reward(line_model):
    model, buffer, first = line_model
    batch = buffer.sample()
    reward = batch["next", "reward"].squeeze(-1)
    with torch.no_grad():
        losses = TeacherForcingLoss(model)(batch)
        z = model.encode(batch["observation"])
        predicted = model.predict_reward(z[:, 1:], model.normalize_action(batch["action"]))
    assert losses["loss_reward"].item() < 0.1 * first
    assert (predicted - reward).abs().mean() < 0.1 * reward.std()


def test_loss_without_reward_head_is_unchanged():
    data = line_dataset(8, 10)
    model = build_world_model(WorldModelConfig(obs_dim=1, env_action_dim=1), data)
    batch = make_window_buffer(data, frames=3, frameskip=1, batch_size=4).sample()
    assert sorted(TeacherForcingLoss(model)(batch).keys()) == ["loss_prediction", "prediction_error"]


def test_reward_loss_names_a_missing_reward_key(line_model):
    model, buffer, _ = line_model
    with pytest.raises(KeyError, match="reward"):
        TeacherForcingLoss(model)(buffer.sample().exclude("next"))


def test_return_objective_prefers_higher_return_plans(line_model):
    model, _, _ = line_model
    objective = ReturnObjective(model, discount=0.9)
    z_hist = model.encode(torch.full((1, 1, 1), -0.5))
    a_hist = torch.zeros(1, 0, 1)
    toward, away = (model.normalize_action(torch.full((1, 1, 4, 1), sign)) for sign in (1.0, -1.0))
    planner = GradientPlanner(model, objective=objective, horizon=4, steps=0)
    cost = planner.score(z_hist, a_hist, None, torch.cat([toward, away], dim=1))
    assert cost[0, 0] < cost[0, 1]  # moving toward the target earns more predicted reward: lower cost


def test_return_objective_checks_its_arguments(line_model):
    model, _, _ = line_model
    with pytest.raises(ValueError, match="discount"):
        ReturnObjective(model, discount=0.0)
    with pytest.raises(TypeError, match="predict_reward"):
        ReturnObjective(object())


def test_a_goal_cost_policy_without_goal_keys_is_refused(line_model):
    model, _, _ = line_model
    env = LineEnv(2)
    with pytest.raises(ValueError, match="then the goal's 1"):
        MPCPolicy(GradientPlanner(model, objective=GoalCost(), horizon=3), env.action_spec, in_keys=["observation"])


def test_mpc_with_a_goal_free_objective_reads_no_goal_and_beats_random_on_a_reward_env(line_model):
    model, _, _ = line_model
    planner = GradientPlanner(model, objective=ReturnObjective(model, discount=0.95), horizon=5, steps=20, lr=0.3)
    policy = MPCPolicy(planner, LineEnv(8).action_spec)
    assert "goal" not in policy.in_keys and policy.goal_keys == []
    returns = {}
    for name, actor in (("mpc", policy), ("random", None)):
        env = TransformedEnv(LineEnv(8, seed=1), policy.make_tensordict_primer())
        torch.manual_seed(1)
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            rollout = env.rollout(15, actor if actor is not None else RandomPolicy(env.action_spec))
        returns[name] = rollout["next", "reward"].sum(-2).mean().item()
    assert returns["mpc"] > returns["random"] + 1.0, returns
