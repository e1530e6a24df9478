"""DINO-WM's datasets (``pusht_noise``, ``point_maze``, ``wall_single``) as our memory-mapped trajectories.

DINO-WM (``datasets/*_dset.py`` of gaoyuezhou/dino_wm) reads, per dataset folder:

- ``pusht_noise/{train,val}``: ``states.pth`` ``(N, T, 5)`` (agent xy, block xy, block angle),
  ``velocities.pth`` ``(N, T, 2)`` (agent velocity), ``rel_actions.pth`` ``(N, T, 2)`` (divided by 100:
  the env moves its target by ``100 a``), ``seq_lengths.pkl`` (a pickled list of ``N`` lengths) and
  one video per episode, ``obses/episode_XXX.mp4`` (RGB, ``(T, H, W, 3)``). Proprio: agent position
  and velocity. Statistics: constants of their code. Split: the two folders.
- ``point_maze``: ``states.pth`` ``(N, T, 4)`` (position and velocity), ``actions.pth`` ``(N, T, 2)``,
  ``seq_lengths.pth`` ``(N,)`` and ``obses/episode_XXX.pth`` uint8 ``(T, H, W, 3)``. Proprio: the
  whole state. Statistics: mean and (unbiased) std over every episode's first ``seq_length`` steps.
- ``wall_single``: ``states.pth`` ``(N, T, 2)`` (the dot), ``actions.pth`` ``(N, T, 2)``,
  ``door_locations.pth`` and ``wall_locations.pth`` (per episode, or per step ``(N, T)``), and
  ``obses/episode_XXX.pth`` uint8 channels first ``(T, 3, H, W)``; every episode has ``T =
  actions.shape[1]`` steps. Proprio: the dot. Statistics: mean and std over all ``(N, T)``.

Statistics are computed as DINO-WM does, over the whole dataset read (before the split), and the
``point_maze`` and ``wall_single`` episodes are split as their ``split_traj_datasets`` does:
``randperm(N)`` of a generator seeded with 42, the first ``int(0.9 N)`` for training.

:func:`convert_dinowm_dataset` decodes every frame once into a memory-mapped folder in our trajectory
layout (:func:`~torchrl_gbp.data.load_dataset`); :func:`open_dinowm_dataset` converts on first use and
reads the memory map afterwards. Episodes have different lengths, so a split is one row ``(1, S)`` of
all its env steps, episode after episode, told apart by ``"episode"`` (the episode's index in DINO-WM's
files): ``"state"`` (our replica's state vector), ``"action"`` (env units), ``"proprio"``, uint8
``"pixels"`` ``(H, W, 3)`` and ``("next", "state")``. An episode of ``T`` recorded steps gives ``T - 1``
transitions (its last action has no next state).
"""
from __future__ import annotations

import json
import numbers
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tensordict import TensorDict, TensorDictBase

from torchrl_gbp.checks import check_positive_int
from torchrl_gbp.data import load_dataset, load_memmap, write_dataset
from torchrl_gbp.io import atomic_write_text

from .dinowm_checkpoint import read_pickle, read_pickled_checkpoint

DATASET_KINDS = ("pusht_noise", "point_maze", "wall_single")
# The split of DINO-WM's split_traj_datasets under the datasets' configs (split_ratio 0.9, random_seed 42).
SPLIT_SEED, TRAIN_FRACTION = 42, 0.9
# DINO-WM's PushT statistics (datasets/pusht_dset.py): env actions (after / 100) and proprio (agent xy, velocity).
PUSHT_STATISTICS = {"action_mean": [-0.0087, 0.0068], "action_std": [0.2019, 0.2002],
                    "proprio_mean": [236.6155, 264.5674, -2.93032027, 2.54307914],
                    "proprio_std": [101.1202, 87.0112, 74.84556075, 74.14009094]}
PUSHT_ACTION_SCALE = 100.0
# Our PushT replica's state has 10 numbers: DINO-WM's 5 and the agent velocity, then the block's velocity and
# angular velocity, which DINO-WM does not record (zero here).
PUSHT_STATE_DIM = 10
# The file whose presence marks a complete conversion (written last).
INFO_FILE = "dinowm_dataset.json"
# Beside each split's frames: tokens_<split>/ (a memory-mapped TensorDict) and this description of the encoder.
TOKENS_INFO = "tokens.json"
STATISTICS = ("proprio_mean", "proprio_std", "action_mean", "action_std")


