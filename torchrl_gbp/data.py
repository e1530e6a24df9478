"""Trajectory datasets on disk and model-step training windows on TorchRL replay buffers."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import (
    LazyTensorStorage,
    SliceSampler,
    TensorDictReplayBuffer,
    TensorStorage,
)
from torchrl.envs import Compose, Transform

from .io import atomic_path
from .models.contract import encode_entries

TRAJECTORY_KEYS = ("observation", "state", "action", "episode")
# Pixel datasets keep the uint8 image ("pixels", TorchRL's (H, W, 3) layout) and the proprio vector instead of
# "observation", as pixel envs and pixel world models key them.
PIXEL_KEYS = ("pixels", "proprio")
# A pixel dataset with precomputed visual tokens (a frozen encoder's, e.g. DINOv2's) is read through them instead.
TOKEN_KEYS = ("tokens", "proprio")
# Optional: the env reward of each step, kept in the windows (summed per model step) for reward heads.
REWARD_KEY = ("next", "reward")


def observation_keys(trajectories: TensorDictBase) -> tuple[str, ...]:
    """``("observation",)`` for state datasets, :data:`PIXEL_KEYS` for pixel datasets (which have no "observation"),
    :data:`TOKEN_KEYS` for pixel datasets that also hold precomputed ``"tokens"``.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> observation_keys(WallTask().generate_dataset(2, trajectory_steps=5, seed=0))
        ('observation',)
        >>> pixels = TensorDict({"pixels": torch.zeros(2, 5, 8, 8, 3, dtype=torch.uint8),
        ...                      "proprio": torch.zeros(2, 5, 2)}, batch_size=[2, 5])
        >>> observation_keys(pixels)
        ('pixels', 'proprio')
        >>> pixels["tokens"] = torch.zeros(2, 5, 4, 8)
        >>> observation_keys(pixels)
        ('tokens', 'proprio')
    """
    keys = trajectories.keys()
    return ("observation",) if "observation" in keys else TOKEN_KEYS if "tokens" in keys else PIXEL_KEYS


def check_trajectories(trajectories: TensorDictBase) -> None:
    """Raise a ``ValueError`` naming what is wrong if ``trajectories`` is not ``(N, T)`` with the task keys.

    The observation is either ``"observation"`` or, for pixel datasets, ``"pixels"`` (or precomputed
    ``"tokens"``) and ``"proprio"``.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> data = WallTask().generate_dataset(2, trajectory_steps=5, seed=0)
        >>> check_trajectories(data)  # a valid dataset: nothing happens
        >>> check_trajectories(data.reshape(-1))
        Traceback (most recent call last):
            ...
        ValueError: trajectories must have batch size (N, T), got (10,)
    """
    if trajectories.batch_dims != 2:
        raise ValueError(f"trajectories must have batch size (N, T), got {tuple(trajectories.batch_size)}")
    expected = (*observation_keys(trajectories), *TRAJECTORY_KEYS[1:])
    missing = [k for k in expected if k not in trajectories.keys()]
    if missing:
        raise KeyError(f"trajectories lack keys {missing}; expected {list(TRAJECTORY_KEYS)} (or "
                       f"{list(PIXEL_KEYS)} or {list(TOKEN_KEYS)} in place of 'observation' for pixel datasets)")


def save_dataset(trajectories: TensorDictBase, path: str | os.PathLike) -> Path:
    """Write trajectories ``(N, T)`` as a memory-mapped TensorDict folder, atomically.

    The data go to a temporary folder beside ``path`` which is then renamed into
    place; an existing dataset at ``path`` is replaced only once the new one is
    complete.

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.tasks import WallTask
        >>> path = save_dataset(WallTask().generate_dataset(3, trajectory_steps=5, seed=0),
        ...                     Path(tempfile.mkdtemp()) / "wall")
        >>> path.name, load_dataset(path).batch_size
        ('wall', torch.Size([3, 5]))
    """
    check_trajectories(trajectories)
    return write_dataset(path, lambda folder: trajectories.memmap(folder))


def write_dataset(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Atomically create the dataset folder ``path``: ``write(folder)`` fills a temporary folder beside it,
    which is then renamed into place (an existing dataset is replaced only once the new one is complete).

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.tasks import WallTask
        >>> def write(folder):  # fills the temporary folder, not the final one
        ...     WallTask().generate_dataset(3, trajectory_steps=5, seed=0).memmap(folder)
        >>> path = write_dataset(Path(tempfile.mkdtemp()) / "wall", write)
        >>> load_dataset(path)["action"].shape
        torch.Size([3, 5, 2])
    """
    with atomic_path(path) as folder:
        write(folder)
    return path


