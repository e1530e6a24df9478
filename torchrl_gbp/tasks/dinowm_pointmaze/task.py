"""DINO-WM's PointMaze, replicated: d4rl's U-maze point mass on MuJoCo 3, DINO-WM's pairs, success and frames.

DINO-WM (``env/pointmaze`` of gaoyuezhou/dino_wm, a port of d4rl's maze2d)
and the gradient-planning paper evaluate PointMaze models here. The physics
and its constants are in :mod:`.simulator`, the camera in :mod:`.renderer`;
from the env wrapper (``point_maze_wrapper.py``):

* state, observation and proprio: ``(x, y, vx, vy)`` = ``qpos`` and ``qvel``
  (DINO-WM's proprio is the same 4 numbers: ``_get_obs``);
* success (``eval_state``): the positions within 0.5 of the goal's,
  ``||state[:2] - goal[:2]|| < 0.5``; :meth:`distance` is that norm;
* pairs (``sample_random_init_goal_states``): start and goal drawn alike,
  ``x`` and ``y`` uniform in [0.5, 3.1] until the point lies in the U's free
  space kept 0.1 from the walls (``x`` in [0.5, 1.1] or [2.5, 3.1], or ``x``
  in (1.1, 2.5) with ``y`` in [2.5, 3.1]), each velocity uniform in
  ``+-5.2262554`` (its ``STATE_RANGES``).

The dataset is random actions in the manner of DINO-WM's PointMaze data,
whose generator is not released: the DINO-WM paper describes fully random
trajectories; see :meth:`DinoWMPointMazeTask.generate_dataset`.
"""
from __future__ import annotations

import torch
from tensordict import TensorDict

from torchrl_gbp.checks import check_last_dim, check_positive_int
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.dinowm_pointmaze.renderer import render_dinowm_pointmaze
from torchrl_gbp.tasks.dinowm_pointmaze.simulator import DinoWMPointMazeSimulator
from torchrl_gbp.tasks.env import GoalEnv
from torchrl_gbp.tasks.pointmaze.task import PointMazeTask

#: Pair positions are drawn uniform in ``[PAIR_LOW, PAIR_HIGH]^2`` until they fall in the free space; velocities
#: uniform in ``+-PAIR_SPEED`` (DINO-WM's ``STATE_RANGES`` for both velocity components).
PAIR_LOW, PAIR_HIGH, PAIR_SPEED = 0.5, 3.1, 5.2262554


# The U's arms are x in [0.5, 1.1] and [2.5, 3.1]; its base joins them at y in [2.5, 3.1].
_ARM_HIGH, _ARM_LOW, _BASE_LOW = 1.1, 2.5, 2.5


# Candidate positions drawn per pair and round (about 59% of [0.5, 3.1]^2 is free: a round leaves none in 1e-12).
_CANDIDATES = 32


def in_pair_region(position: torch.Tensor) -> torch.Tensor:
    """True ``(...,)`` where positions ``(..., 2)`` satisfy DINO-WM's pair sampler's test (free space, 0.1 from walls).

    Example:
        >>> in_pair_region(torch.tensor([[0.8, 1.0], [1.8, 1.0], [1.8, 2.8], [3.0, 0.6]])).tolist()
        [True, False, True, True]
    """
    check_last_dim("position", position, 2)
    x, y = position[..., 0], position[..., 1]
    in_box = (y >= PAIR_LOW) & (y <= PAIR_HIGH)
    arms = ((x >= PAIR_LOW) & (x <= _ARM_HIGH)) | ((x >= _ARM_LOW) & (x <= PAIR_HIGH))
    base = (x > _ARM_HIGH) & (x < _ARM_LOW) & (y >= _BASE_LOW)
    return in_box & (arms | base)


