"""DINO-WM's Wall, replicated: a Gaussian dot on a 65-pixel canvas must pass the door of a wall to reach its goal.

DINO-WM (Zhou et al., 2024; ``env/wall`` of gaoyuezhou/dino_wm) evaluates
its Wall models here, and so does the gradient-planning paper. A state is
``(x, y, wall_x, door_y)`` in canvas pixels (:mod:`.simulator`): the dot
moves by ``2 a`` per env step (the action is not bounded there) and is
pushed back half a pixel where it hits a wall; the layout (the wall's
column and the door's row) is drawn per episode and is part of the state,
so ``set_state`` restores the dynamics too. The agent's proprioception is
the dot's position, as DINO-WM's; an episode succeeds within 4.5 pixels of
the goal position.
"""
from __future__ import annotations

import torch
from tensordict import TensorDict

from torchrl_gbp.checks import check_last_dim, check_positive_int
from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.dinowm_wall.renderer import DOT_STD, render_dinowm_wall
from torchrl_gbp.tasks.dinowm_wall.simulator import (
    BORDER_HIGH,
    BORDER_LOW,
    CANVAS,
    DEFAULT_WALL_X,
    DOOR_HALF_HEIGHT,
    STATE_DIM,
    WALL_HALF_WIDTH,
    DinoWMWallSimulator,
    dinowm_wall_step,
)
from torchrl_gbp.tasks.env import GoalEnv

# Starts and goals keep two dot standard deviations from the walls (DINO-WM's ``padding``) and the border.
_PADDING = 2 * DOT_STD


# Dataset actions (DINO-WM's wall dataset generator, ``DotDataset.generate_actions``, with its env config): the
# heading starts uniform and turns by Gaussian noise of std sqrt(0.2) per step (their von Mises noise of
# concentration 1 / 0.2, whose std this is); step lengths are truncated normal, mean 1, std 0.4, in [0.2, 1.8].
_HEADING_NOISE = 0.2**0.5


_STEP_MEAN, _STEP_STD, _STEP_LOW, _STEP_HIGH = 1.0, 0.4, 0.2, 1.8


def _check_range(name: str, value: tuple[int, int], low: int, high: int) -> tuple[int, int]:
    if (len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or not low <= value[0] <= value[1] <= high):
        raise ValueError(f"{name} must be (first, last) ints with {low} <= first <= last <= {high}, got {value!r}")
    return value[0], value[1]


