"""Reading and setting the simulator state of a Gymnasium env: MuJoCo ``(qpos, qvel)`` where there is one."""
from __future__ import annotations

import inspect

import numpy as np


class MujocoStateAccess:
    """Get and set the ``(qpos, qvel)`` state of a Gymnasium MuJoCo env and read its observation after a set.

    Found by :meth:`find` on ``env.unwrapped`` itself (Gymnasium's MuJoCo envs)
    or on one of its attributes (gymnasium-robotics' maze envs keep theirs in
    ``point_env`` / ``ant_env``): the first object with ``set_state(qpos, qvel)``
    and ``data.qpos``. The state vector is ``concat(qpos, qvel)``.

    Example:
        >>> import gymnasium as gym
        >>> env = gym.make("InvertedPendulum-v5")
        >>> _ = env.reset(seed=0)
        >>> access = MujocoStateAccess.find(env.unwrapped)
        >>> state = access.get()
        >>> access.set(state * 0); float(np.abs(access.observe()).sum())
        0.0
    """

    def __init__(self, unwrapped, simulator) -> None:
        self.unwrapped, self.simulator = unwrapped, simulator
        self.nq = simulator.data.qpos.shape[0]
        self.state_dim = self.nq + simulator.data.qvel.shape[0]
        observe = getattr(unwrapped, "_get_obs", None)
        if observe is None:
            raise ValueError(f"{type(unwrapped).__name__} has no _get_obs(); its observation cannot be read "
                             "after setting the state")
        # gymnasium-robotics' maze envs build the observation from their point/ant env's one
        takes_inner = len(inspect.signature(observe).parameters) == 1
        self._observe = (lambda: observe(_first(simulator._get_obs()))) if takes_inner else observe

    @classmethod
    def find(cls, unwrapped) -> MujocoStateAccess | None:
        """The access to ``unwrapped``'s MuJoCo state, or ``None`` if it has no settable MuJoCo simulator."""
        candidates = [unwrapped, *vars(unwrapped).values()]
        for candidate in candidates:
            if callable(getattr(candidate, "set_state", None)) and hasattr(getattr(candidate, "data", None), "qpos"):
                return cls(unwrapped, candidate)
        return None

    def get(self) -> np.ndarray:
        """The state ``concat(qpos, qvel)`` (float64 copy)."""
        data = self.simulator.data
        return np.concatenate([data.qpos, data.qvel]).copy()

    def set(self, state: np.ndarray) -> None:
        """Set ``qpos, qvel`` from ``state`` ``(nq + nv,)``."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (self.state_dim,):
            raise ValueError(f"state must have shape (nq + nv,) = ({self.state_dim},), got {state.shape}")
        self.simulator.set_state(state[: self.nq], state[self.nq:])

    def observe(self):
        """The env's observation at the current state (a dict for goal envs)."""
        return self._observe()

    def set_goal(self, desired_goal: np.ndarray) -> None:
        """Make ``desired_goal`` the goal of a goal env (its ``goal`` attribute; the maze's target site too)."""
        if not hasattr(self.unwrapped, "goal"):
            raise ValueError(f"{type(self.unwrapped).__name__} has no 'goal' attribute; its goal cannot be set")
        self.unwrapped.goal = np.asarray(desired_goal, dtype=np.float64).copy()
        update = getattr(self.unwrapped, "update_target_site_pos", None)
        if callable(update):
            update()


def _first(value):
    """The observation of an inner env's ``_get_obs()`` (the point env returns ``(obs, info)``)."""
    return value[0] if isinstance(value, tuple) else value
