"""DINOv2 tokens computed once: over a converted dataset's frames (stored memory-mapped beside them) and over
a task's rendered states (a task whose observations are tokens), so training and planning never re-encode.

DINO-WM's encoder is frozen: the tokens of a frame never change. :func:`write_dinov2_tokens` runs a
:class:`~torchrl_gbp.bridges.DinoWMImageEncoder` over a split's ``"pixels"`` in batches and writes
``tokens_<split>/`` beside the frames; :func:`~torchrl_gbp.bridges.load_dinowm_dataset` then returns
the split with ``"tokens"``, and the window buffers read them instead of the pixels
(:data:`~torchrl_gbp.data.TOKEN_KEYS`). :class:`DinoV2TokenTask` gives a task the same eyes: its env
observes ``"tokens"`` and ``"proprio"``, so a token-reading world model plans on it and online synthesis
encodes each simulated frame once.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from tensordict import TensorDict
from torch import nn
from torchrl.data import Unbounded

from torchrl_gbp.checks import check_positive_int
from torchrl_gbp.data import write_dataset
from torchrl_gbp.models.image_encoders import images_to_unit
from torchrl_gbp.tasks import PixelTask, Task

from .dinowm_data import TOKENS_INFO, load_dinowm_dataset, load_tokens


def encoder_fingerprint(encoder: nn.Module) -> str:
    """A digest of an image encoder's parameters and buffers: tokens written by another encoder are stale.

    Example:
        >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> encoder_fingerprint(a) == encoder_fingerprint(a), encoder_fingerprint(a) == encoder_fingerprint(b)
        (True, False)
    """
    digest = hashlib.sha256()
    for name, tensor in encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def encode_images(encoder: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Tokens ``(..., N, D)`` float32 of uint8 images ``(..., H, W, 3)``, ``batch_size`` at a time on the
    encoder's device, returned on the images' device.

    Example:
        >>> encoder = nn.Sequential(nn.Flatten(2), nn.Linear(64, 4))  # (B, 3, 8, 8) -> (B, 3, 4) "tokens"
        >>> encode_images(encoder, torch.zeros(2, 5, 8, 8, 3, dtype=torch.uint8), batch_size=3).shape
        torch.Size([2, 5, 3, 4])
    """
    check_positive_int("batch_size", batch_size)
    device = next(iter(encoder.parameters()), torch.empty(0)).device
    flat = images.reshape(-1, *images.shape[-3:])
    out = []
    with torch.no_grad():
        for start in range(0, flat.shape[0], batch_size):
            chunk = images_to_unit(flat[start:start + batch_size].to(device))
            out.append(encoder(chunk).float().to(images.device))
    tokens = torch.cat(out) if out else torch.empty(0)
    return tokens.reshape(*images.shape[:-3], *tokens.shape[1:])