class DinoWMPointMazeTask(Task):
    """DINO-WM's PointMaze: drive the point mass of d4rl's U-maze within 0.5 of a goal position.

    Pairs, success, state and proprio are DINO-WM's (module docstring); the
    observation of state models is the state itself. Actions are forces in
    ``[-1, 1]^2`` (gear 100), held for one env step of 5 MuJoCo steps (0.05 s).

    Args:
        episode_steps: env steps per evaluation episode (the MPC budget; DINO-WM's MPC runs until success) and
            the default dataset trajectory length.
        frameskip: default env actions per world-model step (DINO-WM's 5).

    Example:
        >>> task = DinoWMPointMazeTask()
        >>> start, goal = task.sample_start_goal(4, torch.Generator().manual_seed(0))
        >>> bool(in_pair_region(torch.cat([start, goal])[:, :2]).all()), task.proprio_from_state(start).shape
        (True, torch.Size([4, 4]))
        >>> task.success(goal, goal).tolist(), task.success(goal + torch.tensor([0.3, 0.4, 0, 0]), goal).tolist()
        ([True, True, True, True], [False, False, False, False])
        >>> task.generate_dataset(num_trajectories=3, trajectory_steps=10, seed=0)["next", "state"].shape
        torch.Size([3, 10, 4])
    """

    name = "dinowm_pointmaze"
    obs_dim = 4
    state_dim = 4
    action_dim = 2
    success_threshold = 0.5
    action_bounds = (-1.0, 1.0)
    observation_bounds = None
    pair_modes = ("random",)
    pair_mode = "random"
    proprio_dim = 4

    def __init__(self, *, episode_steps: int = 50, frameskip: int = 5) -> None:
        self.episode_steps = check_positive_int("episode_steps", episode_steps)
        self.frameskip = check_positive_int("frameskip", frameskip)

    def __repr__(self) -> str:
        return f"DinoWMPointMazeTask(episode_steps={self.episode_steps}, frameskip={self.frameskip})"

    def env_type(self) -> type[GoalEnv]:
        """:meth:`make_env` builds the shared :class:`~torchrl_gbp.tasks.env.GoalEnv`."""
        return GoalEnv

    def make_simulator(self, num_envs: int, device: torch.device | str = "cpu") -> DinoWMPointMazeSimulator:
        """``num_envs`` MuJoCo copies of d4rl's U-maze (:class:`DinoWMPointMazeSimulator`)."""
        return DinoWMPointMazeSimulator(self, num_envs, device)

    def _free_positions(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` positions ``(n, 2)`` uniform over :func:`in_pair_region` (rejection sampling, CPU)."""
        out, todo = torch.empty(n, 2), torch.ones(n, dtype=torch.bool)
        while todo.any():
            rows = todo.nonzero().flatten()
            candidates = torch.rand(len(rows), _CANDIDATES, 2, generator=generator, device=generator.device).cpu()
            candidates = PAIR_LOW + (PAIR_HIGH - PAIR_LOW) * candidates
            valid = in_pair_region(candidates)
            found = valid.any(dim=1)
            first = valid.int().argmax(dim=1)
            out[rows[found]] = candidates[found, first[found]]
            todo[rows[found]] = False
        return out

    def sample_start_goal(
        self, n: int, generator: torch.Generator, mode: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` (start, goal) state pairs ``(n, 4)`` (CPU), drawn alike as DINO-WM's ``sample_random_init_goal_states``
        draws them (module docstring); all randomness comes from ``generator``."""
        check_positive_int("n", n)
        self.check_pair_mode(self.pair_mode if mode is None else mode)
        positions = self._free_positions(2 * n, generator)
        speeds = torch.rand(2 * n, 2, generator=generator, device=generator.device).cpu()
        states = torch.cat([positions, PAIR_SPEED * (2 * speeds - 1)], dim=-1)
        return states[:n], states[n:]

    def observation_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """The observation is the state ``(x, y, vx, vy)`` itself (a float32 copy)."""
        check_last_dim("state", state, self.state_dim)
        return state.float().clone()

    def render(self, states: torch.Tensor, size: int = 224) -> torch.Tensor:
        """Images ``(..., size, size, 3)`` uint8 from DINO-WM's top-down camera (224 by default).

        See :func:`~torchrl_gbp.tasks.dinowm_pointmaze.renderer.render_dinowm_pointmaze`.
        """
        return render_dinowm_pointmaze(states, size)

    # Our PointMaze's state layout (qpos, qvel): the same proprio and position distance (DINO-WM's success measure).
    proprio_from_state = PointMazeTask.proprio_from_state
    distance = PointMazeTask.distance

    def generate_dataset(
        self, num_trajectories: int, trajectory_steps: int | None = None, seed: int = 0
    ) -> TensorDict:
        """Seeded random-action trajectories: each starts at a pair sampler start (free space, a random
        velocity) and takes actions uniform in ``[-1, 1]^2``, independent per env step.

        DINO-WM's PointMaze data are "fully random" trajectories (its paper);
        the generator, the start states and the action law are not released,
        so these are this replica's choices. Keys as in
        :meth:`Task.generate_dataset`; tensors on CPU.
        """
        n, steps, generator = self.dataset_arguments(num_trajectories, trajectory_steps, seed)
        start, _ = self.sample_start_goal(n, generator)
        actions = 2 * torch.rand(n, steps, self.action_dim, generator=generator) - 1
        simulator = self.make_simulator(n)
        simulator.set_state(start)
        states = [simulator.get_state()]
        for t in range(steps):
            simulator.step(actions[:, t])
            states.append(simulator.get_state())
        return self.trajectories(torch.stack(states, dim=1), actions)
