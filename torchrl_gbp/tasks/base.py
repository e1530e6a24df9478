"""The task contract: an environment, start/goal pairs, success and offline data."""
from __future__ import annotations

import abc

import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Unbounded
from torchrl.envs import EnvBase

from torchrl_gbp.checks import check_positive_int
from torchrl_gbp.tasks.simulator import Simulator


def bounded_action_spec(action_bounds: tuple, action_dim: int, batch_shape: tuple[int, ...] = (),
                        device: torch.device | str = "cpu") -> Bounded:
    """The ``Bounded`` float32 spec ``(*batch_shape, action_dim)`` of an action inside ``action_bounds``
    (``(low, high)``, scalars or per-dim sequences).

    Example:
        >>> spec = bounded_action_spec((0.0, [1.0, 2.0]), 2, batch_shape=(3,))
        >>> spec.shape, spec.space.high[0].tolist()
        (torch.Size([3, 2]), [1.0, 2.0])
    """
    low, high = (torch.as_tensor(b, dtype=torch.float32) for b in action_bounds)
    shape = (*batch_shape, action_dim)
    return Bounded(low=low.expand(shape).to(device), high=high.expand(shape).to(device), shape=shape, device=device)


class Task(abc.ABC):
    """A goal-reaching task: its batched TorchRL env, start/goal sampler, success test and dataset.

    A state is the simulator's full state vector (what ``set_state`` takes);
    an observation is what the agent and the world model see: the entries
    :meth:`observe` gives under :attr:`observation_keys` (one ``"observation"``
    vector here, uint8 ``"pixels"`` and ``"proprio"`` for a
    :class:`~torchrl_gbp.tasks.PixelTask`); the env writes the goal's under
    :attr:`goal_keys`. Distances and success are judged on states.

    Subclasses set the class attributes below and implement the abstract
    methods; :meth:`success` is shared.

    Attributes:
        name: registry name, e.g. ``"wall"``.
        obs_dim: size of the ``"observation"`` entry.
        state_dim: size of the simulator state vector.
        action_dim: size of the env ``"action"`` entry.
        frameskip: default number of env actions per world-model step.
        episode_steps: env steps per evaluation episode (the env truncates there).
        success_threshold: an episode succeeds when ``distance < success_threshold``.
        action_bounds: ``(low, high)`` of the env action, scalars or per-dim sequences.
        observation_bounds: ``(low, high)`` of observations, or ``None`` if unbounded.
        pair_modes: the (start, goal) sampling modes :meth:`sample_start_goal` knows.
        pair_mode: the default one (set per instance).
        proprio_dim: size of :meth:`proprio_from_state`'s output (tasks with pixels).
        observation_keys: the env's observation entries, in the order world models read them.
        goal_keys: the env's entries of the goal's observation, one per observation key.

    Pixels: :meth:`render` draws states as uint8 images (TorchRL's layout,
    channels last) and :meth:`proprio_from_state` gives the agent's
    proprioception beside them, as DINO-WM uses it; a goal image is
    ``render(goal_state)``. The four built-in tasks implement both; a task
    without them raises ``NotImplementedError`` naming itself.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> task = WallTask()
        >>> start, goal = task.sample_start_goal(4, torch.Generator().manual_seed(0))
        >>> start.shape, task.success(goal, goal).all().item()
        (torch.Size([4, 2]), True)
        >>> task.make_env(num_envs=4, seed=0).rollout(3)["observation"].shape
        torch.Size([4, 3, 2])
        >>> task.generate_dataset(5, trajectory_steps=10, seed=0)["action"].shape
        torch.Size([5, 10, 2])
    """

    name: str
    obs_dim: int
    state_dim: int
    action_dim: int
    frameskip: int
    episode_steps: int
    success_threshold: float
    action_bounds: tuple = (-1.0, 1.0)
    observation_bounds: tuple[float, float] | None = None
    pair_modes: tuple[str, ...]
    pair_mode: str
    proprio_dim: int
    observation_keys: tuple = ("observation",)
    goal_keys: tuple = ("goal",)

    def check_pair_mode(self, mode: str) -> str:
        """Return ``mode`` if it is one of :attr:`pair_modes`, else raise a ``ValueError`` naming it."""
        if mode not in self.pair_modes:
            raise ValueError(f"unknown pair mode {mode!r} for task {self.name!r}; expected one of {self.pair_modes}")
        return mode

    @property
    def action_spec(self) -> Bounded:
        """The env's action spec for one env, ``(action_dim,)`` inside :attr:`action_bounds`, without building an env.

        Example:
            >>> from torchrl_gbp.tasks import WallTask
            >>> WallTask().action_spec.shape
            torch.Size([2])
        """
        return bounded_action_spec(self.action_bounds, self.action_dim)

    def make_env(
        self,
        num_envs: int = 1,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        pair_mode: str | None = None,
    ) -> EnvBase:
        """Build the task's batched :class:`~torchrl_gbp.tasks.env.GoalEnv` with ``batch_size=[num_envs]``.

        ``pair_mode`` picks how reset draws (start, goal) pairs; ``None`` means
        the task's default.
        """
        return self.env_type()(self, num_envs=num_envs, seed=seed, device=device, pair_mode=pair_mode)

    @abc.abstractmethod
    def env_type(self) -> type[EnvBase]:
        """The env class :meth:`make_env` builds: :class:`~torchrl_gbp.tasks.env.GoalEnv` or a subclass of it."""

    @abc.abstractmethod
    def make_simulator(self, num_envs: int, device: torch.device | str = "cpu") -> Simulator:
        """``num_envs`` copies of the true dynamics (:class:`~torchrl_gbp.tasks.env.Simulator`)."""

    @abc.abstractmethod
    def sample_start_goal(
        self, n: int, generator: torch.Generator, mode: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` (start_state, goal_state) pairs, each ``(n, state_dim)``.

        All randomness comes from ``generator``; ``mode`` (task specific)
        picks the kind of pair, ``None`` meaning the task's default.
        """

    def observation_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """Map states ``(..., state_dim)`` to observation vectors ``(..., obs_dim)`` (state tasks)."""
        raise NotImplementedError(f"task {self.name!r} has no observation vector")

    def observe(self, states: torch.Tensor) -> dict:
        """The observation entries of states ``(..., state_dim)``: ``{key: tensor}`` over :attr:`observation_keys`.

        Example:
            >>> from torchrl_gbp.tasks import WallTask
            >>> {k: v.shape for k, v in WallTask().observe(torch.zeros(4, 2)).items()}
            {'observation': torch.Size([4, 2])}
        """
        return {"observation": self.observation_from_state(states)}

    def observation_specs(self, shape: torch.Size, device: torch.device | str = "cpu") -> dict:
        """The specs of :meth:`observe`'s entries for an env of batch ``shape``: ``{key: spec}``."""
        if self.observation_bounds is None:
            return {"observation": Unbounded(shape=(*shape, self.obs_dim), device=device)}
        low, high = self.observation_bounds
        return {"observation": Bounded(low=low, high=high, shape=(*shape, self.obs_dim), device=device)}

    @abc.abstractmethod
    def distance(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """Task distance ``(...,)`` between states ``(..., state_dim)`` and goal states."""

    def render(self, states: torch.Tensor, size: int = 64) -> torch.Tensor:
        """Images ``(..., size, size, 3)`` uint8 of states ``(..., state_dim)``: the scene as the agent sees it.

        Deterministic, batched over any leading dims, headless (plain torch).
        The goal is not drawn; render the goal state for a goal image.
        Raises ``ValueError`` naming ``size`` unless it is an int >= 8.
        """
        raise NotImplementedError(f"task {self.name!r} has no renderer")

    def proprio_from_state(self, states: torch.Tensor) -> torch.Tensor:
        """The agent's proprioception ``(..., proprio_dim)`` float32 of states ``(..., state_dim)``."""
        raise NotImplementedError(f"task {self.name!r} has no proprioception")

    def success(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """Boolean ``(...,)``: ``distance(state, goal_state) < success_threshold``."""
        return self.distance(state, goal_state) < self.success_threshold

    def dataset_arguments(
        self, num_trajectories: int, trajectory_steps: int | None, seed: int
    ) -> tuple[int, int, torch.Generator]:
        """Checked :meth:`generate_dataset` arguments: ``(N, T, generator seeded with seed)``."""
        n = check_positive_int("num_trajectories", num_trajectories)
        steps = check_positive_int("trajectory_steps", self.episode_steps if trajectory_steps is None
                                   else trajectory_steps)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        return n, steps, torch.Generator().manual_seed(seed)

    def trajectories(self, states: torch.Tensor, actions: torch.Tensor) -> TensorDict:
        """Pack simulated trajectories as :meth:`generate_dataset` returns them.

        Args:
            states: ``(N, T + 1, state_dim)``, each trajectory's states including the last.
            actions: ``(N, T, action_dim)``, the env actions between them.
        """
        n, steps = actions.shape[:2]
        if states.shape[:2] != (n, steps + 1):
            raise ValueError(f"states must be (N, T + 1, state_dim) = ({n}, {steps + 1}, ...) for actions "
                             f"{tuple(actions.shape)}, got {tuple(states.shape)}")
        return TensorDict(
            {
                "observation": self.observation_from_state(states[:, :-1]),
                "state": states[:, :-1].clone(),
                "action": actions,
                "episode": torch.arange(n).unsqueeze(-1).expand(n, steps).clone(),
                "next": {"observation": self.observation_from_state(states[:, 1:]), "state": states[:, 1:].clone()},
            },
            batch_size=[n, steps],
        )

    @abc.abstractmethod
    def generate_dataset(
        self, num_trajectories: int, trajectory_steps: int | None = None, seed: int = 0
    ) -> TensorDict:
        """Seeded offline trajectories as a TensorDict of batch size ``(N, T)``.

        Keys: ``"observation"``, ``"state"``, ``"action"`` (env units, inside
        the action spec), ``("next", "observation")``, ``("next", "state")``
        and ``"episode"`` (int64 trajectory index). ``T`` defaults to
        ``episode_steps``. The same seed gives identical tensors.
        """