@dataclass
class DinoWMEpisodes:
    """One folder of DINO-WM episodes, read (frames are decoded on request).

    Attributes:
        state: ``(N, T, state_dim)`` float32, our replica's state layout.
        action: ``(N, T, action_dim)`` float32 env actions.
        proprio: ``(N, T, proprio_dim)`` float32, DINO-WM's proprio (not normalised).
        lengths: ``(N,)`` int64 recorded steps of each episode.
        frames: ``frames(i)`` -> uint8 ``(T_i, H, W, 3)`` of episode ``i``.

    Example:
        >>> read = DinoWMEpisodes(state=torch.zeros(2, 4, 3), action=torch.zeros(2, 4, 2),
        ...                       proprio=torch.zeros(2, 4, 3), lengths=torch.tensor([4, 3]),
        ...                       frames=lambda i: torch.zeros(4, 8, 8, 3, dtype=torch.uint8))
        >>> read.frames(1).shape
        torch.Size([4, 8, 8, 3])
    """

    state: torch.Tensor
    action: torch.Tensor
    proprio: torch.Tensor
    lengths: torch.Tensor
    frames: Callable[[int], torch.Tensor]


def _load_tensor(path: Path) -> torch.Tensor:
    """A tensor saved with ``torch.save``, read by the package's allow-list reader (no code runs)."""
    if not path.is_file():
        raise FileNotFoundError(f"DINO-WM dataset file {str(path)!r} does not exist")
    value = read_pickled_checkpoint(path)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{str(path)!r} must hold a tensor, got {type(value).__name__}")
    return value


def _load_lengths(path: Path, n: int) -> torch.Tensor:
    if not path.is_file():
        raise FileNotFoundError(f"DINO-WM dataset file {str(path)!r} does not exist")
    value = read_pickle(path) if path.suffix == ".pkl" else _load_tensor(path)
    if isinstance(value, (list, tuple)) and not all(isinstance(v, numbers.Integral) for v in value):
        raise ValueError(f"{str(path)!r} must hold a list of integer episode lengths, got "
                         f"{sorted({type(v).__name__ for v in value})}")
    lengths = torch.as_tensor([int(v) for v in value] if isinstance(value, (list, tuple)) else value)
    fractional = lengths.is_floating_point() and not bool((lengths == lengths.round()).all())
    if lengths.shape != (n,) or fractional or lengths.dtype == torch.bool or bool((lengths < 0).any()):
        raise ValueError(f"{str(path)!r} must hold {n} episode lengths (non-negative integers), got "
                         f"{lengths.dtype} of shape {tuple(lengths.shape)}")
    return lengths.long()


def _check_finite(name: str, tensor: torch.Tensor, lengths: torch.Tensor) -> None:
    """NaN or inf within an episode's recorded steps raises naming the file, the episode and the step."""
    recorded = torch.arange(tensor.shape[1]) < lengths[:, None]
    bad = (~torch.isfinite(tensor.float()).reshape(*tensor.shape[:2], -1).all(-1)) & recorded
    if bool(bad.any()):
        episode, step = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"DINO-WM {name} holds NaN or inf at episode {episode}, step {step} "
                         f"({int(bad.sum())} steps in all); fix or drop those episodes before converting")


def _check_shape(name: str, tensor: torch.Tensor, n: int, t: int | None = None, last: int | None = None) -> None:
    if tensor.ndim != 3 or tensor.shape[0] != n or (t is not None and tensor.shape[1] < t) or (
            last is not None and tensor.shape[2] != last):
        want = f"({n}, {'T' if t is None else f'>= {t}'}, {'...' if last is None else last})"
        raise ValueError(f"DINO-WM {name} must be {want}, got {tuple(tensor.shape)}")


def _uint8_frames(frames: torch.Tensor, where: str) -> torch.Tensor:
    if frames.dtype != torch.uint8:
        if not frames.is_floating_point() or frames.min() < 0 or frames.max() > 255:
            raise ValueError(f"{where}: frames must be uint8 (or floats in [0, 255]), got {frames.dtype}")
        frames = frames.round().to(torch.uint8)
    return frames


