"""Closed-loop evaluation of an MPC policy on a task, with shared (start, goal) pairs."""
from __future__ import annotations

import time

import torch
from torchrl.envs import TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from .planners import MPCPolicy
from .tasks import Task


def evaluate(policy: MPCPolicy, task: Task, episodes: int = 50, seed: int = 0, pair_mode: str | None = None,
             max_steps: int | None = None) -> dict[str, float]:
    """Run ``episodes`` episodes at once in the task's batched env and score the final states.

    The env is seeded with ``seed``, so every policy evaluated with the same
    seed sees the same (start, goal) pairs. Runs deterministically
    (``ExplorationType.DETERMINISTIC``) under ``torch.no_grad()``, as TorchRL
    evaluators do.

    Returns ``success_rate`` (fraction of episodes whose final state passes
    ``task.success``), ``final_distance`` (mean task distance to the goal),
    ``plan_seconds`` (median seconds of one planning call, batched over all
    episodes), ``plan_seconds_per_env`` (that divided by ``episodes``),
    ``planning_seconds_per_step`` (total planning time per env step) and
    ``wall_seconds``.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.planners import GradientPlanner
        >>> task = WallTask()
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> env = task.make_env()
        >>> policy = MPCPolicy(model, GradientPlanner(model, steps=1), env.action_spec)
        >>> sorted(evaluate(policy, task, episodes=2, max_steps=5))[:2]
        ['final_distance', 'plan_seconds']
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    steps = max_steps if max_steps is not None else task.episode_steps
    env = TransformedEnv(task.make_env(num_envs=episodes, seed=seed, pair_mode=pair_mode),
                         policy.make_tensordict_primer())
    start = time.perf_counter()
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout = env.rollout(steps, policy, break_when_any_done=False)
    wall = time.perf_counter() - start
    base = env.base_env
    state, goal_state = base.get_state(), base.get_goal_state()
    seconds = rollout[policy.info_key, "seconds"][..., 0]
    replanned = rollout[policy.info_key, "replanned"][..., 0]
    per_call = seconds.max(dim=0).values[replanned.any(dim=0)]  # one batched call per replanning step
    plan_seconds = float(per_call.median()) if per_call.numel() else 0.0
    return {
        "success_rate": float(task.success(state, goal_state).float().mean()),
        "final_distance": float(task.distance(state, goal_state).mean()),
        "plan_seconds": plan_seconds,
        "plan_seconds_per_env": plan_seconds / episodes,
        "planning_seconds_per_step": float(per_call.sum()) / steps,
        "wall_seconds": wall,
    }
