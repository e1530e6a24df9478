"""Online World Modeling: simulator-corrected planner rollouts, as a replay-buffer transform."""
from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.envs import EnvBase, Transform

from torchrl_gbp.models.contract import (
    PlanningWorldModel,
    action_interface,
    encode_entries,
    proprio_dim,
    require,
)
from torchrl_gbp.objectives import GoalCost, ReturnObjective
from torchrl_gbp.planners import Planner, make_planner
from torchrl_gbp.tasks.env import replay_actions

from .common import check_fraction, choose_rows, synthesis_mode, window_inputs

EnvFactory = Callable[[int], EnvBase]
# How synthetic windows reach training: "replace" rows of each batch (ours), or "append" whole synthetic batches
# as extra optimiser steps (the reference code's).
SCHEDULES = ("replace", "append")


@dataclass(frozen=True)
class OnlineOptions:
    """How :class:`OnlineSynthesis` plans and brings its windows into training (defaults: ours).

    Args:
        capacity: synthetic windows kept (``"replace"``).
        schedule: ``"replace"`` or ``"append"`` (:data:`SCHEDULES`; see :class:`OnlineSynthesis`).
        epoch_batches: ``"append"``: calls per pass over the data, after which the slots start over
            (``None``: never; each slot then holds one set).
        planning_mode: ``"eval"`` or ``"train"`` (the reference code's: dropout on): the model's mode
            while the planner runs.
        planner_steps, planner_lr: the default gradient planner's Adam steps and rate.
        objective: the default planner's objective; ``None``: ``GoalCost(mode="last")`` to the
            window's last frame. A goal-free objective
            (:class:`~torchrl_gbp.planners.ReturnObjective`) plans the predicted return instead.

    Example:
        >>> OnlineOptions(schedule="append", epoch_batches=50).planner_steps
        100
        >>> OnlineOptions(planning_mode="test")
        Traceback (most recent call last):
        ...
        ValueError: OnlineOptions.planning_mode must be 'eval' or 'train', got 'test'
    """

    capacity: int = 10_000
    schedule: str = "replace"
    epoch_batches: int | None = None
    planning_mode: str = "eval"
    planner_steps: int = 100
    planner_lr: float = 0.3
    objective: GoalCost | ReturnObjective | None = None

    def __post_init__(self) -> None:
        for name, value in (("capacity", self.capacity),
                            ("epoch_batches", 1 if self.epoch_batches is None else self.epoch_batches)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"OnlineOptions.{name} must be an int >= 1, got {value!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"OnlineOptions.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.planning_mode not in ("eval", "train"):
            raise ValueError(f"OnlineOptions.planning_mode must be 'eval' or 'train', got {self.planning_mode!r}")
        if self.planner_steps < 0 or not self.planner_lr > 0:
            raise ValueError(f"OnlineOptions needs planner_steps >= 0 and planner_lr > 0, got "
                             f"{self.planner_steps!r} and {self.planner_lr!r}")


class OnlineSynthesis(Transform):
    """Replay-buffer transform: mix in windows where the simulator corrects the planner's rollouts.

    On the first call and every ``every``-th call after it, each model-step
    window of the batch (the model's observation entries, ``"state"``
    ``(B, T, ...)`` and ``"action"`` ``(B, T - 1, action_dim)`` in env units,
    as :class:`~torchrl_gbp.data.ModelStepWindows` makes them) becomes a
    planning problem: its first ``h = num_hist`` frames are the history, its
    last frame the goal. The planner (default: a
    :class:`~torchrl_gbp.planners.GradientPlanner` over ``T - h`` model steps,
    ``GoalCost(mode="last")``, Adam, bounded by the env's action spec) plans
    open loop from the window's latents (``"latent"``, encoded once per batch,
    :func:`~torchrl_gbp.data.window_latents`); then the simulator, reset to
    each window's last history state, executes the planned actions
    (denormalised, clamped into the action spec, ``frameskip`` env steps per
    model step, all windows in one batched env). The synthetic window keeps
    the recorded history frames and actions and continues with the simulated
    observations, states and latents and the executed actions; ``"episode"``
    is -1. Synthetic windows go to a bounded buffer (``capacity`` windows,
    oldest out) on the data's device.

    The world model is any :class:`~torchrl_gbp.models.PlanningWorldModel`;
    planned model actions become env actions through its
    :class:`~torchrl_gbp.models.ActionInterface` (the identity when it has none).
    The simulator is any TorchRL env whose state can be chosen at reset:
    ``env.reset(TensorDict({start_key: states, goal_key: goal_states}), set_state=True)``
    (``reset_keys = (start_key, goal_key)``; ``goal_key=None`` sends the start states only), with the model's
    observation entries and ``state_key`` in its observations. Give an env of
    batch size ``(B,)`` for batches of ``B`` windows, or a factory
    ``num_envs -> env`` (built once per batch size). The package's tasks make
    such envs (``task.make_env``).

    Two schedules bring the synthetic windows into training:

    - ``"replace"`` (ours): on every call, ``round(fraction * B)`` random rows
      of the batch are replaced by windows drawn from that buffer (once it
      holds any); a bool ``"synthetic"`` ``(B,)`` flag marks them. Entries of
      replaced rows that a synthetic window lacks (for instance perturbations
      written by an earlier transform) are zeroed.
    - ``"append"`` (the reference code's): no row is replaced (the flag is all
      False). Calls are numbered ``c = 0, 1, ...`` within passes of
      ``epoch_batches`` calls (``None``: one endless pass); call ``c`` belongs
      to slot ``c // every``. The first call of a slot synthesises from its
      batch and adds the ``B`` synthetic windows, as one set, to that slot's
      sets, which are never dropped; :meth:`appended_batches` returns the
      slot's sets (flag True), on each of which
      :func:`~torchrl_gbp.train.train_world_model` takes one optimiser step
      after the batch's own. So in pass ``e = 1, 2, ...`` every batch brings
      ``1 + e`` optimiser steps: synthetic data are added, not substituted,
      and their share grows over training. Memory (and checkpoints) grow by
      ``B`` windows every ``every`` calls; ``fraction`` and ``capacity`` are
      the replace schedule's and are not used.

    The batch keeps its shape, the result is a new TensorDict, and the sampled
    input is never written. Put it before :class:`AdversarialSynthesis` in a
    ``Compose`` so synthetic windows get perturbed too.

    Planning runs with gradients enabled and the model in eval mode
    (``OnlineOptions(planning_mode="train")``: in train mode, dropout on, as the reference
    code plans; modes restored after); only the action sequence is
    differentiated. The model is held by reference, not as a submodule.
    Counters, the generator and the synthetic windows are in ``state_dict()``,
    so a resumed run continues exactly.

    Args:
        world_model: the model being trained.
        env: the simulator: a TorchRL env or a factory ``num_envs -> env``.
        every: synthesise on every ``every``-th call (the first included).
        fraction: share of the batch rows replaced by synthetic windows (``"replace"``).
        planner: a planner whose ``horizon`` is ``T - num_hist``; overrides the
            default gradient planner (and the options' ``planner_steps``/``planner_lr``/``objective``).
        options: the schedule, the buffer, the planning mode and the default planner (:class:`OnlineOptions`).
        seed: seeds the row choice, the synthetic-buffer sampling and the planner.
        reset_keys: the reset entries receiving the start states and the goal states (``None``: no goal).
        in_keys: the latent, state and action keys of the windows.
        out_keys: the flag key written.

    Example:
        >>> from torchrl_gbp.data import make_window_buffer
        >>> from torchrl_gbp.models import WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> from torchrl_gbp.train import build_world_model
        >>> task = WallTask()
        >>> data = task.generate_dataset(20, seed=0)
        >>> model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5), data)
        >>> online = OnlineSynthesis(model, lambda n: task.make_env(num_envs=n), fraction=0.5,
        ...                          options=OnlineOptions(planner_steps=5))
        >>> buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=8, transform=online)
        >>> batch = buffer.sample()
        >>> batch.shape, int(batch["synthetic"].sum()), len(online.synthetic_buffer), online.synthesis_rounds
        (torch.Size([8]), 4, 8, 1)
        >>> append = OnlineSynthesis(model, lambda n: task.make_env(num_envs=n), every=2,
        ...                          options=OnlineOptions(schedule="append", planner_steps=5))
        >>> buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=8, transform=append)
        >>> [(int(buffer.sample()["synthetic"].sum()), len(append.appended_batches())) for _ in range(3)]
        [(0, 1), (0, 1), (0, 1)]
        >>> append.synthesis_rounds  # calls 0 and 2 synthesised, each into its own slot
        2
    """

    def __init__(self, world_model: PlanningWorldModel, env: EnvBase | EnvFactory, *, every: int = 10,
                 fraction: float = 0.5, planner: Planner | None = None, options: OnlineOptions = OnlineOptions(),
                 seed: int = 0, reset_keys: tuple[NestedKey, NestedKey | None] = ("start_state", "goal_state"),
                 in_keys: Sequence[NestedKey] = ("latent", "state", "action"),
                 out_keys: Sequence[NestedKey] = ("synthetic",)) -> None:
        require(world_model, PlanningWorldModel, "OnlineSynthesis")
        if len(in_keys) != 3 or len(out_keys) != 1:
            raise ValueError(f"in_keys must be (latent, state, action) and out_keys (flag,); got "
                             f"{list(in_keys)} and {list(out_keys)}")
        if len(reset_keys) != 2:
            raise ValueError(f"reset_keys must be (start_key, goal_key or None), got {reset_keys!r}")
        super().__init__(in_keys=list(in_keys), out_keys=list(out_keys))
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        if not isinstance(options, OnlineOptions):
            raise TypeError(f"options must be an OnlineOptions, got {type(options).__name__}")
        if not isinstance(env, EnvBase) and not callable(env):
            raise TypeError(f"env must be a TorchRL env or a factory num_envs -> env, got {type(env).__name__}")
        object.__setattr__(self, "world_model", world_model)  # a reference, not a submodule
        object.__setattr__(self, "action_interface", action_interface(world_model))
        self.env = env
        self.every = every
        self.fraction = check_fraction(fraction)
        self.planner = planner
        self.options = options
        self.start_key, self.goal_key = reset_keys
        self._generator = torch.Generator().manual_seed(seed)
        self._synthetic = self._synthetic_storage(torch.device("cpu"))
        self._frames: int | None = None
        self._calls = 0
        self._rounds = 0
        self._slots: list[list[TensorDict]] = []  # "append": each slot's synthetic sets
        self._due: int | None = None  # "append": the slot of the last call
        self._envs: dict[int, EnvBase] = {}
        # the envs a factory builds are this transform's: closed by close(), or when it is garbage-collected
        weakref.finalize(self, close_envs, self._envs).atexit = False

    def close(self) -> None:
        """Close the envs built from the factory (an env given ready-made is the caller's to close).

        The window buffer's ``close()`` calls it (:func:`~torchrl_gbp.data.make_window_buffer`); the envs are
        built again if the transform is used after.
        """
        close_envs(self._envs)

    def _synthetic_storage(self, device: torch.device) -> ReplayBuffer:
        return ReplayBuffer(storage=LazyTensorStorage(self.options.capacity, device=device), generator=self._generator)

    @property
    def synthetic_buffer(self) -> ReplayBuffer:
        """The bounded buffer of synthetic windows (read it; the transform writes it)."""
        return self._synthetic

    @property
    def synthesis_rounds(self) -> int:
        """How many times windows were synthesised."""
        return self._rounds

    def appended_batches(self) -> list[TensorDict]:
        """``"append"``: the synthetic sets of the last call's slot, one batch each (``"replace"``: none).

        :func:`~torchrl_gbp.train.train_world_model` takes one optimiser step on each after the batch's own.
        """
        if self._due is None:
            return []
        return [synthetic.clone(recurse=False) for synthetic in self._slots[self._due]]

    def get_extra_state(self) -> dict:
        """Counters, the generator and the synthetic windows, saved in ``state_dict()``."""
        return {"calls": self._calls, "rounds": self._rounds, "frames": self._frames,
                "generator": self._generator.get_state(), "synthetic": self._synthetic.state_dict(),
                "due": self._due, "slots": [[(s.to_dict(), s.shape[0]) for s in slot] for slot in self._slots]}

    def set_extra_state(self, state: dict) -> None:
        """Restore :meth:`get_extra_state` (the generator stays shared by the transform and its buffer)."""
        self._calls, self._rounds, self._frames = state["calls"], state["rounds"], state["frames"]
        self._synthetic.load_state_dict(state["synthetic"])
        self._generator.set_state(state["generator"])
        self._synthetic.set_rng(self._generator)
        # states saved before the append schedule existed hold no slots
        self._due = state.get("due")
        self._slots = [[TensorDict(entries, batch_size=[size]) for entries, size in slot]
                       for slot in state.get("slots", [])]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Synthesise when due, then replace a ``fraction`` of the rows (see the class docstring)."""
        latent_key, state_key, action_key = self.in_keys
        tensordict = tensordict.clone(recurse=False)  # the latent goes to the output, never into the sampled input
        z, _ = window_inputs(self.world_model, tensordict, latent_key, action_key)
        if state_key not in tensordict.keys(True):
            raise KeyError(f"OnlineSynthesis needs the true states {state_key!r} in the windows; found "
                           f"{list(tensordict.keys(True, True))}")
        if self._frames not in (None, z.shape[1]):
            raise ValueError(f"this OnlineSynthesis holds windows of {self._frames} frames; got a batch of "
                             f"{z.shape[1]} frames (keep the window length fixed)")
        if self.options.schedule == "append":
            return self._append(tensordict, z)
        if self._calls % self.every == 0:
            if not len(self._synthetic) and self._synthetic.storage.device != z.device:
                self._synthetic = self._synthetic_storage(z.device)  # synthetic windows stay on the data's device
            self._synthetic.extend(self.synthesize(tensordict))
            self._frames = z.shape[1]
            self._rounds += 1
        self._calls += 1
        return self._mix(tensordict, z.device)

    def _append(self, tensordict: TensorDictBase, z: torch.Tensor) -> TensorDictBase:
        """The append schedule's call: synthesise into the slot at its first call, mark the slot due."""
        epoch = self.options.epoch_batches
        position = self._calls if epoch is None else self._calls % epoch
        slot = position // self.every
        if position % self.every == 0:
            synthetic = self.synthesize(tensordict)
            synthetic.set(self.out_keys[0], torch.ones(synthetic.shape[0], dtype=torch.bool, device=synthetic.device))
            self._slots.extend([] for _ in range(slot + 1 - len(self._slots)))
            self._slots[slot].append(synthetic)
            self._frames = z.shape[1]
            self._rounds += 1
        self._due = slot
        self._calls += 1
        return tensordict.set(self.out_keys[0], torch.zeros(tensordict.shape[0], dtype=torch.bool, device=z.device))

    def synthesize(self, windows: TensorDictBase) -> TensorDict:
        """Synthetic windows ``(B,)`` for a batch of windows ``(B,)`` (see the class docstring)."""
        wm, h = self.world_model, self.world_model.num_hist
        latent_key, state_key, action_key = self.in_keys
        z, action = window_inputs(wm, windows, latent_key, action_key)
        state = windows.get(state_key)
        b, horizon = z.shape[0], z.shape[1] - h
        env = self._simulator_env(b)
        interface = self.action_interface
        with synthesis_mode(wm, train=self.options.planning_mode == "train"):
            a_hist = interface.to_model(action[:, :h - 1].to(z.dtype))
            # the planner draws on the data's device; seed it from the transform's CPU generator
            plan_seed = int(torch.randint(2**62, (), generator=self._generator))
            plan = self._planner(horizon, env).plan(
                z[:, :h], a_hist, z[:, -1], generator=torch.Generator(z.device).manual_seed(plan_seed)).actions
        env_actions = interface.to_env(plan).reshape(b, horizon * interface.frameskip, -1)
        reset = {self.start_key: state[:, h - 1]} | ({} if self.goal_key is None else {self.goal_key: state[:, -1]})
        start = env.reset(TensorDict(reset, batch_size=env.batch_size).to(env.device), set_state=True)
        rollout = replay_actions(env, start, env_actions.to(env.device)).to(z.device)
        simulated = rollout["next"][:, interface.frameskip - 1::interface.frameskip]
        with torch.no_grad():
            sim_latent = encode_entries(wm, simulated)
        synthetic = TensorDict(
            {
                latent_key: torch.cat([z[:, :h], sim_latent], dim=1),
                state_key: torch.cat([state[:, :h], simulated.get(state_key).to(state)], dim=1),
                action_key: torch.cat([action[:, :h - 1], rollout["action"].reshape(b, horizon, -1).to(action)],
                                      dim=1),
                "episode": torch.full((b,), -1, dtype=torch.int64, device=z.device),
            },
            batch_size=[b],
        )
        for key in wm.observation_keys:
            recorded = windows.get(key)
            synthetic.set(key, torch.cat([recorded[:, :h], simulated.get(key).to(recorded)], dim=1))
        return synthetic

    def _simulator_env(self, num_envs: int) -> EnvBase:
        """The batched simulator for ``num_envs`` windows (a factory's envs are built once per size)."""
        if isinstance(self.env, EnvBase):
            if tuple(self.env.batch_size) != (num_envs,):
                raise ValueError(f"OnlineSynthesis got batches of {num_envs} windows but its env has batch size "
                                 f"{tuple(self.env.batch_size)}; give an env of batch size ({num_envs},) or a "
                                 f"factory num_envs -> env")
            return self.env
        if num_envs not in self._envs:
            self._envs[num_envs] = self.env(num_envs)
        return self._envs[num_envs]

    def _planner(self, horizon: int, env: EnvBase) -> Planner:
        if self.planner is not None:
            if self.planner.horizon != horizon:
                raise ValueError(
                    f"planner.horizon must be T - num_hist = {horizon} for windows of this batch, "
                    f"got {self.planner.horizon}"
                )
            return self.planner
        objective = self.options.objective
        if objective is None:
            objective = GoalCost(mode="last", proprio_dim=proprio_dim(self.world_model))
        return make_planner("gd", self.world_model, horizon, objective, action_spec=env.action_spec,
                            steps=self.options.planner_steps, lr=self.options.planner_lr)

    def _mix(self, tensordict: TensorDictBase, device: torch.device) -> TensorDictBase:
        """A copy of the batch (on ``device``) with ``round(fraction * B)`` rows replaced by synthetic windows.

        The batch holds no latent when the model's observation encoder trains (``window_latents``
        leaves it to the loss), so the device comes from the caller."""
        out = tensordict.clone()
        flag = torch.zeros(out.shape[0], dtype=torch.bool, device=device)
        rows = choose_rows(out.shape[0], self.fraction, self._generator).to(device)
        if rows.numel() and len(self._synthetic):
            sample = self._synthetic.sample(rows.numel())
            for key in out.keys(include_nested=True, leaves_only=True):
                entry = out.get(key)
                entry[rows] = sample.get(key).to(entry) if key in sample.keys(True) else 0
            flag[rows] = True
        out.set(self.out_keys[0], flag)
        return out


def close_envs(envs: dict[int, EnvBase]) -> None:
    """Close and forget every env of ``envs``; all are closed even when one raises, and then the first error is
    raised with the others as notes.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> envs = {2: WallTask().make_env(num_envs=2)}
        >>> close_envs(envs)
        >>> envs
        {}
    """
    errors = []
    while envs:
        _, env = envs.popitem()
        try:
            env.close()
        except Exception as error:
            errors.append(error)
    for other in errors[1:]:
        errors[0].add_note(f"closing another env raised too: {other!r}")
    if errors:
        raise errors[0]