def _tensor_frames(folder: Path, channels_first: bool) -> Callable[[int], torch.Tensor]:
    def frames(i: int) -> torch.Tensor:
        path = folder / f"episode_{i:03d}.pth"
        video = _uint8_frames(_load_tensor(path), str(path))
        if channels_first:
            video = video.permute(0, 2, 3, 1)
        if video.ndim != 4 or video.shape[-1] != 3:
            layout = "(T, 3, H, W)" if channels_first else "(T, H, W, 3)"
            raise ValueError(f"{str(path)!r} must hold frames {layout}, got {tuple(video.shape)}")
        return video
    return frames


def read_mp4(path: str | os.PathLike) -> torch.Tensor:
    """Every frame of a video file as uint8 RGB ``(T, H, W, 3)`` (OpenCV's FFmpeg reader; extra ``dinowm``).

    Example:
        >>> read_mp4("missing.mp4")
        Traceback (most recent call last):
            ...
        FileNotFoundError: video 'missing.mp4' does not exist
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"video {str(path)!r} does not exist")
    try:
        import cv2
    except ImportError as error:
        raise ImportError("decoding DINO-WM's PushT videos needs OpenCV: pip install 'torchrl_gbp[dinowm]'") from error
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(torch.from_numpy(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"video {str(path)!r} has no readable frame")
    return torch.stack(frames)


def dataset_kind(source: str | os.PathLike) -> str:
    """Which of :data:`DATASET_KINDS` the folder ``source`` holds, told by its files.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "door_locations.pth").write_bytes(b"")
        >>> dataset_kind(folder)
        'wall_single'
    """
    source = Path(source)
    if (source / "train" / "rel_actions.pth").is_file():
        return "pusht_noise"
    if (source / "door_locations.pth").is_file():
        return "wall_single"
    if (source / "seq_lengths.pth").is_file():
        return "point_maze"
    raise FileNotFoundError(f"{str(source)!r} is not one of DINO-WM's datasets: expected train/rel_actions.pth "
                            f"(pusht_noise), door_locations.pth (wall_single) or seq_lengths.pth (point_maze)")


def read_dinowm_episodes(folder: str | os.PathLike, kind: str, episodes: int | None = None) -> DinoWMEpisodes:
    """The episodes of one DINO-WM folder of ``kind`` (a PushT split folder, or the whole PointMaze or Wall
    folder), the first ``episodes`` of them when given (DINO-WM's ``n_rollout``).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> torch.save(torch.zeros(2, 6, 4), folder / "states.pth")
        >>> torch.save(torch.ones(2, 6, 2), folder / "actions.pth")
        >>> torch.save(torch.tensor([6, 4]), folder / "seq_lengths.pth")
        >>> read = read_dinowm_episodes(folder, "point_maze")
        >>> read.state.shape, read.proprio.shape, read.lengths.tolist()
        (torch.Size([2, 6, 4]), torch.Size([2, 6, 4]), [6, 4])
    """
    folder = Path(folder)
    if kind not in DATASET_KINDS:
        raise ValueError(f"kind must be one of {DATASET_KINDS}, got {kind!r}")
    if kind == "pusht_noise":
        states = _load_tensor(folder / "states.pth").float()
        n = states.shape[0]
        velocities = _load_tensor(folder / "velocities.pth").float()
        actions = _load_tensor(folder / "rel_actions.pth").float() / PUSHT_ACTION_SCALE
        lengths = _load_lengths(folder / "seq_lengths.pkl", n)
        _check_shape("pusht states", states, n, int(lengths.max()), 5)
        _check_shape("pusht velocities", velocities, n, int(lengths.max()), 2)
        _check_shape("pusht rel_actions", actions, n, int(lengths.max()), 2)
        t = states.shape[1]
        velocities, actions = velocities[:, :t], actions[:, :t]
        state = torch.cat([states, velocities, states.new_zeros(n, t, PUSHT_STATE_DIM - 7)], dim=-1)
        proprio = torch.cat([states[..., :2], velocities], dim=-1)
        frames = _video_frames(folder / "obses")
    elif kind == "point_maze":
        states = _load_tensor(folder / "states.pth").float()
        n = states.shape[0]
        actions = _load_tensor(folder / "actions.pth").float()
        lengths = _load_lengths(folder / "seq_lengths.pth", n)
        _check_shape("point_maze states", states, n, int(lengths.max()))
        _check_shape("point_maze actions", actions, n, int(lengths.max()))
        state, proprio = states, states.clone()
        frames = _tensor_frames(folder / "obses", channels_first=False)
    else:
        states, actions = _load_tensor(folder / "states.pth"), _load_tensor(folder / "actions.pth")
        n, t = actions.shape[:2]
        _check_shape("wall states", states, n, t)
        layout = []
        for name in ("wall_locations", "door_locations"):
            value = _load_tensor(folder / f"{name}.pth").reshape(n, -1)[:, :1].float()  # the episode's layout
            layout.append(value.unsqueeze(1).expand(n, t, 1))
        state = torch.cat([states[:, :t, :2].float(), *layout], dim=-1)
        proprio, lengths = states[:, :t], torch.full((n,), t, dtype=torch.int64)
        frames = _tensor_frames(folder / "obses", channels_first=True)
    if episodes is not None:
        n = min(check_positive_int("episodes", episodes), state.shape[0])
        state, actions, proprio, lengths = state[:n], actions[:n], proprio[:n], lengths[:n]
    for name, tensor in (("states", state), ("actions", actions), ("proprio", proprio)):
        _check_finite(f"{name} of {str(folder)!r}", tensor, lengths)
    return DinoWMEpisodes(state=state.float(), action=actions.float(), proprio=proprio, lengths=lengths,
                          frames=frames)


def _video_frames(folder: Path) -> Callable[[int], torch.Tensor]:
    return lambda i: read_mp4(folder / f"episode_{i:03d}.mp4")


def dinowm_statistics(kind: str, read: DinoWMEpisodes) -> dict[str, list[float]]:
    """DINO-WM's normalisation statistics of ``read`` (all its episodes, before the split): PushT's constants,
    PointMaze's over each episode's recorded steps, Wall's over all ``(N, T)``; torch's unbiased std.

    Example:
        >>> read = DinoWMEpisodes(state=torch.zeros(2, 3, 4), action=torch.arange(12.).reshape(2, 3, 2),
        ...                       proprio=torch.zeros(2, 3, 2), lengths=torch.tensor([3, 3]), frames=None)
        >>> dinowm_statistics("wall_single", read)["action_mean"]
        [5.0, 6.0]
    """
    if kind == "pusht_noise":
        return {name: list(values) for name, values in PUSHT_STATISTICS.items()}
    if kind == "point_maze":
        valid = torch.arange(read.action.shape[1]) < read.lengths[:, None]
        action, proprio = read.action[valid], read.proprio[valid]
    else:
        action, proprio = read.action.flatten(0, 1), read.proprio.flatten(0, 1)
    return {"proprio_mean": proprio.mean(0).float().tolist(), "proprio_std": proprio.std(0).float().tolist(),
            "action_mean": action.mean(0).float().tolist(), "action_std": action.std(0).float().tolist()}


def dinowm_split(n: int, seed: int = SPLIT_SEED, train_fraction: float = TRAIN_FRACTION) -> dict[str, list[int]]:
    """DINO-WM's ``split_traj_datasets``: episode indices of the training and validation sets.

    Example:
        >>> split = dinowm_split(10)
        >>> len(split["train"]), len(split["val"]), sorted(split["train"] + split["val"]) == list(range(10))
        (9, 1, True)
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    cut = int(train_fraction * n)
    return {"train": order[:cut], "val": order[cut:]}


def write_episodes(path: str | os.PathLike, read: DinoWMEpisodes, which: list[int]) -> Path:
    """Write episodes ``which`` of ``read`` as one memory-mapped trajectory row ``(1, S)`` at ``path``
    (atomically; frames decoded one episode at a time straight into the memory map).

    Episodes of fewer than two steps are left out. Layout: see the module docstring.

    Example:
        >>> import tempfile
        >>> read = DinoWMEpisodes(state=torch.zeros(2, 4, 3), action=torch.zeros(2, 4, 2),
        ...                       proprio=torch.zeros(2, 4, 3), lengths=torch.tensor([4, 3]),
        ...                       frames=lambda i: torch.zeros(4, 8, 8, 3, dtype=torch.uint8))
        >>> data = load_dataset(write_episodes(Path(tempfile.mkdtemp()) / "train", read, [0, 1]))
        >>> data.batch_size, data["episode"][0].tolist()  # 3 + 2 transitions
        (torch.Size([1, 5]), [0, 0, 0, 1, 1])
    """
    kept = [i for i in which if int(read.lengths[i]) >= 2]
    if not kept:
        raise ValueError(f"no episode of at least 2 steps to write to {str(path)!r}")
    steps = [int(read.lengths[i]) - 1 for i in kept]
    total = sum(steps)
    first = read.frames(kept[0])
    frame_shape = tuple(first.shape[1:])

    def write(folder: Path) -> None:
        def empty(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros((), dtype=dtype).expand(1, total, *shape)

        skeleton = TensorDict({
            "state": empty(read.state.shape[-1]), "action": empty(read.action.shape[-1]),
            "proprio": empty(read.proprio.shape[-1]), "pixels": empty(*frame_shape, dtype=torch.uint8),
            "episode": empty(dtype=torch.int64), "next": {"state": empty(read.state.shape[-1])}}, batch_size=[1, total])
        on_disk = skeleton.memmap_like(folder)
        offset = 0
        for index, (i, length) in enumerate(zip(kept, steps)):
            frames = first if index == 0 else read.frames(i)
            if tuple(frames.shape[1:]) != frame_shape or frames.shape[0] < length:
                raise ValueError(f"episode {i}: expected at least {length} frames of {frame_shape}, got "
                                 f"{tuple(frames.shape)}")
            rows = slice(offset, offset + length)
            on_disk["pixels"][0, rows] = frames[:length]
            on_disk["state"][0, rows] = read.state[i, :length]
            on_disk["next", "state"][0, rows] = read.state[i, 1:length + 1]
            on_disk["action"][0, rows] = read.action[i, :length]
            on_disk["proprio"][0, rows] = read.proprio[i, :length].float()
            on_disk["episode"][0, rows] = i
            offset += length

    return write_dataset(path, write)


def convert_dinowm_dataset(source: str | os.PathLike, out: str | os.PathLike, *, kind: str | None = None,
                           episodes: int | None = None) -> Path:
    """Convert a DINO-WM dataset folder once into ``out``: ``train/`` and ``val/`` memory-mapped trajectory
    folders and ``dinowm_dataset.json`` (kind, source, statistics, split), written last.

    ``kind`` defaults to :func:`dataset_kind`; ``episodes`` keeps the first ``episodes`` of each folder
    read (DINO-WM's ``n_rollout``: statistics and split follow). Returns ``out``.

    Example:
        >>> import tempfile
        >>> source, out = (Path(tempfile.mkdtemp()) for _ in range(2))
        >>> torch.save(torch.rand(10, 6, 2) * 60, source / "states.pth")
        >>> torch.save(torch.randn(10, 6, 2), source / "actions.pth")
        >>> for name in ("door_locations", "wall_locations"):
        ...     torch.save(torch.full((10, 6), 32), source / f"{name}.pth")
        >>> (source / "obses").mkdir()
        >>> for i in range(10):
        ...     torch.save(torch.zeros(6, 3, 8, 8, dtype=torch.uint8), source / "obses" / f"episode_{i:03d}.pth")
        >>> train = load_dinowm_dataset(convert_dinowm_dataset(source, out))
        >>> train.batch_size, train["pixels"].shape[-3:], train["state"].shape[-1]   # 9 episodes of 5 steps
        (torch.Size([1, 45]), torch.Size([8, 8, 3]), 4)
    """
    source, out = Path(source), Path(out)
    kind = dataset_kind(source) if kind is None else kind
    if kind not in DATASET_KINDS:
        raise ValueError(f"kind must be one of {DATASET_KINDS}, got {kind!r}")
    if kind == "pusht_noise":  # DINO-WM's own train and val folders
        reads = {split: read_dinowm_episodes(source / split, kind, episodes) for split in ("train", "val")}
        splits = {split: list(range(read.state.shape[0])) for split, read in reads.items()}
        statistics = dinowm_statistics(kind, reads["val"])
    else:
        read = read_dinowm_episodes(source, kind, episodes)
        splits = dinowm_split(read.state.shape[0])
        reads, statistics = dict.fromkeys(splits, read), dinowm_statistics(kind, read)
    # from here the old conversion is stale: an interrupted one is never taken for complete, and tokens of the
    # frames being replaced go with them
    (out / INFO_FILE).unlink(missing_ok=True)
    for stale in out.glob("tokens_*"):
        shutil.rmtree(stale)
    for name, which in splits.items():
        write_episodes(out / name, reads[name], which)
    info = {"kind": kind, "source": str(source.resolve()), "episodes": episodes, "splits": splits,
            "statistics": statistics}
    atomic_write_text(out / INFO_FILE, json.dumps(info))
    return out


def dataset_info(folder: str | os.PathLike) -> dict:
    """The ``dinowm_dataset.json`` of a converted folder (kind, source, statistics, split).

    Example:
        >>> dataset_info("missing")
        Traceback (most recent call last):
            ...
        FileNotFoundError: 'missing' is not a converted DINO-WM dataset (no dinowm_dataset.json); convert it with convert_dinowm_dataset
    """
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a converted DINO-WM dataset (no {INFO_FILE}); convert it "
                                f"with convert_dinowm_dataset")
    return json.loads(path.read_text())


def normalization_statistics(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The statistics of a converted folder as tensors, the keywords of
    :meth:`~torchrl_gbp.bridges.DinoWMWorldModel.set_normalization`.

    Example:
        >>> normalization_statistics("missing")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
            ...
        FileNotFoundError: 'missing' is not a converted DINO-WM dataset
    """
    statistics = dataset_info(folder)["statistics"]
    return {name: torch.tensor(statistics[name], dtype=torch.float32) for name in STATISTICS}


def load_dinowm_dataset(folder: str | os.PathLike, split: str = "train", *, tokens: bool = True) -> TensorDictBase:
    """The memory-mapped trajectories ``(1, S)`` of ``split`` (``"train"`` or ``"val"``) of a converted folder,
    with its DINOv2 ``"tokens"`` when :func:`~torchrl_gbp.bridges.write_dinov2_tokens` wrote them (and ``tokens``);
    a damaged token folder raises (:func:`load_tokens`).

    Example:
        >>> load_dinowm_dataset("missing", "test")
        Traceback (most recent call last):
            ...
        ValueError: split must be 'train' or 'val', got 'test'
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    dataset_info(folder)
    data = load_dataset(Path(folder) / split)
    token_folder = Path(folder) / f"tokens_{split}"
    if tokens and token_folder.is_dir():
        data = data.clone(False)
        data.set("tokens", load_tokens(token_folder, tuple(data["pixels"].shape)))
    return data


def load_tokens(path: str | os.PathLike, frames: tuple[int, ...]) -> torch.Tensor:
    """The memory-mapped ``"tokens"`` of a token folder written for frames of shape ``frames``; a damaged, truncated
    or stale folder raises a ``ValueError`` naming it and what is wrong.

    Example:
        >>> load_tokens("missing", (1, 3, 8, 8, 3))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: token folder 'missing' is damaged or incomplete (no tokens.json); ...
    """
    path = Path(path)
    fix = "delete it and rerun write_dinov2_tokens"
    try:
        description = json.loads((path / TOKENS_INFO).read_text())
    except (OSError, ValueError) as error:
        why = f"no {TOKENS_INFO}" if isinstance(error, FileNotFoundError) else f"{TOKENS_INFO} unreadable: {error}"
        raise ValueError(f"token folder {str(path)!r} is damaged or incomplete ({why}); {fix}") from error
    if not isinstance(description, dict) or description.get("frames") != list(frames):
        written = description.get("frames") if isinstance(description, dict) else None
        raise ValueError(f"token folder {str(path)!r} was written for frames {written}, but the split has "
                         f"{list(frames)} (stale); {fix}")
    tokens = load_memmap(path, "token folder").get("tokens")
    if tokens is None or tuple(tokens.shape[:2]) != tuple(frames[:2]):
        raise ValueError(f"token folder {str(path)!r} holds no tokens for {frames[:2]} frames; {fix}")
    return tokens


def open_dinowm_dataset(source: str | os.PathLike, out: str | os.PathLike, split: str = "train", *,
                        kind: str | None = None, episodes: int | None = None) -> TensorDictBase:
    """:func:`load_dinowm_dataset` of ``out``, converting ``source`` there first unless ``out`` already holds
    a complete conversion of the same source and ``episodes`` (frames are decoded once, then read from disk).

    Example:
        >>> open_dinowm_dataset("missing", "also_missing")
        Traceback (most recent call last):
            ...
        FileNotFoundError: 'missing' is not one of DINO-WM's datasets: expected train/rel_actions.pth (pusht_noise), door_locations.pth (wall_single) or seq_lengths.pth (point_maze)
    """
    try:
        info = dataset_info(out)
        done = info["source"] == str(Path(source).resolve()) and info["episodes"] == episodes
    except FileNotFoundError:
        done = False
    if not done:
        convert_dinowm_dataset(source, out, kind=kind, episodes=episodes)
    return load_dinowm_dataset(out, split)
