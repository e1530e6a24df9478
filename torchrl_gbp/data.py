"""Trajectory datasets on disk and model-step training windows on TorchRL replay buffers."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ReplayBuffer,
    SliceSampler,
    TensorStorage,
)
from torchrl.envs import Compose, Transform

from .io import atomic_path

TRAJECTORY_KEYS = ("observation", "state", "action", "episode")
# Pixel datasets keep the uint8 image ("pixels", TorchRL's (H, W, 3) layout) and the proprio vector instead of
# "observation"; PackPixelObservation builds the model's flat observation from them per sampled batch.
PIXEL_KEYS = ("pixels", "proprio")
# Optional: the env reward of each step, kept in the windows (summed per model step) for reward heads.
REWARD_KEY = ("next", "reward")


def observation_keys(trajectories: TensorDictBase) -> tuple[str, ...]:
    """``("observation",)`` for state datasets, :data:`PIXEL_KEYS` for pixel datasets (which have no "observation")."""
    return ("observation",) if "observation" in trajectories.keys() else PIXEL_KEYS


def check_trajectories(trajectories: TensorDictBase) -> None:
    """Raise a ``ValueError`` naming what is wrong if ``trajectories`` is not ``(N, T)`` with the task keys.

    The observation is either ``"observation"`` or, for pixel datasets, ``"pixels"`` and ``"proprio"``.
    """
    if trajectories.batch_dims != 2:
        raise ValueError(f"trajectories must have batch size (N, T), got {tuple(trajectories.batch_size)}")
    expected = (*observation_keys(trajectories), *TRAJECTORY_KEYS[1:])
    missing = [k for k in expected if k not in trajectories.keys()]
    if missing:
        raise KeyError(f"trajectories lack keys {missing}; expected {list(TRAJECTORY_KEYS)} (or "
                       f"{list(PIXEL_KEYS)} in place of 'observation' for pixel datasets)")


def save_dataset(trajectories: TensorDictBase, path: str | os.PathLike) -> Path:
    """Write trajectories ``(N, T)`` as a memory-mapped TensorDict folder, atomically.

    The data go to a temporary folder beside ``path`` which is then renamed into
    place; an existing dataset at ``path`` is replaced only once the new one is
    complete.
    """
    check_trajectories(trajectories)
    return write_dataset(path, lambda folder: trajectories.memmap(folder))


def write_dataset(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Atomically create the dataset folder ``path``: ``write(folder)`` fills a temporary folder beside it,
    which is then renamed into place (an existing dataset is replaced only once the new one is complete)."""
    with atomic_path(path) as folder:
        write(folder)
    return path


