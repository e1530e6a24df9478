"""DINOv2 patch tokens as DINO-WM computes them: torch.hub's preprocessing and position embedding, on transformers.

DINO-WM feeds DINOv2 ViT-S/14 (torch.hub) images resized to 224, normalised
with mean and std 0.5 and resized again to ``(224 // 16) * 14 = 196`` pixels,
and reads ``x_norm_patchtokens``: 196 tokens of 384. The hub interpolates the
pretrained position embedding to the 14 x 14 grid bicubically with a scale
factor of ``(14 + 0.1) / M`` (its "interpolate_offset"); transformers'
``Dinov2Model`` interpolates to a size instead, which gives other numbers.
:class:`DinoWMImageEncoder` resamples the embedding once, the hub's way, so the
model then uses it as is.
"""
from __future__ import annotations

import math
import os

import torch
from torch import nn
from torch.nn import functional as F

from torchrl_gbp.models.image_encoders import freeze

# torch.hub's DINOv2 adds this to the target grid before computing the interpolation's scale factor
HUB_INTERPOLATE_OFFSET = 0.1
# DINO-WM's grid: image_size // 16 patches a side (the scale of its VQ-VAE decoder)
DECODER_SCALE = 16


def _transformers():
    try:
        import transformers
    except ImportError as error:
        raise ImportError("DinoWMImageEncoder needs Hugging Face transformers: "
                          "pip install 'torchrl_gbp[dinov2]'") from error
    return transformers


def hub_position_embedding(position_embedding: torch.Tensor, grid: int,
                           offset: float = HUB_INTERPOLATE_OFFSET) -> torch.Tensor:
    """A ViT position embedding ``(1, 1 + M * M, D)`` (class token first) resampled to a ``grid x grid`` patch grid
    the way torch.hub's DINOv2 does: bicubic, scale factor ``(grid + offset) / M``, no antialiasing.

    Example:
        >>> hub_position_embedding(torch.randn(1, 1 + 37 * 37, 8), grid=14).shape
        torch.Size([1, 197, 8])
    """
    side = math.isqrt(position_embedding.shape[1] - 1)
    if position_embedding.ndim != 3 or side * side != position_embedding.shape[1] - 1:
        raise ValueError(f"the position embedding must be (1, 1 + M * M, D), got {tuple(position_embedding.shape)}")
    if grid == side:
        return position_embedding
    dim = position_embedding.shape[-1]
    patches = position_embedding[:, 1:].float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    scale = (grid + offset) / side
    patches = F.interpolate(patches, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    if patches.shape[-2:] != (grid, grid):
        raise ValueError(f"resampling a {side}x{side} grid by {scale} gave {tuple(patches.shape[-2:])}, not {grid}")
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, dim).to(position_embedding.dtype)
    return torch.cat([position_embedding[:, :1], patches], dim=1)


class DinoWMImageEncoder(nn.Module):
    """Frozen DINOv2 over transformers' ``Dinov2Model`` with DINO-WM's preprocessing: images ``(B, 3, H, W)`` in
    ``[0, 1]`` -> ``(image_size // 16) ** 2`` patch tokens (196 of 384 for ViT-S/14 at 224).

    Images are resized to ``image_size`` (bilinear, antialiased, as torchvision's
    ``Resize`` on tensors; square images, so DINO-WM's center crop changes
    nothing), normalised to ``(x - 0.5) / 0.5``, resized to ``grid * patch_size``
    pixels and encoded; the tokens are the final layer-normed patch tokens (the
    hub's ``x_norm_patchtokens``). The position embedding is resampled to the
    grid once, at construction, with :func:`hub_position_embedding`.

    Build it from local weights with :meth:`from_pretrained` (nothing is
    downloaded) or from a config dict with :meth:`from_config` (random weights, tests).

    Example:
        >>> encoder = DinoWMImageEncoder.from_config({"hidden_size": 16, "num_hidden_layers": 1,
        ...     "num_attention_heads": 2, "intermediate_size": 32, "patch_size": 7, "image_size": 28},
        ...     image_size=48)
        >>> encoder.grid, encoder(torch.rand(2, 3, 64, 64)).shape
        (3, torch.Size([2, 9, 16]))
    """

    def __init__(self, model: nn.Module, *, image_size: int = 224) -> None:
        super().__init__()
        self.image_size, self.grid = image_size, image_size // DECODER_SCALE
        if self.grid < 1:
            raise ValueError(f"image_size={image_size} is below DINO-WM's {DECODER_SCALE}-pixel patch scale")
        self.patch_size = int(model.config.patch_size)
        self.token_dim = int(model.config.hidden_size)
        embeddings = model.embeddings
        with torch.no_grad():
            resampled = hub_position_embedding(embeddings.position_embeddings.data, self.grid)
        embeddings.position_embeddings = nn.Parameter(resampled, requires_grad=False)
        self.model = freeze(model)

    @classmethod
    def from_config(cls, config: dict, *, image_size: int = 224) -> DinoWMImageEncoder:
        """A randomly initialised DINOv2 of the given ``transformers.Dinov2Config`` fields (tests, shapes)."""
        transformers = _transformers()
        return cls(transformers.Dinov2Model(transformers.Dinov2Config(**config)), image_size=image_size)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, image_size: int = 224) -> DinoWMImageEncoder:
        """Load weights from a local folder written by ``Dinov2Model.save_pretrained`` (never downloads)."""
        if not os.path.isdir(path):
            raise FileNotFoundError(f"DINOv2 weights folder {str(path)!r} does not exist (give a local folder "
                                    f"written by Dinov2Model.save_pretrained; nothing is downloaded)")
        model = _transformers().Dinov2Model.from_pretrained(path, local_files_only=True)
        return cls(model, image_size=image_size)

    @property
    def config(self) -> dict:
        """The backbone's ``transformers.Dinov2Config`` fields that differ from its defaults, plain values only:
        :meth:`from_config` rebuilds the same architecture from them."""
        fields = self.model.config.to_diff_dict()
        return {k: v for k, v in fields.items() if k not in ("transformers_version", "architectures", "model_type")
                and not k.startswith("_")}

    @property
    def num_tokens(self) -> int:
        """Tokens per image."""
        return self.grid * self.grid

    def train(self, mode: bool = True) -> DinoWMImageEncoder:
        """The backbone stays in eval mode: it is frozen."""
        super().train(mode)
        self.model.eval()
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in ``[0, 1]`` -> the model's input ``(B, 3, grid * patch, grid * patch)``."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise ValueError(f"DinoWMImageEncoder takes square images (B, 3, S, S) in [0, 1], got "
                             f"{tuple(images.shape)}")
        x = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                          antialias=True)
        side = self.grid * self.patch_size
        return F.interpolate((x - 0.5) / 0.5, size=(side, side), mode="bilinear", align_corners=False,
                             antialias=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in ``[0, 1]`` -> patch tokens ``(B, grid * grid, hidden_size)``."""
        return self.model(pixel_values=self.preprocess(images)).last_hidden_state[:, 1:]
