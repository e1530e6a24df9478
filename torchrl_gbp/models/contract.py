"""The world-model contract: what planners, the MPC policy, synthesis and the loss need of a world model.

Every consumer of a world model in this package depends on the protocols of
this module alone, never on the package's own model classes, so a model
written from scratch, a TorchRL module (:mod:`torchrl_gbp.models.adapters`) or
a model of another library plans, trains and is synthesised for the same way
as :class:`~torchrl_gbp.models.StateWorldModel`.

* :class:`RolloutModel`: what a planner needs (``action_dim``, ``rollout``).
* :class:`PlanningWorldModel`: what the MPC policy, ``planning_inputs`` and
  both synthesis transforms need on top (the observation and goal keys it
  reads, ``encode``, ``num_hist``, ``latent_dim``).
* Optional capabilities, each a small protocol checked once where it is needed:
  :class:`PredictorModel` (a one-step predictor the loss trains),
  :class:`ActionEmbeddingModel` (an action embedding the adversarial attack
  perturbs instead of the action), :class:`RewardModel` (reward prediction),
  :class:`DecodingModel` (a decoder for diagnostics).
* Optional plain attributes, read with a default: ``action_interface`` (an
  :class:`ActionInterface`; default the identity over raw env actions),
  ``proprio_dim`` (trailing latent entries weighted by ``alpha`` in goal costs;
  default 0), ``encoder_trains`` (whether ``encode`` has trainable parameters
  the loss must differentiate; default False), ``reconstruction_loss``
  (``(windows, latent) -> loss`` or None) and ``parameter_parts()`` (named
  submodules for per-part learning rates).

Latents are flat: one frame encodes to ``(..., latent_dim)``. Actions in the
contract are *model actions*: ``action_dim`` entries, normalised by the action
interface (one model step may group ``frameskip`` env actions).

The guide ``docs/guides/world_models.md`` ("Bring your own world model") walks through each.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from .normalization import Normalizer

GUIDE = "docs/guides/world_models.md"


@runtime_checkable
class RolloutModel(Protocol):
    """What a planner needs: the model action size and a differentiable latent rollout.

    ``rollout(z_hist (..., h, D), a_hist (..., h - 1, A), actions (..., H, A)) -> (..., H, D)``:
    the predicted latents after each of ``H`` model actions, from the last
    ``h = num_hist`` latents and the ``h - 1`` actions between them;
    differentiable in ``actions``, over plain tensors with any leading dims.

    Example:
        >>> class Integrator:                  # enough for GradientPlanner.plan
        ...     action_dim = 2
        ...     def rollout(self, z_hist, a_hist, actions):
        ...         return z_hist[..., -1:, :] + actions.cumsum(-2)
        >>> isinstance(Integrator(), RolloutModel)
        True
    """

    action_dim: int

    def rollout(self, z_hist: torch.Tensor, a_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(..., h, D), (..., h - 1, A), (..., H, A) -> (..., H, D)``."""


@runtime_checkable
class PlanningWorldModel(RolloutModel, Protocol):
    """What the MPC policy, ``planning_inputs`` and the synthesis transforms need.

    ``encode(*entries)`` takes one tensor per key of ``observation_keys`` (the
    model's in_keys, any leading dims, the dtype of the env's specs) and
    returns latents ``(..., latent_dim)``; ``goal_keys`` name the goal's
    entries, one per observation key (empty for goal-free objectives).

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, TransitionWorldModel, WorldModelConfig
        >>> isinstance(StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2)), PlanningWorldModel)
        True
        >>> isinstance(TransitionWorldModel(lambda z, a: z + a, latent_dim=2, action_dim=2), PlanningWorldModel)
        True
    """

    observation_keys: Sequence[NestedKey]
    goal_keys: Sequence[NestedKey]
    num_hist: int
    latent_dim: int

    def encode(self, *entries: torch.Tensor) -> torch.Tensor:
        """Observation entries ``(..., *entry_shape)`` -> latents ``(..., latent_dim)``."""


