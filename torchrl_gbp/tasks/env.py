"""One batched, goal-conditioned TorchRL env for every task, over a task's batched simulator."""
from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from torchrl_gbp.checks import check_positive_int
from torchrl_gbp.tasks.base import Task, bounded_action_spec


class GoalEnv(EnvBase):
    """Batched goal-reaching TorchRL env of a :class:`~torchrl_gbp.tasks.Task`.

    Everything evaluation and synthesis need travels in the TensorDict, so the
    env works the same alone, under transforms, in a ``ParallelEnv``, a
    multi-process collector or a Ray evaluator. Observations (at reset and in
    ``"next"`` after every step):

    - the task's observation entries (``task.observe``, keys
      ``task.observation_keys``: ``"observation"`` ``(obs_dim,)`` for state
      tasks, uint8 ``"pixels"`` ``(S, S, 3)`` and ``"proprio"`` for pixel
      tasks) of the current state, and the same of the goal state under
      ``task.goal_keys`` (``"goal"``; ``("goal", "pixels")`` and
      ``("goal", "proprio")``), observed once per reset;
    - ``"state"``: the true simulator state ``(state_dim,)``;
    - ``"distance"`` ``(1,)`` and ``"success"`` ``(1,)`` (bool): the task's
      distance and success test between the state and the goal state.

    State entries (``state_spec``: written at reset, carried along the
    episode, read by a deterministic reset): ``"start_state"`` and
    ``"goal_state"`` ``(state_dim,)``, the episode's start and goal.
    ``"action"`` lies inside the task's action bounds, ``("next", "reward")``
    is minus the distance, ``terminated`` is always False and ``truncated``
    turns True after ``task.episode_steps``.

    ``reset`` draws (start, goal) pairs with ``task.sample_start_goal`` from a
    private generator seeded by ``seed``/``set_seed`` (same seed, same pairs).
    Only envs flagged by a ``"_reset"`` mask are reset when one is given. To
    reset to chosen pairs, TorchRL's way:
    ``env.reset(TensorDict({"start_state": s, "goal_state": g}, [n]), set_state=True)``
    (both keys, ``(n, state_dim)``); this passes through transforms and
    batched envs. Rollouts and collectors reset with ``set_state=False``, so
    the carried pair of the last episode is never replayed.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> env = WallTask().make_env(num_envs=2, seed=0)
        >>> pairs = TensorDict({"start_state": torch.zeros(2, 2) - 0.5, "goal_state": torch.zeros(2, 2) + 0.5}, [2])
        >>> td = env.reset(pairs, set_state=True)
        >>> td["state"].tolist(), bool(td["success"].any())
        ([[-0.5, -0.5], [-0.5, -0.5]], False)

    Args:
        task: the task (simulator, sampler, distance, episode length).
        num_envs: batch size.
        seed: seed of the pair generator; random when omitted.
        device: device of the env's tensors.
        pair_mode: pair sampling mode; the task's default when omitted.
    """

    _supports_set_state = True

    def __init__(
        self,
        task: Task,
        num_envs: int = 1,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        pair_mode: str | None = None,
    ) -> None:
        num_envs = check_positive_int("num_envs", num_envs)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.task = task
        self.pair_mode = task.check_pair_mode(task.pair_mode if pair_mode is None else pair_mode)
        self._make_specs()
        self.simulator = task.make_simulator(num_envs, device=self.device)
        self._generator = torch.Generator()
        self._goal = self.simulator.get_state().to(self.device)
        self._goal_observation = self._goal_entries(self._goal)
        self._step_count = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self.set_seed(seed)

    def _make_specs(self) -> None:
        shape, task = self.batch_size, self.task
        states = Unbounded(shape=(*shape, task.state_dim), device=self.device)
        observation_spec = Composite(
            state=states.clone(),
            distance=Unbounded(shape=(*shape, 1), device=self.device),
            success=Categorical(2, shape=(*shape, 1), dtype=torch.bool, device=self.device),
            shape=shape,
        )
        specs = task.observation_specs(shape, self.device)
        for key, goal_key in zip(task.observation_keys, task.goal_keys):
            observation_spec[key] = specs[key]
            observation_spec[goal_key] = specs[key].clone()
        self.observation_spec = observation_spec
        self.state_spec = Composite(start_state=states.clone(), goal_state=states.clone(), shape=shape)
        self.action_spec = bounded_action_spec(task.action_bounds, task.action_dim, tuple(shape), self.device)
        self.reward_spec = Unbounded(shape=(*shape, 1), device=self.device)
        flag = Categorical(2, shape=(*shape, 1), dtype=torch.bool, device=self.device)
        self.done_spec = Composite(
            done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=shape
        )

    def get_state(self) -> torch.Tensor:
        """Current states ``(num_envs, state_dim)`` (a copy)."""
        return self.simulator.get_state().to(self.device)

    def get_goal_state(self) -> torch.Tensor:
        """Current goal states ``(num_envs, state_dim)`` (a copy)."""
        return self._goal.clone()

    def set_state(self, state: torch.Tensor, goal_state: torch.Tensor | None = None) -> None:
        """Put the simulators in ``state`` ``(num_envs, state_dim)``, optionally replacing the goals.

        Step counts are left as they are; use ``reset`` to start new episodes.
        """
        state = self._check_states("state", state)
        if goal_state is not None:
            self._goal = self._check_states("goal_state", goal_state)
            self._goal_observation = self._goal_entries(self._goal)
        self.simulator.set_state(state)

    def _check_states(self, name: str, value: object) -> torch.Tensor:
        expected = (self.batch_size[0], self.task.state_dim)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != expected:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"{name} must have shape (num_envs, state_dim) = {expected}, got {got}"
            )
        return value.to(device=self.device, dtype=torch.float32).clone()

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(int(seed))

    def _reset(self, tensordict: TensorDictBase | None, set_state: bool = False, **kwargs) -> TensorDict:
        num_envs = self.batch_size[0]
        given = [] if tensordict is None or not set_state else [
            key for key in ("start_state", "goal_state") if key in tensordict.keys()
        ]
        if len(given) == 1:
            raise ValueError(
                f"reset got {given[0]!r} alone; pass both 'start_state' and 'goal_state' "
                f"of shape ({num_envs}, {self.task.state_dim}), or neither"
            )
        if set_state and not given:
            raise KeyError(
                f"reset(set_state=True) needs 'start_state' and 'goal_state' of shape ({num_envs}, "
                f"{self.task.state_dim}); the tensordict has {[] if tensordict is None else list(tensordict.keys())}"
            )
        if given:
            start = self._check_states("start_state", tensordict.get("start_state"))
            goal = self._check_states("goal_state", tensordict.get("goal_state"))
        else:
            start, goal = self.task.sample_start_goal(num_envs, self._generator, self.pair_mode)
            start, goal = start.to(self.device), goal.to(self.device)

        mask = None if tensordict is None else tensordict.get("_reset", None)
        if mask is None:
            mask = torch.ones(num_envs, dtype=torch.bool, device=self.device)
        mask = mask.reshape(num_envs)
        self.simulator.set_state(start, mask)
        self._goal = torch.where(mask.unsqueeze(-1), goal, self._goal)
        fresh = self._goal_entries(goal)
        self._goal_observation = {key: torch.where(mask.reshape(-1, *[1] * (value.ndim - 1)), fresh[key], value)
                                  for key, value in self._goal_observation.items()}
        self._step_count = torch.where(mask, 0, self._step_count)
        out = self._observe(self.get_state())
        out.set("start_state", start)
        out.set("goal_state", self._goal.clone())
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDict:
        action = tensordict.get("action")
        finite = torch.isfinite(action).reshape(self.batch_size[0], -1).all(-1)
        if not finite.all():
            raise ValueError(f"'action' holds NaN or inf at env indices {(~finite).nonzero().flatten().tolist()}; "
                             "the simulators were not stepped")
        self.simulator.step(action)
        self._step_count = self._step_count + 1
        state = self.get_state()
        out = self._observe(state)
        out.set("reward", -out.get("distance"))
        return out

    def _goal_entries(self, goal: torch.Tensor) -> dict:
        """The goal's observation entries, keyed by ``task.goal_keys`` (observed once per goal, not per step)."""
        observed = self.task.observe(goal)
        return {goal_key: observed[key] for key, goal_key in zip(self.task.observation_keys, self.task.goal_keys)}

    def _observe(self, state: torch.Tensor) -> TensorDict:
        truncated = (self._step_count >= self.task.episode_steps).unsqueeze(-1)
        terminated = torch.zeros_like(truncated)
        distance = self.task.distance(state, self._goal).unsqueeze(-1)
        out = TensorDict(
            {
                **self.task.observe(state),
                "state": state,
                "distance": distance,
                "success": self.task.success(state, self._goal).unsqueeze(-1),
                "terminated": terminated,
                "truncated": truncated,
                "done": terminated | truncated,
            },
            batch_size=self.batch_size,
            device=self.device,
        )
        for key, value in self._goal_observation.items():
            out.set(key, value.clone())
        return out


