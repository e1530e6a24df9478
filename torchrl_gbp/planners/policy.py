"""Model-predictive control with any planner, as a TorchRL policy module."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torchrl.data import Composite, TensorSpec, Unbounded
from torchrl.envs import TensorDictPrimer
from torchrl.envs.utils import ExplorationType, exploration_type

from ..models.contract import PlanningWorldModel, action_interface, cast_float, model_device, model_dtype, require
from .base import Planner
from .factory import env_action_bounds


class PolicyStatePrimer(TensorDictPrimer):
    """A ``TensorDictPrimer`` that declares a policy's per-env state on the state side only.

    The entries go to the env's ``state_spec`` (inputs carried from step to
    step, zeroed at reset), not to its observations, so a rollout stores
    them once per step and never again under ``"next"``.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> env = WallTask().make_env(num_envs=2, seed=0)
        >>> env = env.append_transform(PolicyStatePrimer(Composite(memory=Unbounded(shape=(3,))),
        ...                                              default_value=0, expand_specs=True))
        >>> "memory" in env.state_spec.keys(), "memory" in env.observation_spec.keys()
        (True, False)
        >>> env.reset()["memory"].shape
        torch.Size([2, 3])
        >>> "memory" in env.rollout(3).get("next").keys()
        False
    """

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        """Observations are left as they are."""
        return observation_spec

    def transform_input_spec(self, input_spec: Composite) -> Composite:
        """Add the primers to the state spec."""
        state = input_spec["full_state_spec"]
        if state is None:
            state = Composite(shape=input_spec.shape, device=input_spec.device)
        input_spec["full_state_spec"] = super().transform_observation_spec(state)
        return input_spec

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        return next_tensordict  # never copied under "next": the rollout carries the state entries forward


class _Step(NamedTuple):
    """Where each env of a batch stands on this call."""

    fresh: torch.Tensor     # (b,) a new episode starts
    k: torch.Tensor         # (b,) env steps since the last plan (0 on fresh episodes)
    observe: torch.Tensor   # (b,) a model step completes here: the observation is read and encoded
    finite: torch.Tensor    # (b,) the inputs read here are finite (always True where nothing was read)


class MPCPolicy(TensorDictModuleBase):
    """Receding-horizon control: plan in the world model, execute, replan.

    Reads the observation entries and the goal's (``in_keys``; by default the
    world model's ``observation_keys`` then ``goal_keys``: ``"observation"``,
    ``"goal"`` for state models, ``"pixels"``, ``"proprio"``,
    ``("goal", "pixels")``, ``("goal", "proprio")`` for pixel models; no goal
    keys when the planner's objective needs no goal, such as
    :class:`~torchrl_gbp.planners.ReturnObjective` on any env with a reward)
    and writes the action (``out_keys``, ``["action"]``) inside ``action_spec``
    (one clamp into its bounds, in its dtype). Every ``n_taken_actions``
    model steps (``n_taken_actions * frameskip`` env steps) it replans,
    warm-started from the previous plan shifted by the executed steps.

    The world model is any :class:`~torchrl_gbp.models.PlanningWorldModel`;
    env actions become model actions through its
    :class:`~torchrl_gbp.models.ActionInterface` (the identity when it has
    none). Float observation entries of any dtype (dm_control's float64) are
    cast into the model's dtype here, at the policy's edge; integer or discrete
    action specs are refused.

    Its per-env state lives in the TensorDict under ``info_key``, in latent
    space: the latent history, the past model actions, the goal latent, the
    current plan and step counters. The observation is read, checked and
    encoded only where a model step completes (every ``frameskip`` env steps)
    and the goal only where an episode starts (``"is_init"``), so an env may
    write its goal entries at reset only. The state is declared by
    :meth:`make_tensordict_primer` on the state side, so ``env.rollout``
    keeps it once per step, TorchRL collectors
    (``auto_register_policy_transforms=True`` adds the primer and an
    ``InitTracker``) and ``torchrl.collectors.Evaluator`` run it, and image
    transforms (``ToTensorImage``, ``Resize``) may sit in front of it. It also
    writes ``(info_key, "cost")``, ``(info_key, "seconds")``,
    ``(info_key, "iterations")`` and ``(info_key, "replanned")`` on every step.

    Collectors call policies under ``torch.no_grad()``; gradient planners
    re-enable gradients for the action tensor only. Under
    ``ExplorationType.RANDOM`` Gaussian noise of ``exploration_std`` (a
    fraction of the action range) is added and planners draw from the global
    RNG; otherwise the policy is deterministic (planners use a generator seeded
    with ``seed`` on every call).

    Args:
        planner: any :class:`~torchrl_gbp.planners.Planner`; the policy plans in its
            world model (``planner.world_model``) as the planner is configured (bounded
            or not: a bounded planner keeps its plans inside the spec, :func:`make_planner`
            with ``action_spec``).
        action_spec: the env's action spec (float, bounded).
        in_keys: the observation keys then the goal keys (one goal key per observation key;
            none for objectives without a goal).
        out_keys: the action key, ``[action_key]``.
        n_taken_actions: model steps executed before replanning (<= horizon).
        warm_start: start each search from the shifted previous plan.
        exploration_std: noise std under ``ExplorationType.RANDOM``, as a fraction
            of the half-range of each action dimension.
        seed: generator seed for deterministic calls.
        info_key: sub-TensorDict for the policy's state and diagnostics.
        on_nonfinite: what a NaN or inf in an observation or goal entry read by the policy does:
            ``"raise"`` (default) a ``ValueError`` naming the key and the env indices; ``"hold"``
            repeats those envs' last action (zero before their first) and leaves their planner
            state as it was, while the other envs plan.
        clock: what ``(info_key, "seconds")`` is read from: wall seconds (``time.perf_counter``,
            default), or ``time.process_time`` for this process's CPU seconds, steadier than wall time on a
            shared machine when torch runs one thread.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.planners import make_planner
        >>> env = WallTask().make_env(num_envs=2, seed=0)
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> policy = MPCPolicy(make_planner("gd", model, action_spec=env.action_spec, steps=2), env.action_spec)
        >>> policy.in_keys[:2], policy.out_keys[0]
        (['observation', 'goal'], 'action')
        >>> env.append_transform(policy.make_tensordict_primer())  # doctest: +ELLIPSIS
        TransformedEnv(...)
        >>> env.rollout(3, policy)["action"].shape
        torch.Size([2, 3, 2])
    """

    def __init__(self, planner: Planner, action_spec: TensorSpec, *, in_keys: Sequence[NestedKey] | None = None,
                 out_keys: Sequence[NestedKey] | None = None, n_taken_actions: int = 1, warm_start: bool = True,
                 exploration_std: float = 0.1, seed: int = 0, info_key: str = "planner",
                 on_nonfinite: str = "raise", clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        if not isinstance(planner, Planner):
            raise TypeError(f"planner must be a torchrl_gbp Planner, got {type(planner).__name__}")
        if not exploration_std >= 0:
            raise ValueError(f"exploration_std must be >= 0, got {exploration_std!r}")
        if on_nonfinite not in ("raise", "hold"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'hold', got {on_nonfinite!r}")
        if not 1 <= n_taken_actions <= planner.horizon:
            raise ValueError(f"n_taken_actions must be in [1, horizon={planner.horizon}], got {n_taken_actions}")
        wm = planner.world_model
        require(wm, PlanningWorldModel, "MPCPolicy")
        needs_goal = getattr(planner.objective, "needs_goal", True)
        n = len(wm.observation_keys)
        if in_keys is None:
            in_keys = [*wm.observation_keys, *(wm.goal_keys if needs_goal else ())]
        in_keys = list(in_keys)
        if len(in_keys) != (2 * n if needs_goal else n):
            raise ValueError(f"in_keys must name the model's {n} observation entr{'y' if n == 1 else 'ies'}"
                             + (f" then the goal's {n}" if needs_goal else " (the objective needs no goal)")
                             + f"; got {in_keys} (the model reads {list(wm.observation_keys)})")
        out_keys = ["action"] if out_keys is None else list(out_keys)
        if len(out_keys) != 1:
            raise ValueError(f"out_keys must be [action_key], got {out_keys}")
        self.on_nonfinite = on_nonfinite
        self.clock = clock
        self.world_model = wm
        self.planner = planner
        self.action_interface = action_interface(wm)
        self.observation_keys, self.goal_keys = in_keys[:n], in_keys[n:]
        self.action_key = out_keys[0]
        self.n_taken_actions = n_taken_actions
        self.warm_start = warm_start
        self.exploration_std = exploration_std
        self.seed = seed
        self.info_key = info_key
        self.env_action_dim = self.action_interface.env_action_dim
        self.dtype = model_dtype(wm)
        low, high = env_action_bounds(action_spec, self.env_action_dim, self.action_key)
        self.action_dtype = low.dtype
        device = model_device(wm)
        self.register_buffer("action_low", low.to(device, self.dtype))
        self.register_buffer("action_high", high.to(device, self.dtype))
        self._spec = self._state_spec()
        self._shapes = {name: (spec.shape, spec.dtype) for name, spec in self._spec[info_key].items()}
        self._generators: dict[torch.device, torch.Generator] = {}
        state = [(info_key, k) for k in self._state_keys]
        self.in_keys = [*in_keys, "is_init", *state]
        self.out_keys = [self.action_key, *state, *[(info_key, k) for k in self._measured_keys]]

    _state_keys = ("latent_history", "action_history", "goal_latent", "plan", "steps_since_plan", "current_block",
                   "initialized", "last_action")
    _measured_keys = ("cost", "seconds", "iterations", "replanned")

    # ---------------------------------------------------------------- specs
    def _state_spec(self) -> Composite:
        wm = self.world_model
        h, a, d, horizon = wm.num_hist, wm.action_dim, wm.latent_dim, self.planner.horizon
        f = self.dtype
        return Composite({self.info_key: Composite(
            latent_history=Unbounded((h, d), dtype=f),
            action_history=Unbounded((h - 1, a), dtype=f),
            goal_latent=Unbounded((d,), dtype=f),
            plan=Unbounded((horizon, a), dtype=f),
            steps_since_plan=Unbounded((1,), dtype=torch.int64),
            current_block=Unbounded((a,), dtype=f),
            initialized=Unbounded((1,), dtype=torch.bool),
            last_action=Unbounded((self.env_action_dim,), dtype=f),
            cost=Unbounded((1,), dtype=f),
            seconds=Unbounded((1,)),
            iterations=Unbounded((1,), dtype=torch.int64),
            replanned=Unbounded((1,), dtype=torch.bool),
        )})

    def make_tensordict_primer(self) -> PolicyStatePrimer:
        """The env transform that declares (on the state side) and zero-resets the policy's state entries."""
        return PolicyStatePrimer(self._spec.clone(), default_value=0, expand_specs=True)

    # --------------------------------------------------------------- forward
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the next action (and the updated planner state) into ``tensordict``."""
        b = tensordict.batch_size.numel()
        state = self._read_state(tensordict, b)
        step = self._begin_episodes(tensordict, state, b)
        step = self._observe(tensordict, state, step)
        replan = (step.fresh | (step.k >= self.n_taken_actions * self.action_interface.frameskip)) & step.finite
        measured = self._replan(state, replan, step.fresh)
        action = self._act(state, step._replace(k=torch.where(replan, 0, step.k)))
        return self._write(tensordict, action, {**state, **measured, "replanned": replan.reshape(b, 1)})

    def _read_state(self, td: TensorDictBase, b: int) -> dict[str, torch.Tensor]:
        """The policy's state entries ``(b, ...)`` (zeros where the TensorDict has none yet)."""
        device = self.action_low.device
        state = {}
        for name in self._state_keys:
            shape, dtype = self._shapes[name]
            value = td.get((self.info_key, name), None)
            state[name] = (torch.zeros(b, *shape, dtype=dtype, device=device) if value is None
                           else value.reshape(b, *shape).to(device, dtype).clone())
        return state

    def _begin_episodes(self, td: TensorDictBase, state: dict[str, torch.Tensor], b: int) -> _Step:
        """Which envs start an episode (never initialised, or ``"is_init"``) and each env's step counter."""
        fresh = ~state["initialized"].reshape(b)
        is_init = td.get("is_init", None)
        if is_init is not None:
            fresh = fresh | is_init.reshape(b, -1).any(-1).to(fresh.device)
        k = torch.where(fresh, 0, state["steps_since_plan"].reshape(b))
        observe = k % self.action_interface.frameskip == 0
        return _Step(fresh, k, observe, torch.ones_like(fresh))

    def _observe(self, td: TensorDictBase, state: dict[str, torch.Tensor], step: _Step) -> _Step:
        """At completed model steps: push the encoded observation (and the executed model action) onto the
        history; on fresh episodes: fill the history with the first frame and encode the goal once."""
        rows = step.observe.nonzero().squeeze(-1)
        if not rows.numel():
            return step
        starting = step.fresh[rows]
        entries = self._entries(td, self.observation_keys, rows)
        goal_rows = rows[starting]
        goal = self._entries(td, self.goal_keys, goal_rows) if self.goal_keys and goal_rows.numel() else []
        finite = self._finite(entries, rows, step.fresh.shape[0])
        if goal:
            finite[goal_rows] &= self._finite(goal, goal_rows, step.fresh.shape[0])[goal_rows]
        if not bool(finite.all()):
            self._nonfinite(td, entries, goal, rows, goal_rows)
            keep = finite[rows]
            rows, starting, entries = rows[keep], starting[keep], [x[keep] for x in entries]
            goal = [x[finite[goal_rows]] for x in goal]
            goal_rows = goal_rows[finite[goal_rows]]
        if rows.numel():
            z_now = self._encode(self.observation_keys, entries, rows.numel())
            history = state["latent_history"][rows]
            pushed = torch.cat([history[:, 1:], z_now.unsqueeze(1)], dim=1)
            state["latent_history"][rows] = torch.where(starting[:, None, None], z_now.unsqueeze(1).expand_as(history),
                                                        pushed)
            if self.world_model.num_hist > 1:
                executed = self.action_interface.to_model(state["current_block"][rows]).unsqueeze(1)
                actions = torch.cat([state["action_history"][rows], executed], dim=1)[:, 1:]
                state["action_history"][rows] = torch.where(starting[:, None, None], 0.0, actions)
            if goal:
                state["goal_latent"][goal_rows] = self._encode(self.goal_keys, goal, goal_rows.numel())
        return step._replace(finite=finite)

    def _replan(self, state: dict[str, torch.Tensor], replan: torch.Tensor,
                fresh: torch.Tensor) -> dict[str, torch.Tensor]:
        """Plan for the envs in ``replan`` (warm-started from the shifted plan unless fresh); what it measured."""
        b = replan.shape[0]
        cost = torch.zeros(b, 1, dtype=self.dtype, device=self.action_low.device)
        seconds = torch.zeros(b, 1, device=cost.device)
        iterations = torch.zeros(b, 1, dtype=torch.int64, device=cost.device)
        rows = replan.nonzero().squeeze(-1)
        if rows.numel():
            generator = self._generator()
            z_hist = state["latent_history"][rows]
            init = cold = self.planner.cold_start(rows.numel(), z_hist, generator)
            if self.warm_start:
                plan = state["plan"][rows]
                shifted = torch.cat([plan[:, self.n_taken_actions:],
                                     plan.new_zeros(rows.numel(), self.n_taken_actions, plan.shape[-1])], dim=1)
                init = torch.where(fresh[rows, None, None], cold, self.planner.project(shifted))
            start = self.clock()
            result = self.planner.plan(z_hist, state["action_history"][rows],
                                       state["goal_latent"][rows] if self.goal_keys else None,
                                       init=init, generator=generator)
            seconds[rows] = self.clock() - start
            state["plan"][rows] = result.actions
            cost[rows] = result.cost.unsqueeze(-1).to(cost.dtype)
            iterations[rows] = result.iterations
        return {"cost": cost, "seconds": seconds, "iterations": iterations}

    def _act(self, state: dict[str, torch.Tensor], step: _Step) -> torch.Tensor:
        """The env action: entry ``k mod frameskip`` of plan block ``k div frameskip``, clamped into the spec;
        envs with non-finite inputs repeat their last action and keep their counters."""
        fs, b = self.action_interface.frameskip, step.k.shape[0]
        rows, k = torch.arange(b, device=step.k.device), step.k
        action = self.action_interface.to_env(state["plan"][rows, k // fs])[rows, k % fs]
        if exploration_type() == ExplorationType.RANDOM and self.exploration_std > 0:
            action = action + torch.randn_like(action) * self.exploration_std * (self.action_high - self.action_low) / 2
        finite = step.finite[:, None]
        action = torch.where(finite, action, state["last_action"]).clamp(self.action_low, self.action_high)
        block = torch.where((k % fs == 0)[:, None], 0.0, state["current_block"]).reshape(b, fs, self.env_action_dim)
        block[rows, k % fs] = action
        state["current_block"] = torch.where(finite, block.flatten(1), state["current_block"])
        state["steps_since_plan"] = torch.where(finite, (k + 1)[:, None], state["steps_since_plan"])
        state["initialized"] = state["initialized"] | finite
        state["last_action"] = action
        return action

    def _write(self, td: TensorDictBase, action: torch.Tensor, out: dict[str, torch.Tensor]) -> TensorDictBase:
        batch_shape = td.batch_size
        td.set(self.action_key, action.to(self.action_dtype).reshape(*batch_shape, self.env_action_dim))
        for name, value in out.items():
            td.set((self.info_key, name), value.reshape(*batch_shape, *value.shape[1:]))
        return td

    # -------------------------------------------------------------- helpers
    def _entries(self, td: TensorDictBase, keys: list[NestedKey], rows: torch.Tensor) -> list[torch.Tensor]:
        """The entries ``keys`` at env rows ``rows``, on the model's device, floats in its dtype."""
        entries = []
        for key in keys:
            value = td.get(key, None)
            if value is None:
                raise KeyError(f"MPCPolicy reads {key!r} (in_keys {[*self.observation_keys, *self.goal_keys]}); "
                               f"the TensorDict has {list(td.keys(True, True))}")
            if value.shape[:td.batch_dims] != td.batch_size:
                raise ValueError(f"MPCPolicy expected {key!r} with the batch dims {tuple(td.batch_size)} of the "
                                 f"TensorDict, got shape {tuple(value.shape)}")
            value = value.reshape(-1, *value.shape[td.batch_dims:])[rows.to(value.device)]
            entries.append(cast_float(value.to(self.action_low.device), self.dtype))
        return entries

    def _encode(self, keys: list[NestedKey], entries: list[torch.Tensor], n: int) -> torch.Tensor:
        """The latents ``(n, D)`` of ``entries`` (one per key), one observation per env."""
        with torch.no_grad():
            z = self.world_model.encode(*entries)
        if z.shape != (n, self.world_model.latent_dim):
            shapes = {str(key): tuple(x.shape[1:]) for key, x in zip(keys, entries)}
            raise ValueError(f"MPCPolicy expected one observation per env in {shapes} (per-env shapes); they "
                             f"encode to {tuple(z.shape[1:])} per env instead of ({self.world_model.latent_dim},)")
        return z

    @staticmethod
    def _finite(entries: list[torch.Tensor], rows: torch.Tensor, b: int) -> torch.Tensor:
        """``(b,)``: False at the rows whose entries hold a NaN or inf."""
        finite = torch.ones(b, dtype=torch.bool, device=rows.device)
        for x in entries:
            if x.is_floating_point():
                finite[rows] &= torch.isfinite(x).flatten(1).all(-1) if x.ndim > 1 else torch.isfinite(x)
        return finite

    def _nonfinite(self, td: TensorDictBase, entries: list[torch.Tensor], goal: list[torch.Tensor],
                   rows: torch.Tensor, goal_rows: torch.Tensor) -> None:
        if self.on_nonfinite == "hold":
            return
        b = td.batch_size.numel()
        named = [*zip(self.observation_keys, entries, [rows] * len(entries)),
                 *zip(self.goal_keys, goal, [goal_rows] * len(goal))]
        bad = {str(key): (~self._finite([x], where, b)).nonzero().flatten().tolist() for key, x, where in named}
        bad = {key: envs for key, envs in bad.items() if envs}
        raise ValueError(f"MPCPolicy got non-finite values in {', '.join(bad)} at env indices "
                         f"{sorted({i for envs in bad.values() for i in envs})} (on_nonfinite='hold' repeats the last "
                         f"action there instead)")

    def _generator(self) -> torch.Generator | None:
        """``None`` under ``ExplorationType.RANDOM``; otherwise this device's generator, seeded with ``seed``."""
        if exploration_type() == ExplorationType.RANDOM:
            return None
        device = self.action_low.device
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device)
        return self._generators[device].manual_seed(self.seed)
