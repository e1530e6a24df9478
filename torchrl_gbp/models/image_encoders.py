"""Frozen image encoders: images ``(B, 3, H, W)`` in ``[0, 1]`` -> patch tokens ``(B, N, D)``.

Any module with that contract plugs into :class:`~torchrl_gbp.models.PixelWorldModel`
(the encoder hook). Three are built in:

* :class:`PatchAutoencoder`, the offline default: a small convolutional patch
  autoencoder trained on the task's own images (:func:`fit_patch_autoencoder`)
  and then frozen. It stands in for DINOv2 where no pretrained weights exist.
* :class:`BlurPoolEncoder`, weight-free: Gaussian-blurred, pooled patches
  minus the task's mean image. Blurring spreads a small object's image over
  the whole frame, so token distance keeps growing with the object's
  displacement (a patch autoencoder's tokens only tell which patch holds it).
* :class:`DINOv2Encoder`, an adapter over Hugging Face ``transformers``'
  ``Dinov2Model`` (optional extra ``dinov2``) that loads weights from a local
  folder; never downloads. The one DINOv2 wrapper of the package:
  :class:`~torchrl_gbp.bridges.DinoWMImageEncoder` is it configured with
  DINO-WM's preprocessing.
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from torchrl_gbp.checks import check_positive_int

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def freeze(module: nn.Module) -> nn.Module:
    """Turn off gradients and put ``module`` in eval mode; returns it."""
    module.requires_grad_(False)
    return module.eval()


def images_to_unit(images: torch.Tensor) -> torch.Tensor:
    """Images -> float ``(N, 3, H, W)`` in ``[0, 1]``, the leading dims flattened.

    uint8 images are TorchRL's ``"pixels"`` layout, channels last ``(..., H, W, 3)``;
    float images are what TorchRL's ``ToTensorImage`` makes of them, channels
    first ``(..., 3, H, W)`` in ``[0, 1]``.

    Example:
        >>> images_to_unit(torch.full((2, 4, 4, 3), 255, dtype=torch.uint8)).shape
        torch.Size([2, 3, 4, 4])
    """
    if images.dtype == torch.uint8 and images.ndim >= 3 and images.shape[-1] == 3:
        return images.reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
    if images.is_floating_point() and images.ndim >= 3 and images.shape[-3] == 3:
        return images.reshape(-1, *images.shape[-3:])
    raise ValueError(f"images must be uint8 channels-last (..., H, W, 3) or float channels-first (..., 3, H, W) "
                     f"in [0, 1]; got {images.dtype} {tuple(images.shape)}")


class PatchGridEncoder(nn.Module):
    """Base of the built-in encoders: square ``image_size`` images cut into a ``grid x grid`` patch grid."""

    image_size: int
    grid: int

    @property
    def num_tokens(self) -> int:
        """Tokens per image."""
        return self.grid * self.grid

    def check_images(self, images: torch.Tensor) -> None:
        """Raise, naming the expected shape, unless ``images`` is ``(B, 3, image_size, image_size)``."""
        if images.shape[-3:] != (3, self.image_size, self.image_size):
            raise ValueError(f"{type(self).__name__} expects images (B, 3, {self.image_size}, {self.image_size}), "
                             f"got {tuple(images.shape)}")


class PatchAutoencoder(PatchGridEncoder):
    """Convolutional patch autoencoder: ``(B, 3, S, S)`` -> ``(S / patch)^2`` tokens of ``token_dim``.

    Each token sees its patch through a strided convolution, then its
    neighbours through one 3x3 convolution on the token grid. The decoder
    (transposed convolutions) exists to train the encoder and to look at
    predictions; planning never uses it.

    Example:
        >>> ae = PatchAutoencoder(image_size=32, patch_size=8, token_dim=6)
        >>> tokens = ae(torch.rand(2, 3, 32, 32))
        >>> tokens.shape, ae.decode(tokens).shape
        (torch.Size([2, 16, 6]), torch.Size([2, 3, 32, 32]))
    """

    def __init__(self, image_size: int = 64, patch_size: int = 16, token_dim: int = 16, hidden_dim: int = 64) -> None:
        super().__init__()
        for name, value in (("image_size", image_size), ("patch_size", patch_size), ("token_dim", token_dim),
                            ("hidden_dim", hidden_dim)):
            check_positive_int(name, value)
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}")
        self.image_size, self.patch_size, self.token_dim = image_size, patch_size, token_dim
        self.grid = image_size // patch_size
        self.encoder = nn.Sequential(
            nn.Conv2d(3, hidden_dim, patch_size, stride=patch_size), nn.GELU(),
            nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1), nn.GELU(),
            nn.Conv2d(hidden_dim, token_dim, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(token_dim, hidden_dim, 3, padding=1), nn.GELU(),
            nn.Conv2d(hidden_dim, hidden_dim, 1), nn.GELU(),
            nn.ConvTranspose2d(hidden_dim, 3, patch_size, stride=patch_size),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, S, S)`` in ``[0, 1]`` -> tokens ``(B, N, token_dim)``."""
        self.check_images(images)
        return self.encoder(images * 2 - 1).flatten(2).transpose(1, 2)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, N, token_dim)`` -> images ``(B, 3, S, S)`` in ``[0, 1]``."""
        grid = tokens.transpose(1, 2).reshape(tokens.shape[0], self.token_dim, self.grid, self.grid)
        return torch.sigmoid(self.decoder(grid))


# frames sampled to estimate the mean image for the foreground weighting
MEAN_IMAGE_FRAMES = 2048


def fit_patch_autoencoder(autoencoder: PatchAutoencoder, images: torch.Tensor, steps: int = 500,
                          batch_size: int = 64, lr: float = 1e-3, generator: torch.Generator | None = None,
                          foreground_weight: float = 0.0) -> list[float]:
    """Train ``autoencoder`` to reconstruct ``images`` (uint8 ``(N, S, S, 3)``, memory-mapped is fine), then freeze it.

    Batches are read by index, so a memory-mapped image dataset is never loaded
    whole. ``foreground_weight`` > 0 weights each pixel's squared error by
    ``1 + foreground_weight * |x - mean image|`` (summed over channels; the mean
    over up to :data:`MEAN_IMAGE_FRAMES` random frames): small moving objects
    (an agent dot) otherwise cost too little to be learned, and the tokens would
    not carry their position. Returns the per-step reconstruction losses.

    Example:
        >>> ae = PatchAutoencoder(image_size=16, patch_size=8, token_dim=4, hidden_dim=8)
        >>> losses = fit_patch_autoencoder(ae, torch.zeros(10, 16, 16, 3, dtype=torch.uint8), steps=3, batch_size=4)
        >>> len(losses), ae.training, any(p.requires_grad for p in ae.parameters())
        (3, False, False)
    """
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, S, S, 3), got {images.dtype} {tuple(images.shape)}")
    if not foreground_weight >= 0:
        raise ValueError(f"foreground_weight must be >= 0, got {foreground_weight!r}")
    mean_image = None
    if foreground_weight > 0:
        sample = torch.randperm(images.shape[0], generator=generator)[:MEAN_IMAGE_FRAMES].sort().values
        mean_image = images_to_unit(images[sample]).mean(0, keepdim=True)
    autoencoder.train().requires_grad_(True)
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        index = torch.randint(images.shape[0], (batch_size,), generator=generator)
        batch = images_to_unit(images[index.sort().values])
        error = (autoencoder.decode(autoencoder(batch)) - batch).pow(2)
        if mean_image is not None:
            error = error * (1 + foreground_weight * (batch - mean_image).abs().sum(1, keepdim=True))
        loss = error.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    freeze(autoencoder)
    return losses


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` pixels, cut at 3 sigma."""
    radius = max(1, int(3 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


class BlurPoolEncoder(PatchGridEncoder):
    """Weight-free frozen encoder: blur, subtract the mean image, average-pool, cut into patch tokens.

    Image ``(B, 3, S, S)`` -> Gaussian blur of ``sigma`` pixels (zero padding)
    -> minus the blurred mean image of the task (:meth:`fit_background`) ->
    ``pool x pool`` average pooling -> one token per ``patch_size`` patch,
    holding its pooled pixels: ``(S / patch_size)^2`` tokens of
    ``3 * (patch_size / pool)^2`` values.

    Why: the squared distance between two blurred images of one small object
    grows smoothly with the object's displacement, out to a few ``sigma``,
    so a goal cost over these tokens ranks goal distance (check it with
    :func:`~torchrl_gbp.diagnostics.goal_cost_agreement`). DINOv2's tokens get
    the same property from whole-image attention; a patch autoencoder's
    tokens lack it. :meth:`decode` upsamples tokens back to a (blurred) image
    for looking at predictions.

    Example:
        >>> enc = BlurPoolEncoder(image_size=32, patch_size=8, pool=4, sigma=2.0)
        >>> enc.fit_background(torch.zeros(4, 32, 32, 3, dtype=torch.uint8))
        >>> tokens = enc(torch.rand(2, 3, 32, 32))
        >>> tokens.shape, enc.decode(tokens).shape
        (torch.Size([2, 16, 12]), torch.Size([2, 3, 32, 32]))
    """

    def __init__(self, image_size: int = 64, patch_size: int = 16, pool: int = 4, sigma: float = 8.0) -> None:
        super().__init__()
        for name, value in (("image_size", image_size), ("patch_size", patch_size), ("pool", pool)):
            check_positive_int(name, value)
        if image_size % patch_size or patch_size % pool:
            raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}, "
                             f"and patch_size a multiple of pool={pool}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0 pixels, got {sigma!r}")
        self.image_size, self.patch_size, self.pool, self.sigma = image_size, patch_size, pool, float(sigma)
        self.grid, self.cell = image_size // patch_size, patch_size // pool
        self.token_dim = 3 * self.cell * self.cell
        self.register_buffer("kernel", gaussian_kernel(sigma), persistent=False)
        self.register_buffer("background", torch.zeros(1, 3, image_size // pool, image_size // pool))

    def _blur_pool(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        k, r = self.kernel, self.kernel.numel() // 2
        x = F.conv2d(images, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), padding=(0, r), groups=3)
        x = F.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), padding=(r, 0), groups=3)
        return F.avg_pool2d(x, self.pool)

    @torch.no_grad()
    def fit_background(self, images: torch.Tensor, chunk: int = 256) -> None:
        """Set the mean image from uint8 ``images`` ``(N, S, S, 3)`` (a sample of the task's frames)."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(f"images must be a non-empty uint8 (N, S, S, 3), got {images.dtype} {tuple(images.shape)}")
        total = sum(self._blur_pool(images_to_unit(images[i:i + chunk]).to(self.kernel.device)).sum(0, keepdim=True)
                    for i in range(0, images.shape[0], chunk))
        self.background.copy_(total / images.shape[0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, S, S)`` in ``[0, 1]`` -> tokens ``(B, N, token_dim)``."""
        x = self._blur_pool(images) - self.background
        b, g, c = x.shape[0], self.grid, self.cell
        return x.reshape(b, 3, g, c, g, c).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, self.token_dim)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, N, token_dim)`` -> the blurred image ``(B, 3, S, S)`` they hold, clamped to ``[0, 1]``."""
        b, g, c = tokens.shape[0], self.grid, self.cell
        x = tokens.reshape(b, g, g, 3, c, c).permute(0, 3, 1, 4, 2, 5).reshape(b, 3, g * c, g * c)
        x = F.interpolate(x + self.background, scale_factor=self.pool, mode="bilinear", align_corners=False)
        return x.clamp(0, 1)


def _transformers() -> ModuleType:
    """Hugging Face ``transformers``, or an ImportError naming the extra that brings it."""
    try:
        import transformers
    except ImportError as error:
        raise ImportError("DINOv2Encoder needs Hugging Face transformers: pip install 'torchrl_gbp[dinov2]'") from error
    return transformers


class DINOv2Encoder(nn.Module):
    """Frozen DINOv2 patch tokens through Hugging Face ``transformers``' ``Dinov2Model`` (optional extra ``dinov2``).

    Square images ``(B, 3, S, S)`` in ``[0, 1]`` are resized (bilinear) to
    ``input_size`` (a multiple of the patch size), normalised with
    :attr:`normalization` (ImageNet's mean and std) and encoded; the tokens are
    the final layer-normed patch tokens (the class token is dropped).
    ``pooled_grid`` average-pools the patch grid to ``pooled_grid x pooled_grid``
    tokens (fewer tokens keep planning cheap on a CPU; ``None`` keeps all).

    The preprocessing is configured by subclasses: :attr:`normalization`,
    :attr:`antialias` and ``image_size`` (the side images are resized to before
    normalising, then resized again to ``input_size``; by default
    ``input_size``, one resize).
    :class:`~torchrl_gbp.bridges.DinoWMImageEncoder` is DINO-WM's configuration.

    Build it from local weights with :meth:`from_pretrained` (a folder written by
    ``save_pretrained``; nothing is downloaded) or from a config dict with
    :meth:`from_config` (random weights: a stand-in for tests).

    Example:
        >>> enc = DINOv2Encoder.from_config({"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        ...                                  "intermediate_size": 32, "patch_size": 7, "image_size": 28},
        ...                                 input_size=28)
        >>> enc(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 16, 16])
    """

    normalization: tuple[tuple[float, ...], tuple[float, ...]] = (IMAGENET_MEAN, IMAGENET_STD)
    """The per-channel mean and std images are normalised with, after the first resize."""
    antialias: bool = False
    """Whether the resizes antialias (as torchvision's ``Resize`` does on tensors)."""

    def __init__(self, model: nn.Module, *, input_size: int = 224, pooled_grid: int | None = None) -> None:
        super().__init__()
        self.patch_size = int(model.config.patch_size)
        if input_size % self.patch_size:
            raise ValueError(f"input_size={input_size} must be a multiple of the DINOv2 patch size {self.patch_size}")
        grid = input_size // self.patch_size
        if pooled_grid is not None and (pooled_grid < 1 or grid % pooled_grid):
            raise ValueError(f"pooled_grid={pooled_grid} must divide the patch grid {grid} (input {input_size})")
        self.model = freeze(model)
        self.input_size, self.image_size, self.grid, self.pooled_grid = input_size, input_size, grid, pooled_grid
        self.token_dim = int(model.config.hidden_size)
        # the constructor's keywords besides the model (config_dict)
        self.options: dict = {"input_size": input_size, "pooled_grid": pooled_grid}
        mean, std = self.normalization
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, config: dict, **options: Any) -> DINOv2Encoder:
        """A randomly initialised DINOv2 of the given ``transformers.Dinov2Config`` fields (tests, shapes);
        ``options``: the constructor's keywords."""
        transformers = _transformers()
        return cls(transformers.Dinov2Model(transformers.Dinov2Config(**config)), **options)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **options: Any) -> DINOv2Encoder:
        """Load weights from a local folder written by ``Dinov2Model.save_pretrained`` (never downloads); a missing
        folder raises naming it. ``options``: the constructor's keywords."""
        if not os.path.isdir(path):
            raise FileNotFoundError(f"DINOv2 weights folder {str(path)!r} does not exist (give a local folder "
                                    f"written by Dinov2Model.save_pretrained; nothing is downloaded)")
        return cls(_transformers().Dinov2Model.from_pretrained(path, local_files_only=True), **options)

    @property
    def config(self) -> dict:
        """The backbone's ``transformers.Dinov2Config`` fields that differ from its defaults, plain values only:
        :meth:`from_config` rebuilds the same architecture from them."""
        fields = self.model.config.to_diff_dict()
        return {k: v for k, v in fields.items() if k not in ("transformers_version", "architectures", "model_type")
                and not k.startswith("_")}

    def config_dict(self) -> dict:
        """What :meth:`from_config` needs to rebuild this encoder's architecture (weights travel separately):
        ``{"config": config, **constructor keywords}``."""
        return {"config": self.config, **self.options}

    @property
    def num_tokens(self) -> int:
        """Tokens per image."""
        side = self.grid if self.pooled_grid is None else self.pooled_grid
        return side * side

    def train(self, mode: bool = True) -> DINOv2Encoder:
        """The backbone stays in eval mode: it is frozen."""
        super().train(mode)
        self.model.eval()
        return self

    def _resize(self, images: torch.Tensor, side: int) -> torch.Tensor:
        return F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False,
                             antialias=self.antialias)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, S, S)`` in ``[0, 1]`` -> the backbone's input ``(B, 3, input_size, input_size)``."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise ValueError(f"{type(self).__name__} takes square images (B, 3, S, S) in [0, 1], got "
                             f"{tuple(images.shape)}")
        x = (self._resize(images, self.image_size) - self.mean) / self.std
        return x if self.image_size == self.input_size else self._resize(x, self.input_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, S, S)`` in ``[0, 1]`` -> patch tokens ``(B, num_tokens, hidden_size)``."""
        tokens = self.model(pixel_values=self.preprocess(images)).last_hidden_state[:, 1:]
        if self.pooled_grid is None:
            return tokens
        grid = tokens.transpose(1, 2).reshape(tokens.shape[0], self.token_dim, self.grid, self.grid)
        return F.adaptive_avg_pool2d(grid, self.pooled_grid).flatten(2).transpose(1, 2)
