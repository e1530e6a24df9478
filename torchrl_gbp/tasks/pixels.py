"""Any task seen through pixels: rendered images plus proprioception, as DINO-WM's agents see it."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Unbounded
from torchrl.envs import EnvBase

from torchrl_gbp.checks import check_positive_int
from torchrl_gbp.data import check_trajectories, write_dataset
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.simulator import Simulator

# states rendered per chunk when a dataset is written to disk (bounds the RAM used)
RENDER_CHUNK = 256


class PixelTask(Task):
    """``task`` with pixel observations: the same simulator, pairs, distance and success, other eyes.

    Observations are keyed the TorchRL way: ``"pixels"``, the
    ``(image_size, image_size, 3)`` uint8 image of the state (``task.render``,
    channels last), and ``"proprio"``, ``task.proprio_from_state``
    (``proprio_dim`` floats); the env writes the goal's under
    ``("goal", "pixels")`` and ``("goal", "proprio")``. TorchRL's image
    transforms (``ToTensorImage``, ``Resize``, ``VideoRecorder``) apply to
    them. Datasets keep the same ``"pixels"`` and ``"proprio"`` entries;
    :meth:`write_dataset` renders them into a memory-mapped folder chunk by chunk.

    Every attribute the wrapper does not define is the wrapped task's, so the
    task's own env class and options work unchanged.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> task = PixelTask(WallTask(), image_size=32)
        >>> {k: (v.dtype, tuple(v.shape)) for k, v in task.observe(torch.zeros(4, 2)).items()}
        {'pixels': (torch.uint8, (4, 32, 32, 3)), 'proprio': (torch.float32, (4, 2))}
    """

    observation_keys = ("pixels", "proprio")
    goal_keys = (("goal", "pixels"), ("goal", "proprio"))

    def __init__(self, task: Task, image_size: int = 64) -> None:
        check_positive_int("image_size", image_size)
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        self.task = task
        self.image_size = image_size
        for name in ("name", "state_dim", "action_dim", "frameskip", "episode_steps", "success_threshold",
                     "action_bounds", "pair_modes", "pair_mode", "proprio_dim"):  # the wrapped task's
            setattr(self, name, getattr(task, name))

    def __getattr__(self, name: str):
        if name == "task":  # not set yet (unpickling): never recurse
            raise AttributeError(name)
        if name in ("obs_dim", "observation_bounds"):  # the wrapped task's observation vector is not ours
            raise AttributeError(f"{type(self).__name__} observes keyed pixels and proprio; it has no {name}")
        return getattr(self.task, name)

    def __repr__(self) -> str:
        return f"PixelTask({self.task!r}, image_size={self.image_size})"

    def env_type(self) -> type[EnvBase]:
        """The wrapped task's env class."""
        return self.task.env_type()

    def make_simulator(self, num_envs: int, device: torch.device | str = "cpu") -> Simulator:
        """The wrapped task's simulators."""
        return self.task.make_simulator(num_envs, device)

    def sample_start_goal(self, n: int, generator: torch.Generator,
                          mode: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The wrapped task's (start, goal) pairs."""
        return self.task.sample_start_goal(n, generator, mode)

    def distance(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """The wrapped task's distance."""
        return self.task.distance(state, goal_state)

    def success(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """The wrapped task's success test."""
        return self.task.success(state, goal_state)

    def render(self, states: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """The wrapped task's images, ``image_size`` by default."""
        return self.task.render(states, self.image_size if size is None else size)

    def proprio_from_state(self, states: torch.Tensor) -> torch.Tensor:
        """The wrapped task's proprioception."""
        return self.task.proprio_from_state(states)

    def observation_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """Pixel tasks have no observation vector: :meth:`observe` gives ``"pixels"`` and ``"proprio"``."""
        raise TypeError(f"{self!r} observes keyed 'pixels' and 'proprio' (PixelTask.observe), not one vector")

    def observe(self, states: torch.Tensor) -> dict:
        """``{"pixels": uint8 (..., S, S, 3), "proprio": (..., proprio_dim)}`` of states ``(..., state_dim)``."""
        return {"pixels": self.render(states), "proprio": self.proprio_from_state(states).float()}

    def observation_specs(self, shape: torch.Size, device: torch.device | str = "cpu") -> dict:
        """uint8 ``"pixels"`` ``(*shape, S, S, 3)`` in [0, 255] and unbounded ``"proprio"`` ``(*shape, proprio_dim)``."""
        s = self.image_size
        return {"pixels": Bounded(low=0, high=255, shape=(*shape, s, s, 3), dtype=torch.uint8, device=device),
                "proprio": Unbounded(shape=(*shape, self.proprio_dim), device=device)}

    def pixel_trajectories(self, trajectories: TensorDictBase) -> TensorDict:
        """A state dataset ``(N, T)`` of the wrapped task with ``"pixels"`` and ``"proprio"`` in place of
        ``"observation"`` (in memory; :meth:`write_dataset` for datasets that should stay on disk)."""
        check_trajectories(trajectories)
        out = trajectories.exclude("observation", ("next", "observation"))
        states = trajectories["state"]
        out.set("pixels", self.render(states))
        out.set("proprio", self.proprio_from_state(states).float())
        return out

    def generate_dataset(self, num_trajectories: int, trajectory_steps: int | None = None,
                         seed: int = 0) -> TensorDict:
        """The wrapped task's seeded trajectories, rendered (in memory)."""
        return self.pixel_trajectories(self.task.generate_dataset(num_trajectories, trajectory_steps, seed))

    def write_dataset(self, path: str | os.PathLike, num_trajectories: int, trajectory_steps: int | None = None,
                      seed: int = 0) -> Path:
        """Generate the seeded trajectories and render them straight into a memory-mapped dataset folder.

        Images are rendered :data:`RENDER_CHUNK` trajectories at a time into
        the memory map, so RAM never holds the whole image dataset; the folder
        appears atomically (see :func:`~torchrl_gbp.data.write_dataset`).
        Load it with :func:`~torchrl_gbp.data.load_dataset`.
        """
        states_only = self.task.generate_dataset(num_trajectories, trajectory_steps, seed)
        small = states_only.exclude("observation", ("next", "observation"))
        n, t = small.shape
        s, p = self.image_size, self.proprio_dim

        def write(folder: Path) -> None:
            skeleton = small.clone(False)
            skeleton.set("pixels", torch.zeros((), dtype=torch.uint8).expand(n, t, s, s, 3))
            skeleton.set("proprio", torch.zeros(()).expand(n, t, p))
            on_disk = skeleton.memmap_like(folder)
            on_disk.update_(small)
            states = small["state"]
            for i in range(0, n, RENDER_CHUNK):
                chunk = states[i:i + RENDER_CHUNK]
                on_disk["pixels"][i:i + RENDER_CHUNK] = self.render(chunk)
                on_disk["proprio"][i:i + RENDER_CHUNK] = self.proprio_from_state(chunk).float()

        return write_dataset(path, write)
