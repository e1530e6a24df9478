"""Any Gymnasium env as a task: goal envs with dict observations and MuJoCo envs with a reward."""
from __future__ import annotations

import math
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from tensordict import TensorDict, TensorDictBase
from torchrl.envs.utils import RandomPolicy

from torchrl_gbp.checks import check_positive_int
from torchrl_gbp.closing import closing
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.simulator import Simulator

from .access import MujocoStateAccess
from .env import SETTABLE_HINT, GymnasiumBatchEnv

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")
#: gymnasium-robotics' maze success radius, the default threshold of goal envs without ``distance_threshold``.
MAZE_SUCCESS_THRESHOLD = 0.45
# Envs per batch while collecting a dataset.
_COLLECT_CHUNK = 16


def _register_robotics() -> None:
    """Register gymnasium-robotics' envs when it is installed (``pip install 'torchrl_gbp[gymnasium]'``)."""
    try:
        import gymnasium_robotics
    except ImportError:
        return
    gym.register_envs(gymnasium_robotics)


class GymnasiumTask(Task):
    """A Gymnasium env as a task of this package, through TorchRL's ``GymEnv``.

    Two kinds of env:

    * goal envs, whose observation is a dict of ``observation`` /
      ``achieved_goal`` / ``desired_goal`` (gymnasium-robotics): the world model
      sees ``"observation"``, the goal is the observation at a goal state,
      ``"distance"`` is ``|achieved_goal - desired_goal|`` and success is a
      distance below ``success_threshold``; plan with a ``GoalCost``.
    * reward envs (any other ``Box`` observation): no goal key; the world model
      learns the reward (``WorldModelConfig(reward_head=True)``) and planners
      maximise the predicted return (``ReturnObjective``).

    The state is the MuJoCo ``concat(qpos, qvel)`` when the env has a MuJoCo
    simulator with ``set_state`` (see :class:`MujocoStateAccess`); then
    (start, goal) pairs are states of seeded Gymnasium resets (goals at least
    ``success_threshold`` away), ``reset(td, set_state=True)`` works and online
    synthesis can execute plans. Other envs still collect data, train and plan
    (the state is then the flattened observation and resets are Gymnasium's own),
    and features that set the state raise a ``ValueError`` naming the env and
    what it lacks. The action space must be a ``Box``.

    Args:
        env_id: the Gymnasium id (gymnasium-robotics ids are registered when it is installed).
        episode_steps: env steps per episode (the time limit); default the env's ``max_episode_steps``.
        frameskip: env actions per world-model step.
        success_threshold: goal envs' success radius; default the env's ``distance_threshold``
            or 0.45 (gymnasium-robotics' maze radius).
        data_policy: a TorchRL policy (TensorDict in, ``"action"`` out) for :meth:`generate_dataset`;
            default uniform random actions (TorchRL's ``RandomPolicy``).
        make_kwargs: extra ``gymnasium.make`` arguments.

    Example:
        >>> task = GymnasiumTask("InvertedPendulum-v5", episode_steps=50)
        >>> task.has_goal, task.settable, task.obs_dim, task.state_dim
        (False, True, 4, 4)
        >>> env = task.make_env(num_envs=2, seed=0)
        >>> env.rollout(5, break_when_any_done=False)["next", "reward"].shape
        torch.Size([2, 5, 1])
    """

    pair_modes = ("random",)
    pair_mode = "random"
    observation_bounds = None

    def __init__(self, env_id: str, episode_steps: int | None = None, frameskip: int = 1,
                 success_threshold: float | None = None, data_policy: Callable | None = None,
                 make_kwargs: dict | None = None) -> None:
        _register_robotics()
        self.env_id = env_id
        self.make_kwargs = dict(make_kwargs or {})
        self.name = f"gym:{env_id}"
        self.frameskip = check_positive_int("frameskip", frameskip)
        self.data_policy = data_policy
        probe = gym.make(env_id, **self.make_kwargs)
        limit = episode_steps if episode_steps is not None else (probe.spec.max_episode_steps or 1000)
        self.episode_steps = check_positive_int("episode_steps", limit)
        space = probe.observation_space
        self.has_goal = isinstance(space, spaces.Dict) and all(k in space.spaces for k in GOAL_KEYS)
        observation = space["observation"] if self.has_goal else space
        if not isinstance(observation, spaces.Box) or not isinstance(probe.action_space, spaces.Box):
            raise ValueError(f"gymnasium env {env_id!r} needs Box observations (or a goal dict of them) and a Box "
                             f"action space; got {space} and {probe.action_space}")
        self.obs_dim = int(np.prod(observation.shape))
        self.action_dim = int(np.prod(probe.action_space.shape))
        self.action_bounds = (probe.action_space.low.reshape(-1).tolist(), probe.action_space.high.reshape(-1).tolist())
        probe.reset(seed=0)
        access = self.state_access(probe.unwrapped)
        self.settable = access is not None
        self._unwrapped_name = type(probe.unwrapped).__name__
        if self.has_goal and not self.settable:
            raise ValueError(self.unsettable_message("a goal env (its goal observation is the observation at a "
                                                     "goal state)"))
        self.state_dim = access.state_dim if self.settable else self.obs_dim
        threshold = getattr(probe.unwrapped, "distance_threshold", MAZE_SUCCESS_THRESHOLD)
        self.success_threshold = float(threshold if success_threshold is None else success_threshold)
        self._probe, self._access = probe, access

    def __getstate__(self) -> dict:
        """Picklable for ``ParallelEnv`` workers: the probe env is rebuilt on first use there."""
        return {**self.__dict__, "_probe": None, "_access": None}

    def _sampler(self) -> MujocoStateAccess:
        """The task's own env (seeded resets, observations of states) and its state access."""
        if self._probe is None:
            self._probe = gym.make(self.env_id, **self.make_kwargs)
            self._probe.reset(seed=0)
            self._access = self.state_access(self._probe.unwrapped)
        return self._access

    # ------------------------------------------------------------ capabilities
    @staticmethod
    def state_access(unwrapped) -> MujocoStateAccess | None:
        """How to read and set ``unwrapped``'s state, or ``None`` when it cannot be set."""
        return MujocoStateAccess.find(unwrapped)

    def unsettable_message(self, feature: str) -> str:
        """The error text for ``feature`` on an env whose state cannot be set."""
        return (f"{feature} needs to set the simulator state, but gymnasium env {self.env_id!r} "
                f"({self._unwrapped_name}) has no {SETTABLE_HINT}")

    def check_settable_state(self, feature: str) -> None:
        """Raise a ``ValueError`` naming the env and what it lacks when ``feature`` needs a settable state."""
        if not self.settable:
            raise ValueError(self.unsettable_message(feature))

    # ---------------------------------------------------------------- contract
    def make_env(self, num_envs: int = 1, seed: int | None = None, device: torch.device | str = "cpu",
                 pair_mode: str | None = None) -> GymnasiumBatchEnv:
        """``num_envs`` :class:`~torchrl_gbp.tasks.gymnasium.GymnasiumEnv` copies, batch size ``(num_envs,)``."""
        self.check_pair_mode(self.pair_mode if pair_mode is None else pair_mode)
        return GymnasiumBatchEnv(self, check_positive_int("num_envs", num_envs), seed=seed, device=device)

    def env_type(self) -> type[GymnasiumBatchEnv]:
        """:meth:`make_env` builds a :class:`GymnasiumBatchEnv`."""
        return GymnasiumBatchEnv

    def make_simulator(self, num_envs: int, device: torch.device | str = "cpu") -> GymnasiumSimulator:
        """``num_envs`` Gymnasium envs with settable state, stepped together."""
        self.check_settable_state("a simulator")
        return GymnasiumSimulator(self, num_envs, device)

    def sample_start_goal(self, n: int, generator: torch.Generator,
                          mode: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` (start, goal) states ``(n, state_dim)`` of Gymnasium resets seeded from ``generator``.

        Goal envs: the goal is another reset's state whose achieved goal lies at
        least ``success_threshold`` from the start's (up to 100 draws). Reward
        envs: the goal is the start.
        """
        n = check_positive_int("n", n)
        self.check_pair_mode(self.pair_mode if mode is None else mode)
        self.check_settable_state("sampling (start, goal) states")
        access = self._sampler()

        def draw():
            seed = int(torch.randint(2**31 - 1, (), generator=generator))
            obs, _ = self._probe.reset(seed=seed)
            return access.get(), (obs["achieved_goal"] if self.has_goal else None)

        starts, goals = [], []
        for _ in range(n):
            start, achieved = draw()
            goal = start
            if self.has_goal:
                for _ in range(100):
                    goal, reached = draw()
                    if np.linalg.norm(reached - achieved) >= self.success_threshold:
                        break
            starts.append(start)
            goals.append(goal)
        as_tensor = lambda x: torch.as_tensor(np.stack(x), dtype=torch.float32, device=generator.device)  # noqa: E731
        return as_tensor(starts), as_tensor(goals)

    def _observe_states(self, state: torch.Tensor) -> list:
        access = self._sampler()
        observed = []
        for row in state.reshape(-1, self.state_dim).double().cpu().numpy():
            access.set(row)
            observed.append(access.observe())
        return observed

    def observation_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """The env's observations ``(..., obs_dim)`` at states ``(..., state_dim)`` (set one by one)."""
        self.check_settable_state("observation_from_state")
        observed = self._observe_states(state)
        obs = [o["observation"] if self.has_goal else o for o in observed]
        return torch.as_tensor(np.stack(obs), dtype=torch.float32).reshape(*state.shape[:-1], self.obs_dim)

    def distance(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """Goal envs: ``|achieved_goal(state) - achieved_goal(goal_state)|``, shape ``(...,)``."""
        if not self.has_goal:
            raise ValueError(f"gymnasium env {self.env_id!r} has no goal (no achieved_goal/desired_goal "
                             "observation); it has a reward instead")
        self.check_settable_state("distance")
        state, goal_state = torch.broadcast_tensors(state, goal_state)
        achieved = [np.stack([o["achieved_goal"] for o in self._observe_states(x)]) for x in (state, goal_state)]
        return torch.as_tensor(np.linalg.norm(achieved[0] - achieved[1], axis=-1),
                               dtype=torch.float32).reshape(state.shape[:-1])

    def generate_dataset(self, num_trajectories: int, trajectory_steps: int | None = None,
                         seed: int = 0) -> TensorDict:
        """Seeded trajectories of ``data_policy`` (default uniform random actions) in batches of envs.

        Episodes that end (``done``) are reset within a row and get a new
        ``"episode"`` id, so windows never cross them. Keys: those of
        :meth:`Task.generate_dataset` plus ``("next", "reward")`` and
        ``("next", "done")``.
        """
        n, steps, _ = self.dataset_arguments(num_trajectories, trajectory_steps, seed)
        chunk = min(n, _COLLECT_CHUNK)
        parts = []
        with closing(self.make_env(num_envs=chunk, seed=seed)) as env:
            policy = self.data_policy if self.data_policy is not None else RandomPolicy(env.action_spec)
            with torch.random.fork_rng(), torch.no_grad():
                torch.manual_seed(seed)
                for _ in range(math.ceil(n / chunk)):
                    parts.append(env.rollout(steps, policy, break_when_any_done=False))
        rollout = torch.cat(parts)[:n]
        return _trajectories(rollout)


def _trajectories(rollout: TensorDictBase) -> TensorDict:
    """A rollout ``(N, T)`` as the package's trajectories, a new episode id after every ``done``."""
    n, steps = rollout.shape
    done = rollout["next", "done"].reshape(n, steps)
    starts = torch.cat([torch.ones(n, 1, dtype=torch.bool), done[:, :-1]], dim=1)
    episode = starts.reshape(-1).long().cumsum(0).reshape(n, steps) - 1
    return TensorDict(
        {
            "observation": rollout["observation"].clone(),
            "state": rollout["state"].clone(),
            "action": rollout["action"].float().clone(),
            "episode": episode,
            "next": {"observation": rollout["next", "observation"].clone(),
                     "state": rollout["next", "state"].clone(),
                     "reward": rollout["next", "reward"].float().clone(),
                     "done": rollout["next", "done"].clone()},
        },
        batch_size=[n, steps],
    )


class GymnasiumSimulator(Simulator):
    """``num_envs`` Gymnasium envs of a :class:`GymnasiumTask` with settable state, stepped one after the other."""

    def __init__(self, task: GymnasiumTask, num_envs: int, device: torch.device | str = "cpu") -> None:
        self.envs = [gym.make(task.env_id, **task.make_kwargs) for _ in range(num_envs)]
        for k, env in enumerate(self.envs):
            env.reset(seed=k)
        self.access = [task.state_access(env.unwrapped) for env in self.envs]
        self.device = torch.device(device)

    def get_state(self) -> torch.Tensor:
        """Current states ``(num_envs, state_dim)``."""
        return torch.as_tensor(np.stack([a.get() for a in self.access]), dtype=torch.float32, device=self.device)

    def set_state(self, state: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Set the states of the envs flagged by ``mask`` (all when ``None``)."""
        for k, access in enumerate(self.access):
            if mask is None or bool(mask[k]):
                access.set(state[k].double().cpu().numpy())

    def step(self, action: torch.Tensor) -> None:
        """Step every env once under ``action`` ``(num_envs, action_dim)``."""
        for env, a in zip(self.envs, action.detach().cpu().numpy()):
            env.step(a)
