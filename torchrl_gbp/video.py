"""Episode videos: a policy's rollouts in a task env, each frame the rendered state beside the goal image.

Frames are read from the rollout TensorDict alone (``"state"``,
``("next", "state")``, ``"goal_state"``) and drawn with
:meth:`~torchrl_gbp.tasks.Task.render`; files are written with imageio
(the ``video`` extra): ``.gif`` through Pillow, ``.mp4`` through
``imageio-ffmpeg`` when it is installed.
"""
from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase

from .evaluate import evaluation_rollout
from .io import atomic_path
from .tasks import Task
from .tasks.rendering import check_size

#: Pixels between the frame and the goal image, and their colour.
SEPARATOR_WIDTH, SEPARATOR_COLOUR = 2, (40, 40, 40)


#: Video formats by file suffix: the Python module each needs and the pip package that provides it.
FORMATS = {".gif": ("PIL", "pillow"), ".mp4": ("imageio_ffmpeg", "imageio-ffmpeg")}


def episode_frames(task: Task, rollout: TensorDictBase, size: int = 64) -> torch.Tensor:
    """Video frames ``(E, T + 1, size, 2 * size + SEPARATOR_WIDTH, 3)`` uint8 of a rollout ``(*envs, T)``.

    Frame ``t`` of an episode shows the state after ``t`` env steps (the
    reset state first, read from ``"state"`` and ``("next", "state")``), a
    thin separator, and on the right the goal image
    ``task.render(goal_state)`` (``"goal_state"``). The ``E`` episodes are the
    rollout's env dims flattened.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> task = WallTask()
        >>> frames = episode_frames(task, task.make_env(num_envs=2, seed=0).rollout(3), size=16)
        >>> frames.shape, frames.dtype
        (torch.Size([2, 4, 16, 34, 3]), torch.uint8)
    """
    size = check_size(size)
    for key in ("state", ("next", "state"), "goal_state"):
        if key not in rollout.keys(True):
            raise KeyError(f"episode_frames needs {key!r} in the rollout (written by the task env); "
                           f"found {sorted(map(str, rollout.keys(True, True)))}")
    steps = rollout.shape[-1]
    episodes = rollout.reshape(-1, steps)
    states = torch.cat([episodes["state"][:, :1], episodes["next", "state"]], dim=1)
    goals = episodes["goal_state"]
    goals = torch.cat([goals[:, :1], goals], dim=1)  # the goal of each frame's episode step
    separator = torch.tensor(SEPARATOR_COLOUR, dtype=torch.uint8, device=states.device)
    separator = separator.expand(*states.shape[:2], size, SEPARATOR_WIDTH, 3)
    return torch.cat([task.render(states, size), separator, task.render(goals, size)], dim=-2)


def check_video_target(path: str | os.PathLike, fps: float) -> Path:
    """``path`` as a ``Path`` if its suffix names a format whose packages are installed and ``fps > 0``.

    Raises ``ValueError`` naming ``path`` (unknown suffix) or ``fps``, and
    ``ImportError`` naming the package to install (``imageio``, ``pillow``,
    ``imageio-ffmpeg``).

    Example:
        >>> check_video_target("videos/episodes.gif", fps=10).name
        'episodes.gif'
        >>> check_video_target("videos/episodes.avi", fps=10)
        Traceback (most recent call last):
            ...
        ValueError: path must end in one of ['.gif', '.mp4'] (the video format), got 'videos/episodes.avi'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"path must end in one of {sorted(FORMATS)} (the video format), got {str(path)!r}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise ValueError(f"fps must be a number > 0, got {fps!r}")
    for module, package in (("imageio", "imageio"), FORMATS[suffix]):
        if find_spec(module) is None:
            raise ImportError(f"writing {suffix} videos needs the {package!r} package: pip install {package}"
                              + ("" if suffix == ".gif" else " (or write a .gif, which needs only pillow)"))
    return path


def write_video(frames: torch.Tensor, path: str | os.PathLike, fps: float = 10.0) -> Path:
    """Write uint8 frames ``(N, H, W, 3)`` to ``path`` (``.gif`` or ``.mp4``) atomically; return the path.

    The file appears only once complete (a temporary file in the same folder,
    then a rename). GIF keeps 256 colours per frame and stores a run of
    identical frames once, shown for their total time (Pillow). ``.mp4``
    needs the ``imageio-ffmpeg`` package (see :func:`check_video_target`).

    Example:
        >>> import tempfile
        >>> import imageio.v3 as iio
        >>> frames = (torch.arange(4, dtype=torch.uint8) * 60).reshape(4, 1, 1, 1).expand(4, 16, 16, 3)
        >>> path = write_video(frames, Path(tempfile.mkdtemp()) / "fade.gif", fps=5)
        >>> iio.imread(path, index=None).shape  # the frames read back
        (4, 16, 16, 3)
    """
    path = check_video_target(path, fps)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8 or frames.shape[0] == 0:
        raise ValueError(f"frames must be a non-empty uint8 tensor (N, H, W, 3), got {frames.dtype} "
                         f"{tuple(frames.shape)}")
    import imageio.v3 as iio  # the `video` extra, checked above

    suffix = path.suffix.lower()
    options = ({"plugin": "pillow", "duration": 1000.0 / fps, "loop": 0} if suffix == ".gif"
               else {"plugin": "FFMPEG", "fps": fps})
    with atomic_path(path, suffix=suffix) as temporary:
        iio.imwrite(temporary, frames.cpu().numpy(), extension=suffix, **options)
    return path


def record_video(
    policy: TensorDictModuleBase,
    task: Task,
    path: str | os.PathLike,
    episodes: int = 2,
    seed: int = 0,
    size: int = 64,
    fps: float = 10.0,
    pair_mode: str | None = None,
    max_steps: int | None = None,
    pairs: TensorDict | None = None,
) -> Path:
    """Roll ``policy`` out for ``episodes`` episodes in ``task``'s env and write them, one after another, to ``path``.

    The episodes start from :func:`~torchrl_gbp.evaluate.evaluation_pairs`
    of ``seed`` (the pairs :func:`~torchrl_gbp.evaluate.evaluate` uses; or
    ``pairs``, ``"start_state"``/``"goal_state"`` of batch ``(episodes,)``)
    and run like ``evaluate`` runs them: one batched env, ``env.rollout``
    deterministically under ``torch.no_grad()``, with the policy's
    TensorDict primer when it has one (an :class:`~torchrl_gbp.planners.MPCPolicy`).
    Each episode gives ``max_steps + 1`` frames (:func:`episode_frames`:
    the state beside the goal image) at ``fps`` frames per second, written by
    :func:`write_video` (``.gif`` or ``.mp4``, atomically).

    Example:
        >>> import tempfile
        >>> import imageio.v3 as iio
        >>> from torchrl_gbp.tasks import WallTask
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> from torchrl_gbp.planners import GradientPlanner, MPCPolicy
        >>> task = WallTask()
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> policy = MPCPolicy(GradientPlanner(model, steps=1), task.action_spec)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = record_video(policy, task, f"{folder}/wall.gif", episodes=2, size=32, max_steps=5)
        ...     iio.imread(path, index=0).shape
        (32, 66, 3)
    """
    check_video_target(path, fps)  # before any planning
    size = check_size(size)
    rollout, _ = evaluation_rollout(policy, task, episodes, seed, pair_mode, max_steps, pairs=pairs)
    frames = episode_frames(task, rollout, size)
    return write_video(frames.flatten(0, 1), path, fps)
