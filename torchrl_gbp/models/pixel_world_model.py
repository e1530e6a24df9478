"""A DINO-WM-style pixel world model: frozen image encoder, frame-causal token predictor, same verbs as state models."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tensordict.utils import NestedKey
from torch import nn

from torchrl_gbp.checks import check_positive_int

from .image_encoders import BlurPoolEncoder, DINOv2Encoder, PatchAutoencoder, freeze, images_to_unit
from .normalization import Normalizer
from .predictors import FrameCausalTransformerPredictor
from .world_model import ConfigFields, LatentWorldModel

ENCODERS = ("patch", "blur", "dinov2", "custom")


@dataclass
class PixelWorldModelConfig(ConfigFields):
    """Everything needed to rebuild a :class:`PixelWorldModel` (the encoder's weights travel in its state dict).

    A pixel observation is two entries, as :class:`~torchrl_gbp.tasks.PixelTask`
    envs and datasets key them: ``"pixels"``, uint8 ``(..., image_size, image_size, 3)``,
    and ``"proprio"`` ``(..., proprio_dim)``.

    Args:
        image_size: square image side.
        proprio_dim: proprio entries (the latent's trailing part, weighted by
            ``alpha`` in goal costs and perturbed at the proprio radius).
        env_action_dim, frameskip, num_hist: as in :class:`WorldModelConfig`.
        encoder: ``"patch"`` (:class:`PatchAutoencoder`, trained on the task's
            images and frozen), ``"blur"`` (:class:`BlurPoolEncoder`, weight-free,
            its mean image taken from the task's images), ``"dinov2"`` (:class:`DINOv2Encoder`) or
            ``"custom"`` (a module given to the model; give it again on loading).
        encoder_options: the encoder's constructor arguments (``"patch"``:
            ``patch_size``, ``token_dim``, ``hidden_dim``; ``"blur"``: ``patch_size``,
            ``pool``, ``sigma``; ``"dinov2"``:
            :meth:`DINOv2Encoder.config_dict`).
        action_embed_dim, proprio_embed_dim: embedding sizes concatenated to every token.
        hidden_dim, depth, heads: predictor transformer width, layers, heads.
        dropout: the predictor's dropout probability (train mode only; see
            :meth:`~torchrl_gbp.models.LatentWorldModel.set_dropout`).

    Example:
        >>> config = PixelWorldModelConfig(image_size=64, proprio_dim=2, env_action_dim=2)
        >>> config.action_dim, config.num_hist, config.encoder
        (10, 3, 'patch')
        >>> PixelWorldModelConfig.from_dict(config.to_dict()) == config
        True
    """

    image_size: int
    proprio_dim: int
    env_action_dim: int
    frameskip: int = 5
    num_hist: int = 3
    encoder: str = "patch"
    encoder_options: dict = field(default_factory=lambda: {"patch_size": 16, "token_dim": 16, "hidden_dim": 64})
    action_embed_dim: int = 10
    proprio_embed_dim: int = 8
    hidden_dim: int = 64
    depth: int = 2
    heads: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("image_size", "env_action_dim", "frameskip", "num_hist", "action_embed_dim",
                     "proprio_embed_dim", "hidden_dim", "depth", "heads"):
            check_positive_int(f"PixelWorldModelConfig.{name}", getattr(self, name))
        if self.proprio_dim < 0:
            raise ValueError(f"PixelWorldModelConfig.proprio_dim must be >= 0, got {self.proprio_dim}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"PixelWorldModelConfig.encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"PixelWorldModelConfig.dropout must lie in [0, 1), got {self.dropout!r}")


def build_image_encoder(config: PixelWorldModelConfig) -> nn.Module:
    """The frozen image encoder named by ``config.encoder`` (``"custom"`` has none to build)."""
    if config.encoder == "patch":
        return freeze(PatchAutoencoder(config.image_size, **config.encoder_options))
    if config.encoder == "blur":
        return freeze(BlurPoolEncoder(config.image_size, **config.encoder_options))
    if config.encoder == "dinov2":
        options = dict(config.encoder_options)
        return DINOv2Encoder.from_config(options.pop("config"), **options)
    raise ValueError("PixelWorldModelConfig.encoder='custom' needs the encoder module: pass image_encoder=...")


class PixelObservationEncoder(nn.Module):
    """Images and proprio -> flat latent: normalised frozen-encoder tokens, then normalised proprio.

    Images are uint8 ``(..., S, S, 3)`` (TorchRL's ``"pixels"`` layout) or
    float ``(..., 3, S, S)`` in ``[0, 1]`` (what TorchRL's ``ToTensorImage``
    makes of them); they become floats here, inside the model. The image
    encoder runs without gradients (it is frozen and nothing differentiates
    through images); its tokens are z-scored per channel with dataset
    statistics so every latent entry has unit scale.
    """

    def __init__(self, image_size: int, proprio_dim: int, image_encoder: nn.Module) -> None:
        super().__init__()
        self.image_size, self.proprio_dim = image_size, proprio_dim
        self.image_encoder = freeze(image_encoder)
        with torch.no_grad():
            probe = image_encoder(torch.zeros(1, 3, image_size, image_size))
        if probe.ndim != 3:
            raise ValueError(f"the image encoder must map (B, 3, H, W) to tokens (B, N, D), got {tuple(probe.shape)}")
        self.num_tokens, self.token_dim = probe.shape[1], probe.shape[2]
        self.latent_dim = self.num_tokens * self.token_dim + proprio_dim
        self.token_normalizer = Normalizer(self.token_dim)
        self.proprio_normalizer = Normalizer(proprio_dim)

    def train(self, mode: bool = True) -> PixelObservationEncoder:
        """The image encoder stays in eval mode: it is frozen."""
        super().train(mode)
        self.image_encoder.eval()
        return self

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Raw frozen-encoder tokens of images (uint8 ``(..., S, S, 3)`` or float ``(..., 3, S, S)``) -> ``(..., N, D)``."""
        unit = images_to_unit(images)
        if unit.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"pixels must be {self.image_size}x{self.image_size} images, uint8 (..., "
                             f"{self.image_size}, {self.image_size}, 3) or float (..., 3, {self.image_size}, "
                             f"{self.image_size}); got {images.dtype} {tuple(images.shape)}")
        with torch.no_grad():
            out = self.image_encoder(unit)
        return out.reshape(*images.shape[:-3], self.num_tokens, self.token_dim)

    def forward(self, pixels: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """Images ``(..., S, S, 3)`` (or ``(..., 3, S, S)``) and proprio ``(..., P)`` -> ``(..., N * D + P)``."""
        if proprio.shape[-1:] != (self.proprio_dim,) or proprio.shape[:-1] != pixels.shape[:-3]:
            raise ValueError(f"proprio must be (..., {self.proprio_dim}) with the leading dims of pixels "
                             f"{tuple(pixels.shape[:-3])}; got {tuple(proprio.shape)}")
        tokens = self.token_normalizer.normalize(self.tokens(pixels)).flatten(-2)
        return torch.cat([tokens, self.proprio_normalizer.normalize(proprio)], dim=-1)


def observation_of(model: LatentWorldModel) -> str:
    """What ``model`` reads: ``"pixels"`` for a :class:`PixelWorldModel`, else ``"state"`` (``make_task``'s ``obs``).

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> observation_of(StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5)))
        'state'
        >>> config = PixelWorldModelConfig(image_size=16, proprio_dim=2, env_action_dim=2,
        ...                                encoder_options={"patch_size": 8, "token_dim": 4, "hidden_dim": 8})
        >>> observation_of(PixelWorldModel(config))
        'pixels'
    """
    return "pixels" if isinstance(model.config, PixelWorldModelConfig) else "state"


class PixelWorldModel(LatentWorldModel):
    """Frozen image encoder + frame-causal transformer predictor over its patch tokens (DINO-WM's layout).

    The latent of one frame is flat: ``num_tokens * token_dim`` normalised
    visual entries then ``proprio_dim`` normalised proprio entries, so goal
    costs (``alpha`` on the proprio part), planners, both synthesis transforms
    and diagnostics use it through the same verbs as a state model
    (:meth:`encode`, :meth:`step`, :meth:`rollout`, action normalisation) and
    TorchRL's ``WorldModel`` key layout.

    Args:
        config: the model's :class:`PixelWorldModelConfig`.
        image_encoder: the frozen encoder hook (any module from images
            ``(B, 3, H, W)`` in ``[0, 1]`` to tokens ``(B, N, D)``); built from
            ``config`` when omitted.
        observation_keys: the keys of the images and the proprio, in that order.
        goal_keys: the keys of the goal's images and proprio.

    Example:
        >>> config = PixelWorldModelConfig(image_size=16, proprio_dim=2, env_action_dim=2, num_hist=2,
        ...                                encoder_options={"patch_size": 8, "token_dim": 4, "hidden_dim": 8})
        >>> model = PixelWorldModel(config)
        >>> pixels, proprio = torch.zeros(3, 2, 16, 16, 3, dtype=torch.uint8), torch.zeros(3, 2, 2)
        >>> z = model.encode(pixels, proprio)                            # (B, h, N * D + P)
        >>> z.shape, model.rollout(z, torch.zeros(3, 1, 10), torch.zeros(3, 5, 10)).shape
        (torch.Size([3, 2, 18]), torch.Size([3, 5, 18]))
    """

    def __init__(self, config: PixelWorldModelConfig, *, image_encoder: nn.Module | None = None,
                 observation_keys: Sequence[NestedKey] = ("pixels", "proprio"),
                 goal_keys: Sequence[NestedKey] = (("goal", "pixels"), ("goal", "proprio"))) -> None:
        encoder = PixelObservationEncoder(config.image_size, config.proprio_dim,
                                          build_image_encoder(config) if image_encoder is None else image_encoder)
        predictor = FrameCausalTransformerPredictor(
            encoder.num_tokens, encoder.token_dim, config.proprio_dim, config.action_embed_dim, config.num_hist,
            config.hidden_dim, config.depth, config.heads, config.proprio_embed_dim, config.dropout)
        super().__init__(config, encoder, encoder.latent_dim, predictor, observation_keys=observation_keys,
                         goal_keys=goal_keys)

    @property
    def image_encoder(self) -> nn.Module:
        """The frozen image encoder."""
        return self.state_encoder.image_encoder

    @property
    def proprio_encoder(self) -> nn.Module | None:
        """The proprio embedding concatenated onto every token (a part of the predictor; ``None`` without proprio)."""
        return self.predictor.proprio_embedding

    def fit_normalization(self, images: torch.Tensor, proprio: torch.Tensor, model_actions: torch.Tensor) -> None:
        """Token statistics from uint8 ``images`` ``(..., S, S, 3)`` (a sample of the dataset), proprio
        statistics from ``proprio`` ``(..., proprio_dim)`` and model-action statistics."""
        encoder = self.state_encoder
        encoder.token_normalizer.fit(encoder.tokens(images))
        encoder.proprio_normalizer.fit(proprio)
        self.action_normalizer.fit(model_actions)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(..., L)`` -> images ``(..., S, S, 3)`` in ``[0, 1]`` through the encoder's decoder.

        For looking at predictions only; planning never decodes. Needs an
        image encoder with a ``decode`` method (the built-in patch autoencoder).
        """
        encoder = self.state_encoder
        if not hasattr(encoder.image_encoder, "decode"):
            raise TypeError(f"the image encoder {type(encoder.image_encoder).__name__} has no decoder")
        visual = z[..., :encoder.num_tokens * encoder.token_dim].reshape(-1, encoder.num_tokens, encoder.token_dim)
        images = encoder.image_encoder.decode(encoder.token_normalizer.denormalize(visual))
        return images.permute(0, 2, 3, 1).reshape(*z.shape[:-1], *images.shape[-2:], 3)
