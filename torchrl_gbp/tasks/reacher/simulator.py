"""The reacher physics: a pool of dm_control envs behind a batched simulator with settable state."""
from __future__ import annotations

import functools
import threading
import warnings
import weakref

import mujoco
import torch
from tensordict import TensorDict

with warnings.catch_warnings():
    # dm_control probes OpenGL backends on import; headless machines warn about a missing DISPLAY.
    # Nothing here renders, so the warning is noise.
    warnings.simplefilter("ignore")
    import dm_control.suite  # first, so a missing extra fails here and the registry names it
    from torchrl.envs import DMControlEnv

from torchrl_gbp.checks import check_last_dim, check_positive_int
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.simulator import Simulator

DIFFICULTIES = ("easy", "hard")


# ----------------------------------------------------------------------------- dm_control envs
_POOL: dict[str, list[DMControlEnv]] = {}


_POOL_LOCK = threading.Lock()


def _new_dm_env(difficulty: str) -> DMControlEnv:
    # No time limit: dm_control would otherwise end (and auto-reset) episodes after 1000 steps.
    env = DMControlEnv("reacher", difficulty, time_limit=float("inf"))
    env.reset()  # sets the dm_control target size of this difficulty
    physics = env._env.physics
    # Without solver warm start a step is a pure function of (qpos, qvel, ctrl), so set_state is exact.
    physics.model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_WARMSTART)
    return env


def _acquire_dm_envs(difficulty: str, n: int) -> list[DMControlEnv]:
    """``n`` idle dm_control reacher envs, reused from the pool where possible (construction is slow)."""
    with _POOL_LOCK:
        pool = _POOL.setdefault(difficulty, [])
        taken = [pool.pop() for _ in range(min(n, len(pool)))]
    return taken + [_new_dm_env(difficulty) for _ in range(n - len(taken))]


def _release_dm_envs(difficulty: str, envs: list[DMControlEnv]) -> None:
    with _POOL_LOCK:
        _POOL.setdefault(difficulty, []).extend(envs)


@functools.cache
def arm_geometry(difficulty: str = "easy") -> dict[str, float]:
    """Link lengths and target/finger radii read from dm_control's reacher model.

    Example:
        >>> geometry = arm_geometry("easy")
        >>> round(geometry["link1"], 3), round(geometry["link2"], 3), round(geometry["target_size"], 3)
        (0.12, 0.12, 0.05)
    """
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    env = _acquire_dm_envs(difficulty, 1)[0]
    named = env._env.physics.named.model
    geometry = {
        "link1": float(named.body_pos["hand", "x"]),
        "link2": float(named.body_pos["finger", "x"]),
        "target_size": float(named.geom_size["target", 0]),
        "finger_size": float(named.geom_size["finger", 0]),
    }
    _release_dm_envs(difficulty, [env])
    return geometry


# ----------------------------------------------------------------------------- simulator and env
class ReacherSimulator(Simulator):
    """``num_envs`` dm_control reacher envs stepped through TorchRL's :class:`~torchrl.envs.DMControlEnv`.

    States are read and written through each env's physics
    (``physics.get_state()`` / ``set_state()`` + ``forward()``) and rounded to
    float32 after every step, so a state from :meth:`get_state` put back with
    :meth:`set_state` continues bit for bit like the original. The dm_control
    envs come from a per-process pool and go back to it when the simulator is
    garbage collected, since building them is slow.

    Example:
        >>> from torchrl_gbp.tasks.reacher import ReacherTask
        >>> simulator = ReacherTask().make_simulator(2)
        >>> simulator.set_state(torch.tensor([[0.0, 0.5, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0]]))
        >>> simulator.step(torch.ones(2, 2))
        >>> simulator.get_state().shape
        torch.Size([2, 4])
    """

    def __init__(self, task: Task, num_envs: int, device: torch.device | str = "cpu") -> None:
        self.task = task
        self.num_envs = check_positive_int("num_envs", num_envs)
        self.device = torch.device(device)
        self.envs = _acquire_dm_envs(task.difficulty, num_envs)
        weakref.finalize(self, _release_dm_envs, task.difficulty, self.envs)
        self._state = torch.zeros(num_envs, task.state_dim)
        self.set_state(self._state)

    def _physics(self, i: int) -> dm_control.suite.reacher.Physics:
        return self.envs[i]._env.physics

    def _write(self, i: int, state: torch.Tensor) -> None:
        physics = self._physics(i)
        physics.set_state(state.double().numpy())
        physics.forward()

    def get_state(self) -> torch.Tensor:
        """States ``(num_envs, 4)``: ``(q1, q2, dq1, dq2)``, float32 (a copy)."""
        return self._state.clone().to(self.device)

    def set_state(self, state: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Write ``state`` ``(num_envs, 4)`` into the physics of the envs flagged by ``mask`` (all when ``None``)."""
        if tuple(state.shape) != (self.num_envs, self.task.state_dim):
            raise ValueError(f"state must have shape (num_envs, 4) = ({self.num_envs}, 4), got {tuple(state.shape)}")
        state = state.detach().to("cpu", torch.float32)
        rows = range(self.num_envs) if mask is None else mask.reshape(-1).nonzero().flatten().tolist()
        for i in rows:
            self._write(i, state[i])
            self._state[i] = state[i]

    def set_targets(self, target: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Move dm_control's target geoms to fingertip positions ``target`` ``(num_envs, 2)`` (masked)."""
        check_last_dim("target", target, 2)
        target = target.detach().to("cpu", torch.float64)
        rows = range(self.num_envs) if mask is None else mask.reshape(-1).nonzero().flatten().tolist()
        for i in rows:
            physics = self._physics(i)
            physics.named.model.geom_pos["target", ["x", "y"]] = target[i].numpy()
            physics.forward()

    def dm_control_rewards(self) -> torch.Tensor:
        """dm_control's own reacher reward ``(num_envs,)`` (1 inside the target radius) at the current states."""
        return torch.tensor([env._env.task.get_reward(env._env.physics) for env in self.envs], dtype=torch.float32)

    def step(self, action: torch.Tensor) -> None:
        """One dm_control step (0.02 s) per env under torques ``action`` ``(num_envs, 2)`` in ``[-1, 1]``."""
        if tuple(action.shape) != (self.num_envs, self.task.action_dim):
            raise ValueError(f"action must have shape (num_envs, 2) = ({self.num_envs}, 2), got {tuple(action.shape)}")
        action = action.detach().to("cpu", torch.float64).clamp(-1.0, 1.0)
        for i, env in enumerate(self.envs):
            env.step(TensorDict(action=action[i]))
            state = torch.from_numpy(self._physics(i).get_state()).float()
            self._write(i, state)  # keep the physics on float32 states: get_state/set_state is then exact
            self._state[i] = state
