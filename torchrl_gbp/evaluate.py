"""Closed-loop evaluation of an MPC policy on a task, scored from the rollout TensorDict alone."""
from __future__ import annotations

import time

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase, ParallelEnv, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from .checks import check_positive_int
from .closing import closing
from .planners import MPCPolicy
from .tasks import Task


def episode_metrics(rollout: TensorDictBase, info_key: str = "planner", check_every: int = 1) -> dict[str, object]:
    """Success, distance and planning time of a batch of episodes, read from their rollout TensorDict.

    ``rollout`` has batch size ``(*envs, T)`` (time last, as ``env.rollout``
    and TorchRL's ``Evaluator`` give it) and holds the task env's
    ``("next", "success")`` and ``("next", "distance")`` and, when the
    policy is an :class:`MPCPolicy`, its ``(info_key, "seconds")`` and
    ``(info_key, "replanned")``. Nothing is read from the env, so the answer
    is the same on one env, a ``ParallelEnv``, a multi-process collector or a
    Ray evaluator; pass it as ``Evaluator(..., metrics_fn=episode_metrics)``.

    Envs without a goal (Gymnasium reward envs) have no success or distance:
    their rollout needs ``("next", "reward")`` and ``("next", "done")`` only.
    Whenever the rollout has them, ``mean_return`` is the mean episode return
    (rewards up to and including the first ``done``; ``episodes["return"]``
    holds each).

    Returns ``success_rate`` (the final state passes the task's success test),
    ``sticky_success_rate`` (the test held at any step checked: every
    ``check_every``-th env step, the ends of executed blocks of that many
    steps, as the reference code checks MPC episodes), ``final_distance``
    (mean), ``plan_seconds`` (median seconds of one batched planning call),
    ``plan_seconds_per_env`` (that over the number of episodes),
    ``planning_seconds_per_step`` (total planning seconds per env step),
    ``planning_seconds_total`` (all planning calls of the batched episodes),
    ``planning_calls`` (how many batched calls that was) and
    ``episodes``: the raw per-episode ``success``, ``sticky_success`` and
    ``final_distance`` lists the rates are computed from,
    ``first_success_step`` (the env step, counted from 1, of the first check
    the test held at; ``None`` where it never did) and
    ``solved_at_start`` (the test already held on the reset state) where the
    rollout holds the reset's ``"success"``. With a policy's planning seconds
    it also returns ``planning_call_seconds``, each batched call's in order.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> rollout = WallTask().make_env(num_envs=3, seed=0).rollout(4)
        >>> metrics = episode_metrics(rollout)
        >>> metrics["success_rate"] <= metrics["sticky_success_rate"]
        True
        >>> len(metrics["episodes"]["first_success_step"])
        3
    """
    keys = rollout.keys(True)
    returns = ("next", "reward") in keys and ("next", "done") in keys
    goal_keys = (("next", "success"), ("next", "distance"))
    if not returns or any(key in keys for key in goal_keys):
        for key in goal_keys:
            if key not in keys:
                raise KeyError(f"episode_metrics needs {key!r} in the rollout (written by the task env), or "
                               f"('next', 'reward') and ('next', 'done') for envs without a goal; "
                               f"found {sorted(map(str, rollout.keys(True, True)))}")
    steps = rollout.shape[-1]
    episodes = rollout.reshape(-1, steps)
    metrics = {
        "plan_seconds": 0.0, "plan_seconds_per_env": 0.0, "planning_seconds_per_step": 0.0,
        "planning_seconds_total": 0.0, "planning_calls": 0, "episodes": {},
    }
    if goal_keys[0] in keys:
        success = episodes["next", "success"].reshape(episodes.shape[0], steps)
        distance = episodes["next", "distance"].reshape(episodes.shape[0], steps)
        checked = success[:, check_positive_int("check_every", check_every) - 1::check_every]
        sticky = checked.any(-1)
        first = (checked.long().argmax(-1) + 1) * check_every  # the env step (1-based) of the first check held
        metrics.update(success_rate=float(success[:, -1].float().mean()),
                       sticky_success_rate=float(sticky.float().mean()),
                       final_distance=float(distance[:, -1].mean()))
        metrics["episodes"].update(success=success[:, -1].tolist(), sticky_success=sticky.tolist(),
                                   final_distance=distance[:, -1].tolist(),
                                   first_success_step=[int(step) if held else None
                                                       for step, held in zip(first, sticky)])
        if "success" in keys:  # the start state's test, from the reset (sticky success counts steps after it)
            metrics["episodes"]["solved_at_start"] = episodes["success"][:, 0].reshape(-1).tolist()
    if returns:
        reward = episodes["next", "reward"].reshape(episodes.shape[0], steps)
        done = episodes["next", "done"].reshape(episodes.shape[0], steps).long()
        first_episode = (done.cumsum(-1) - done) == 0  # steps up to and including the first done
        episode_return = (reward * first_episode).sum(-1)
        metrics["mean_return"] = float(episode_return.mean())
        metrics["episodes"]["return"] = episode_return.tolist()
    if (info_key, "seconds") in episodes.keys(True):
        seconds = episodes[info_key, "seconds"].reshape(episodes.shape[0], steps)
        replanned = episodes[info_key, "replanned"].reshape(episodes.shape[0], steps)
        per_call = seconds.max(dim=0).values[replanned.any(dim=0)]  # one batched call per replanning step
        if per_call.numel():
            metrics["plan_seconds"] = float(per_call.median())
            metrics["plan_seconds_per_env"] = metrics["plan_seconds"] / episodes.shape[0]
            metrics["planning_seconds_per_step"] = float(per_call.sum()) / steps
            metrics["planning_seconds_total"] = float(per_call.sum())
            metrics["planning_calls"] = per_call.numel()
            metrics["planning_call_seconds"] = per_call.tolist()
    return metrics