def load_dataset(path: str | os.PathLike) -> TensorDictBase:
    """Load trajectories saved by :func:`save_dataset` (memory-mapped, read-only use).

    A missing folder raises ``FileNotFoundError``; a damaged one (unreadable
    metadata, a missing or truncated tensor file, missing keys) a ``ValueError``
    naming the folder and what is wrong.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder {str(path)!r} does not exist; create it with `torchrl-gbp collect`")
    # sizes before loading: tensordict maps a short file by extending it with zeros
    sizes = {str(file.resolve()): file.stat().st_size for file in path.rglob("*.memmap")}
    try:
        trajectories = TensorDict.load_memmap(path)
    except Exception as error:  # tensordict raises JSON, OS and runtime errors for damaged folders
        raise ValueError(f"dataset folder {str(path)!r} cannot be read: damaged or not a saved dataset "
                         f"({type(error).__name__}: {error})") from error
    try:
        check_trajectories(trajectories)
    except (KeyError, ValueError) as error:
        raise ValueError(f"dataset folder {str(path)!r} is not a complete dataset: {error}") from error
    for key, tensor in trajectories.items(include_nested=True, leaves_only=True):
        filename = getattr(tensor, "filename", None)
        expected = tensor.numel() * tensor.element_size()
        size = sizes.get(str(Path(filename).resolve())) if filename is not None else None
        if size is not None and size < expected:
            raise ValueError(f"dataset folder {str(path)!r} is damaged: the file of {key!r} held {size} bytes, "
                             f"{expected} expected (truncated)")
    return trajectories


def model_actions(trajectories: TensorDictBase, frameskip: int) -> torch.Tensor:
    """Env actions ``(N, T, a)`` grouped into model actions ``(N, T // frameskip, a * frameskip)``."""
    action = trajectories["action"]
    n, t, a = action.shape
    usable = (t // frameskip) * frameskip
    return action[:, :usable].reshape(n, t // frameskip, frameskip * a)


@dataclass(frozen=True)
class SliceLayout:
    """How a flat batch of env-step slices ``(B * slice_len, ...)`` maps onto model-step windows.

    A slice of ``slice_len`` consecutive env steps (as TorchRL's ``SliceSampler``
    samples them) holds ``frames = (slice_len - 1) // frameskip + 1`` model
    frames, at env steps ``0, frameskip, 2 * frameskip, ...``; model action ``t``
    is the concatenation of env actions ``t * frameskip ... (t + 1) * frameskip - 1``.

    Example:
        >>> layout = SliceLayout(slice_len=11, frameskip=5)
        >>> layout.frames
        3
        >>> layout.frames_of("x", torch.arange(22.0).unsqueeze(-1))[..., 0].tolist()
        [[0.0, 5.0, 10.0], [11.0, 16.0, 21.0]]
    """

    slice_len: int
    frameskip: int

    def __post_init__(self) -> None:
        if isinstance(self.slice_len, bool) or not isinstance(self.slice_len, int) or self.slice_len < 2:
            raise ValueError(f"slice_len must be an int >= 2 (a history frame and a target), got {self.slice_len!r}")
        if isinstance(self.frameskip, bool) or not isinstance(self.frameskip, int) or self.frameskip < 1:
            raise ValueError(f"frameskip must be a positive int, got {self.frameskip!r}")
        if self.slice_len <= self.frameskip:
            raise ValueError(f"slice_len={self.slice_len} must exceed frameskip={self.frameskip} to hold two frames")

    @property
    def frames(self) -> int:
        """Model frames per slice."""
        return (self.slice_len - 1) // self.frameskip + 1

    def slices(self, key: object, flat: torch.Tensor) -> torch.Tensor:
        """``(B * slice_len, ...)`` -> ``(B, slice_len, ...)``; a ``ValueError`` naming ``key`` if it does not divide."""
        if flat.ndim < 1 or flat.shape[0] % self.slice_len:
            raise ValueError(f"{key!r} must be a flat batch of slices (B * slice_len, ...) with slice_len="
                             f"{self.slice_len}; got {tuple(flat.shape)}")
        return flat.reshape(-1, self.slice_len, *flat.shape[1:])

    def frames_of(self, key: object, flat: torch.Tensor) -> torch.Tensor:
        """The model frames ``(B, frames, ...)`` of a flat batch of env steps."""
        return self.slices(key, flat)[:, :: self.frameskip][:, : self.frames]

    def model_actions_of(self, key: object, flat: torch.Tensor) -> torch.Tensor:
        """Model actions ``(B, frames - 1, frameskip * a)`` of flat env actions ``(B * slice_len, a)``."""
        steps = self.slices(key, flat)
        usable = (self.frames - 1) * self.frameskip
        return steps[:, :usable].reshape(steps.shape[0], self.frames - 1, -1)

    def spread_frames(self, per_frame: torch.Tensor) -> torch.Tensor:
        """Per-frame values ``(B, T, ...)``, ``T <= frames``, back on the env-step rows of their frames.

        Returns ``(B * slice_len, ...)``, zero on the rows between frames.
        """
        b, t = per_frame.shape[:2]
        out = per_frame.new_zeros(b, self.slice_len, *per_frame.shape[2:])
        out[:, : t * self.frameskip : self.frameskip] = per_frame
        return out.reshape(b * self.slice_len, *per_frame.shape[2:])

    def spread_rows(self, per_slice: torch.Tensor) -> torch.Tensor:
        """Per-slice values ``(B, ...)`` repeated on each slice's ``slice_len`` rows."""
        return per_slice.repeat_interleave(self.slice_len, dim=0)


class ModelStepWindows(Transform):
    """Replay-buffer transform: env-step slices ``(B * L,)`` -> model-step windows ``(B,)``.

    A slice of ``L = (frames - 1) * frameskip + 1`` consecutive env steps becomes,
    for every root entry (``"next"`` is dropped), its model frames ``(B, frames, ...)``
    (every ``frameskip``-th step; ``"episode"``, a per-slice id, ``(B,)``) and
    ``"action"`` ``(B, frames - 1, a * frameskip)`` (env units, each model
    action the concatenation of ``frameskip`` env actions). When the slices
    hold ``("next", "reward")`` it becomes ``(B, frames - 1, 1)``, the summed
    env rewards of each model step. See :class:`SliceLayout`.
    """

    def __init__(self, frames: int, frameskip: int) -> None:
        super().__init__()
        self.layout = SliceLayout((frames - 1) * frameskip + 1, frameskip)

    @property
    def slice_len(self) -> int:
        """Env steps per sampled slice."""
        return self.layout.slice_len

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Reshape a flat batch of slices into windows."""
        out = TensorDict(batch_size=[tensordict.shape[0] // self.slice_len], device=tensordict.device)
        for key, value in tensordict.exclude("next").items(include_nested=True, leaves_only=True):
            if key == "action":
                out.set(key, self.layout.model_actions_of(key, value))
            elif key == "episode":
                out.set(key, self.layout.slices(key, value)[:, 0])
            else:
                out.set(key, self.layout.frames_of(key, value))
        reward = tensordict.get(REWARD_KEY, None)
        if reward is not None:
            steps = self.layout.model_actions_of(REWARD_KEY, reward.reshape(reward.shape[0], -1))
            out.set(REWARD_KEY, steps.sum(-1, keepdim=True))
        return out


def pack_pixel_observation(pixels: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
    """The pixel models' flat observation: uint8 images ``(..., S, S, 3)`` as float values, then ``proprio``.

    Example:
        >>> pack_pixel_observation(torch.zeros(4, 8, 8, 3, dtype=torch.uint8), torch.ones(4, 2)).shape
        torch.Size([4, 194])
    """
    if pixels.dtype != torch.uint8 or pixels.shape[-1] != 3 or pixels.shape[:-3] != proprio.shape[:-1]:
        raise ValueError(f"pixels must be uint8 (..., H, W, 3) with proprio (..., P) of the same leading dims; "
                         f"got {pixels.dtype} {tuple(pixels.shape)} and {tuple(proprio.shape)}")
    return torch.cat([pixels.flatten(-3).to(proprio.dtype), proprio], dim=-1)


class PackPixelObservation(Transform):
    """Replay-buffer transform: ``"pixels"`` and ``"proprio"`` windows -> the flat ``"observation"`` of pixel models.

    ``"pixels"`` is dropped from the output (the packed observation holds it).
    """

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write ``"observation"`` from ``"pixels"`` and ``"proprio"``."""
        out = tensordict.exclude("pixels")
        out.set("observation", pack_pixel_observation(tensordict.get("pixels"), tensordict.get("proprio")))
        return out


def make_window_buffer(trajectories: TensorDictBase, frames: int, frameskip: int, batch_size: int,
                       scratch_dir: str | os.PathLike | None = None, transform: Transform | None = None,
                       generator: torch.Generator | None = None) -> ReplayBuffer:
    """A replay buffer that samples ``batch_size`` model-step windows of ``frames`` frames.

    Trajectories ``(N, T)`` are flattened into a ``LazyMemmapStorage`` (in
    ``scratch_dir``, or a temporary folder) or, with ``scratch_dir=None``, a
    ``LazyTensorStorage``; a ``SliceSampler`` draws windows inside single
    episodes. ``transform`` (for example a synthesis transform) runs after the
    window reshaping.

    Pixel datasets (``"pixels"`` and ``"proprio"``, see :data:`PIXEL_KEYS`) are
    never copied: the buffer's ``TensorStorage`` is a flat view of the
    (memory-mapped) dataset, batches read only their rows, and
    :class:`PackPixelObservation` builds each window's ``"observation"``.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> data = WallTask().generate_dataset(20, seed=0)
        >>> buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=8)
        >>> buffer.sample()["action"].shape
        torch.Size([8, 2, 10])
    """
    check_trajectories(trajectories)
    if frames < 2:
        raise ValueError(f"frames must be >= 2 (history plus a target), got {frames}")
    windows = ModelStepWindows(frames, frameskip)
    if trajectories.shape[1] < windows.slice_len:
        raise ValueError(
            f"trajectories of {trajectories.shape[1]} steps are shorter than one window "
            f"({frames} frames x frameskip {frameskip} = {windows.slice_len} steps)"
        )
    pixels = observation_keys(trajectories) == PIXEL_KEYS
    keys = (*observation_keys(trajectories), *TRAJECTORY_KEYS[1:],
            *((REWARD_KEY,) if REWARD_KEY in trajectories.keys(True) else ()))
    flat = trajectories.select(*keys).reshape(-1)
    size = flat.shape[0]
    if pixels:
        storage = TensorStorage(flat)  # a view of the dataset: no copy into RAM
    else:
        storage = (LazyTensorStorage(size) if scratch_dir is None
                   else LazyMemmapStorage(size, scratch_dir=scratch_dir, existsok=True))
    transforms = [windows, *([PackPixelObservation()] if pixels else []), *([] if transform is None else [transform])]
    buffer = ReplayBuffer(
        storage=storage,
        sampler=SliceSampler(slice_len=windows.slice_len, traj_key="episode", strict_length=True,
                             cache_values=True),
        batch_size=batch_size * windows.slice_len,
        transform=Compose(*transforms),
        generator=generator,
    )
    if not pixels:
        buffer.extend(flat)
    return buffer
