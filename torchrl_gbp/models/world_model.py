"""A state world model with plain-tensor verbs and TorchRL's ``WorldModel`` key layout."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey
from torch import nn
from torchrl.modules import WorldModel

from ..objectives import GoalCost
from .contract import ActionInterface
from .encoders import ActionEncoder, IdentityEncoder, MLPEncoder, mlp
from .normalization import Normalizer
from .predictors import ResidualMLPPredictor
from .reward import RewardHead


class ConfigFields:
    """What every world-model config dataclass shares: the model action size and dict round trips."""

    env_action_dim: int
    frameskip: int

    @property
    def action_dim(self) -> int:
        """Size of one model action (a frameskip block of env actions)."""
        return self.env_action_dim * self.frameskip

    def to_dict(self) -> dict:
        """A plain dict for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        """Inverse of :meth:`to_dict`; unknown keys raise a ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown {cls.__name__} keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**data)


@dataclass
class WorldModelConfig(ConfigFields):
    """Everything needed to rebuild a :class:`StateWorldModel`.

    Args:
        obs_dim: size of one observation.
        env_action_dim: size of one environment action.
        frameskip: environment actions grouped into one model step; the model
            action is their concatenation, of size ``env_action_dim * frameskip``.
        num_hist: history frames the predictor reads.
        encoder: ``"identity"`` (latent = normalised state) or ``"mlp"``
            (learned, trained with a reconstruction decoder).
        latent_dim: latent size for the ``"mlp"`` encoder.
        action_embed_dim: size of the learned action embedding.
        hidden_dim, depth: predictor MLP width and hidden layers.
        dropout: the predictor's dropout probability (train mode only; see
            :meth:`LatentWorldModel.set_dropout`).
        proprio_dim: trailing latent entries that form the proprioceptive part,
            weighted by ``alpha`` in goal costs (0: the latent has one part).
        reward_head: add a learned :class:`~torchrl_gbp.models.reward.RewardHead`
            (:meth:`StateWorldModel.predict_reward`), trained from ``("next", "reward")``.

    Example:
        >>> config = WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5)
        >>> config.action_dim                                  # env_action_dim * frameskip
        10
        >>> WorldModelConfig.from_dict(config.to_dict()) == config
        True
    """

    obs_dim: int
    env_action_dim: int
    frameskip: int = 1
    num_hist: int = 1
    encoder: str = "identity"
    latent_dim: int = 32
    action_embed_dim: int = 16
    hidden_dim: int = 256
    depth: int = 3
    proprio_dim: int = 0
    reward_head: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("obs_dim", "env_action_dim", "frameskip", "num_hist", "action_embed_dim", "hidden_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorldModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.encoder not in ("identity", "mlp"):
            raise ValueError(f"WorldModelConfig.encoder must be 'identity' or 'mlp', got {self.encoder!r}")
        if self.depth < 0 or self.latent_dim < 1:
            raise ValueError(f"WorldModelConfig needs depth >= 0 and latent_dim >= 1, got {self.depth} and "
                             f"{self.latent_dim}")
        latent = self.obs_dim if self.encoder == "identity" else self.latent_dim
        if not 0 <= self.proprio_dim <= latent:
            raise ValueError(f"WorldModelConfig.proprio_dim must lie in [0, latent size {latent}] "
                             f"({self.encoder} encoder), got {self.proprio_dim}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"WorldModelConfig.dropout must lie in [0, 1), got {self.dropout!r}")


class NormalizedEncoder(nn.Module):
    """Z-scores the observation with dataset statistics, then encodes it."""

    def __init__(self, obs_dim: int, net: nn.Module) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.normalizer = Normalizer(obs_dim)
        self.net = net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``(..., obs_dim)`` -> ``(..., latent_dim)``."""
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"observation must have last dimension obs_dim={self.obs_dim}, got shape {tuple(obs.shape)}"
            )
        return self.net(self.normalizer.normalize(obs))


