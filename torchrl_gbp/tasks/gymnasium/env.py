"""TorchRL's ``GymEnv`` with the package's task keys: state, goal, distance and success in the TensorDict."""
from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import GymEnv, SerialEnv

SETTABLE_HINT = ("a MuJoCo simulator with set_state(qpos, qvel) and data.qpos on env.unwrapped or one of its "
                 "attributes")


class GymnasiumEnv(GymEnv):
    """One Gymnasium env (built by TorchRL's ``GymEnv``) writing the keys of the package's task envs.

    Observations (float32, at reset and in ``"next"``): ``"observation"``
    (the env's observation, or its ``"observation"`` entry for goal envs),
    ``"state"`` (the simulator state, see :class:`GymnasiumTask`) and, for goal
    envs, ``"goal"`` (the observation at the goal state), ``"distance"``
    (between ``achieved_goal`` and ``desired_goal``) and ``"success"``.
    ``"start_state"`` / ``"goal_state"`` are declared in ``state_spec``:
    ``reset(td, set_state=True)`` puts the simulator in ``start_state`` and
    makes the ``achieved_goal`` at ``goal_state`` the goal; a plain reset draws
    the pair from ``task.sample_start_goal`` on the env's seeded generator
    (envs whose state cannot be set use the Gymnasium reset instead, and
    refuse ``set_state=True`` naming the env and what it lacks).
    Build batches with :meth:`GymnasiumTask.make_env`.

    Args:
        task: the :class:`GymnasiumTask`.
        seed: seeds the pair generator and the Gymnasium env.
        device: device of the TensorDicts.
    """

    _supports_set_state = True

    def __init__(self, task, seed: int | None = None, device: torch.device | str = "cpu", **kwargs) -> None:
        # kwargs: what TorchRL's GymEnv metaclass passes along
        super().__init__(task.env_id, device=device, max_episode_steps=task.episode_steps, **task.make_kwargs,
                         **kwargs)
        self.task = task
        self.access = task.state_access(self._env.unwrapped)
        self._generator = torch.Generator()
        self._goal_obs = torch.zeros(task.obs_dim, dtype=torch.float32)
        self._goal_state = torch.zeros(task.state_dim, dtype=torch.float32)
        self._start_state = self._goal_state.clone()
        self._task_specs()
        if seed is not None:
            self.set_seed(seed)

    def _task_specs(self) -> None:
        task, device = self.task, self.device
        obs = Unbounded(shape=(task.obs_dim,), device=device)
        state = Unbounded(shape=(task.state_dim,), device=device)
        spec = {"observation": obs, "state": state.clone()}
        if task.has_goal:
            spec.update(goal=obs.clone(), distance=Unbounded(shape=(1,), device=device),
                        success=Categorical(2, shape=(1,), dtype=torch.bool, device=device))
        self.observation_spec = Composite(spec)
        self.state_spec = Composite(start_state=state.clone(), goal_state=state.clone())
        self.reward_spec = Unbounded(shape=(1,), device=device)

    def _set_seed(self, seed: int | None) -> None:
        super()._set_seed(seed)
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(int(seed))

    def _reset(self, tensordict: TensorDictBase | None = None, set_state: bool = False, **kwargs) -> TensorDict:
        given = [] if tensordict is None or not set_state else [
            key for key in ("start_state", "goal_state") if key in tensordict.keys()]
        if set_state and len(given) != 2:
            raise KeyError(f"reset(set_state=True) needs 'start_state' and 'goal_state' of shape "
                           f"({self.task.state_dim},); got {given}")
        if set_state and self.access is None:
            raise ValueError(self.task.unsettable_message("reset(set_state=True)"))
        obs, _ = self._env.reset()  # restarts the wrappers (time limit); the state is set below
        if self.access is not None:
            if given:
                start, goal = (tensordict.get(key).reshape(self.task.state_dim) for key in given)
            else:
                start, goal = (x[0] for x in self.task.sample_start_goal(1, self._generator))
            obs = self._put(start.cpu(), goal.cpu())
        else:
            self._goal_state = self._state(obs)
        out = self._observe(obs)
        self._start_state = out.get("state").clone()
        out.set("start_state", self._start_state.clone())
        out.set("goal_state", self._goal_state.to(self.device).clone())
        return out

    def _put(self, start: torch.Tensor, goal: torch.Tensor):
        """Set the goal (the achieved goal at ``goal``) and the simulator state ``start``; the observation there."""
        self._goal_state = goal.float().clone()
        if self.task.has_goal:
            self.access.set(goal.double().numpy())
            at_goal = self.access.observe()
            self._goal_obs = torch.as_tensor(at_goal["observation"], dtype=torch.float32)
            self.access.set(start.double().numpy())
            self.access.set_goal(at_goal["achieved_goal"])
        else:
            self.access.set(start.double().numpy())
        return self.access.observe()

    def _state(self, obs) -> torch.Tensor:
        if self.access is not None:
            return torch.as_tensor(self.access.get(), dtype=torch.float32)
        return torch.as_tensor(np.asarray(obs), dtype=torch.float32).reshape(-1)

    def _observe(self, obs) -> TensorDict:
        values = {"state": self._state(obs)}
        if self.task.has_goal:
            achieved = torch.as_tensor(obs["achieved_goal"], dtype=torch.float32)
            desired = torch.as_tensor(obs["desired_goal"], dtype=torch.float32)
            distance = torch.linalg.vector_norm(achieved - desired).reshape(1)
            values.update(observation=torch.as_tensor(obs["observation"], dtype=torch.float32),
                          goal=self._goal_obs.clone(), distance=distance,
                          success=distance < self.task.success_threshold)
        else:
            values["observation"] = torch.as_tensor(np.asarray(obs), dtype=torch.float32).reshape(-1)
        return TensorDict(values, batch_size=[], device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDict:
        action = tensordict.get("action")
        if not torch.isfinite(action).all():
            raise ValueError(f"'action' holds NaN or inf ({action.tolist()}); the env {self.task.env_id!r} "
                             "was not stepped")
        obs, reward, terminated, truncated, _ = self._env.step(action.detach().cpu().numpy())
        out = self._observe(obs)
        flags = torch.tensor([[bool(terminated)], [bool(truncated)]], device=self.device)
        out.update({"reward": torch.tensor([float(reward)], device=self.device), "terminated": flags[0],
                    "truncated": flags[1], "done": flags[0] | flags[1]})
        return out


class GymnasiumBatchEnv(SerialEnv):
    """``num_envs`` :class:`GymnasiumEnv` copies stepped in one process, batch size ``(num_envs,)``.

    Keeps the ``task`` (``env.task``), as the package's env helpers read it,
    and returns every env's ``"start_state"`` and ``"goal_state"`` at reset
    (``SerialEnv`` passes only observations).
    """

    _supports_set_state = True

    def __init__(self, task, num_envs: int, seed: int | None = None, device: torch.device | str = "cpu") -> None:
        super().__init__(num_envs, _Factory(task, device), device=device)
        self.task = task
        if seed is not None:
            self.set_seed(seed)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        out = super()._reset(tensordict, **kwargs)
        for key, attribute in (("start_state", "_start_state"), ("goal_state", "_goal_state")):
            out.set(key, torch.stack([getattr(env, attribute) for env in self._envs]).to(out.device))
        return out


class _Factory:
    """A picklable ``GymnasiumEnv(task)`` builder (``ParallelEnv`` workers call it)."""

    def __init__(self, task, device) -> None:
        self.task, self.device = task, device

    def __call__(self) -> GymnasiumEnv:
        return GymnasiumEnv(self.task, device=self.device)
