"""Cleanup never replaces the error that caused it: closing an env after a failed rollout keeps the failure."""
from __future__ import annotations

import gc

import pytest
import torch

from torchrl_gbp import evaluate as evaluate_module
from torchrl_gbp.closing import closing
from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.evaluate import evaluation_rollout
from torchrl_gbp.models import StateWorldModel, WorldModelConfig
from torchrl_gbp.synthesis import OnlineSynthesis
from torchrl_gbp.tasks import WallTask


class Closable:
    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.closed = error, 0

    def close(self) -> None:
        self.closed += 1
        if self.error is not None:
            raise self.error


def test_a_failing_rollout_surfaces_its_own_error_when_closing_the_env_fails_too(monkeypatch) -> None:
    task = WallTask()

    def cannot_close() -> None:
        raise RuntimeError("trying to close a closed environment")

    def env_that_cannot_close(*args, **kwargs):
        env = task.make_env(num_envs=2)
        env.close = cannot_close
        return env

    def policy(td):
        raise ValueError("the planner failed")

    monkeypatch.setattr(evaluate_module, "make_evaluation_env", env_that_cannot_close)
    with pytest.raises(ValueError, match="the planner failed") as raised:
        evaluation_rollout(policy, task, episodes=2, max_steps=3)
    assert "trying to close a closed environment" in raised.value.__notes__[0]


def test_an_error_before_a_parallel_env_starts_is_not_replaced_by_its_close() -> None:
    # the ParallelEnv never started, so its close() raises "trying to close a closed environment"
    with pytest.raises(ValueError, match="pair mode"):
        evaluation_rollout(lambda td: td, WallTask(), episodes=4, num_workers=2, pair_mode="no such mode")


def test_closing_closes_once_and_lets_a_close_error_through_when_the_body_succeeded() -> None:
    thing = Closable()
    with closing(thing) as inside:
        assert inside is thing and thing.closed == 0
    assert thing.closed == 1
    with pytest.raises(OSError, match="disk full"), closing(Closable(OSError("disk full"))):
        pass
    thing = Closable(RuntimeError("close failed"))
    with pytest.raises(KeyError) as raised, closing(thing):
        raise KeyError("body")
    assert thing.closed == 1 and raised.value.__notes__ == ["closing Closable raised too: RuntimeError('close failed')"]


# ------------------------------------------------------------ envs a synthesis transform builds
def _online_synthesis(envs: list, close_error: Exception | None = None):
    """An OnlineSynthesis over a factory that records the envs it builds (their close counted, maybe failing)."""
    task = WallTask()

    def factory(num_envs: int):
        env = task.make_env(num_envs=num_envs)
        env.close = Closable(close_error).close
        envs.append(env)
        return env

    torch.manual_seed(0)
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
    return task, OnlineSynthesis(model, factory, every=1)


def _closes(env) -> int:
    return env.close.__self__.closed


def test_the_buffer_closes_the_envs_online_synthesis_built_and_they_are_rebuilt_after() -> None:
    envs: list = []
    task, online = _online_synthesis(envs)
    buffer = make_window_buffer(task.generate_dataset(4, seed=0), frames=3, frameskip=5, batch_size=2,
                                transform=online)
    buffer.sample()
    assert [_closes(env) for env in envs] == [0]
    buffer.close()
    assert [_closes(env) for env in envs] == [1]
    buffer.sample()  # used again: a fresh env
    buffer.close()
    assert [_closes(env) for env in envs] == [1, 1]


def test_envs_are_closed_when_the_transform_is_garbage_collected() -> None:
    envs: list = []
    task, online = _online_synthesis(envs)
    make_window_buffer(task.generate_dataset(4, seed=0), frames=3, frameskip=5, batch_size=2,
                       transform=online).sample()
    del online
    gc.collect()
    assert [_closes(env) for env in envs] == [1]


def test_closing_the_buffer_after_a_training_error_keeps_that_error() -> None:
    envs: list = []
    task, online = _online_synthesis(envs, close_error=RuntimeError("trying to close a closed environment"))
    buffer = make_window_buffer(task.generate_dataset(4, seed=0), frames=3, frameskip=5, batch_size=2,
                                transform=online)
    with pytest.raises(ValueError, match="the loss is NaN") as error, closing(buffer):
        buffer.sample()
        raise ValueError("the loss is NaN")
    assert "trying to close a closed environment" in error.value.__notes__[0]
    assert [_closes(env) for env in envs] == [1]