def evaluation_pairs(task: Task, episodes: int, seed: int, pair_mode: str | None = None) -> TensorDict:
    """The ``episodes`` seeded (start, goal) pairs every policy is evaluated on: ``"start_state"``, ``"goal_state"``.

    They are the pairs the task env seeded with ``seed`` draws on its first reset.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> pairs = evaluation_pairs(WallTask(), episodes=4, seed=0)
        >>> pairs["start_state"].shape, pairs["goal_state"].shape
        (torch.Size([4, 2]), torch.Size([4, 2]))
        >>> reset = WallTask().make_env(num_envs=4, seed=0).reset()
        >>> all(torch.equal(reset[key], pairs[key]) for key in ("start_state", "goal_state"))
        True
    """
    mode = task.check_pair_mode(task.pair_mode if pair_mode is None else pair_mode)
    start, goal = task.sample_start_goal(episodes, torch.Generator().manual_seed(seed), mode)
    return TensorDict(start_state=start, goal_state=goal, batch_size=[episodes])


def make_evaluation_env(task: Task, episodes: int, num_workers: int = 1) -> EnvBase:
    """The task env for ``episodes`` parallel episodes: one batched env, or a ``ParallelEnv`` of ``num_workers``.

    With workers the batch size is ``(num_workers, episodes // num_workers)``;
    ``episodes`` must divide evenly.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> env = make_evaluation_env(WallTask(), episodes=4)
        >>> env.batch_size, env.rollout(3)["observation"].shape
        (torch.Size([4]), torch.Size([4, 3, 2]))
    """
    if num_workers == 1:
        return task.make_env(num_envs=episodes)
    if episodes % num_workers:
        raise ValueError(f"episodes={episodes} must be a multiple of num_workers={num_workers}")
    per_worker = episodes // num_workers
    return ParallelEnv(num_workers, _EnvFactory(task, per_worker), mp_start_method="spawn")


class _EnvFactory:
    """A picklable ``task.make_env`` (ParallelEnv workers build their own env from this very task, options included)."""

    def __init__(self, task: Task, num_envs: int) -> None:
        self.task, self.num_envs = task, num_envs

    def __call__(self) -> EnvBase:
        return self.task.make_env(num_envs=self.num_envs)