def write_dinov2_tokens(folder: str | os.PathLike, encoder: nn.Module, split: str = "train", *,
                        batch_size: int = 64, dtype: torch.dtype = torch.float32) -> Path:
    """Encode every frame of ``split`` of a converted DINO-WM dataset ``folder`` once and store the tokens
    memory-mapped in ``folder/tokens_<split>`` (atomically); returns that path.

    Tokens already written by the same encoder (same weights, same frames) are kept as they are; tokens of
    other weights, or a damaged or truncated folder, are rewritten (never read). The
    encoder runs on its own device, ``batch_size`` frames at a time; ``dtype`` is the stored dtype
    (float32, as DINO-WM's predictor reads them; float16 halves the disk).

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.bridges import DinoWMEpisodes, write_episodes
        >>> from torchrl_gbp.bridges.dinowm_data import INFO_FILE
        >>> folder = Path(tempfile.mkdtemp())
        >>> read = DinoWMEpisodes(state=torch.zeros(1, 4, 2), action=torch.zeros(1, 4, 2),
        ...                       proprio=torch.zeros(1, 4, 2), lengths=torch.tensor([4]),
        ...                       frames=lambda i: torch.zeros(4, 8, 8, 3, dtype=torch.uint8))
        >>> _ = write_episodes(folder / "train", read, [0])
        >>> _ = (folder / INFO_FILE).write_text('{"kind": "wall_single"}')
        >>> encoder = nn.Sequential(nn.Flatten(2), nn.Linear(64, 4))
        >>> _ = write_dinov2_tokens(folder, encoder)
        >>> load_dinowm_dataset(folder)["tokens"].shape   # 3 steps, 3 "tokens" of 4
        torch.Size([1, 3, 3, 4])
    """
    pixels = load_dinowm_dataset(folder, split, tokens=False)["pixels"]
    path = Path(folder) / f"tokens_{split}"
    description = {"encoder": encoder_fingerprint(encoder), "frames": list(pixels.shape), "dtype": str(dtype)}
    if path.is_dir():
        try:
            load_tokens(path, tuple(pixels.shape))  # complete, for these frames
            if json.loads((path / TOKENS_INFO).read_text()) == description:
                return path
        except ValueError:  # damaged, truncated or stale: rewritten below
            pass
    probe = encode_images(encoder, pixels[0, :1])

    def write(target: Path) -> None:
        skeleton = TensorDict({"tokens": torch.zeros((), dtype=dtype).expand(*pixels.shape[:2], *probe.shape[1:])},
                              batch_size=pixels.shape[:2])
        tokens = skeleton.memmap_like(target)["tokens"]
        step = check_positive_int("batch_size", batch_size)
        for start in range(0, pixels.shape[1], step):
            tokens[0, start:start + step] = encode_images(encoder, pixels[0, start:start + step], step).to(dtype)
        (target / TOKENS_INFO).write_text(json.dumps(description))

    return write_dataset(path, write)


class DinoV2TokenTask(PixelTask):
    """``task`` seen through a frozen image encoder: observations are the ``"tokens"`` of its rendered states
    and ``"proprio"`` (the goal's under ``("goal", "tokens")`` and ``("goal", "proprio")``).

    States are rendered at ``image_size`` and encoded by ``encoder`` (images ``(B, 3, H, W)`` in
    ``[0, 1]`` -> tokens ``(B, N, D)``, e.g. a :class:`~torchrl_gbp.bridges.DinoWMImageEncoder`) on its
    device, ``batch_size`` at a time, once per observed state. A DINO-WM model reading tokens
    (``DinoWMConfig(encoder="tokens")``) plans on its env, and online synthesis encodes each simulated
    frame once.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> encoder = nn.Sequential(nn.Flatten(2), nn.Linear(64, 4))  # (B, 3, 8, 8) -> (B, 3, 4)
        >>> task = DinoV2TokenTask(WallTask(), encoder, image_size=8)
        >>> {k: tuple(v.shape) for k, v in task.observe(torch.zeros(5, 2)).items()}
        {'tokens': (5, 3, 4), 'proprio': (5, 2)}
        >>> task.make_env(num_envs=2, seed=0).rollout(2)["next", "goal", "tokens"].shape
        torch.Size([2, 2, 3, 4])
    """

    observation_keys = ("tokens", "proprio")
    goal_keys = (("goal", "tokens"), ("goal", "proprio"))

    def __init__(self, task: Task, encoder: nn.Module, image_size: int = 224, batch_size: int = 64) -> None:
        super().__init__(task, image_size)
        self.encoder = encoder.eval()
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.token_shape = tuple(encode_images(encoder, torch.zeros(1, image_size, image_size, 3,
                                                                    dtype=torch.uint8)).shape[1:])

    def __repr__(self) -> str:
        return f"DinoV2TokenTask({self.task!r}, image_size={self.image_size})"

    def observe(self, states: torch.Tensor) -> dict:
        """``{"tokens": (..., N, D), "proprio": (..., proprio_dim)}`` of states ``(..., state_dim)``."""
        return {"tokens": encode_images(self.encoder, self.render(states), self.batch_size),
                "proprio": self.proprio_from_state(states).float()}

    def observation_specs(self, shape: torch.Size, device: torch.device | str = "cpu") -> dict:
        """Unbounded float ``"tokens"`` ``(*shape, N, D)`` and ``"proprio"`` ``(*shape, proprio_dim)``."""
        return {"tokens": Unbounded(shape=(*shape, *self.token_shape), device=device),
                "proprio": Unbounded(shape=(*shape, self.proprio_dim), device=device)}