class DinoWMWallTask(Task):
    """DINO-WM's Wall: reach a goal position in the other room of a 65-pixel canvas, through the wall's door.

    Pairs (DINO-WM's ``sample_random_init_goal_states``): one layout per
    episode, drawn uniformly over ``wall_x_range`` x ``door_y_range``
    (integers); the start uniform in the left room and the goal in the right
    (``x`` at least 2 dot stds, 3.4 pixels, from the wall and 7.4 from the
    canvas edge, ``y`` in [7.4, 56.6]), swapped half of the time. DINO-WM
    places both with respect to its default wall at column 32 whatever the
    episode's layout; here they are placed with respect to the episode's wall,
    so start and goal always lie on its two sides. The default layouts keep
    the wall at column 32 (DINO-WM's env default, where its pair sampler
    assumes it) and move the door over every row its layout generator allows
    (``door_padding`` 10); its released dataset stores a layout per episode,
    whose distribution is not stated in its code.

    Observation (state models): the state scaled to about ``[-1, 1]``,
    ``(state - 32) / 32``. Actions: DINO-WM does not bound them; the env's
    spec needs bounds, ``+-action_limit`` per axis (default 16, so one step,
    ``2 a``, may span the canvas and no move is cut).

    Args:
        wall_x_range: first and last column of the wall's centre (inclusive).
        door_y_range: first and last row of the door's centre (inclusive).
        action_limit: bound of each action component in the env's spec.
        episode_steps: env steps per evaluation episode.
        frameskip: default env actions per world-model step.

    Example:
        >>> task = DinoWMWallTask()
        >>> start, goal = task.sample_start_goal(3, torch.Generator().manual_seed(0))
        >>> bool(((start[:, 0] - start[:, 2]).sign() != (goal[:, 0] - goal[:, 2]).sign()).all())
        True
        >>> task.success(start, start).tolist(), task.proprio_from_state(start).shape
        ([True, True, True], torch.Size([3, 2]))
        >>> task.generate_dataset(num_trajectories=4, seed=0).batch_size
        torch.Size([4, 50])
    """

    name = "dinowm_wall"
    obs_dim = STATE_DIM
    state_dim = STATE_DIM
    action_dim = 2
    success_threshold = 4.5
    observation_bounds = None
    pair_modes = ("opposite",)
    pair_mode = "opposite"
    proprio_dim = 2

    def __init__(
        self,
        *,
        wall_x_range: tuple[int, int] = (DEFAULT_WALL_X, DEFAULT_WALL_X),
        door_y_range: tuple[int, int] = (10, 54),
        action_limit: float = 16.0,
        episode_steps: int = 50,
        frameskip: int = 5,
    ) -> None:
        # the rooms must hold a padded start: walls at least 2 * 3.4 + 3 pixels in from the border's padding
        margin = BORDER_LOW + _PADDING + WALL_HALF_WIDTH + _PADDING + 1
        self.wall_x_range = _check_range("wall_x_range", tuple(wall_x_range), round(margin), round(CANVAS - margin))
        self.door_y_range = _check_range("door_y_range", tuple(door_y_range), 0, CANVAS - 1)
        if not action_limit > 0:
            raise ValueError(f"action_limit must be > 0, got {action_limit}")
        self.action_limit = float(action_limit)
        self.action_bounds = (-self.action_limit, self.action_limit)
        self.episode_steps = check_positive_int("episode_steps", episode_steps)
        self.frameskip = check_positive_int("frameskip", frameskip)

    def __repr__(self) -> str:
        return (f"DinoWMWallTask(wall_x_range={self.wall_x_range}, door_y_range={self.door_y_range}, "
                f"action_limit={self.action_limit}, episode_steps={self.episode_steps}, frameskip={self.frameskip})")

    def env_type(self) -> type[GoalEnv]:
        """:meth:`make_env` builds the shared :class:`~torchrl_gbp.tasks.env.GoalEnv`."""
        return GoalEnv

    def make_simulator(self, num_envs: int, device: torch.device | str = "cpu") -> DinoWMWallSimulator:
        """``num_envs`` batched Wall simulators (:class:`DinoWMWallSimulator`)."""
        return DinoWMWallSimulator(num_envs=num_envs, device=device)

    def sample_layouts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` layouts ``(wall_x, door_y)`` ``(n, 2)`` float32, uniform over the task's integer ranges."""
        u = torch.rand(n, 2, generator=generator, device=generator.device).cpu()
        low = torch.tensor([self.wall_x_range[0], self.door_y_range[0]], dtype=torch.float32)
        count = torch.tensor([self.wall_x_range[1], self.door_y_range[1]], dtype=torch.float32) - low + 1
        return low + torch.floor(u * count).clamp(max=count - 1)

    def sample_start_goal(
        self, n: int, generator: torch.Generator, mode: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` (start, goal) state pairs ``(n, 4)`` (CPU) in opposite rooms of one layout each.

        See the class docstring; all randomness comes from ``generator``.
        """
        check_positive_int("n", n)
        self.check_pair_mode(self.pair_mode if mode is None else mode)
        layout = self.sample_layouts(n, generator)
        u = torch.rand(n, 5, generator=generator, device=generator.device).cpu()
        edge_low, edge_high = BORDER_LOW + _PADDING, CANVAS - 1 - (BORDER_LOW + _PADDING)
        wall = layout[:, 0]
        left_x = edge_low + u[:, 0] * (wall - WALL_HALF_WIDTH - _PADDING - edge_low)
        right_x = wall + WALL_HALF_WIDTH + _PADDING + u[:, 1] * (edge_high - wall - WALL_HALF_WIDTH - _PADDING)
        swap = u[:, 4] < 0.5
        start_x, goal_x = torch.where(swap, right_x, left_x), torch.where(swap, left_x, right_x)
        start_y, goal_y = (edge_low + u[:, k] * (edge_high - edge_low) for k in (2, 3))
        return (torch.cat([torch.stack([start_x, start_y], dim=-1), layout], dim=-1),
                torch.cat([torch.stack([goal_x, goal_y], dim=-1), layout], dim=-1))

    def observation_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """States ``(..., 4)`` scaled to about ``[-1, 1]``: ``(state - 32) / 32``."""
        check_last_dim("state", state, self.state_dim)
        half = CANVAS // 2
        return (state.float() - half) / half

    def render(self, states: torch.Tensor, size: int = 224) -> torch.Tensor:
        """Images ``(..., size, size, 3)`` uint8 as DINO-WM's Wall env draws them (224 by default).

        See :func:`~torchrl_gbp.tasks.dinowm_wall.renderer.render_dinowm_wall`.
        """
        return render_dinowm_wall(states, size)

    def proprio_from_state(self, states: torch.Tensor) -> torch.Tensor:
        """The dot's position ``(..., 2)`` in pixels, float32 (DINO-WM's Wall proprio)."""
        check_last_dim("states", states, self.state_dim)
        return states[..., :2].float().clone()

    def distance(self, state: torch.Tensor, goal_state: torch.Tensor) -> torch.Tensor:
        """Euclidean distance ``(...,)`` between dot positions, in pixels (the layout does not count)."""
        check_last_dim("state", state, self.state_dim)
        check_last_dim("goal_state", goal_state, self.state_dim)
        return torch.linalg.vector_norm(state[..., :2] - goal_state[..., :2], dim=-1)

    def generate_dataset(
        self, num_trajectories: int, trajectory_steps: int | None = None, seed: int = 0
    ) -> TensorDict:
        """Seeded random-action trajectories in the manner of DINO-WM's Wall data.

        Per trajectory: a layout (:meth:`sample_layouts`), a start uniform over
        the canvas inside the border (moved to a random side if it falls in
        the wall outside the door), and a heading random walk: the first heading uniform, then
        Gaussian turns of std ``sqrt(0.2)`` rad per step, step lengths truncated
        normal (mean 1, std 0.4, in [0.2, 1.8]); an action is the heading's
        unit vector times the step length, so the dot moves about 2 pixels per
        env step. Keys as in :meth:`Task.generate_dataset`; tensors on CPU.
        """
        n, steps, generator = self.dataset_arguments(num_trajectories, trajectory_steps, seed)
        layout = self.sample_layouts(n, generator)
        u = torch.rand(n, 4, generator=generator)
        position = BORDER_LOW + u[:, :2] * (BORDER_HIGH - BORDER_LOW)
        wall_low, wall_high = layout[:, 0] - WALL_HALF_WIDTH, layout[:, 0] + WALL_HALF_WIDTH
        in_wall = ((position[:, 0] >= wall_low) & (position[:, 0] <= wall_high)
                   & ((position[:, 1] - layout[:, 1]).abs() > DOOR_HALF_HEIGHT))
        left = BORDER_LOW + u[:, 2] * (wall_low - BORDER_LOW)
        right = wall_high + u[:, 2] * (BORDER_HIGH - wall_high)
        position[:, 0] = torch.where(in_wall, torch.where(u[:, 3] < 0.5, left, right), position[:, 0])

        heading = 2 * torch.pi * torch.rand(n, generator=generator)
        turns = _HEADING_NOISE * torch.randn(steps, n, generator=generator)
        headings = heading + torch.cat([torch.zeros(1, n), turns[1:]]).cumsum(0)
        lengths = _truncated_normal(torch.rand(steps, n, generator=generator))
        actions = (torch.stack([headings.cos(), headings.sin()], dim=-1) * lengths.unsqueeze(-1)).transpose(0, 1)

        state = torch.cat([position, layout], dim=-1)
        states = [state]
        for t in range(steps):
            state = dinowm_wall_step(state, actions[:, t])
            states.append(state)
        return self.trajectories(torch.stack(states, dim=1), actions.contiguous())


def _truncated_normal(u: torch.Tensor) -> torch.Tensor:
    """Step lengths from uniforms ``u``: normal (mean 1, std 0.4) truncated to [0.2, 1.8], by its inverse CDF."""
    low, high = (torch.special.ndtr(torch.tensor((b - _STEP_MEAN) / _STEP_STD)) for b in (_STEP_LOW, _STEP_HIGH))
    return _STEP_MEAN + _STEP_STD * torch.special.ndtri(low + u * (high - low))
