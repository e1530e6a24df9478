"""Tests of what every task shares: the action spec read without building an env."""
from __future__ import annotations

import pytest
import torch

from torchrl_gbp.models import StateWorldModel, WorldModelConfig
from torchrl_gbp.planners import MPCPolicy, make_planner
from torchrl_gbp.planners.factory import env_action_bounds
from torchrl_gbp.tasks import make_task


@pytest.mark.parametrize("name, obs", [("wall", "state"), ("wall", "pixels"), ("pusht", "state"),
                                       ("pointmaze", "state"), ("reacher", "state"), ("gym:Pendulum-v1", "state"),
                                       ("dinowm_wall", "state"), ("dinowm_wall", "pixels"), ("dinowm_pusht", "state"),
                                       ("dinowm_pointmaze", "state"), ("dinowm_pointmaze", "pixels")])
def test_task_action_spec_is_one_env_of_the_env_action_spec(name: str, obs: str) -> None:
    task = make_task(name, obs=obs)
    spec, batched = task.action_spec, task.make_env(num_envs=3).action_spec
    assert spec.shape == (task.action_dim,) and spec.dtype == batched.dtype == torch.float32
    assert torch.equal(spec.space.low, batched.space.low[0]) and torch.equal(spec.space.high, batched.space.high[0])
    # the planners and the policy read the same bounds from it as from the batched spec
    low, high = env_action_bounds(spec, task.action_dim)
    assert [b.tolist() for b in (low, high)] == [b.tolist() for b in env_action_bounds(batched, task.action_dim)]
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=task.action_dim, frameskip=1))
    policy = MPCPolicy(make_planner("cem", model, action_spec=spec), spec)
    assert policy.action_low.tolist() == low.tolist() and policy.action_high.tolist() == high.tolist()