def evaluation_rollout(policy, task: Task, episodes: int = 50, seed: int = 0, pair_mode: str | None = None,
                       max_steps: int | None = None, num_workers: int = 1,
                       pairs: TensorDict | None = None) -> tuple[TensorDictBase, float]:
    """The episodes :func:`evaluate` scores (and videos record): ``(rollout, wall seconds)``.

    ``policy`` runs from the seeded :func:`evaluation_pairs` (or ``pairs``), set
    through the env's TensorDict reset, in one batched env or a ``ParallelEnv`` of
    ``num_workers``, deterministically under ``torch.no_grad()``; a policy with a
    ``make_tensordict_primer`` gets its primer on the env.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.planners import GradientPlanner
        >>> task = WallTask()
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> policy = MPCPolicy(GradientPlanner(model, steps=1), task.action_spec)
        >>> rollout, seconds = evaluation_rollout(policy, task, episodes=2, max_steps=5)
        >>> rollout.shape, rollout["next", "success"].shape
        (torch.Size([2, 5]), torch.Size([2, 5, 1]))
        >>> torch.equal(rollout["start_state"][:, 0], evaluation_pairs(task, 2, seed=0)["start_state"])
        True
    """
    episodes = check_positive_int("episodes", episodes)
    num_workers = check_positive_int("num_workers", num_workers)
    steps = task.episode_steps if max_steps is None else check_positive_int("max_steps", max_steps)
    if steps > task.episode_steps:
        raise ValueError(f"max_steps={steps} exceeds the task's episode length {task.episode_steps}")
    if pairs is not None and tuple(pairs.batch_size) != (episodes,):
        raise ValueError(f"pairs must have batch size (episodes,) = ({episodes},), got {tuple(pairs.batch_size)}")
    with closing(make_evaluation_env(task, episodes, num_workers)) as base_env:
        make_primer = getattr(policy, "make_tensordict_primer", None)
        env = base_env if make_primer is None else TransformedEnv(base_env, make_primer())
        if pairs is None:
            pairs = evaluation_pairs(task, episodes, seed, pair_mode)
        pairs = pairs.clone().reshape(env.batch_size)  # the reset writes into it: never into the caller's
        start = time.perf_counter()
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            rollout = env.rollout(steps, policy, tensordict=env.reset(pairs, set_state=True), auto_reset=False,
                                  break_when_any_done=False)
        wall = time.perf_counter() - start
    return rollout, wall


def evaluate(policy: MPCPolicy, task: Task, episodes: int = 50, seed: int = 0, pair_mode: str | None = None,
             max_steps: int | None = None, num_workers: int = 1, pairs: TensorDict | None = None,
             check_every: int = 1) -> dict[str, object]:
    """Run ``episodes`` episodes from the seeded :func:`evaluation_pairs` and score them with :func:`episode_metrics`.

    ``pairs`` (``"start_state"``, ``"goal_state"``, batch ``(episodes,)``)
    replaces the seeded pairs, for example goals from dataset segments.

    Every policy evaluated with the same ``seed`` sees the same (start, goal)
    pairs, set through the env's TensorDict reset
    (``reset(pairs, set_state=True)``). The episodes run in one batched env, or
    in a ``ParallelEnv`` of ``num_workers`` processes (identical numbers: the
    policy still plans for all episodes at once). Runs deterministically
    (``ExplorationType.DETERMINISTIC``) under ``torch.no_grad()``, as TorchRL
    evaluators do. Returns the metrics of :func:`episode_metrics` (sticky
    success checked every ``check_every`` env steps) plus ``wall_seconds``.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.planners import GradientPlanner
        >>> task = WallTask()
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> policy = MPCPolicy(GradientPlanner(model, steps=1), task.action_spec)
        >>> sorted(evaluate(policy, task, episodes=2, max_steps=5))[:2]
        ['episodes', 'final_distance']
    """
    rollout, wall = evaluation_rollout(policy, task, episodes, seed, pair_mode, max_steps, num_workers, pairs)
    return {**episode_metrics(rollout, policy.info_key, check_every), "wall_seconds": wall}