class ActionReplay(TensorDictModuleBase):
    """A scripted TorchRL policy that plays a fixed action sequence ``(B, T, a)``, one step per call.

    Actions are clamped into ``action_spec``. It serves one rollout of at most
    ``T`` steps (it counts its calls); build a new one per rollout.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> env = WallTask().make_env(num_envs=2)
        >>> env.rollout(3, ActionReplay(torch.full((2, 3, 2), 5.0), env.action_spec))["action"].max().item()
        1.0
    """

    def __init__(self, actions: torch.Tensor, action_spec: Bounded, action_key: str = "action") -> None:
        super().__init__()
        low, high = action_spec.space.low, action_spec.space.high
        self.actions = actions.to(low).clamp(low.unsqueeze(-2), high.unsqueeze(-2))
        self.in_keys, self.out_keys = [], [action_key]
        self.calls = 0

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the next action of the sequence."""
        if self.calls >= self.actions.shape[1]:
            raise RuntimeError(f"ActionReplay holds {self.actions.shape[1]} steps; called once more")
        tensordict.set(self.out_keys[0], self.actions[:, self.calls])
        self.calls += 1
        return tensordict


def execute_actions(
    env: GoalEnv,
    start: torch.Tensor,
    env_actions: torch.Tensor,
    record_every: int = 1,
    goal: torch.Tensor | None = None,
) -> tuple[TensorDictBase, torch.Tensor, torch.Tensor]:
    """Run env actions ``(B, T, a)`` open loop in ``env`` from states ``start`` ``(B, state_dim)``.

    Resets ``env`` (batch size ``B``) to ``start`` and ``goal`` (``start`` when
    omitted) through its TensorDict reset, then ``env.rollout`` with an
    :class:`ActionReplay` policy (each action clamped into the action spec).
    Returns the observation entries (a TensorDict of the task's
    ``observation_keys``) and true states after every ``record_every``-th
    step, ``(B, T // record_every, ...)``, and the executed actions ``(B, T, a)``.
    ``T`` may not exceed the task's episode length.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> env = WallTask().make_env(num_envs=2)
        >>> obs, states, executed = execute_actions(env, torch.zeros(2, 2) - 0.5, torch.ones(2, 10, 2), 5)
        >>> obs["observation"].shape, states.shape, float(executed.max())
        (torch.Size([2, 2, 2]), torch.Size([2, 2, 2]), 1.0)
    """
    check_positive_int("record_every", record_every)
    if env_actions.ndim == 3 and env_actions.shape[1] < record_every:
        raise ValueError(f"env_actions has {env_actions.shape[1]} steps, fewer than record_every={record_every}")
    pairs = TensorDict(start_state=start, goal_state=start if goal is None else goal, batch_size=env.batch_size)
    rollout = replay_actions(env, env.reset(pairs, set_state=True), env_actions)
    recorded = rollout["next"][:, record_every - 1::record_every]
    return recorded.select(*env.task.observation_keys), recorded["state"], rollout["action"]


def replay_actions(env: EnvBase, tensordict: TensorDictBase, env_actions: torch.Tensor) -> TensorDictBase:
    """Roll any batched TorchRL ``env`` on from its reset ``tensordict`` through env actions ``(B, T, a)``, open loop.

    ``env.rollout`` with an :class:`ActionReplay` policy (actions clamped into
    the spec); returns the rollout ``(B, T)``. For a task's env ``T`` may not
    exceed the task's episode length.
    """
    if env_actions.ndim != 3 or env_actions.shape[0] != env.batch_size[0]:
        raise ValueError(
            f"env_actions must have shape (num_envs={env.batch_size[0]}, T, action_dim), "
            f"got {tuple(env_actions.shape)}"
        )
    steps = env_actions.shape[1]
    episode_steps = getattr(getattr(env, "task", None), "episode_steps", steps)
    if steps > episode_steps:
        raise ValueError(f"env_actions has {steps} steps, more than the task's episode of {episode_steps}")
    with torch.no_grad():
        return env.rollout(steps, ActionReplay(env_actions, env.action_spec), tensordict=tensordict,
                           auto_reset=False, break_when_any_done=False)
