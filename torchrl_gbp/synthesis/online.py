"""Online World Modeling: simulator-corrected planner rollouts, as a replay-buffer transform."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.envs import EnvBase, Transform

from torchrl_gbp.models import StateWorldModel
from torchrl_gbp.planners import GoalCost, Planner, ReturnObjective, make_planner
from torchrl_gbp.tasks import Task
from torchrl_gbp.tasks.env import execute_actions

from .common import (
    check_fraction,
    choose_rows,
    slice_layout,
    synthesis_mode,
    window_tensors,
)


class OnlineSynthesis(Transform):
    """Replay-buffer transform: mix in windows where the simulator corrects the planner's rollouts.

    On the first call and every ``every``-th call after it, each window of the
    batch (``"observation"``, ``"state"`` ``(B, T, ...)``, ``"action"``
    ``(B, T - 1, action_dim)`` in env units) becomes a planning problem: its
    first ``h = num_hist`` frames are the history, its last observation the
    goal. The planner (default: a :class:`~torchrl_gbp.planners.GradientPlanner`
    over ``T - h`` model steps, ``GoalCost(mode="last")``, Adam, bounded by the
    env's action spec) plans open loop from the encoded history; then the
    task's env, set to each window's last history state, executes the planned
    actions (denormalised, clamped into the action spec, ``frameskip`` env
    steps per model step, all windows batched). The synthetic window keeps the
    recorded history frames and actions and continues with the simulated
    observations and states and the executed actions; ``"episode"`` is -1.
    Synthetic windows go to a bounded buffer (``capacity`` windows, oldest out).

    On every call, ``round(fraction * B)`` random rows of the batch are
    replaced by windows drawn from that buffer (once it holds any); a bool
    ``"synthetic"`` ``(B,)`` flag marks them. Entries of replaced rows that a
    synthetic window lacks (for instance perturbations written by an earlier
    transform) are zeroed. The batch keeps its shape, the result is a new
    TensorDict, and the sampled (possibly storage-aliasing) input is never
    written. Put it before :class:`AdversarialSynthesis` in a ``Compose`` so
    synthetic rows get perturbed too.

    Planning runs with gradients enabled and the model in eval mode (modes
    restored after); only the action sequence is differentiated.

    Two batch layouts: the package's windows (``make_window_buffer``), or any
    TorchRL buffer of flat trajectories sampled by a ``SliceSampler`` (pass
    its ``slice_len``, with ``slice_len - 1`` a multiple of the model's
    frameskip): then the batch is ``(B * slice_len,)`` env steps, whole slices
    are replaced (the simulator records every env step of the executed plan;
    the slice's last action, never used by a window, is zero) and the flag
    marks every row of a replaced slice. As in
    :class:`AdversarialSynthesis`, the model is held by reference, not as a
    submodule.

    Args:
        world_model: the model being trained.
        task: gives the simulator (``make_env``, whose env has ``set_state``
            and ``get_state``).
        every: synthesise on every ``every``-th call (the first included).
        fraction: share of the batch rows replaced by synthetic windows.
        capacity: synthetic windows kept.
        planner: a planner whose ``horizon`` is ``T - num_hist``; overrides the
            default gradient planner (and ``planner_steps``/``planner_lr``).
        planner_steps, planner_lr: the default planner's Adam steps and rate.
        objective: the default planner's objective; ``None``: ``GoalCost(mode="last")`` to the
            window's last frame, or, for tasks without a goal (``task.has_goal`` False), the
            predicted return (:class:`~torchrl_gbp.planners.ReturnObjective`) from the window's start.
            Tasks whose state cannot be set (``task.check_settable_state``) are refused here.
        seed: seeds the row choice, the synthetic-buffer sampling, the planner and the env.
        slice_len: env steps per sampled slice for flat batches; ``None``: window batches.
        in_keys: the observation, state and action keys read (and written in synthetic rows).
        out_keys: the flag key written.

    Example:
        >>> from torchrl_gbp.data import make_window_buffer
        >>> from torchrl_gbp.models import WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> from torchrl_gbp.train import build_world_model
        >>> task = WallTask()
        >>> data = task.generate_dataset(20, seed=0)
        >>> model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5), data)
        >>> online = OnlineSynthesis(model, task, every=10, fraction=0.5, planner_steps=5)
        >>> buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=8, transform=online)
        >>> batch = buffer.sample()
        >>> batch.shape, int(batch["synthetic"].sum()), len(online.synthetic_buffer), online.synthesis_rounds
        (torch.Size([8]), 4, 8, 1)
    """

    def __init__(self, world_model: StateWorldModel, task: Task, every: int = 10, fraction: float = 0.5,
                 capacity: int = 10_000, planner: Planner | None = None, planner_steps: int = 100,
                 planner_lr: float = 0.3, seed: int = 0, slice_len: int | None = None,
                 objective: GoalCost | ReturnObjective | None = None,
                 in_keys: Sequence[NestedKey] = ("observation", "state", "action"),
                 out_keys: Sequence[NestedKey] = ("synthetic",)) -> None:
        if len(in_keys) != 3 or len(out_keys) != 1:
            raise ValueError(f"in_keys must be (observation, state, action) and out_keys (flag,); got "
                             f"{list(in_keys)} and {list(out_keys)}")
        # the observation key comes first and the action key second, as window_tensors expects
        super().__init__(in_keys=[in_keys[0], in_keys[2], in_keys[1]], out_keys=list(out_keys))
        for name, value in (("every", every), ("capacity", capacity)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if planner is None and (planner_steps < 0 or not planner_lr > 0):
            raise ValueError(f"need planner_steps >= 0 and planner_lr > 0, got {planner_steps!r} and {planner_lr!r}")
        check_settable = getattr(task, "check_settable_state", None)
        if check_settable is not None:
            check_settable("online synthesis")
        object.__setattr__(self, "world_model", world_model)  # a reference, not a submodule
        self.task = task
        self.objective = objective
        self.every = every
        self.fraction = check_fraction(fraction)
        self.planner = planner
        self.planner_steps = planner_steps
        self.planner_lr = float(planner_lr)
        self.seed = seed
        self.layout = slice_layout(slice_len, world_model)
        if self.layout is not None and (slice_len - 1) % world_model.frameskip:
            raise ValueError(f"slice_len - 1 must be a multiple of the model's frameskip={world_model.frameskip} "
                             f"so a replaced slice ends on a frame; got slice_len={slice_len}")
        self._generator = torch.Generator().manual_seed(seed)
        self._synthetic = ReplayBuffer(storage=LazyTensorStorage(capacity), generator=self._generator)
        self._frames: int | None = None
        self._calls = 0
        self._rounds = 0
        self._env: EnvBase | None = None

    @property
    def synthetic_buffer(self) -> ReplayBuffer:
        """The bounded buffer of synthetic windows (read it; the transform writes it)."""
        return self._synthetic

    @property
    def synthesis_rounds(self) -> int:
        """How many times windows were synthesised."""
        return self._rounds

    def resume_state(self) -> dict:
        """Everything a resumed training run needs to continue exactly: counters, generator, synthetic buffer."""
        return {"calls": self._calls, "rounds": self._rounds, "frames": self._frames,
                "generator": self._generator.get_state(), "synthetic": self._synthetic.state_dict()}

    def load_resume_state(self, state: dict) -> None:
        """Restore :meth:`resume_state` (the generator stays shared by the transform and its buffer)."""
        self._calls, self._rounds, self._frames = state["calls"], state["rounds"], state["frames"]
        self._synthetic.load_state_dict(state["synthetic"])
        self._generator.set_state(state["generator"])
        self._synthetic.set_rng(self._generator)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Synthesise when due, then replace a ``fraction`` of the rows (see the class docstring)."""
        obs, action, state = window_tensors(tensordict, self.in_keys, self.world_model.num_hist, self.layout)
        if self._frames not in (None, obs.shape[1]):
            raise ValueError(f"this OnlineSynthesis holds windows of {self._frames} frames; got a batch of "
                             f"{obs.shape[1]} frames (keep the window length fixed)")
        if self._calls % self.every == 0:
            synthetic = (self.synthesize(obs, state, action) if self.layout is None
                         else self._synthesize_slices(tensordict, obs, state, action))
            self._synthetic.extend(synthetic.cpu())
            self._frames = obs.shape[1]
            self._rounds += 1
        self._calls += 1
        return self._mix(tensordict)

    def synthesize(self, obs: torch.Tensor, state: torch.Tensor, action: torch.Tensor) -> TensorDict:
        """Synthetic windows ``(B,)`` for windows ``obs``/``state`` ``(B, T, ...)`` and ``action`` ``(B, T - 1, A)``."""
        wm, h = self.world_model, self.world_model.num_hist
        b, horizon = obs.shape[0], obs.shape[1] - h
        sim_obs, sim_state, executed = self._plan_and_execute(obs, state, action, record_every=wm.frameskip)
        obs_key, action_key, state_key = self.in_keys
        return TensorDict(
            {
                obs_key: torch.cat([obs[:, :h], sim_obs], dim=1),
                state_key: torch.cat([state[:, :h], sim_state], dim=1),
                action_key: torch.cat([action[:, :h - 1], executed.reshape(b, horizon, -1)], dim=1),
                "episode": torch.full((b,), -1, dtype=torch.int64, device=obs.device),
            },
            batch_size=[b],
        )

    def _synthesize_slices(self, tensordict: TensorDictBase, obs: torch.Tensor, state: torch.Tensor,
                           action: torch.Tensor) -> TensorDict:
        """Synthetic env-step slices ``(B, slice_len)`` for a flat batch (its windows ``obs``, ``state``, ``action``)."""
        layout, h = self.layout, self.world_model.num_hist
        obs_key, action_key, state_key = self.in_keys
        steps = {key: layout.slices(key, tensordict.get(key)) for key in self.in_keys}
        kept = (h - 1) * layout.frameskip + 1  # env steps of the history frames, kept as recorded
        sim_obs, sim_state, executed = self._plan_and_execute(obs, state, action, record_every=1)
        b = obs.shape[0]
        return TensorDict(
            {
                obs_key: torch.cat([steps[obs_key][:, :kept], sim_obs], dim=1),
                state_key: torch.cat([steps[state_key][:, :kept], sim_state], dim=1),
                action_key: torch.cat([steps[action_key][:, :kept - 1], executed,
                                       executed.new_zeros(b, 1, executed.shape[-1])], dim=1),
                "episode": torch.full((b, layout.slice_len), -1, dtype=torch.int64, device=obs.device),
            },
            batch_size=[b, layout.slice_len],
        )

    def _plan_and_execute(self, obs: torch.Tensor, state: torch.Tensor, action: torch.Tensor,
                          record_every: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Plan open loop from each window's history to its last frame, execute in the simulator.

        Returns the simulated observations and states after every ``record_every``-th
        env step and the executed env actions ``(B, horizon * frameskip, a)``.
        """
        wm, h = self.world_model, self.world_model.num_hist
        b, horizon = obs.shape[0], obs.shape[1] - h
        env = self._simulator_env(b, obs.device)
        with synthesis_mode(wm):
            with torch.no_grad():
                z_hist, z_goal = wm.encode(obs[:, :h]), wm.encode(obs[:, -1])
                a_hist = wm.normalize_action(action[:, :h - 1])
            # the planner draws on the data's device; seed it from the transform's CPU generator
            plan_seed = int(torch.randint(2**62, (), generator=self._generator))
            plan = self._planner(horizon, env).plan(
                z_hist, a_hist, z_goal, generator=torch.Generator(obs.device).manual_seed(plan_seed)).actions
        env_actions = wm.denormalize_action(plan).reshape(b, horizon * wm.frameskip, -1)
        return execute_actions(env, state[:, h - 1], env_actions, record_every)

    def _simulator_env(self, num_envs: int, device: torch.device) -> EnvBase:
        """The task's batched env, built once per batch size and device (simulators can be slow to build)."""
        env = self._env
        if env is None or env.batch_size[0] != num_envs or env.device != device:
            env = self._env = self.task.make_env(num_envs=num_envs, seed=self.seed, device=device)
        return env

    def _planner(self, horizon: int, env: EnvBase) -> Planner:
        if self.planner is not None:
            if self.planner.horizon != horizon:
                raise ValueError(
                    f"planner.horizon must be T - num_hist = {horizon} for windows of this batch, "
                    f"got {self.planner.horizon}"
                )
            return self.planner
        objective = self.objective
        if objective is None:
            objective = (GoalCost(mode="last", proprio_dim=self.world_model.config.proprio_dim)
                         if getattr(self.task, "has_goal", True) else ReturnObjective(self.world_model))
        return make_planner("gd", self.world_model, horizon, objective, action_spec=env.action_spec,
                            steps=self.planner_steps, lr=self.planner_lr)

    def _mix(self, tensordict: TensorDictBase) -> TensorDictBase:
        """A copy of the batch with ``round(fraction * B)`` rows replaced by synthetic windows."""
        device = tensordict.get(self.in_keys[0]).device
        out = tensordict.clone()
        flag = torch.zeros(out.shape[0], dtype=torch.bool, device=device)
        length = 1 if self.layout is None else self.layout.slice_len  # rows per window
        rows = choose_rows(out.shape[0] // length, self.fraction, self._generator).to(device)
        if rows.numel() and len(self._synthetic):
            sample = self._synthetic.sample(rows.numel()).reshape(-1)
            rows = (rows.unsqueeze(-1) * length + torch.arange(length, device=device)).reshape(-1)
            for key in out.keys(include_nested=True, leaves_only=True):
                entry = out.get(key)
                entry[rows] = sample.get(key).to(entry) if key in sample.keys(True) else 0
            flag[rows] = True
        out.set(self.out_keys[0], flag)
        return out
