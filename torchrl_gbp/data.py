"""Trajectory datasets on disk and model-step training windows on TorchRL replay buffers."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ReplayBuffer,
    SliceSampler,
)
from torchrl.envs import Compose, Transform

TRAJECTORY_KEYS = ("observation", "state", "action", "episode")


def check_trajectories(trajectories: TensorDictBase) -> None:
    """Raise a ``ValueError`` naming what is wrong if ``trajectories`` is not ``(N, T)`` with the task keys."""
    if trajectories.batch_dims != 2:
        raise ValueError(f"trajectories must have batch size (N, T), got {tuple(trajectories.batch_size)}")
    missing = [k for k in TRAJECTORY_KEYS if k not in trajectories.keys()]
    if missing:
        raise KeyError(f"trajectories lack keys {missing}; expected {list(TRAJECTORY_KEYS)}")


def save_dataset(trajectories: TensorDictBase, path: str | os.PathLike) -> Path:
    """Write trajectories ``(N, T)`` as a memory-mapped TensorDict folder, atomically.

    The data go to a temporary folder beside ``path`` which is then renamed into
    place; an existing dataset at ``path`` is replaced only once the new one is
    complete.
    """
    check_trajectories(trajectories)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        trajectories.memmap(tmp / "data")
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp / "data", path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def load_dataset(path: str | os.PathLike) -> TensorDictBase:
    """Load trajectories saved by :func:`save_dataset` (memory-mapped, read-only use)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder {str(path)!r} does not exist; create it with `torchrl-gbp collect`")
    trajectories = TensorDict.load_memmap(path)
    check_trajectories(trajectories)
    return trajectories


def model_actions(trajectories: TensorDictBase, frameskip: int) -> torch.Tensor:
    """Env actions ``(N, T, a)`` grouped into model actions ``(N, T // frameskip, a * frameskip)``."""
    action = trajectories["action"]
    n, t, a = action.shape
    usable = (t // frameskip) * frameskip
    return action[:, :usable].reshape(n, t // frameskip, frameskip * a)


class ModelStepWindows(Transform):
    """Replay-buffer transform: env-step slices ``(B * L,)`` -> model-step windows ``(B,)``.

    A slice of ``L = (frames - 1) * frameskip + 1`` consecutive env steps becomes
    ``"observation"`` and ``"state"`` ``(B, frames, ...)`` (every ``frameskip``-th
    step) and ``"action"`` ``(B, frames - 1, a * frameskip)`` (env units, each model
    action the concatenation of ``frameskip`` env actions).
    """

    def __init__(self, frames: int, frameskip: int) -> None:
        super().__init__()
        self.frames = frames
        self.frameskip = frameskip

    @property
    def slice_len(self) -> int:
        """Env steps per sampled slice."""
        return (self.frames - 1) * self.frameskip + 1

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Reshape a flat batch of slices into windows."""
        steps = tensordict.reshape(-1, self.slice_len)
        b = steps.shape[0]
        usable = (self.frames - 1) * self.frameskip
        action = steps["action"][:, :usable].reshape(b, self.frames - 1, -1)
        return TensorDict(
            {
                "observation": steps["observation"][:, :: self.frameskip],
                "state": steps["state"][:, :: self.frameskip],
                "action": action,
                "episode": steps["episode"][:, 0],
            },
            batch_size=[b],
        )


def make_window_buffer(trajectories: TensorDictBase, frames: int, frameskip: int, batch_size: int,
                       scratch_dir: str | os.PathLike | None = None, transform: Transform | None = None,
                       generator: torch.Generator | None = None) -> ReplayBuffer:
    """A replay buffer that samples ``batch_size`` model-step windows of ``frames`` frames.

    Trajectories ``(N, T)`` are flattened into a ``LazyMemmapStorage`` (in
    ``scratch_dir``, or a temporary folder) or, with ``scratch_dir=None``, a
    ``LazyTensorStorage``; a ``SliceSampler`` draws windows inside single
    episodes. ``transform`` (for example a synthesis transform) runs after the
    window reshaping.

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
    flat = trajectories.select(*TRAJECTORY_KEYS).reshape(-1)
    size = flat.shape[0]
    storage = (LazyTensorStorage(size) if scratch_dir is None
               else LazyMemmapStorage(size, scratch_dir=scratch_dir, existsok=True))
    transforms = [windows] if transform is None else [windows, transform]
    buffer = ReplayBuffer(
        storage=storage,
        sampler=SliceSampler(slice_len=windows.slice_len, traj_key="episode", strict_length=True,
                             cache_values=True),
        batch_size=batch_size * windows.slice_len,
        transform=Compose(*transforms),
        generator=generator,
    )
    buffer.extend(flat)
    return buffer
