"""Cleanup never replaces the error that caused it: closing an env after a failed rollout keeps the failure."""
from __future__ import annotations

import pytest

from torchrl_gbp import evaluate as evaluate_module
from torchrl_gbp.closing import closing
from torchrl_gbp.evaluate import evaluation_rollout
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