@runtime_checkable
class PredictorModel(Protocol):
    """A one-step predictor the teacher-forcing loss trains.

    ``predict(z_hist (..., h, D), inputs (..., h, E)) -> (..., D)``, where the
    inputs are the action embeddings when the model is an
    :class:`ActionEmbeddingModel`, the normalised model actions otherwise.

    Example:
        >>> from torchrl_gbp.models import TransitionWorldModel
        >>> model = TransitionWorldModel(lambda z, a: z + a, latent_dim=2, action_dim=2)
        >>> model.predict(torch.zeros(4, 1, 2), torch.ones(4, 1, 2)).shape   # what TeacherForcingLoss trains
        torch.Size([4, 2])
    """

    num_hist: int

    def predict(self, z_hist: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """``(..., h, D), (..., h, E) -> (..., D)``."""


@runtime_checkable
class ActionEmbeddingModel(Protocol):
    """A learned action embedding (what ``predict`` reads and the adversarial attack perturbs).

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, action_embed_dim=16))
        >>> model.embed_actions(torch.zeros(3, 2)).shape
        torch.Size([3, 16])
    """

    def embed_actions(self, action: torch.Tensor) -> torch.Tensor:
        """Normalised model actions ``(..., A)`` -> embeddings ``(..., E)``."""


@runtime_checkable
class RewardModel(Protocol):
    """Reward prediction: ``predict_reward(z_next (..., D), action (..., A)) -> (...)``.

    A model whose ``predict_reward`` is ``None`` has no reward head.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, reward_head=True))
        >>> has_capability(model, RewardModel), model.predict_reward(torch.zeros(3, 2), torch.zeros(3, 2)).shape
        (True, torch.Size([3]))
    """

    def predict_reward(self, z_next: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``(..., D), (..., A) -> (...)``."""


@runtime_checkable
class DecodingModel(Protocol):
    """A decoder for diagnostics: ``decode(z (..., D))`` -> the observation it stands for.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> model.decode(model.encode(torch.ones(3, 2))).shape     # the identity encoder decodes exactly
        torch.Size([3, 2])
    """

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` -> observation."""


def _members(protocol: type) -> list[str]:
    names: list[str] = []
    for cls in reversed(protocol.__mro__):
        if cls in (object, Protocol, nn.Module) or not getattr(cls, "_is_protocol", False):
            continue
        for name in [*getattr(cls, "__annotations__", {}), *vars(cls)]:
            if not name.startswith("_") and name not in names:
                names.append(name)
    return names


def missing_members(model: object, protocol: type) -> list[str]:
    """The members of ``protocol`` that ``model`` lacks (``None`` counts as missing).

    Example:
        >>> class OnlyRollout:
        ...     action_dim = 2
        ...     def rollout(self, z_hist, a_hist, actions): ...
        >>> missing_members(OnlyRollout(), PlanningWorldModel)
        ['observation_keys', 'goal_keys', 'num_hist', 'latent_dim', 'encode']
    """
    return [name for name in _members(protocol) if getattr(model, name, None) is None]


def require(model: object, protocol: type, consumer: str) -> None:
    """Raise a ``TypeError`` naming the members of ``protocol`` that ``model`` lacks, for ``consumer``.

    Example:
        >>> require(object(), RolloutModel, "GradientPlanner")
        Traceback (most recent call last):
        ...
        TypeError: GradientPlanner needs a world model with action_dim, rollout (RolloutModel); object lacks ...
    """
    missing = missing_members(model, protocol)
    if missing:
        raise TypeError(f"{consumer} needs a world model with {', '.join(_members(protocol))} ({protocol.__name__}); "
                        f"{type(model).__name__} lacks {', '.join(missing)}. See {GUIDE} or wrap the model with "
                        f"torchrl_gbp.models.TransitionWorldModel")


def has_capability(model: object, protocol: type) -> bool:
    """Whether ``model`` has every member of the optional ``protocol`` (a member set to ``None`` is absent).

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> has_capability(model, ActionEmbeddingModel), has_capability(model, RewardModel)
        (True, False)
    """
    return not missing_members(model, protocol)


class ActionInterface(Normalizer):
    """Between env actions and model actions: frameskip grouping, normalisation statistics and bounds.

    One model action groups ``frameskip`` consecutive env actions of
    ``env_action_dim`` entries (concatenated) and is z-scored with the stored
    statistics (buffers ``mean`` and ``std`` of ``action_dim`` entries, saved
    with the model). The default statistics (0, 1) with ``frameskip=1`` make it
    the identity: a model over raw env actions needs nothing else.

    Args:
        env_action_dim: entries of one env action.
        frameskip: env actions per model action.

    Example:
        >>> interface = ActionInterface(env_action_dim=2, frameskip=3)
        >>> interface.action_dim
        6
        >>> interface.to_env(torch.arange(6.0)).tolist()            # (frameskip, env_action_dim)
        [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
        >>> [bound.tolist() for bound in interface.model_bounds(torch.tensor([-1.0, 0.0]), torch.ones(2))]
        [[-1.0, 0.0, -1.0, 0.0, -1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
    """

    def __init__(self, *, env_action_dim: int, frameskip: int = 1) -> None:
        for name, value in (("env_action_dim", env_action_dim), ("frameskip", frameskip)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ActionInterface.{name} must be an int >= 1, got {value!r}")
        super().__init__(env_action_dim * frameskip)
        self.env_action_dim = env_action_dim
        self.frameskip = frameskip

    @property
    def action_dim(self) -> int:
        """Entries of one model action: ``env_action_dim * frameskip``."""
        return self.dim

    def to_model(self, env_actions: torch.Tensor) -> torch.Tensor:
        """Env actions ``(..., frameskip, env_action_dim)`` or ``(..., action_dim)`` -> normalised model actions."""
        if env_actions.shape[-1] != self.action_dim:
            env_actions = env_actions.flatten(-2)
        return self.normalize(env_actions)

    def to_env(self, model_actions: torch.Tensor) -> torch.Tensor:
        """Normalised model actions ``(..., action_dim)`` -> env actions ``(..., frameskip, env_action_dim)``."""
        return self.denormalize(model_actions).unflatten(-1, (self.frameskip, self.env_action_dim))

    def model_bounds(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Env action bounds ``(env_action_dim,)`` -> bounds ``(action_dim,)`` of the normalised model action."""
        low, high = (torch.as_tensor(b).to(self.mean).reshape(-1) for b in (low, high))
        if low.numel() != self.env_action_dim or high.numel() != self.env_action_dim:
            raise ValueError(f"action bounds must have env_action_dim={self.env_action_dim} entries, got "
                             f"{low.numel()} and {high.numel()}")
        low, high = (self.normalize(b.repeat(self.frameskip)) for b in (low, high))
        return torch.minimum(low, high), torch.maximum(low, high)  # a negative std would swap them


def action_interface(model: object) -> ActionInterface:
    """The model's ``action_interface``, or the identity over ``action_dim`` raw env actions when it has none.

    Example:
        >>> class RawActions:
        ...     action_dim = 3
        >>> interface = action_interface(RawActions())
        >>> interface.frameskip, interface.env_action_dim
        (1, 3)
    """
    interface = getattr(model, "action_interface", None)
    if interface is not None:
        return interface
    return ActionInterface(env_action_dim=model.action_dim).to(model_dtype(model)).to(model_device(model))


def _first_tensor(model: object) -> torch.Tensor | None:
    if isinstance(model, nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.is_floating_point():
                return tensor
    return None


def model_dtype(model: object) -> torch.dtype:
    """The floating dtype of the model's first parameter or buffer (``dtype`` attribute, else the default dtype)."""
    tensor = _first_tensor(model)
    if tensor is not None:
        return tensor.dtype
    return getattr(model, "dtype", None) or torch.get_default_dtype()


def model_device(model: object) -> torch.device:
    """The device of the model's first parameter or buffer (``device`` attribute, else the CPU)."""
    tensor = _first_tensor(model)
    if tensor is not None:
        return tensor.device
    return torch.device(getattr(model, "device", None) or "cpu")


def proprio_dim(model: object) -> int:
    """Trailing latent entries that are proprioception (``proprio_dim`` attribute; 0 when absent)."""
    return int(getattr(model, "proprio_dim", 0) or 0)


def encode_entries(model: PlanningWorldModel, entries: TensorDictBase | Mapping,
                   keys: Sequence[NestedKey] | None = None) -> torch.Tensor:
    """The latent of the entries ``keys`` (default ``model.observation_keys``) of ``entries`` (a TensorDict or a
    dict).

    Float entries are cast to the model's dtype first; a missing key raises a
    ``KeyError`` naming it.

    Example:
        >>> from tensordict import TensorDict
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> td = TensorDict(observation=torch.zeros(4, 2, dtype=torch.float64), batch_size=[4])
        >>> encode_entries(model, td).dtype
        torch.float32
    """
    keys = tuple(model.observation_keys if keys is None else keys)
    missing = [key for key in keys if key not in entries]
    if missing:
        have = list(entries.keys(True, True)) if isinstance(entries, TensorDictBase) else list(entries)
        raise KeyError(f"the world model reads {list(keys)}; missing {missing} (the entries hold {have})")
    dtype = model_dtype(model)
    return model.encode(*(cast_float(entries[key], dtype) for key in keys))


def cast_float(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` in ``dtype`` when it is a float tensor of another float dtype; other tensors (uint8 images) as they are."""
    return x.to(dtype) if x.is_floating_point() and x.dtype != dtype else x


def predictor_inputs(model: object, actions: torch.Tensor) -> torch.Tensor:
    """What ``predict`` reads for normalised model actions: their embedding (:class:`ActionEmbeddingModel`), or
    the actions themselves.

    Example:
        >>> class RawActions:
        ...     action_dim = 2
        >>> predictor_inputs(RawActions(), torch.ones(3, 2)).shape
        torch.Size([3, 2])
    """
    embed = getattr(model, "embed_actions", None)
    return actions if embed is None else embed(actions)
