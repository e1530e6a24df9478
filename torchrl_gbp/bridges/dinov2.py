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

import torch
from torch import nn
from torch.nn import functional as F

from torchrl_gbp.models.image_encoders import DINOv2Encoder

# torch.hub's DINOv2 adds this to the target grid before computing the interpolation's scale factor
HUB_INTERPOLATE_OFFSET = 0.1
# DINO-WM's grid: image_size // 16 patches a side (the scale of its VQ-VAE decoder)
DECODER_SCALE = 16


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


class DinoWMImageEncoder(DINOv2Encoder):
    """:class:`~torchrl_gbp.models.DINOv2Encoder` configured as DINO-WM encodes: images ``(B, 3, H, W)`` in
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

    normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    antialias = True

    def __init__(self, model: nn.Module, *, image_size: int = 224) -> None:
        grid = image_size // DECODER_SCALE
        if grid < 1:
            raise ValueError(f"image_size={image_size} is below DINO-WM's {DECODER_SCALE}-pixel patch scale")
        embeddings = model.embeddings
        with torch.no_grad():
            resampled = hub_position_embedding(embeddings.position_embeddings.data, grid)
        embeddings.position_embeddings = nn.Parameter(resampled, requires_grad=False)
        super().__init__(model, input_size=grid * int(model.config.patch_size))
        self.image_size, self.options = image_size, {"image_size": image_size}