class LatentDynamics(nn.Module):
    """Action encoder plus predictor; ``forward`` is the TensorDict-face step.

    In the TensorDict face ``"latent"`` is ``(..., D)`` when ``num_hist == 1`` and the
    window ``(..., h, D)`` otherwise (with ``"action"`` then ``(..., h, A)``); the next
    latent has the same layout, shifted by one frame.
    """

    def __init__(self, action_dim: int, action_embed_dim: int, predictor: nn.Module, num_hist: int) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.num_hist = num_hist
        self.action_encoder = ActionEncoder(action_dim, action_embed_dim)
        self.predictor = predictor

    def embed_actions(self, action: torch.Tensor) -> torch.Tensor:
        """Normalised model action ``(..., A)`` -> embedding ``(..., E)``."""
        if action.shape[-1] != self.action_dim:
            raise ValueError(
                f"action must have last dimension action_dim={self.action_dim} "
                f"(env_action_dim x frameskip), got shape {tuple(action.shape)}"
            )
        return self.action_encoder(action)

    def forward(self, latent: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """One TensorDict-face step (see class docstring)."""
        if self.num_hist == 1:
            return self.predictor(latent.unsqueeze(-2), self.embed_actions(action).unsqueeze(-2))
        next_frame = self.predictor(latent, self.embed_actions(action))
        return torch.cat([latent[..., 1:, :], next_frame.unsqueeze(-2)], dim=-2)


class GoalReward(nn.Module):
    """Reward = minus the planners' per-step goal cost (:meth:`GoalCost.step_costs`) to ``"goal_latent"``.

    ``"goal_latent"`` is carried forward. With the planners' objective the
    reward of one step is exactly the cost every planner scores that step with.
    """

    def __init__(self, num_hist: int, objective: GoalCost) -> None:
        super().__init__()
        self.num_hist = num_hist
        self.objective = objective

    def forward(self, next_latent: torch.Tensor, goal_latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(reward (..., 1), goal_latent)``."""
        current = next_latent if self.num_hist == 1 else next_latent[..., -1, :]
        return -self.objective.step_costs(current.unsqueeze(-2), goal_latent), goal_latent


class LatentWorldModel(WorldModel):
    """What every world model of the package shares: TorchRL's ``WorldModel`` key layout and the plain-tensor verbs.

    Subclasses give the observation encoder (observation -> flat latent
    ``(..., latent_dim)``) and the predictor (latent history and action
    embeddings -> next latent); the action embedding and normalisation, the
    TensorDict face, :meth:`step` and :meth:`rollout` live here once, so
    planners, synthesis and diagnostics never branch on the model kind.

    Args:
        config: the model's config (``env_action_dim``, ``frameskip``, ``num_hist``,
            ``action_embed_dim``, ``proprio_dim``, ``action_dim``, ``to_dict``).
        encoder: module mapping the observation entries (one tensor per key of
            ``observation_keys``, in that order) to latents ``(..., latent_dim)``.
        latent_dim: size of one latent.
        predictor: module ``(z_hist (..., h, D), e_hist (..., h, E)) -> (..., D)``.
        observation_keys: the TensorDict keys of the observation entries the encoder reads.
        goal_keys: the keys of the goal's observation entries, one per observation key (what
            :class:`~torchrl_gbp.planners.MPCPolicy` reads by default).

    Example:
        >>> from torchrl_gbp.models import ResidualMLPPredictor
        >>> config = WorldModelConfig(obs_dim=3, env_action_dim=2)
        >>> model = LatentWorldModel(config, nn.Identity(), 3, ResidualMLPPredictor(3, config.action_embed_dim),
        ...                          observation_keys=["observation"], goal_keys=["goal"])
        >>> z = model.encode(torch.zeros(4, 1, 3))             # (B, h, D)
        >>> model.rollout(z, torch.zeros(4, 0, 2), torch.zeros(4, 6, 2)).shape
        torch.Size([4, 6, 3])
    """

    def __init__(self, config, encoder: nn.Module, latent_dim: int, predictor: nn.Module, *,
                 observation_keys: Sequence[NestedKey], goal_keys: Sequence[NestedKey]) -> None:
        observation_keys, goal_keys = tuple(observation_keys), tuple(goal_keys)
        if not observation_keys or len(goal_keys) != len(observation_keys):
            raise ValueError(f"goal_keys must name one goal entry per observation key; got observation_keys="
                             f"{list(observation_keys)} and goal_keys={list(goal_keys)}")
        super().__init__(
            encoder=TensorDictModule(encoder, in_keys=list(observation_keys), out_keys=["latent"]),
            dynamics=TensorDictModule(LatentDynamics(config.action_dim, config.action_embed_dim, predictor,
                                                     config.num_hist),
                                      in_keys=["latent", "action"], out_keys=[("next", "latent")]),
            reward_head=TensorDictModule(GoalReward(config.num_hist, GoalCost(proprio_dim=config.proprio_dim)),
                                         in_keys=[("next", "latent"), "goal_latent"],
                                         out_keys=[("next", "reward"), ("next", "goal_latent")]),
        )
        self.config = config
        self.latent_dim = latent_dim
        self.observation_keys = observation_keys
        self.goal_keys = goal_keys
        # registered under its first name, so earlier checkpoints load
        self.action_normalizer = ActionInterface(env_action_dim=config.env_action_dim, frameskip=config.frameskip)
        # a decoder trained with the encoder (the loss adds a reconstruction term); None: the encoder is fixed
        self.state_decoder: nn.Module | None = None
        self.reward_predictor: nn.Module | None = None

    # ------------------------------------------------------ the contract's optional members
    @property
    def action_interface(self) -> ActionInterface:
        """Frameskip grouping, action statistics and bounds (:class:`~torchrl_gbp.models.ActionInterface`)."""
        return self.action_normalizer

    @property
    def proprio_dim(self) -> int:
        """Trailing latent entries that are proprioception (weighted by ``alpha`` in goal costs)."""
        return self.config.proprio_dim

    @property
    def encoder_trains(self) -> bool:
        """Whether the observation encoder has trainable parameters (then the loss encodes with gradients)."""
        return any(p.requires_grad for p in self.state_encoder.parameters())

    @property
    def predict_reward(self) -> nn.Module | None:
        """The reward head ``(z_next (..., D), action (..., A)) -> (...)``; ``None`` without one.

        Build a :class:`StateWorldModel` with ``WorldModelConfig(reward_head=True)`` to get one.
        """
        return self.reward_predictor

    @property
    def reconstruction_loss(self):
        """``(windows, latent) -> loss`` of the decoder trained with the encoder; ``None`` when the encoder is fixed."""
        return None if self.state_decoder is None else self._reconstruction_loss

    def _reconstruction_loss(self, windows: TensorDictBase, latent: torch.Tensor) -> torch.Tensor:
        target = self.state_encoder.normalizer.normalize(windows.get(self.observation_keys[0]).to(latent))
        return (self.state_decoder(latent) - target).pow(2).mean()

    def parameter_parts(self) -> dict[str, nn.Module]:
        """Named parts for per-part learning rates (:func:`~torchrl_gbp.train.parameter_groups`)."""
        encoder = nn.ModuleList([self.state_encoder] + ([self.state_decoder] if self.state_decoder else []))
        parts = {"predictor": self.predictor, "action_encoder": self.action_encoder, "encoder": encoder}
        proprio = getattr(self, "proprio_encoder", None)
        if proprio is not None:
            parts["proprio_encoder"] = proprio
        if self.reward_predictor is not None:
            parts["reward"] = self.reward_predictor
        return parts

    # ----------------------------------------------------------------- parts
    @property
    def state_encoder(self) -> nn.Module:
        """The observation encoder (normalisation included)."""
        return self.encoder.module

    @property
    def latent_dynamics(self) -> LatentDynamics:
        """Action encoder and predictor."""
        return self.dynamics.module

    @property
    def predictor(self) -> nn.Module:
        """The latent predictor network."""
        return self.latent_dynamics.predictor

    @property
    def action_encoder(self) -> nn.Module:
        """The action embedding network."""
        return self.latent_dynamics.action_encoder

    def set_dropout(self, p: float) -> None:
        """Give the predictor dropout probability ``p`` from now on, and record it in ``config.dropout``.

        Dropout has no parameters: a model trained without it can be finetuned
        with it (the reference code finetunes with 0.1) and its checkpoint
        still loads. It acts in train mode only. The predictor must have a
        ``set_dropout(p)`` method (the package's predictors do).

        Example:
            >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
            >>> model.set_dropout(0.1)
            >>> model.config.dropout, model.predictor.dropout
            (0.1, 0.1)
        """
        if not hasattr(self.predictor, "set_dropout"):
            raise TypeError(f"the predictor {type(self.predictor).__name__} has no set_dropout(p) method")
        if not hasattr(self.config, "dropout"):
            raise TypeError(f"{type(self.config).__name__} has no dropout field to record the probability in")
        self.predictor.set_dropout(p)
        self.config.dropout = float(p)

    @property
    def action_dim(self) -> int:
        """Size of one normalised model action."""
        return self.config.action_dim

    @property
    def num_hist(self) -> int:
        """History frames the predictor reads."""
        return self.config.num_hist

    @property
    def frameskip(self) -> int:
        """Environment actions per model step."""
        return self.config.frameskip

    # ---------------------------------------------------------- normalisation
    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        """Env-unit model action ``(..., action_dim)`` -> normalised action."""
        return self.action_normalizer.normalize(action)

    def denormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        """Normalised model action -> env units, ``(..., action_dim)``."""
        return self.action_normalizer.denormalize(action)

    # ------------------------------------------------------ plain-tensor verbs
    def encode(self, *obs: torch.Tensor | TensorDictBase) -> torch.Tensor | TensorDictBase:
        """Observation entries (one tensor per key of ``observation_keys``, any leading dims ``...``) ->
        latent ``(..., latent_dim)`` (plain tensors, batched).

        Given one TensorDict, writes ``"latent"`` as TorchRL's ``WorldModel.encode`` does
        (:func:`~torchrl_gbp.models.contract.encode_entries` returns the latent of any keys instead).
        """
        if len(obs) == 1 and isinstance(obs[0], TensorDictBase):
            return super().encode(obs[0])
        if len(obs) != len(self.observation_keys):
            raise TypeError(f"encode takes one tensor per observation key {list(self.observation_keys)}, "
                            f"got {len(obs)}")
        return self.state_encoder(*obs)

    def embed_actions(self, action: torch.Tensor) -> torch.Tensor:
        """Normalised model action ``(..., action_dim)`` -> embedding ``(..., action_embed_dim)``."""
        return self.latent_dynamics.embed_actions(action)

    def predict(self, z_hist: torch.Tensor, e_hist: torch.Tensor) -> torch.Tensor:
        """Latent history ``(..., h, D)`` and action embeddings ``(..., h, E)`` -> next latent ``(..., D)``."""
        return self.predictor(z_hist, e_hist)

    def step(self, z_hist: torch.Tensor | TensorDictBase, a_hist: torch.Tensor | None = None):
        """Latent history ``(..., h, D)`` and normalised actions ``(..., h, A)`` -> ``(..., D)``.

        Given a TensorDict, runs TorchRL's step sequence (dynamics and reward head).
        """
        if isinstance(z_hist, TensorDictBase):
            return super().step(z_hist)
        return self.predict(z_hist, self.embed_actions(a_hist))

    def rollout(self, z_hist: torch.Tensor, a_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Autoregressive latent rollout, differentiable in ``actions``.

        Args:
            z_hist: ``(..., h, D)`` latents of the last ``h`` frames (``h == num_hist``).
            a_hist: ``(..., h - 1, A)`` normalised actions taken after each of the
                first ``h - 1`` history frames (empty when ``h == 1``).
            actions: ``(..., H, A)`` normalised actions to roll out; leading dims
                must match those of ``z_hist`` and ``a_hist``.

        Returns:
            ``(..., H, D)``: the predicted latents after each action.
        """
        h = self.num_hist
        if z_hist.shape[-2] != h or a_hist.shape[-2] != h - 1:
            raise ValueError(
                f"rollout expects z_hist (..., {h}, D) and a_hist (..., {h - 1}, A); "
                f"got {tuple(z_hist.shape)} and {tuple(a_hist.shape)}"
            )
        if a_hist.shape[-1] != self.action_dim or actions.shape[-1] != self.action_dim:
            raise ValueError(
                f"rollout expects a_hist and actions with last dimension action_dim={self.action_dim} "
                f"(env_action_dim x frameskip); got {tuple(a_hist.shape)} and {tuple(actions.shape)}"
            )
        embeddings = self.embed_actions(torch.cat([a_hist, actions], dim=-2))
        frames = list(z_hist.unbind(-2))
        for t in range(actions.shape[-2]):
            window = torch.stack(frames[-h:], dim=-2)
            frames.append(self.predict(window, embeddings[..., t:t + h, :]))
        return torch.stack(frames[h:], dim=-2)


class StateWorldModel(LatentWorldModel):
    """Encoder, action encoder and residual MLP predictor over state observations.

    Two faces:

    * TensorDict (TorchRL's :class:`~torchrl.modules.WorldModel` layout):
      ``"observation" -> "latent"``; ``("latent", "action") -> ("next", "latent")``;
      ``(("next", "latent"), "goal_latent") -> ("next", "reward")`` (minus the
      squared latent distance to the goal, with ``"goal_latent"`` carried to
      ``"next"``) so TorchRL's ``WorldModelEnv`` and ``CEMPlanner`` can drive it.
      ``"action"`` there is the normalised model action.
    * plain tensors for hot loops: :meth:`encode`, :meth:`step`, :meth:`rollout`,
      :meth:`embed_actions`, :meth:`predict` and the action (de)normalisation.

    Normalisation statistics live in buffers; set them with :meth:`fit_normalization`.

    Example:
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> z = model.encode(torch.zeros(4, 1, 2))             # (B, h, D)
        >>> a_hist = torch.zeros(4, 0, model.action_dim)       # h - 1 past actions
        >>> model.rollout(z, a_hist, torch.zeros(4, 5, model.action_dim)).shape
        torch.Size([4, 5, 2])
    """

    def __init__(self, config: WorldModelConfig, *, observation_key: NestedKey = "observation",
                 goal_key: NestedKey = "goal") -> None:
        net = (IdentityEncoder(config.obs_dim) if config.encoder == "identity"
               else MLPEncoder(config.obs_dim, config.latent_dim))
        predictor = ResidualMLPPredictor(net.latent_dim, config.action_embed_dim, config.num_hist,
                                         config.hidden_dim, config.depth, config.dropout)
        super().__init__(config, NormalizedEncoder(config.obs_dim, net), net.latent_dim, predictor,
                         observation_keys=(observation_key,), goal_keys=(goal_key,))
        self.state_decoder = mlp(net.latent_dim, config.obs_dim, 128, 2) if config.encoder == "mlp" else None
        self.reward_predictor = RewardHead(net.latent_dim, config.action_dim) if config.reward_head else None

    @property
    def obs_normalizer(self) -> Normalizer:
        """Observation statistics."""
        return self.state_encoder.normalizer

    def fit_normalization(self, observations: torch.Tensor, model_actions: torch.Tensor) -> None:
        """Set observation and model-action statistics from dataset tensors."""
        self.obs_normalizer.fit(observations)
        self.action_normalizer.fit(model_actions)

    def decode(self, z: torch.Tensor | TensorDictBase) -> torch.Tensor | TensorDictBase:
        """Latent ``(..., latent_dim)`` -> raw observation (exact for the identity encoder)."""
        if isinstance(z, TensorDictBase):
            raise TypeError("StateWorldModel.decode takes a latent tensor, not a TensorDict")
        normalized = z if self.state_decoder is None else self.state_decoder(z)
        return self.obs_normalizer.denormalize(normalized)
