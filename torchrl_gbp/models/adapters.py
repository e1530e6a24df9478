"""Adapters: what users already have, as a world model of the contract, in one line.

* :class:`TransitionWorldModel`: a transition ``f(z, a) -> z'`` (an ``nn.Module``
  or a ``TensorDictModule`` with in_keys / out_keys), optionally with an
  encoder (identity by default) and a reward module.
* :func:`from_torchrl_world_model`: TorchRL's ``WorldModelWrapper``
  (transition + reward).

Both give a :class:`~torchrl_gbp.models.PlanningWorldModel` with a predictor
(:class:`~torchrl_gbp.models.PredictorModel`), so gradient MPC, both synthesis
transforms and :class:`~torchrl_gbp.models.TeacherForcingLoss` take them as
they take the package's own models.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn
from torchrl.modules import WorldModelWrapper

from .contract import ActionInterface, cast_float


def _plain(module: Callable, role: str, width: int) -> tuple[Callable, list[NestedKey], list[NestedKey]]:
    """The plain-tensor callable of ``module`` (a ``TensorDictModule``'s inner module) and its keys."""
    if not isinstance(module, TensorDictModuleBase):
        return module, [], []
    in_keys, out_keys = list(module.in_keys), list(module.out_keys)
    inner = getattr(module, "module", None)
    if inner is None or len(in_keys) != width or len(out_keys) != 1:
        raise TypeError(f"the {role} must be a TensorDictModule over plain tensors with {width} in_keys and one "
                        f"out_key; got {type(module).__name__} with in_keys {in_keys} and out_keys {out_keys}")
    return inner, in_keys, out_keys


def _leaf(key: NestedKey) -> str:
    return key if isinstance(key, str) else key[-1]


class TransitionWorldModel(nn.Module):
    """A transition ``f(z, a) -> z'`` as a plannable and trainable world model.

    ``rollout`` applies the transition autoregressively (``num_hist = 1``);
    ``predict`` is one transition, so :class:`~torchrl_gbp.models.TeacherForcingLoss`
    trains it and :class:`~torchrl_gbp.synthesis.AdversarialSynthesis` perturbs
    its latents and (normalised) actions. Model actions are env actions through
    ``action_interface`` (default: the identity over raw env actions).

    Args:
        transition: ``f(z (..., D), a (..., A)) -> z' (..., D)``: an ``nn.Module`` or any
            callable, or a ``TensorDictModule`` with in_keys ``[latent_key, action_key]`` (the key
            whose last name is ``"action"`` is the action) and one out_key.
        latent_dim: ``D``.
        action_dim: ``A``, the size of one model action.
        encoder: observation entries -> latents ``(..., D)`` (a module, or a ``TensorDictModule``
            whose in_keys become ``observation_keys``); ``None``: the identity on one entry.
        observation_keys, goal_keys: the entries the encoder reads, and the goal's.
        reward: ``r(z' (..., D), a (..., A)) -> (...)`` or a ``TensorDictModule`` over
            ``[next_latent_key, action_key]``; gives ``predict_reward``.
        action_interface: frameskip, action statistics and bounds; ``None``: the identity.
        proprio_dim: trailing latent entries that are proprioception (``alpha`` in goal costs).

    Example:
        >>> from torchrl_gbp.planners import GoalCost, GradientPlanner
        >>> class PointMass(nn.Module):          # known physics: position += action
        ...     def forward(self, z, a):
        ...         return z + 0.1 * a
        >>> model = TransitionWorldModel(PointMass(), latent_dim=2, action_dim=2)
        >>> planner = GradientPlanner(model, objective=GoalCost("last"), horizon=5, steps=100, lr=0.1)
        >>> plan = planner.plan(torch.zeros(1, 1, 2), torch.zeros(1, 0, 2), torch.tensor([[0.3, -0.2]]),
        ...                     generator=torch.Generator().manual_seed(0))
        >>> model.rollout(torch.zeros(1, 1, 2), torch.zeros(1, 0, 2), plan.actions)[0, -1].round(decimals=1)
        tensor([ 0.3000, -0.2000])
    """

    num_hist = 1

    def __init__(self, transition: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, latent_dim: int,
                 action_dim: int, encoder: Callable[..., torch.Tensor] | None = None,
                 observation_keys: Sequence[NestedKey] | None = None, goal_keys: Sequence[NestedKey] | None = None,
                 reward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 action_interface: ActionInterface | None = None, proprio_dim: int = 0) -> None:
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("action_dim", action_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TransitionWorldModel.{name} must be an int >= 1, got {value!r}")
        if action_interface is not None and action_interface.action_dim != action_dim:
            raise ValueError(f"action_interface.action_dim={action_interface.action_dim} differs from "
                             f"action_dim={action_dim}")
        step, in_keys, _ = _plain(transition, "transition", 2)
        self._action_first = bool(in_keys) and _leaf(in_keys[0]) == "action"
        self.transition = transition  # registered when it is a module, so it trains and moves with the model
        self._step = step
        self.encoder = encoder
        encoder_keys = list(encoder.in_keys) if isinstance(encoder, TensorDictModuleBase) else None
        self._encode = getattr(encoder, "module", encoder) if encoder_keys else encoder
        self.observation_keys = tuple(observation_keys or encoder_keys or ("observation",))
        self.goal_keys = tuple(("goal",) if goal_keys is None else goal_keys)
        if encoder is None and len(self.observation_keys) != 1:
            raise ValueError(f"without an encoder the latent is the one observation entry; got observation_keys "
                             f"{list(self.observation_keys)}")
        self.reward = reward
        self._reward = None if reward is None else _plain(reward, "reward", 2)[0]
        self.latent_dim, self.action_dim, self.proprio_dim = latent_dim, action_dim, proprio_dim
        self.action_interface = action_interface or ActionInterface(env_action_dim=action_dim)

    @property
    def encoder_trains(self) -> bool:
        """Whether the encoder has trainable parameters."""
        return isinstance(self.encoder, nn.Module) and any(p.requires_grad for p in self.encoder.parameters())

    @property
    def predict_reward(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """``r(z_next, action)``, or ``None`` without a reward module."""
        return self._reward

    def encode(self, *entries: torch.Tensor) -> torch.Tensor:
        """Observation entries (one per key of ``observation_keys``) -> latents ``(..., latent_dim)``."""
        if len(entries) != len(self.observation_keys):
            raise TypeError(f"encode takes one tensor per observation key {list(self.observation_keys)}, "
                            f"got {len(entries)}")
        if self._encode is None:
            z = cast_float(entries[0], self.action_interface.mean.dtype)
        else:
            z = self._encode(*entries)
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"the encoder must give latents (..., latent_dim={self.latent_dim}), got shape "
                             f"{tuple(z.shape)}")
        return z

    def step(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """One transition: ``(..., D), (..., A) -> (..., D)``."""
        return self._step(action, z) if self._action_first else self._step(z, action)

    def predict(self, z_hist: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The contract's predictor: the transition of the last frame under the last action."""
        return self.step(z_hist[..., -1, :], inputs[..., -1, :])

    def rollout(self, z_hist: torch.Tensor, a_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(..., 1, D), (..., 0, A), (..., H, A) -> (..., H, D)``: the transition applied ``H`` times."""
        if z_hist.shape[-2:] != (1, self.latent_dim) or actions.shape[-1] != self.action_dim:
            raise ValueError(f"rollout expects z_hist (..., 1, {self.latent_dim}) and actions (..., H, "
                             f"{self.action_dim}); got {tuple(z_hist.shape)} and {tuple(actions.shape)}")
        z, frames = z_hist[..., -1, :], []
        for action in actions.unbind(-2):
            z = self.step(z, action)
            frames.append(z)
        return torch.stack(frames, dim=-2)


def from_torchrl_world_model(world_model: WorldModelWrapper, *, latent_dim: int, action_dim: int,
                             encoder: Callable[..., torch.Tensor] | None = None,
                             observation_keys: Sequence[NestedKey] | None = None,
                             goal_keys: Sequence[NestedKey] | None = None,
                             action_interface: ActionInterface | None = None) -> TransitionWorldModel:
    """TorchRL's ``WorldModelWrapper`` (transition + reward) as a world model of the contract.

    Its transition operator must read one latent key and the action and write
    the next latent; its reward operator reads the next latent and, optionally,
    the action (any other key is an error naming it).

    Example:
        >>> from tensordict.nn import TensorDictModule
        >>> class Step(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.net = nn.Linear(4, 2)
        ...     def forward(self, z, a):
        ...         return z + self.net(torch.cat([z, a], -1))
        >>> wrapper = WorldModelWrapper(
        ...     TensorDictModule(Step(), in_keys=["latent", "action"], out_keys=[("next", "latent")]),
        ...     TensorDictModule(nn.Linear(2, 1), in_keys=[("next", "latent")], out_keys=[("next", "reward")]))
        >>> model = from_torchrl_world_model(wrapper, latent_dim=2, action_dim=2)
        >>> model.rollout(torch.zeros(4, 1, 2), torch.zeros(4, 0, 2), torch.zeros(4, 3, 2)).shape
        torch.Size([4, 3, 2])
        >>> model.predict_reward(torch.zeros(4, 2), torch.zeros(4, 2)).shape
        torch.Size([4])
    """
    if not isinstance(world_model, WorldModelWrapper):
        raise TypeError(f"expected a torchrl.modules.WorldModelWrapper, got {type(world_model).__name__}")
    transition = world_model.get_transition_model_operator()
    _, in_keys, out_keys = _plain(transition, "transition operator", 2)
    action_keys = [key for key in in_keys if _leaf(key) == "action"]
    if len(action_keys) != 1:
        raise TypeError(f"the transition operator must read one action key (named 'action'); it reads {in_keys}")
    reward_operator = world_model.get_reward_operator()
    reward_in = list(reward_operator.in_keys)
    roles = {out_keys[0]: "z_next", action_keys[0]: "action"}
    unknown = [key for key in reward_in if key not in roles]
    if unknown:
        raise TypeError(f"the reward operator reads {unknown}; it may read only the next latent {out_keys[0]!r} "
                        f"and the action {action_keys[0]!r}")
    head = getattr(reward_operator, "module", reward_operator)

    def reward(z_next: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        values = {"z_next": z_next, "action": action}
        return head(*(values[roles[key]] for key in reward_in)).squeeze(-1)

    model = TransitionWorldModel(transition, latent_dim=latent_dim, action_dim=action_dim, encoder=encoder,
                                 observation_keys=observation_keys, goal_keys=goal_keys, reward=reward,
                                 action_interface=action_interface)
    model.reward_operator = reward_operator  # registered, so the reward head trains with the model
    return model
