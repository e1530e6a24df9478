"""Model-predictive control with any planner, as a TorchRL policy module."""
from __future__ import annotations

import copy
import time

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torchrl.data import Composite, TensorSpec, Unbounded
from torchrl.envs import TensorDictPrimer
from torchrl.envs.utils import ExplorationType, exploration_type

from .base import Planner, fresh_episode_history
from .factory import env_action_bounds


class MPCPolicy(TensorDictModuleBase):
    """Receding-horizon control: plan in the world model, execute, replan.

    Reads ``observation_key`` and ``goal_key`` (a goal observation; ``goal_key=None``
    for objectives without a goal, such as
    :class:`~torchrl_gbp.planners.ReturnObjective` on any env with a reward), writes
    ``action_key`` inside ``action_spec``. Every ``n_taken_actions`` model
    steps (``n_taken_actions * frameskip`` env steps) it replans, warm-started
    from the previous plan shifted by the executed steps. All per-env state
    (observation and action history, current plan, step counter) lives in the
    TensorDict under ``info_key``, declared by :meth:`make_tensordict_primer`
    and cleared where ``"is_init"`` is set, so the policy runs in
    ``env.rollout``, TorchRL collectors (``auto_register_policy_transforms=True``
    adds the primer and an ``InitTracker``) and ``torchrl.collectors.Evaluator``.
    It also writes ``(info_key, "cost")``, ``(info_key, "seconds")`` and
    ``(info_key, "replanned")`` on every step.

    Collectors call policies under ``torch.no_grad()``; gradient planners
    re-enable gradients for the action tensor only. Under
    ``ExplorationType.RANDOM`` Gaussian noise of ``exploration_std`` (a
    fraction of the action range) is added and planners draw from the global
    RNG; otherwise the policy is deterministic (planners use a generator seeded
    with ``seed`` on every call).

    Args:
        world_model: a world model with ``encode``, ``rollout`` and action
            (de)normalisation (see :class:`~torchrl_gbp.models.StateWorldModel`).
        planner: any :class:`~torchrl_gbp.planners.Planner` built on ``world_model``.
            It is left unchanged: if it has no action bounds, the policy plans with
            a shallow copy of it bounded by ``action_spec`` (``policy.planner``).
        action_spec: the env's action spec (bounded).
        observation_key, goal_key, action_key: TensorDict keys (``goal_key=None``: no goal is read,
            which the planner's objective must allow, ``needs_goal = False``).
        n_taken_actions: model steps executed before replanning (<= horizon).
        warm_start: start each search from the shifted previous plan.
        exploration_std: noise std under ``ExplorationType.RANDOM``, as a fraction
            of the half-range of each action dimension.
        seed: generator seed for deterministic calls.
        info_key: sub-TensorDict for the policy's state and diagnostics.
        on_nonfinite: what a NaN or inf in the observation or goal does: ``"raise"``
            (default) a ``ValueError`` naming the key and the env indices;
            ``"hold"`` repeats those envs' last action (zero before their first)
            and leaves their planner state as it was, while the other envs plan.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.planners import GradientPlanner
        >>> task = WallTask()
        >>> env = task.make_env(num_envs=2, seed=0)
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> policy = MPCPolicy(model, GradientPlanner(model, steps=2), env.action_spec)
        >>> env.append_transform(policy.make_tensordict_primer())  # doctest: +ELLIPSIS
        TransformedEnv(...)
        >>> env.rollout(3, policy)["action"].shape
        torch.Size([2, 3, 2])
    """

    def __init__(self, world_model, planner: Planner, action_spec: TensorSpec, *,
                 observation_key: NestedKey = "observation", goal_key: NestedKey | None = "goal",
                 action_key: NestedKey = "action", n_taken_actions: int = 1, warm_start: bool = True,
                 exploration_std: float = 0.1, seed: int = 0, info_key: str = "planner",
                 on_nonfinite: str = "raise") -> None:
        super().__init__()
        if not exploration_std >= 0:
            raise ValueError(f"exploration_std must be >= 0, got {exploration_std!r}")
        if on_nonfinite not in ("raise", "hold"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'hold', got {on_nonfinite!r}")
        self.on_nonfinite = on_nonfinite
        if not 1 <= n_taken_actions <= planner.horizon:
            raise ValueError(f"n_taken_actions must be in [1, horizon={planner.horizon}], got {n_taken_actions}")
        if planner.world_model is not world_model:
            raise ValueError("the planner must be built on the same world_model as the policy")
        if goal_key is None and getattr(planner.objective, "needs_goal", True):
            raise ValueError(f"goal_key=None but the planner's objective {planner.objective!r} needs a goal; "
                             "use an objective without one (ReturnObjective) or give the goal key")
        self.world_model = world_model
        self.planner = planner
        self.observation_key = observation_key
        self.goal_key = goal_key
        self.action_key = action_key
        self.n_taken_actions = n_taken_actions
        self.warm_start = warm_start
        self.exploration_std = exploration_std
        self.seed = seed
        self.info_key = info_key
        self.env_action_dim = world_model.config.env_action_dim
        self.obs_dim = world_model.config.obs_dim
        low, high = env_action_bounds(action_spec, self.env_action_dim, action_key)
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)
        if planner.action_low is None:
            self.planner = planner = copy.copy(planner)
            planner.action_low, planner.action_high = world_model.normalized_action_bounds(low, high)
        goal_keys = [] if goal_key is None else [goal_key]
        self.in_keys = [observation_key, *goal_keys, "is_init", *[(info_key, k) for k in self._state_keys]]
        self.out_keys = [action_key, *[(info_key, k) for k in (*self._state_keys, "cost", "seconds", "replanned")]]

    _state_keys = ("plan", "steps_since_plan", "obs_history", "action_history", "current_block", "initialized",
                   "last_action")

    # ---------------------------------------------------------------- specs
    def _state_spec(self) -> Composite:
        h, a, horizon = self.world_model.num_hist, self.world_model.action_dim, self.planner.horizon
        return Composite({self.info_key: Composite(
            plan=Unbounded((horizon, a)),
            steps_since_plan=Unbounded((1,), dtype=torch.int64),
            obs_history=Unbounded((h, self.obs_dim)),
            action_history=Unbounded((h - 1, a)),
            current_block=Unbounded((a,)),
            initialized=Unbounded((1,), dtype=torch.bool),
            last_action=Unbounded((self.env_action_dim,)),
            cost=Unbounded((1,)),
            seconds=Unbounded((1,)),
            replanned=Unbounded((1,), dtype=torch.bool),
        )})

    def make_tensordict_primer(self) -> TensorDictPrimer:
        """The env transform that declares and zero-resets the policy's state entries."""
        return TensorDictPrimer(self._state_spec(), default_value=0, expand_specs=True)

    # -------------------------------------------------------------- helpers
    def _read(self, td: TensorDictBase, key: NestedKey, dim: int, what: str) -> torch.Tensor:
        value = td.get(key, None)
        if value is None:
            raise KeyError(f"MPCPolicy needs {what} under key {key!r}; the TensorDict has {list(td.keys(True, True))}")
        if value.shape[-1] != dim or value.shape[:-1] != td.batch_size:
            raise ValueError(
                f"MPCPolicy expected {key!r} of shape {(*td.batch_size, dim)} (batch + ({dim},)), got {tuple(value.shape)}"
            )
        return value.reshape(-1, dim).to(self.action_low)

    def _state(self, td: TensorDictBase, batch: int) -> dict[str, torch.Tensor]:
        spec = self._state_spec()[self.info_key]
        state = {}
        for name in self._state_keys:
            value = td.get((self.info_key, name), None)
            shape = spec[name].shape
            state[name] = (torch.zeros(batch, *shape, dtype=spec[name].dtype, device=self.action_low.device)
                           if value is None else value.reshape(batch, *shape).to(self.action_low.device).clone())
        return state

    def _generator(self) -> torch.Generator | None:
        if exploration_type() == ExplorationType.RANDOM:
            return None
        return torch.Generator(device=self.action_low.device).manual_seed(self.seed)

    # --------------------------------------------------------------- forward
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the next action (and the updated planner state) into ``tensordict``."""
        wm, fs = self.world_model, self.world_model.frameskip
        batch_shape = tensordict.batch_size
        obs = self._read(tensordict, self.observation_key, self.obs_dim, "the observation")
        goal = (None if self.goal_key is None
                else self._read(tensordict, self.goal_key, self.obs_dim, "the goal observation"))
        b = obs.shape[0]
        s = self._state(tensordict, b)
        read = [(self.observation_key, obs)] + ([] if goal is None else [(self.goal_key, goal)])
        finite = torch.stack([torch.isfinite(x).all(-1) for _, x in read]).all(0)
        held = None
        if not finite.all():
            bad = [str(key) for key, x in read if not torch.isfinite(x).all()]
            if self.on_nonfinite == "raise":
                raise ValueError(f"MPCPolicy got non-finite values in {', '.join(bad)} at env indices "
                                 f"{(~finite).nonzero().flatten().tolist()} (on_nonfinite='hold' repeats the "
                                 f"last action there instead)")
            held = {name: value.clone() for name, value in s.items()}
            obs = torch.where(finite[:, None], obs, 0.0)  # keep NaN out of the search; these rows are restored
            goal = None if goal is None else torch.where(finite[:, None], goal, 0.0)
        is_init = tensordict.get("is_init", None)
        fresh = ~s["initialized"].reshape(b)
        if is_init is not None:
            fresh = fresh | is_init.reshape(b, -1).any(-1).to(fresh.device)
        k = torch.where(fresh, 0, s["steps_since_plan"].reshape(b))
        # History: on a fresh episode repeat the first frame; after each completed model step push it.
        h = wm.num_hist
        first_obs, first_actions = fresh_episode_history(obs, h, wm.action_dim)
        s["obs_history"] = torch.where(fresh[:, None, None], first_obs, s["obs_history"])
        s["action_history"] = torch.where(fresh[:, None, None], first_actions, s["action_history"])
        boundary = (~fresh) & (k % fs == 0)
        if boundary.any():
            pushed_obs = torch.cat([s["obs_history"][:, 1:], obs.unsqueeze(1)], dim=1)
            executed = wm.normalize_action(s["current_block"]).unsqueeze(1)
            pushed_act = torch.cat([s["action_history"], executed], dim=1)[:, 1:] if h > 1 else s["action_history"]
            s["obs_history"] = torch.where(boundary[:, None, None], pushed_obs, s["obs_history"])
            s["action_history"] = torch.where(boundary[:, None, None], pushed_act, s["action_history"])
        replan = (fresh | (k >= self.n_taken_actions * fs)) & finite
        cost = torch.zeros(b, 1, device=obs.device)
        seconds = torch.zeros(b, 1, device=obs.device)
        if replan.any():
            rows = replan.nonzero().squeeze(-1)
            generator = self._generator()
            with torch.no_grad():
                z_hist = wm.encode(s["obs_history"][rows])
                z_goal = None if goal is None else wm.encode(goal[rows])
            cold = self.planner.cold_start(rows.numel(), z_hist, generator)
            init = cold
            if self.warm_start:
                shifted = torch.cat([s["plan"][rows, self.n_taken_actions:],
                                     s["plan"].new_zeros(rows.numel(), self.n_taken_actions, wm.action_dim)], dim=1)
                init = torch.where(fresh[rows, None, None], cold, self.planner.project(shifted))
            start = time.perf_counter()
            result = self.planner.plan(z_hist, s["action_history"][rows], z_goal, init=init, generator=generator)
            elapsed = time.perf_counter() - start
            s["plan"][rows] = result.actions
            cost[rows] = result.cost.unsqueeze(-1)
            seconds[rows] = elapsed
            k = torch.where(replan, 0, k)
        # The env action: entry (k mod frameskip) of plan block (k div frameskip), in env units.
        block = wm.denormalize_action(s["plan"][torch.arange(b), k // fs]).reshape(b, fs, self.env_action_dim)
        action = block[torch.arange(b), k % fs]
        if exploration_type() == ExplorationType.RANDOM and self.exploration_std > 0:
            action = action + torch.randn_like(action) * self.exploration_std * (self.action_high - self.action_low) / 2
        action = torch.maximum(torch.minimum(action, self.action_high), self.action_low)
        current = torch.where((k % fs == 0)[:, None], 0.0, s["current_block"]).reshape(b, fs, self.env_action_dim)
        current[torch.arange(b), k % fs] = action
        s["current_block"] = current.reshape(b, fs * self.env_action_dim)
        s["steps_since_plan"] = (k + 1).reshape(b, 1)
        s["initialized"] = torch.ones(b, 1, dtype=torch.bool, device=obs.device)
        s["last_action"] = action
        if held is not None:
            for name, value in s.items():
                keep = (~finite).reshape(b, *[1] * (value.ndim - 1))
                s[name] = torch.where(keep, held[name], value)
            action = torch.maximum(torch.minimum(s["last_action"], self.action_high), self.action_low)
        out = {**s, "cost": cost, "seconds": seconds, "replanned": replan.reshape(b, 1)}
        tensordict.set(self.action_key, action.reshape(*batch_shape, self.env_action_dim))
        for name, value in out.items():
            tensordict.set((self.info_key, name), value.reshape(*batch_shape, *value.shape[1:]))
        return tensordict