def load_dataset(path: str | os.PathLike) -> TensorDictBase:
    """Load trajectories saved by :func:`save_dataset` (memory-mapped, read-only use).

    A missing folder raises ``FileNotFoundError``; a damaged one (unreadable
    metadata, a missing or truncated tensor file, missing keys) a ``ValueError``
    naming the folder and what is wrong.

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.tasks import WallTask
        >>> data = WallTask().generate_dataset(3, trajectory_steps=5, seed=0)
        >>> loaded = load_dataset(save_dataset(data, Path(tempfile.mkdtemp()) / "wall"))
        >>> loaded.batch_size, (loaded["action"] == data["action"]).all().item()
        (torch.Size([3, 5]), True)
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
    """Env actions ``(N, T, a)`` grouped into model actions ``(N, T // frameskip, a * frameskip)``.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> data = WallTask().generate_dataset(3, trajectory_steps=12, seed=0)  # the last 2 steps are dropped
        >>> model_actions(data, frameskip=5).shape
        torch.Size([3, 2, 10])
    """
    action = trajectories["action"]
    n, t, a = action.shape
    usable = (t // frameskip) * frameskip
    return action[:, :usable].reshape(n, t // frameskip, frameskip * a)


@dataclass(frozen=True)
class SliceLayout:
    """How slices of ``slice_len`` consecutive env steps map onto model-step windows.

    A slice holds ``frames = (slice_len - 1) // frameskip + 1`` model frames,
    at env steps ``0, frameskip, 2 * frameskip, ...``; model action ``t`` is
    the concatenation of env actions ``t * frameskip ... (t + 1) * frameskip - 1``.

    Example:
        >>> layout = SliceLayout(slice_len=11, frameskip=5)
        >>> layout.frames
        3
        >>> layout.frames_of(torch.arange(22.0).reshape(2, 11, 1))[..., 0].tolist()
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

    def frames_of(self, steps: torch.Tensor) -> torch.Tensor:
        """The model frames ``(B, frames, ...)`` of slices ``(B, slice_len, ...)``."""
        return steps[:, :: self.frameskip][:, : self.frames]

    def model_actions_of(self, steps: torch.Tensor) -> torch.Tensor:
        """Model actions ``(B, frames - 1, frameskip * a)`` of env actions ``(B, slice_len, a)``."""
        usable = (self.frames - 1) * self.frameskip
        return steps[:, :usable].reshape(steps.shape[0], self.frames - 1, -1)


class WindowSliceSampler(SliceSampler):
    """TorchRL's ``SliceSampler`` whose indices keep the slice layout: ``(B, slice_len)`` instead of flat.

    A buffer reads a ``(B, slice_len)`` batch with it, which
    :class:`ModelStepWindows` turns into ``(B,)`` windows, and a
    ``TensorDictReplayBuffer`` can still write its sample metadata
    (``"index"`` ``(B, slice_len, 1)``, the slice markers) into the windows.
    Build it from the windows transform (:meth:`ModelStepWindows.sampler`), so
    the layout is stated once. Its ``batch_size`` counts env steps, as
    ``SliceSampler``'s: ``B * slice_len``.

    Example:
        >>> from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
        >>> from torchrl_gbp.tasks import WallTask
        >>> data = WallTask().generate_dataset(4, trajectory_steps=20, seed=0).reshape(-1)
        >>> sampler = WindowSliceSampler(slice_len=6, traj_key="episode", strict_length=True)
        >>> buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(data.numel()), sampler=sampler,
        ...                                 batch_size=3 * 6)
        >>> _ = buffer.extend(data)
        >>> batch = buffer.sample()
        >>> batch.shape, (batch["episode"] == batch["episode"][:, :1]).all().item()  # 3 slices in single episodes
        (torch.Size([3, 6]), True)
    """

    def sample(self, storage, batch_size: int) -> tuple[torch.Tensor | tuple, dict]:
        """Draw ``batch_size // slice_len`` slices; indices and info ``(B, slice_len, ...)``."""
        index, info = super().sample(storage, batch_size)
        length = self.slice_len

        def fold(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(-1, length, *x.shape[1:])

        index = tuple(fold(i) for i in index) if isinstance(index, tuple) else fold(index)
        return index, {key: fold(value) if isinstance(value, torch.Tensor) else value for key, value in info.items()}


class ModelStepWindows(Transform):
    """Replay-buffer transform: env-step slices ``(B, L)`` -> model-step windows ``(B,)``.

    Put it first in a replay buffer's transforms and sample with
    :meth:`sampler` (a :class:`WindowSliceSampler` of slices of
    ``L = (frames - 1) * frameskip + 1`` env steps inside single episodes):
    every root entry (``"next"`` is dropped) becomes its model frames
    ``(B, frames, ...)`` (every ``frameskip``-th step; ``"episode"``, a
    per-slice id, ``(B,)``) and ``"action"`` ``(B, frames - 1, a * frameskip)``
    (env units, each model action the concatenation of ``frameskip`` env
    actions). When the slices hold ``("next", "reward")`` it becomes
    ``(B, frames - 1, 1)``, the summed env rewards of each model step. A flat
    batch ``(B * L,)`` (TorchRL's ``SliceSampler`` in a plain ``ReplayBuffer``)
    is cut into slices first. See :class:`SliceLayout`.

    Example:
        >>> from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
        >>> from torchrl_gbp.tasks import WallTask
        >>> data = WallTask().generate_dataset(20, seed=0).reshape(-1)
        >>> windows = ModelStepWindows(frames=3, frameskip=5)
        >>> buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(data.numel()), transform=windows,
        ...                                 sampler=windows.sampler(traj_key="episode"),
        ...                                 batch_size=8 * windows.slice_len)
        >>> _ = buffer.extend(data)
        >>> batch = buffer.sample()
        >>> batch["observation"].shape, batch["action"].shape, batch["index"].shape
        (torch.Size([8, 3, 2]), torch.Size([8, 2, 10]), torch.Size([8, 11, 1]))
    """

    def __init__(self, frames: int, frameskip: int) -> None:
        super().__init__()
        self.layout = SliceLayout((frames - 1) * frameskip + 1, frameskip)

    @property
    def slice_len(self) -> int:
        """Env steps per sampled slice."""
        return self.layout.slice_len

    def sampler(self, **kwargs) -> WindowSliceSampler:
        """The sampler of this layout's slices: ``WindowSliceSampler(slice_len=L, strict_length=True, **kwargs)``
        (``kwargs``: ``SliceSampler``'s, for example ``traj_key="episode"``)."""
        return WindowSliceSampler(slice_len=self.slice_len, **{"strict_length": True, **kwargs})

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Reshape a batch of slices into windows."""
        length = self.slice_len
        if tensordict.batch_dims == 1:
            if tensordict.shape[0] % length:
                raise ValueError(f"a flat batch of slices must hold a multiple of slice_len={length} env steps; "
                                 f"got {tensordict.shape[0]}")
            tensordict = tensordict.reshape(-1, length)
        if tensordict.batch_dims != 2 or tensordict.shape[1] != length:
            raise ValueError(f"ModelStepWindows(frames={self.layout.frames}, frameskip={self.layout.frameskip}) "
                             f"reads slices (B, {length}); got a batch of shape {tuple(tensordict.shape)}")
        out = TensorDict(batch_size=tensordict.shape[:1], device=tensordict.device)
        for key, value in tensordict.exclude("next").items(include_nested=True, leaves_only=True):
            if key == "action":
                out.set(key, self.layout.model_actions_of(value))
            elif key == "episode":
                out.set(key, value[:, 0])
            else:
                out.set(key, self.layout.frames_of(value))
        reward = tensordict.get(REWARD_KEY, None)
        if reward is not None:
            steps = self.layout.model_actions_of(reward.reshape(*reward.shape[:2], -1))
            out.set(REWARD_KEY, steps.sum(-1, keepdim=True))
        return out


def window_latents(world_model, windows: TensorDictBase, key: NestedKey = "latent") -> torch.Tensor:
    """The latents ``(B, T, D)`` of a batch of windows, encoded once per batch.

    Returns ``windows[key]`` when an earlier step wrote it; otherwise encodes
    the model's observation entries without gradients and, unless the model's
    encoder trains (its ``encoder_trains`` attribute; a frozen image encoder or
    normalisation statistics do not), writes them there, so the synthesis
    transforms and the loss that read the same batch share one encoding. An
    encoder that trains (DINO-WM's proprio embedding, a learned state
    encoder) is not cached: the loss encodes again, with gradients.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> windows = make_window_buffer(WallTask().generate_dataset(20, seed=0), frames=3, frameskip=5,
        ...                              batch_size=8).sample()
        >>> window_latents(model, windows).shape, "latent" in windows.keys()
        (torch.Size([8, 3, 2]), True)
    """
    latent = windows.get(key, None)
    if latent is None:
        with torch.no_grad():
            latent = encode_entries(world_model, windows)
        if not getattr(world_model, "encoder_trains", False):
            windows.set(key, latent)
    return latent


def make_window_buffer(trajectories: TensorDictBase, frames: int, frameskip: int, batch_size: int,
                       transform: Transform | None = None,
                       generator: torch.Generator | None = None) -> TensorDictReplayBuffer:
    """A ``TensorDictReplayBuffer`` that samples ``batch_size`` model-step windows of ``frames`` frames.

    Trajectories ``(N, T)`` are flattened into a ``LazyTensorStorage``; a
    :class:`WindowSliceSampler` draws slices inside single episodes, which
    :class:`ModelStepWindows` (first of the buffer's transforms) turns into
    windows; ``transform`` (for example a synthesis transform) runs after it.

    Pixel datasets (``"pixels"`` and ``"proprio"``, see :data:`PIXEL_KEYS`, or
    precomputed ``"tokens"``, :data:`TOKEN_KEYS`, whose pixels are then never read) are
    never copied: the buffer's ``TensorStorage`` is a flat view of the
    (memory-mapped) dataset and batches read only their rows.

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
    pixels = observation_keys(trajectories) != ("observation",)
    keys = (*observation_keys(trajectories), *TRAJECTORY_KEYS[1:],
            *((REWARD_KEY,) if REWARD_KEY in trajectories.keys(True) else ()))
    flat = trajectories.select(*keys).reshape(-1)
    storage = TensorStorage(flat) if pixels else LazyTensorStorage(flat.shape[0])  # pixels: a view, no copy
    transforms = [windows, *([] if transform is None else [transform])]
    buffer = TensorDictReplayBuffer(
        storage=storage,
        sampler=windows.sampler(traj_key="episode", cache_values=True),
        batch_size=batch_size * windows.slice_len,
        transform=Compose(*transforms),
        generator=generator,
    )
    if not pixels:
        buffer.extend(flat)
    return buffer
