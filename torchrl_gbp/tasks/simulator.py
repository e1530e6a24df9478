"""The simulator contract: a task's true dynamics, batched, with settable state."""
from __future__ import annotations

import abc

import torch


class Simulator(abc.ABC):
    """``num_envs`` copies of a task's true dynamics, stepped together.

    States are the task's full state vectors ``(num_envs, state_dim)``:
    ``set_state`` followed by ``step`` must behave exactly like stepping the
    simulator that produced the state. Implementations may loop over
    per-env simulator instances (MuJoCo, pymunk) or be vectorised (pure torch).

    Example:
        >>> class PointSimulator(Simulator):  # points that move by their action
        ...     def __init__(self, num_envs):
        ...         self.position = torch.zeros(num_envs, 2)
        ...     def get_state(self):
        ...         return self.position.clone()
        ...     def set_state(self, state, mask=None):
        ...         self.position = state.clone() if mask is None else torch.where(mask[:, None], state,
        ...                                                                        self.position)
        ...     def step(self, action):
        ...         self.position = self.position + action
        >>> sim = PointSimulator(2)
        >>> sim.set_state(torch.ones(2, 2), mask=torch.tensor([True, False]))
        >>> sim.step(torch.full((2, 2), 0.5))
        >>> sim.get_state().tolist()
        [[1.5, 1.5], [0.5, 0.5]]
    """

    @abc.abstractmethod
    def get_state(self) -> torch.Tensor:
        """Current states ``(num_envs, state_dim)`` (a copy, float32, on CPU or the env device)."""

    @abc.abstractmethod
    def set_state(self, state: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Set the states of the envs flagged by ``mask`` ``(num_envs,)`` (all when ``None``)."""

    @abc.abstractmethod
    def step(self, action: torch.Tensor) -> None:
        """Advance every env by one env step under ``action`` ``(num_envs, action_dim)``."""
