"""Model-predictive control with any planner, as a TorchRL policy module."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torchrl.data import Composite, TensorSpec, Unbounded
from torchrl.envs import TensorDictPrimer
from torchrl.envs.utils import ExplorationType, exploration_type

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


class MPCPolicy(TensorDictModuleBase):
    """Receding-horizon control: plan in the world model, execute, replan.

    Reads the observation entries and the goal's (``in_keys``; by default the
    world model's ``observation_keys`` then ``goal_keys``: ``"observation"``,
    ``"goal"`` for state models, ``"pixels"``, ``"proprio"``,
    ``("goal", "pixels")``, ``("goal", "proprio")`` for pixel models; no goal
    keys when the planner's objective needs no goal, such as
    :class:`~torchrl_gbp.planners.ReturnObjective` on any env with a reward)
    and writes the action (``out_keys``, ``["action"]``) inside ``action_spec``
    (projected with ``torch.clamp`` into its bounds). Every ``n_taken_actions``
    model steps (``n_taken_actions * frameskip`` env steps) it replans,
    warm-started from the previous plan shifted by the executed steps.

    Its per-env state lives in the TensorDict under ``info_key``, in latent
    space: the latent history (the observation encoded once per model step),
    the past model actions, the goal latent (encoded once per episode, where
    ``"is_init"`` is set), the current plan and step counters. It is declared
    by :meth:`make_tensordict_primer` on the state side, so ``env.rollout``
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
        action_spec: the env's action spec (bounded).
        in_keys: the observation keys then the goal keys (one goal key per observation key;
            none for objectives without a goal).
        out_keys: the action key, ``[action_key]``.
        n_taken_actions: model steps executed before replanning (<= horizon).
        warm_start: start each search from the shifted previous plan.
        exploration_std: noise std under ``ExplorationType.RANDOM``, as a fraction
            of the half-range of each action dimension.
        seed: generator seed for deterministic calls.
        info_key: sub-TensorDict for the policy's state and diagnostics.
        on_nonfinite: what a NaN or inf in an observation or goal entry does: ``"raise"``
            (default) a ``ValueError`` naming the key and the env indices;
            ``"hold"`` repeats those envs' last action (zero before their first)
            and leaves their planner state as it was, while the other envs plan.
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
        self.observation_keys, self.goal_keys = in_keys[:n], in_keys[n:]
        self.action_key = out_keys[0]
        self.n_taken_actions = n_taken_actions
        self.warm_start = warm_start
        self.exploration_std = exploration_std
        self.seed = seed
        self.info_key = info_key
        self.env_action_dim = wm.config.env_action_dim
        low, high = env_action_bounds(action_spec, self.env_action_dim, self.action_key)
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)
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
        return Composite({self.info_key: Composite(
            latent_history=Unbounded((h, d)),
            action_history=Unbounded((h - 1, a)),
            goal_latent=Unbounded((d,)),
            plan=Unbounded((horizon, a)),
            steps_since_plan=Unbounded((1,), dtype=torch.int64),
            current_block=Unbounded((a,)),
            initialized=Unbounded((1,), dtype=torch.bool),
            last_action=Unbounded((self.env_action_dim,)),
            cost=Unbounded((1,)),
            seconds=Unbounded((1,)),
            iterations=Unbounded((1,), dtype=torch.int64),
            replanned=Unbounded((1,), dtype=torch.bool),
        )})

    def make_tensordict_primer(self) -> PolicyStatePrimer:
        """The env transform that declares (on the state side) and zero-resets the policy's state entries."""
        return PolicyStatePrimer(self._state_spec(), default_value=0, expand_specs=True)

    # -------------------------------------------------------------- helpers
    def _read(self, td: TensorDictBase, key: NestedKey) -> torch.Tensor:
        value = td.get(key, None)
        if value is None:
            raise KeyError(f"MPCPolicy reads {key!r} (in_keys {self.in_keys[:len(self.observation_keys) + len(self.goal_keys)]}); "
                           f"the TensorDict has {list(td.keys(True, True))}")
        if value.shape[:td.batch_dims] != td.batch_size:
            raise ValueError(f"MPCPolicy expected {key!r} with the batch dims {tuple(td.batch_size)} of the "
                             f"TensorDict, got shape {tuple(value.shape)}")
        return value.reshape(-1, *value.shape[td.batch_dims:]).to(self.action_low.device)

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

    def _encode(self, keys: list[NestedKey], entries: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        """The latents ``(len(rows), D)`` of ``entries`` (one per key) at ``rows``, one observation per env."""
        with torch.no_grad():
            z = self.world_model.encode(*(x[rows] for x in entries))
        if z.shape != (rows.numel(), self.world_model.latent_dim):
            shapes = {str(key): tuple(x.shape[1:]) for key, x in zip(keys, entries)}
            raise ValueError(f"MPCPolicy expected one observation per env in {shapes} (per-env shapes); they "
                             f"encode to {tuple(z.shape[1:])} per env instead of ({self.world_model.latent_dim},)")
        return z

    @staticmethod
    def _finite_rows(x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        finite = torch.isfinite(x)
        return finite.flatten(1).all(-1) if x.ndim > 1 else finite

    # --------------------------------------------------------------- forward
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the next action (and the updated planner state) into ``tensordict``."""
        wm, fs, h = self.world_model, self.world_model.frameskip, self.world_model.num_hist
        batch_shape = tensordict.batch_size
        obs = [self._read(tensordict, key) for key in self.observation_keys]
        goal = [self._read(tensordict, key) for key in self.goal_keys]
        b = obs[0].shape[0]
        s = self._state(tensordict, b)
        read = list(zip([*self.observation_keys, *self.goal_keys], [*obs, *goal]))
        finite = torch.stack([self._finite_rows(x) for _, x in read]).all(0)
        held = None
        if not finite.all():
            if self.on_nonfinite == "raise":
                bad = [str(key) for key, x in read if not self._finite_rows(x).all()]
                raise ValueError(f"MPCPolicy got non-finite values in {', '.join(bad)} at env indices "
                                 f"{(~finite).nonzero().flatten().tolist()} (on_nonfinite='hold' repeats the "
                                 f"last action there instead)")
            held = {name: value.clone() for name, value in s.items()}
            # keep NaN out of the encoder and the search; these rows are restored below
            obs, goal = ([torch.where(finite.reshape(-1, *[1] * (x.ndim - 1)), x, torch.zeros_like(x)) for x in xs]
                         for xs in (obs, goal))
        is_init = tensordict.get("is_init", None)
        fresh = ~s["initialized"].reshape(b)
        if is_init is not None:
            fresh = fresh | is_init.reshape(b, -1).any(-1).to(fresh.device)
        k = torch.where(fresh, 0, s["steps_since_plan"].reshape(b))
        boundary = (~fresh) & (k % fs == 0)
        # The latent history: on a fresh episode the first frame repeated (and the goal encoded once); after each
        # completed model step the new frame pushed, with the model action that led to it.
        observe = fresh | boundary
        if observe.any():
            rows = observe.nonzero().squeeze(-1)
            z_now = self._encode(self.observation_keys, obs, rows)
            history = s["latent_history"][rows]
            pushed = torch.cat([history[:, 1:], z_now.unsqueeze(1)], dim=1)
            s["latent_history"][rows] = torch.where(fresh[rows, None, None], z_now.unsqueeze(1).expand_as(history),
                                                    pushed)
            if h > 1:
                executed = wm.normalize_action(s["current_block"][rows]).unsqueeze(1)
                actions = torch.cat([s["action_history"][rows], executed], dim=1)[:, 1:]
                s["action_history"][rows] = torch.where(fresh[rows, None, None], 0.0, actions)
            starting = fresh.nonzero().squeeze(-1)
            if goal and starting.numel():
                s["goal_latent"][starting] = self._encode(self.goal_keys, goal, starting)
        replan = (fresh | (k >= self.n_taken_actions * fs)) & finite
        cost = torch.zeros(b, 1, device=self.action_low.device)
        seconds = torch.zeros_like(cost)
        iterations = torch.zeros(b, 1, dtype=torch.int64, device=cost.device)
        if replan.any():
            rows = replan.nonzero().squeeze(-1)
            generator = self._generator()
            z_hist = s["latent_history"][rows]
            cold = self.planner.cold_start(rows.numel(), z_hist, generator)
            init = cold
            if self.warm_start:
                shifted = torch.cat([s["plan"][rows, self.n_taken_actions:],
                                     s["plan"].new_zeros(rows.numel(), self.n_taken_actions, wm.action_dim)], dim=1)
                init = torch.where(fresh[rows, None, None], cold, self.planner.project(shifted))
            start = self.clock()
            result = self.planner.plan(z_hist, s["action_history"][rows], s["goal_latent"][rows] if goal else None,
                                       init=init, generator=generator)
            elapsed = self.clock() - start
            s["plan"][rows] = result.actions
            cost[rows] = result.cost.unsqueeze(-1)
            seconds[rows] = elapsed
            iterations[rows] = result.iterations
            k = torch.where(replan, 0, k)
        # The env action: entry (k mod frameskip) of plan block (k div frameskip), in env units.
        block = wm.denormalize_action(s["plan"][torch.arange(b), k // fs]).reshape(b, fs, self.env_action_dim)
        action = block[torch.arange(b), k % fs]
        if exploration_type() == ExplorationType.RANDOM and self.exploration_std > 0:
            action = action + torch.randn_like(action) * self.exploration_std * (self.action_high - self.action_low) / 2
        action = action.clamp(self.action_low, self.action_high)
        current = torch.where((k % fs == 0)[:, None], 0.0, s["current_block"]).reshape(b, fs, self.env_action_dim)
        current[torch.arange(b), k % fs] = action
        s["current_block"] = current.reshape(b, fs * self.env_action_dim)
        s["steps_since_plan"] = (k + 1).reshape(b, 1)
        s["initialized"] = torch.ones(b, 1, dtype=torch.bool, device=cost.device)
        s["last_action"] = action
        if held is not None:
            for name, value in s.items():
                keep = (~finite).reshape(b, *[1] * (value.ndim - 1))
                s[name] = torch.where(keep, held[name], value)
            action = s["last_action"].clamp(self.action_low, self.action_high)
        out = {**s, "cost": cost, "seconds": seconds, "iterations": iterations, "replanned": replan.reshape(b, 1)}
        tensordict.set(self.action_key, action.reshape(*batch_shape, self.env_action_dim))
        for name, value in out.items():
            tensordict.set((self.info_key, name), value.reshape(*batch_shape, *value.shape[1:]))
        return tensordict
