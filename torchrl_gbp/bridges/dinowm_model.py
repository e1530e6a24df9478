"""A weight-compatible DINO-WM world model on the package's verbs.

DINO-WM's predictor is a ViT over (history frames x patch tokens) with a
frame-causal mask; every token is a DINOv2 patch token with the frame's proprio
embedding and action embedding concatenated onto it (``concat_dim=1``). Here
the predictor keeps DINO-WM's parameter names and shapes, so the state dicts of
their ``predictor``, ``action_encoder`` and ``proprio_encoder`` load strictly
(``nn.Module.load_state_dict``), and the model is a
:class:`~torchrl_gbp.models.LatentWorldModel`: planners, ``MPCPolicy``, the
synthesis transforms, the loss and the diagnostics use it unchanged.

The latent of one frame is flat: ``num_patches * visual_dim`` visual entries,
then the ``proprio_embed_dim`` proprio embedding (DINO-WM's goal cost reads the
proprio slot of patch 0, and so does ours: ``config.proprio_dim`` is that slot).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from tensordict.utils import NestedKey
from torch import nn
from torch.nn import functional as F

from torchrl_gbp.checks import check_positive_int
from torchrl_gbp.models.checkpoint import register_model_kind
from torchrl_gbp.models.image_encoders import freeze, images_to_unit
from torchrl_gbp.models.normalization import Normalizer
from torchrl_gbp.models.predictors import FrameCausalTransformer, set_dropout
from torchrl_gbp.models.world_model import ConfigFields, LatentWorldModel

from .dinov2 import DinoWMImageEncoder

ROLLOUTS = ("full", "history", "one_frame")
ENCODERS = ("tokens", "custom", "dinov2")


@dataclass
class DinoWMConfig(ConfigFields):
    """Everything needed to rebuild a :class:`DinoWMWorldModel`; defaults are DINO-WM's released models.

    Args:
        env_action_dim: size of one environment action.
        proprio_in_dim: raw proprio entries (the proprio encoder's input).
        frameskip: environment actions per model step (their concatenation is the model action).
        num_hist: history frames the predictor reads.
        num_patches, visual_dim: visual tokens per frame and their size (DINOv2 ViT-S/14 at 224: 196 of 384).
        proprio_embed_dim, action_embed_dim: DINO-WM's ``proprio_emb_dim`` and ``action_emb_dim``.
        proprio_repeat, action_repeat: DINO-WM's ``num_proprio_repeat`` and ``num_action_repeat`` (copies
            of each embedding concatenated onto every token).
        depth, heads, dim_head, mlp_dim: the ViT predictor.
        dropout, emb_dropout: the predictor's dropout (active in train mode only).
        rollout: ``"full"``: DINO-WM's rollout as their planners run it, from the last given frame, each step
            seeing up to ``num_hist`` latest frames (the context grows); ``"history"``: the same from every
            given history frame; ``"one_frame"``: each step sees only the latest frame, patch 0's proprio
            re-tiled (the paper's gradient-planning configs).
        encoder: ``"tokens"``: observations are precomputed visual tokens ``(..., num_patches, visual_dim)``;
            ``"custom"``: images through an image-encoder module given to the model (and again on loading);
            ``"dinov2"``: images through the model's own :class:`~torchrl_gbp.bridges.DinoWMImageEncoder`,
            rebuilt from ``dinov2`` and ``image_size`` (its weights travel in the model's state dict, so a
            checkpoint loads with nothing else).
        dinov2: with ``encoder="dinov2"``, the ``transformers.Dinov2Config`` fields of that encoder.
        image_size: with ``encoder="dinov2"``, the side images are resized to (DINO-WM's ``img_size``).

    Example:
        >>> config = DinoWMConfig(env_action_dim=2, proprio_in_dim=4)
        >>> config.action_dim, config.depth, config.heads * config.dim_head, config.visual_dim
        (10, 6, 1024, 384)
        >>> config.token_copies   # each proprio and action-embedding entry is on all 196 tokens
        (196, 196)
    """

    env_action_dim: int
    proprio_in_dim: int
    frameskip: int = 5
    num_hist: int = 3
    num_patches: int = 196
    visual_dim: int = 384
    proprio_embed_dim: int = 10
    action_embed_dim: int = 10
    proprio_repeat: int = 1
    action_repeat: int = 1
    depth: int = 6
    heads: int = 16
    dim_head: int = 64
    mlp_dim: int = 2048
    dropout: float = 0.1
    emb_dropout: float = 0.0
    rollout: str = "full"
    encoder: str = "tokens"
    dinov2: dict | None = None
    image_size: int = 224

    def __post_init__(self) -> None:
        for name in ("env_action_dim", "proprio_in_dim", "frameskip", "num_hist", "num_patches", "visual_dim",
                     "proprio_embed_dim", "action_embed_dim", "proprio_repeat", "action_repeat", "depth", "heads",
                     "dim_head", "mlp_dim"):
            check_positive_int(f"DinoWMConfig.{name}", getattr(self, name))
        for name in ("dropout", "emb_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"DinoWMConfig.{name} must lie in [0, 1), got {getattr(self, name)!r}")
        if self.rollout not in ROLLOUTS:
            raise ValueError(f"DinoWMConfig.rollout must be one of {ROLLOUTS}, got {self.rollout!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"DinoWMConfig.encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if (self.encoder == "dinov2") != (self.dinov2 is not None):
            raise ValueError("DinoWMConfig.dinov2 (the Dinov2Config fields) goes with encoder='dinov2' and only "
                             f"with it; got encoder={self.encoder!r}, dinov2={self.dinov2!r}")
        check_positive_int("DinoWMConfig.image_size", self.image_size)

    @property
    def proprio_dim(self) -> int:
        """Trailing latent entries that form the proprio part (the proprio embedding)."""
        return self.proprio_embed_dim

    @property
    def token_copies(self) -> tuple[int, int]:
        """How often the predictor's tokens repeat each proprio and each action-embedding entry (on every patch,
        ``proprio_repeat`` and ``action_repeat`` times): the reference's per-window radii count every copy."""
        return self.num_patches * self.proprio_repeat, self.num_patches * self.action_repeat

    @property
    def width(self) -> int:
        """Token width of the predictor: visual ++ proprio slot ++ action slot (DINO-WM's 404)."""
        return (self.visual_dim + self.proprio_embed_dim * self.proprio_repeat
                + self.action_embed_dim * self.action_repeat)


class Conv1dEmbedding(nn.Module):
    """DINO-WM's proprio and action encoder: a kernel-1 ``Conv1d`` over time, on ``(..., in_dim)`` vectors.

    Its parameters are ``patch_embed.weight`` ``(embed_dim, in_dim, 1)`` and
    ``patch_embed.bias``, as in DINO-WM's ``ProprioceptiveEmbedding``.

    Example:
        >>> embed = Conv1dEmbedding(in_dim=4, embed_dim=10)
        >>> embed(torch.zeros(2, 3, 4)).shape, embed.patch_embed.weight.shape
        (torch.Size([2, 3, 10]), torch.Size([10, 4, 1]))
    """

    def __init__(self, in_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.in_dim, self.embed_dim = in_dim, embed_dim
        self.patch_embed = nn.Conv1d(in_dim, embed_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in_dim)`` -> ``(..., embed_dim)``."""
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"the embedding expects (..., {self.in_dim}) inputs, got {tuple(x.shape)}")
        return F.linear(x, self.patch_embed.weight.squeeze(-1), self.patch_embed.bias)


class DinoWMPredictor(nn.Module):
    """DINO-WM's ViT predictor, parameter for parameter, with the flat-latent interface of our predictors.

    Parameters (DINO-WM's names and shapes): ``pos_embedding``
    ``(1, num_hist * num_patches, width)``; per layer ``i``
    ``transformer.layers.i.0.norm``, ``.0.to_qkv`` (``3 * heads * dim_head`` x
    ``width``, no bias), ``.0.to_out.0``, ``.1.net.0`` (LayerNorm), ``.1.net.1``
    (``mlp_dim``), ``.1.net.4``; ``transformer.norm``: the package's
    :class:`~torchrl_gbp.models.predictors.FrameCausalTransformer`, which our
    pixel predictor uses too. The frame-causal mask is
    rebuilt here, not saved; a state dict that carries it (the
    robust-world-model-planning fork registers it as ``transformer.layers.i.0.bias``)
    loads too, after the mask is checked.

    A token is a visual token, the frame's proprio embedding (``proprio_repeat``
    copies) and the frame's action embedding (``action_repeat`` copies). The
    output at a frame is the next frame's tokens; their action slot is dropped.

    Example:
        >>> predictor = DinoWMPredictor(num_patches=4, num_hist=3, visual_dim=8, proprio_embed_dim=2,
        ...                             action_embed_dim=2, depth=1, heads=2, dim_head=4, mlp_dim=16)
        >>> predictor.pos_embedding.shape
        torch.Size([1, 12, 12])
        >>> predictor(torch.zeros(5, 3, 4 * 8 + 2), torch.zeros(5, 3, 2)).shape   # next flat latent
        torch.Size([5, 34])
    """

    def __init__(self, *, num_patches: int, num_hist: int, visual_dim: int, proprio_embed_dim: int,
                 action_embed_dim: int, proprio_repeat: int = 1, action_repeat: int = 1, depth: int = 6,
                 heads: int = 16, dim_head: int = 64, mlp_dim: int = 2048, dropout: float = 0.0,
                 emb_dropout: float = 0.0) -> None:
        super().__init__()
        self.num_patches, self.num_hist, self.visual_dim = num_patches, num_hist, visual_dim
        self.proprio_embed_dim, self.proprio_repeat = proprio_embed_dim, proprio_repeat
        self.action_embed_dim, self.action_repeat = action_embed_dim, action_repeat
        self.observation_width = visual_dim + proprio_embed_dim * proprio_repeat
        self.width = self.observation_width + action_embed_dim * action_repeat
        self.pos_embedding = nn.Parameter(torch.randn(1, num_hist * num_patches, self.width))
        self.dropout = nn.Dropout(emb_dropout)
        # DINO-WM skips the attention's output projection when one head already has the token width
        self.transformer = FrameCausalTransformer(dim=self.width, depth=depth, heads=heads, dim_head=dim_head,
                                                  mlp_dim=mlp_dim, num_frames=num_hist, tokens_per_frame=num_patches,
                                                  dropout=dropout, project_out=not (heads == 1 and dim_head == self.width))

    @property
    def latent_dim(self) -> int:
        """Size of one frame's flat latent."""
        return self.num_patches * self.visual_dim + self.proprio_embed_dim

    def set_dropout(self, p: float) -> None:
        """Use dropout probability ``p`` in the transformer from now on (``emb_dropout`` stays as it is)."""
        set_dropout(self.transformer, p)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # the fork's saved masks: accepted when they are this predictor's frame-causal mask, then dropped
        for i in range(len(self.transformer.layers)):
            key = f"{prefix}transformer.layers.{i}.0.bias"
            mask = state_dict.pop(key, None)
            if mask is None:
                continue
            expected = self.transformer.frame_mask
            n = expected.shape[0]
            if mask.shape != (1, 1, n, n) or not torch.equal(mask[0, 0].to(expected.device) != 0, expected):
                error_msgs.append(f"{key}: expected the frame-causal mask of {self.num_hist} frames x "
                                  f"{self.num_patches} patches, shape (1, 1, {n}, {n}), got {tuple(mask.shape)} "
                                  f"with other entries")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """DINO-WM's predictor: tokens of ``f <= num_hist`` frames ``(B, f * num_patches, width)`` -> same shape.

        The output at each frame's tokens predicts the next frame's.
        """
        n = x.shape[1]
        if x.ndim != 3 or x.shape[2] != self.width or n % self.num_patches or not 0 < n <= self.pos_embedding.shape[1]:
            raise ValueError(f"the predictor expects tokens (B, f * {self.num_patches}, {self.width}) of 1 to "
                             f"{self.num_hist} frames, got {tuple(x.shape)}")
        return self.transformer(self.dropout(x + self.pos_embedding[:, :n]))

    def observation_tokens(self, z: torch.Tensor) -> torch.Tensor:
        """Flat latents ``(..., latent_dim)`` -> tokens without the action slot
        ``(..., num_patches, observation_width)``."""
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"latents must be (..., {self.latent_dim}) ({self.num_patches} x {self.visual_dim} "
                             f"visual + {self.proprio_embed_dim} proprio), got {tuple(z.shape)}")
        visual = z[..., :-self.proprio_embed_dim].unflatten(-1, (self.num_patches, self.visual_dim))
        return torch.cat([visual, self._tile(z[..., -self.proprio_embed_dim:], self.proprio_repeat)], dim=-1)

    def _tile(self, embedding: torch.Tensor, repeat: int) -> torch.Tensor:
        """``(..., E)`` -> ``(..., num_patches, repeat * E)``: ``repeat`` copies side by side on every patch."""
        copies = embedding.repeat(*[1] * (embedding.ndim - 1), repeat)
        return copies.unsqueeze(-2).expand(*embedding.shape[:-1], self.num_patches, copies.shape[-1])

    def next_observation_tokens(self, tokens: torch.Tensor, e_hist: torch.Tensor) -> torch.Tensor:
        """History tokens ``(..., f, num_patches, observation_width)`` and action embeddings ``(..., f, E)`` ->
        the next frame's tokens ``(..., num_patches, observation_width)`` (each patch keeps its own proprio slot)."""
        lead, f = tokens.shape[:-3], tokens.shape[-3]
        x = torch.cat([tokens, self._tile(e_hist, self.action_repeat)], dim=-1)
        out = self.forward_tokens(x.reshape(-1, f * self.num_patches, self.width))[:, -self.num_patches:]
        return out[..., :self.observation_width].reshape(*lead, self.num_patches, self.observation_width)

    def latent(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``(..., num_patches, observation_width)`` -> flat latent: visual tokens, then patch 0's proprio."""
        proprio = tokens[..., 0, self.visual_dim:self.visual_dim + self.proprio_embed_dim]
        return torch.cat([tokens[..., :self.visual_dim].flatten(-2), proprio], dim=-1)

    def forward(self, z_hist: torch.Tensor, e_hist: torch.Tensor) -> torch.Tensor:
        """Flat latents ``(..., f, latent_dim)`` of ``f <= num_hist`` frames and their action embeddings
        ``(..., f, E)`` -> the next frame's flat latent ``(..., latent_dim)``."""
        return self.latent(self.next_observation_tokens(self.observation_tokens(z_hist), e_hist))


class DinoWMObservationEncoder(nn.Module):
    """Visual tokens and proprio -> flat latent: the tokens as they are, then DINO-WM's proprio embedding.

    Visual input is precomputed tokens ``(..., num_patches, visual_dim)`` or,
    with an ``image_encoder`` (frozen, images ``(B, 3, H, W)`` in ``[0, 1]`` to
    tokens), uint8 images ``(..., H, W, 3)`` or float ``(..., 3, H, W)``. Proprio
    is z-scored with dataset statistics (``proprio_normalizer``) before its
    kernel-1 embedding (``proprio_encoder``), as DINO-WM's datasets do.
    """

    def __init__(self, *, num_patches: int, visual_dim: int, proprio_in_dim: int, proprio_embed_dim: int,
                 image_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.num_patches, self.visual_dim = num_patches, visual_dim
        self.image_encoder = None if image_encoder is None else freeze(image_encoder)
        self.proprio_normalizer = Normalizer(proprio_in_dim)
        self.proprio_encoder = Conv1dEmbedding(proprio_in_dim, proprio_embed_dim)
        self.latent_dim = num_patches * visual_dim + proprio_embed_dim

    def train(self, mode: bool = True) -> DinoWMObservationEncoder:
        """The image encoder stays in eval mode: it is frozen."""
        super().train(mode)
        if self.image_encoder is not None:
            self.image_encoder.eval()
        return self

    def tokens(self, visual: torch.Tensor) -> torch.Tensor:
        """Visual tokens ``(..., num_patches, visual_dim)`` of the visual input (tokens pass through)."""
        if self.image_encoder is not None:
            with torch.no_grad():
                tokens = self.image_encoder(images_to_unit(visual))
            visual = tokens.reshape(*visual.shape[:-3], *tokens.shape[1:])
        if visual.shape[-2:] != (self.num_patches, self.visual_dim) or not visual.is_floating_point():
            raise ValueError(f"visual tokens must be float (..., {self.num_patches}, {self.visual_dim}), got "
                             f"{visual.dtype} {tuple(visual.shape)}")
        return visual

    def forward(self, visual: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """Visual input and proprio ``(..., proprio_in_dim)`` -> latents ``(..., latent_dim)``."""
        tokens = self.tokens(visual)
        embedding = self.proprio_encoder(self.proprio_normalizer.normalize(proprio))
        if tokens.shape[:-2] != embedding.shape[:-1]:
            raise ValueError(f"proprio {tuple(proprio.shape)} must have the leading dims of the visual tokens "
                             f"{tuple(tokens.shape[:-2])}")
        return torch.cat([tokens.to(embedding.dtype).flatten(-2), embedding], dim=-1)


class DinoWMWorldModel(LatentWorldModel):
    """DINO-WM's world model (frozen visual tokens, ViT predictor, kernel-1 encoders) on the package's verbs.

    Loads DINO-WM's weights strictly: ``model.predictor``, ``model.action_encoder``
    and ``model.proprio_encoder`` take the state dicts of their ``predictor``,
    ``action_encoder`` and ``proprio_encoder``
    (:func:`~torchrl_gbp.bridges.convert_dinowm_checkpoint` does it from a run folder).

    Verbs as every world model here: :meth:`encode` (visual input and proprio ->
    flat latent), :meth:`step`, :meth:`rollout` (``config.rollout`` selects
    DINO-WM's full-context rollout or the paper's one-frame rollout; see
    :class:`DinoWMConfig`), action (de)normalisation, and TorchRL's
    ``WorldModel`` key layout. Normalisation statistics are not in DINO-WM's
    checkpoints: set them with :meth:`set_normalization` or :meth:`fit_normalization`.

    Args:
        config: the model's :class:`DinoWMConfig`.
        image_encoder: for ``config.encoder == "custom"``: the frozen module from
            images ``(B, 3, H, W)`` in ``[0, 1]`` to tokens ``(B, num_patches, visual_dim)``; for
            ``"dinov2"`` optional (by default built from ``config.dinov2``, random until weights are loaded).
        observation_keys, goal_keys: the keys of the visual input and the proprio (default
            ``("tokens", "proprio")`` for token inputs, ``("pixels", "proprio")`` for images; the
            goal's under ``"goal"``).

    Example:
        >>> config = DinoWMConfig(env_action_dim=2, proprio_in_dim=4, frameskip=5, num_patches=4, visual_dim=8,
        ...                       depth=1, heads=2, dim_head=4, mlp_dim=16)
        >>> model = DinoWMWorldModel(config)
        >>> z = model.encode(torch.randn(3, 1, 4, 8), torch.randn(3, 1, 4))    # one frame: (B, 1, 4 * 8 + 10)
        >>> z.shape, model.rollout(z, torch.zeros(3, 0, 10), torch.zeros(3, 5, 10)).shape
        (torch.Size([3, 1, 42]), torch.Size([3, 5, 42]))
    """

    def __init__(self, config: DinoWMConfig, *, image_encoder: nn.Module | None = None,
                 observation_keys: Sequence[NestedKey] | None = None,
                 goal_keys: Sequence[NestedKey] | None = None) -> None:
        if config.encoder == "dinov2" and image_encoder is None:
            image_encoder = DinoWMImageEncoder.from_config(config.dinov2, image_size=config.image_size)
        elif config.encoder != "dinov2" and (config.encoder == "custom") != (image_encoder is not None):
            raise ValueError(f"DinoWMConfig.encoder={config.encoder!r} "
                             + ("needs the image encoder module: pass image_encoder=..." if image_encoder is None
                                else "reads precomputed tokens; give image_encoder only with encoder='custom' "
                                     "or 'dinov2'"))
        visual_key = "tokens" if config.encoder == "tokens" else "pixels"
        observation_keys = (visual_key, "proprio") if observation_keys is None else observation_keys
        goal_keys = (("goal", visual_key), ("goal", "proprio")) if goal_keys is None else goal_keys
        encoder = DinoWMObservationEncoder(num_patches=config.num_patches, visual_dim=config.visual_dim,
                                           proprio_in_dim=config.proprio_in_dim,
                                           proprio_embed_dim=config.proprio_embed_dim, image_encoder=image_encoder)
        predictor = DinoWMPredictor(
            num_patches=config.num_patches, num_hist=config.num_hist, visual_dim=config.visual_dim,
            proprio_embed_dim=config.proprio_embed_dim, action_embed_dim=config.action_embed_dim,
            proprio_repeat=config.proprio_repeat, action_repeat=config.action_repeat, depth=config.depth,
            heads=config.heads, dim_head=config.dim_head, mlp_dim=config.mlp_dim, dropout=config.dropout,
            emb_dropout=config.emb_dropout)
        super().__init__(config, encoder, encoder.latent_dim, predictor, observation_keys=observation_keys,
                         goal_keys=goal_keys)
        self.latent_dynamics.action_encoder = Conv1dEmbedding(config.action_dim, config.action_embed_dim)
        self.activation_checkpointing = False

    @property
    def proprio_encoder(self) -> Conv1dEmbedding:
        """The proprio embedding (DINO-WM's ``proprio_encoder``)."""
        return self.state_encoder.proprio_encoder

    @property
    def token_copies(self) -> tuple[int, int]:
        """Tokens each proprio and action-embedding entry is concatenated onto (``config.token_copies``)."""
        return self.config.token_copies

    def use_rollout(self, rollout: str) -> DinoWMWorldModel:
        """Select the rollout (``"full"``, ``"history"`` or ``"one_frame"``, see :class:`DinoWMConfig`); returns
        the model."""
        if rollout not in ROLLOUTS:
            raise ValueError(f"rollout must be one of {ROLLOUTS}, got {rollout!r}")
        self.config.rollout = rollout
        return self

    def use_activation_checkpointing(self, enabled: bool = True) -> DinoWMWorldModel:
        """Recompute each rollout step's activations in the backward pass instead of keeping them (``enabled``);
        returns the model.

        A differentiated rollout then holds one step's activations at a time plus the ``H`` predicted frames,
        for one more forward pass of compute (``docs/results/planning_memory.md`` measures both).

        Example:
            >>> config = DinoWMConfig(env_action_dim=2, proprio_in_dim=4, num_patches=4, visual_dim=8, depth=1,
            ...                       heads=2, dim_head=4, mlp_dim=16, rollout="one_frame")
            >>> model = DinoWMWorldModel(config).use_activation_checkpointing()
            >>> actions = torch.zeros(3, 5, 10, requires_grad=True)
            >>> z = model.rollout(torch.zeros(3, 1, 42), torch.zeros(3, 0, 10), actions)
            >>> z.sum().backward(); actions.grad.shape
            torch.Size([3, 5, 10])
        """
        self.activation_checkpointing = enabled
        return self

    def _step(self, function, *inputs: torch.Tensor) -> torch.Tensor:
        """``function(*inputs)``, checkpointed when activation checkpointing is on and gradients are recorded."""
        if self.activation_checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(function, *inputs, use_reentrant=False)
        return function(*inputs)

    def set_normalization(self, *, proprio_mean: torch.Tensor, proprio_std: torch.Tensor, action_mean: torch.Tensor,
                          action_std: torch.Tensor) -> None:
        """Set the dataset statistics DINO-WM normalises with: proprio ``(proprio_in_dim,)`` and env actions
        ``(env_action_dim,)`` (tiled over the ``frameskip`` actions of a model step)."""
        c = self.config
        stats = {"proprio_mean": (proprio_mean, c.proprio_in_dim), "proprio_std": (proprio_std, c.proprio_in_dim),
                 "action_mean": (action_mean, c.env_action_dim), "action_std": (action_std, c.env_action_dim)}
        values = {}
        for name, (value, size) in stats.items():
            value = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
            if value.numel() != size:
                raise ValueError(f"{name} must have {size} entries, got {value.numel()}")
            values[name] = value
        with torch.no_grad():
            normalizer = self.state_encoder.proprio_normalizer
            normalizer.mean.copy_(values["proprio_mean"])
            normalizer.std.copy_(values["proprio_std"])
            self.action_normalizer.mean.copy_(values["action_mean"].repeat(c.frameskip))
            self.action_normalizer.std.copy_(values["action_std"].repeat(c.frameskip))

    def fit_normalization(self, proprio: torch.Tensor, model_actions: torch.Tensor) -> None:
        """Proprio statistics from ``proprio`` ``(..., proprio_in_dim)``, action statistics from model actions."""
        self.state_encoder.proprio_normalizer.fit(proprio)
        self.action_normalizer.fit(model_actions)

    def rollout(self, z_hist: torch.Tensor, a_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Autoregressive latent rollout, differentiable in ``actions``; the rollout ``config.rollout`` names.

        Args:
            z_hist: ``(..., f, D)`` latents of the last ``f`` frames, ``1 <= f <= num_hist``.
            a_hist: ``(..., f - 1, A)`` normalised actions taken after each of the first ``f - 1`` frames.
            actions: ``(..., H, A)`` normalised actions to roll out.

        Returns:
            ``(..., H, D)``: the predicted latents after each action.
        """
        f, h = z_hist.shape[-2], self.num_hist
        if not 1 <= f <= h or a_hist.shape[-2] != f - 1:
            raise ValueError(f"rollout expects z_hist (..., f, D) with 1 <= f <= num_hist={h} and a_hist "
                             f"(..., f - 1, A); got {tuple(z_hist.shape)} and {tuple(a_hist.shape)}")
        if a_hist.shape[-1] != self.action_dim or actions.shape[-1] != self.action_dim:
            raise ValueError(f"rollout expects a_hist and actions with last dimension action_dim={self.action_dim} "
                             f"(env_action_dim x frameskip); got {tuple(a_hist.shape)} and {tuple(actions.shape)}")
        predictor = self.predictor
        if self.config.rollout == "one_frame":
            z, embeddings, out = z_hist[..., -1, :], self.embed_actions(actions), []
            for t in range(actions.shape[-2]):
                z = self._step(predictor, z.unsqueeze(-2), embeddings[..., t:t + 1, :])
                out.append(z)
            return torch.stack(out, dim=-2)
        if self.config.rollout == "full":  # DINO-WM's planners start from the current frame alone
            z_hist, a_hist = z_hist[..., -1:, :], a_hist[..., :0, :]
        embeddings = self.embed_actions(torch.cat([a_hist, actions], dim=-2))
        # predicted frames keep every patch's own proprio slot as the next steps' context, as DINO-WM's do
        frames = list(predictor.observation_tokens(z_hist).unbind(-3))
        out = []
        for _ in range(actions.shape[-2]):
            start, end = max(0, len(frames) - h), len(frames)
            frames.append(self._step(predictor.next_observation_tokens, torch.stack(frames[start:], dim=-3),
                                     embeddings[..., start:end, :]))
            out.append(predictor.latent(frames[-1]))
        return torch.stack(out, dim=-2)


register_model_kind("dinowm", DinoWMWorldModel, DinoWMConfig, module=__name__)
