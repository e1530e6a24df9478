"""Diagnostics for the paper's last claim: finetuning lowers the model's error on
planner-visited states and smooths the planning loss landscape.

Four measurements, each on plain tensors and each reusing the shared pieces
(``world_model.rollout``, :class:`~torchrl_gbp.planners.GoalCost` through
:meth:`Planner.score`):

* :func:`planned_state_error`: plan open loop, execute the plan in the real
  simulator, and compare the model's predicted latents with the encoded true
  observations, step by step.
* :func:`cost_landscape` / :func:`landscape_roughness` / :func:`plot_landscapes`:
  the planning cost over a 2D slice of action space around a plan.
* :func:`gradient_norm_statistics`: gradient norms seen by the gradient
  planner's optimiser, and how often they jump by more than 10x.
* :func:`goal_cost_agreement`: whether the planning cost ranks states by their
  true distance to the goal at all (a blind encoder shows here first).

:func:`torchrl_gbp.experiments.diagnostics.diagnose` runs all four on saved checkpoints and writes
a plot and a markdown table.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

import torch
from tensordict import TensorDict, TensorDictBase

from .checks import check_positive_int
from .io import pyplot, save_figure
from .models import StateWorldModel
from .models.contract import DecodingModel, action_interface, encode_entries, model_device, proprio_dim, require
from .planners import (
    GoalCost,
    GradientPlanner,
    Planner,
    env_action_bounds,
    make_planner,
    planning_inputs,
)
from .tasks import Task
from .tasks.env import execute_actions

Landscape = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

# A gradient norm that grows by more than this factor in one optimiser step counts as a spike.
SPIKE_FACTOR = 10.0
# Below this norm a plan step counts as zero: its landscape direction is unit-norm instead of filter-normalised.
_ZERO_NORM = 1e-6


# ------------------------------------------------------------------ helpers
def make_bounded_gradient_planner(world_model: StateWorldModel, task: Task, horizon: int = 5, steps: int = 300,
                                  lr: float = 0.3, objective: GoalCost | None = None, **kwargs) -> GradientPlanner:
    """A :class:`GradientPlanner` whose actions stay inside the task's action spec.

    Defaults are the paper's open-loop setting (Adam, lr 0.3, 300 steps); the
    objective defaults to the planners' default goal cost. ``kwargs`` go to
    :class:`GradientPlanner`.

    Example:
        >>> from torchrl_gbp.models import WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> make_bounded_gradient_planner(model, WallTask(), steps=10).action_low.shape
        torch.Size([10])
    """
    return make_planner("gd", world_model, horizon, objective, action_spec=task.action_spec, steps=steps,
                        lr=lr, **kwargs)


def sample_pairs(task: Task, num_pairs: int, seed: int = 0,
                 pair_mode: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_pairs`` seeded (start_state, goal_state) pairs from the task's sampler.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> start, goal = sample_pairs(WallTask(), 3, seed=0)
        >>> start.shape, torch.equal(start, sample_pairs(WallTask(), 3, seed=0)[0])
        (torch.Size([3, 2]), True)
    """
    check_positive_int("num_pairs", num_pairs)
    return task.sample_start_goal(num_pairs, torch.Generator().manual_seed(seed), mode=pair_mode)


def execute_open_loop(task: Task, start: torch.Tensor, env_actions: torch.Tensor,
                      goal: torch.Tensor | None = None) -> tuple[TensorDictBase, torch.Tensor]:
    """Run env actions ``(B, H, frameskip, a)`` in the real simulator from states ``start`` ``(B, state_dim)``.

    Uses :func:`~torchrl_gbp.tasks.env.execute_actions` on a fresh
    ``task.make_env(num_envs=B)`` (actions clamped into its action spec).
    Returns the true observation entries after every model step (a TensorDict
    ``(B, H)`` of the task's ``observation_keys``) and the final states ``(B, state_dim)``.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> obs, final = execute_open_loop(WallTask(), torch.zeros(2, 2) - 0.5, torch.ones(2, 3, 5, 2) * 0.1)
        >>> obs["observation"].shape, final.shape
        (torch.Size([2, 3, 2]), torch.Size([2, 2]))
    """
    env = task.make_env(num_envs=start.shape[0], device=start.device)
    observations, states, _ = execute_actions(env, start, env_actions.flatten(1, 2), env_actions.shape[2], goal)
    return observations, states[:, -1]


def plot_predicted_frames(world_model, task: Task, path: str | os.PathLike, num_pairs: int = 3, seed: int = 0,
                          horizon: int = 5, steps: int = 100, lr: float = 0.3,
                          objective: GoalCost | None = None) -> Path:
    """Real vs predicted frames along open-loop GD plans of a pixel world model; saved as PNG.

    For ``num_pairs`` seeded (start, goal) pairs of a pixel task
    (:class:`~torchrl_gbp.tasks.PixelTask`), GD plans ``horizon`` model steps;
    per pair the figure shows the simulator's frames after each planned step
    (top row, goal image last) and the model's predicted latents decoded by the
    image encoder's decoder (bottom row): where they part, the planner has led
    the model off its data.

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.models import PixelWorldModel, PixelWorldModelConfig
        >>> from torchrl_gbp.tasks import make_task
        >>> task = make_task("wall", obs="pixels", image_size=16)
        >>> config = PixelWorldModelConfig(image_size=16, proprio_dim=2, env_action_dim=2, num_hist=1,
        ...                                encoder_options={"patch_size": 8, "token_dim": 4, "hidden_dim": 8},
        ...                                hidden_dim=16, depth=1, heads=2)
        >>> path = plot_predicted_frames(PixelWorldModel(config), task, Path(tempfile.mkdtemp()) / "frames.png",
        ...                              num_pairs=1, horizon=2, steps=2)
        >>> path.name, path.stat().st_size > 0
        ('frames.png', True)
    """
    check_positive_int("num_pairs", num_pairs)
    device = model_device(world_model)
    start, goal = (x.to(device) for x in sample_pairs(task, num_pairs, seed))
    require(world_model, DecodingModel, "plot_predicted_frames")
    objective = objective or GoalCost(proprio_dim=proprio_dim(world_model))
    planner = make_bounded_gradient_planner(world_model, task, horizon, steps, lr, objective)
    z_hist, a_hist, z_goal = planning_inputs(world_model, task.observe(start), task.observe(goal))
    generator = torch.Generator(device=device).manual_seed(seed)
    actions = planner.plan(z_hist, a_hist, z_goal, generator=generator).actions
    with torch.no_grad():
        predicted = world_model.decode(world_model.rollout(z_hist, a_hist, actions))  # (B, H, S, S, 3)
    interface = action_interface(world_model)
    env_actions = interface.to_env(actions)  # (B, H, frameskip, a)
    _, real_states, _ = execute_actions(task.make_env(num_envs=num_pairs, device=device), start,
                                     env_actions.flatten(1, 2), interface.frameskip, goal)
    real = task.render(real_states)  # (B, H, S, S, 3): after each model step
    goal_image = task.render(goal)
    plt = pyplot()
    fig, axes = plt.subplots(2 * num_pairs, horizon + 1, figsize=(1.4 * (horizon + 1), 2.8 * num_pairs),
                             squeeze=False)
    for i in range(num_pairs):
        for t in range(horizon + 1):
            top, bottom = axes[2 * i, t], axes[2 * i + 1, t]
            if t < horizon:
                top.imshow(real[i, t].cpu().numpy())
                bottom.imshow(predicted[i, t].clamp(0, 1).cpu().numpy())
                top.set_title(f"step {t + 1}", fontsize=7)
            else:
                top.imshow(goal_image[i].cpu().numpy())
                top.set_title("goal", fontsize=7)
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
        axes[2 * i, 0].set_ylabel(f"pair {i}: real", fontsize=7)
        axes[2 * i + 1, 0].set_ylabel("predicted", fontsize=7)
        axes[2 * i + 1, horizon].axis("off")
    return save_figure(fig, path)


def _check_planner(world_model: StateWorldModel, planner: Planner) -> None:
    if planner.world_model is not world_model:
        raise ValueError("planner must be built on the world_model being diagnosed; planner.world_model differs")


# ------------------------------------------------- (a) error on planned states
def planned_state_error(world_model: StateWorldModel, task: Task, planner: Planner, num_pairs: int = 50,
                        seed: int = 0, pair_mode: str | None = None) -> dict:
    """The model's latent error on the states its planner drives the real system to.

    Draws ``num_pairs`` seeded (start, goal) pairs, plans open loop from each
    start (history = the start frame repeated, zero past actions; the planner's
    generator is seeded with ``seed``), executes the planned actions in the
    simulator (denormalised, split into ``frameskip`` env actions, clamped to
    the action spec) and rolls the model out on the *same* executed actions.

    Returns:
        ``error_per_step``: list of ``H`` floats, mean over pairs of the mean
        squared error between the predicted latent and ``encode(true obs)``
        after each model step; ``mean_error``: their mean; ``final_distance``:
        mean task distance of the final true state to the goal;
        ``success_rate``: fraction of pairs with ``task.success``;
        ``plan_cost``: mean model cost the planner believed it reached.

    Example:
        >>> from torchrl_gbp.models import WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> planner = GradientPlanner(model, horizon=3, steps=2)
        >>> result = planned_state_error(model, WallTask(), planner, num_pairs=4)
        >>> len(result["error_per_step"]), sorted(result)[:2]
        (3, ['error_per_step', 'final_distance'])
    """
    _check_planner(world_model, planner)
    device = model_device(world_model)
    start, goal = (s.to(device) for s in sample_pairs(task, num_pairs, seed, pair_mode))
    z_hist, a_hist, z_goal = planning_inputs(world_model, task.observe(start), task.observe(goal))
    plan = planner.plan(z_hist, a_hist, z_goal, generator=torch.Generator(device).manual_seed(seed))
    interface = action_interface(world_model)
    low, high = (b.to(device) for b in env_action_bounds(task.action_spec, interface.env_action_dim))
    env_actions = interface.to_env(plan.actions).clamp(low, high)
    true_obs, final_state = execute_open_loop(task, start, env_actions, goal)
    with torch.no_grad():
        predicted = world_model.rollout(z_hist, a_hist, interface.to_model(env_actions))
        error = (predicted - encode_entries(world_model, true_obs)).pow(2).flatten(2).mean(-1).mean(0)  # (H,)
    return {
        "error_per_step": error.tolist(),
        "mean_error": float(error.mean()),
        "final_distance": float(task.distance(final_state, goal).mean()),
        "success_rate": float(task.success(final_state, goal).float().mean()),
        "plan_cost": float(plan.cost.mean()),
    }


def compare_planned_state_error(models: dict[str, StateWorldModel], task: Task,
                                make_planner_fn: Callable[[StateWorldModel], Planner], num_pairs: int = 50,
                                seed: int = 0, pair_mode: str | None = None) -> dict[str, dict]:
    """:func:`planned_state_error` for several models on the same pairs, each planning with its own model.

    Example:
        >>> from torchrl_gbp.models import WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> models = {k: StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5)) for k in "ab"}
        >>> results = compare_planned_state_error(models, WallTask(), lambda m: GradientPlanner(m, steps=1),
        ...                                       num_pairs=2)
        >>> sorted(results)
        ['a', 'b']
    """
    if not models:
        raise ValueError("models must name at least one world model")
    return {name: planned_state_error(model, task, make_planner_fn(model), num_pairs, seed, pair_mode)
            for name, model in models.items()}


# -------------------------------------------------------- (b) cost landscape
def landscape_directions(center_actions: torch.Tensor, directions: torch.Tensor | None = None,
                         seed: int = 0) -> torch.Tensor:
    """Two filter-normalised directions ``(2, H, A)`` around a plan ``(H, A)``.

    Each model step of a direction (one "filter", as in Li et al. 2018) is
    rescaled to the norm of that step of the center plan, or to unit norm where
    the center step is ~zero. Without ``directions`` they are drawn from a
    standard normal seeded with ``seed``.

    Example:
        >>> d = landscape_directions(torch.ones(5, 4) * 2)
        >>> d.shape, torch.allclose(d.norm(dim=-1), torch.full((2, 5), 4.0))
        (torch.Size([2, 5, 4]), True)
    """
    if directions is None:
        generator = torch.Generator().manual_seed(seed)
        directions = torch.randn((2, *center_actions.shape), generator=generator).to(center_actions)
    if tuple(directions.shape) != (2, *center_actions.shape):
        raise ValueError(f"directions must have shape {(2, *center_actions.shape)} (2, H, A), "
                         f"got {tuple(directions.shape)}")
    center_norm = center_actions.norm(dim=-1, keepdim=True)
    target = torch.where(center_norm > _ZERO_NORM, center_norm, torch.ones_like(center_norm))
    return directions / directions.norm(dim=-1, keepdim=True).clamp_min(_ZERO_NORM) * target


@torch.no_grad()
def cost_landscape(world_model: StateWorldModel, planner_objective: GoalCost | None, z_hist: torch.Tensor,
                   a_hist: torch.Tensor, z_goal: torch.Tensor, center_actions: torch.Tensor,
                   directions: torch.Tensor | None = None, span: float = 1.0, resolution: int = 41,
                   seed: int = 0) -> Landscape:
    """The planning cost on a 2D slice of action space around ``center_actions``.

    ``costs[i, j]`` is the planner's cost (:meth:`Planner.score`: the model
    rollout and the goal cost) of ``center + alphas[i] * d1 + betas[j] * d2``,
    with ``d1, d2`` from :func:`landscape_directions` and ``alphas = betas =
    linspace(-span, span, resolution)``; the whole grid is scored in one batched
    call. Candidates are not clipped to the action bounds. With an odd
    ``resolution`` the grid's middle point is the center plan.

    Args:
        world_model: the model to probe.
        planner_objective: the goal cost (``None``: the planners' default).
        z_hist, a_hist, z_goal: one planning problem, unbatched: ``(h, D)``,
            ``(h - 1, A)`` and ``(D,)``.
        center_actions: the plan ``(H, A)`` (normalised model actions).
        directions: ``(2, H, A)`` raw directions, or ``None`` for seeded random ones.
        span: half width of the slice in units of the normalised directions.
        resolution: grid points per axis.
        seed: seed of the random directions.

    Returns:
        ``(alphas (R,), betas (R,), costs (R, R))``.

    Example:
        >>> from torchrl_gbp.models import WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> alphas, betas, costs = cost_landscape(model, None, torch.zeros(1, 2), torch.zeros(0, 2),
        ...                                       torch.ones(2), torch.zeros(5, 2), resolution=11)
        >>> costs.shape
        torch.Size([11, 11])
    """
    if center_actions.ndim != 2 or center_actions.shape[-1] != world_model.action_dim:
        raise ValueError(f"center_actions must have shape (H, action_dim={world_model.action_dim}), "
                         f"got {tuple(center_actions.shape)}")
    if z_hist.ndim != 2 or a_hist.ndim != 2 or z_goal.ndim != 1:
        raise ValueError(f"cost_landscape takes one unbatched problem: z_hist (h, D), a_hist (h - 1, A), z_goal (D,); "
                         f"got {tuple(z_hist.shape)}, {tuple(a_hist.shape)}, {tuple(z_goal.shape)}")
    if resolution < 3:
        raise ValueError(f"resolution must be >= 3, got {resolution}")
    if span <= 0:
        raise ValueError(f"span must be > 0, got {span}")
    d1, d2 = landscape_directions(center_actions, directions, seed)
    alphas = torch.linspace(-span, span, resolution, dtype=center_actions.dtype, device=center_actions.device)
    betas = alphas.clone()
    grid = (center_actions + alphas[:, None, None, None] * d1 + betas[None, :, None, None] * d2)  # (R, R, H, A)
    scorer = GradientPlanner(world_model, objective=planner_objective, horizon=center_actions.shape[0], steps=0)
    costs = scorer.score(z_hist[None], a_hist[None], z_goal[None], grid.reshape(1, -1, *center_actions.shape))
    return alphas, betas, costs.reshape(resolution, resolution)


def landscape_roughness(costs: torch.Tensor) -> float:
    """Mean absolute second difference of a cost grid, divided by the grid's cost range.

    Second differences are taken along both axes (``c[i-1] - 2 c[i] + c[i+1]``)
    and their absolute values averaged; dividing by ``max - min`` makes the
    number independent of the cost's scale and offset. A plane scores 0, a
    smooth bowl scores little, noise or kinks score a lot. Compare values only
    between grids of the same ``resolution`` and ``span``. A constant grid is 0.

    Example:
        >>> a = torch.linspace(-1, 1, 21)
        >>> bowl = a[:, None] ** 2 + a[None, :] ** 2
        >>> landscape_roughness(bowl) < landscape_roughness(bowl + 0.1 * torch.randn(21, 21))
        True
    """
    if costs.ndim != 2 or min(costs.shape) < 3:
        raise ValueError(f"costs must be a 2D grid of at least 3 x 3, got shape {tuple(costs.shape)}")
    costs = costs.double()
    spread = float(costs.max() - costs.min())
    if spread == 0.0 or not torch.isfinite(costs).all():
        return 0.0 if spread == 0.0 else float("inf")
    along_rows = (costs[2:] - 2 * costs[1:-1] + costs[:-2]).abs().mean()
    along_cols = (costs[:, 2:] - 2 * costs[:, 1:-1] + costs[:, :-2]).abs().mean()
    return float((along_rows + along_cols) / 2 / spread)


def plot_landscapes(landscapes: dict[str, Landscape], path: str | os.PathLike, title: str | None = None) -> Path:
    """Filled contour maps of ``log10(cost)``, one per model, on one shared colour scale; saved as PNG.

    ``landscapes`` maps a model name to ``cost_landscape``'s ``(alphas, betas,
    costs)``; the center plan is marked with a cross.

    Example:
        >>> a = torch.linspace(-1, 1, 5)
        >>> grid = (a, a, a[:, None] ** 2 + a[None, :] ** 2 + 1)
        >>> import tempfile; out = Path(tempfile.mkdtemp()) / "l.png"
        >>> plot_landscapes({"base": grid}, out).stat().st_size > 0
        True
    """
    plt = pyplot()
    if not landscapes:
        raise ValueError("landscapes must hold at least one (alphas, betas, costs) entry")
    logs = {name: costs.detach().double().clamp_min(1e-12).log10().cpu() for name, (_, _, costs) in landscapes.items()}
    low = min(float(v.min()) for v in logs.values())
    high = max(float(v.max()) for v in logs.values())
    levels = torch.linspace(low, high if high > low else low + 1.0, 30).tolist()
    fig, axes = plt.subplots(1, len(landscapes), figsize=(4.0 * len(landscapes) + 1.2, 4.0), squeeze=False,
                             layout="constrained")
    for ax, (name, (alphas, betas, _)) in zip(axes[0], landscapes.items()):
        filled = ax.contourf(alphas.cpu().numpy(), betas.cpu().numpy(), logs[name].T.numpy(), levels=levels,
                             cmap="viridis", extend="both")
        ax.plot(0.0, 0.0, "wx", markersize=8)
        ax.set_title(name)
        ax.set_xlabel("direction 1")
    axes[0, 0].set_ylabel("direction 2")
    fig.colorbar(filled, ax=axes[0].tolist(), label="log10 planning cost", format="%.2f")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=110)


# ---------------------------------------------------- (c) gradient-norm spikes
def _record_with_hook(planner: GradientPlanner, z_hist, a_hist, z_goal, init, generator) -> list[torch.Tensor]:
    """Per-step gradient norms ``(B * R,)`` read through ``GradientPlanner.callback``."""
    norms: list[torch.Tensor] = []
    recorder = copy.copy(planner)
    recorder.callback = lambda step, actions, cost, grad: norms.append(grad.flatten(2).norm(dim=-1).flatten())
    recorder.plan(z_hist, a_hist, z_goal, init=init, generator=generator)
    return norms


def gradient_norm_statistics(world_model: StateWorldModel, planner: GradientPlanner, z_hist: torch.Tensor,
                             a_hist: torch.Tensor, z_goal: torch.Tensor, init: torch.Tensor | None = None,
                             seed: int = 0) -> dict[str, float]:
    """Statistics of the action-gradient norms along the gradient planner's optimisation.

    One norm per optimiser step and search (batch element x restart), taken
    over the whole ``(H, A)`` gradient of that search's cost, read through the
    planner's ``callback`` hook (on a copy of the planner). The generator is seeded with
    ``seed``, as :func:`planned_state_error` does, so both see the same search.

    Returns:
        ``grad_norm_mean``, ``grad_norm_median``, ``grad_norm_max``;
        ``spike_fraction``: fraction of consecutive step pairs (per search)
        where the norm grew by more than ``SPIKE_FACTOR`` (10x);
        ``steps``: optimiser steps recorded.

    Example:
        >>> from torchrl_gbp.models import WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> planner = GradientPlanner(model, horizon=3, steps=4)
        >>> stats = gradient_norm_statistics(model, planner, torch.zeros(2, 1, 2), torch.zeros(2, 0, 2),
        ...                                  torch.ones(2, 2))
        >>> sorted(stats)
        ['grad_norm_max', 'grad_norm_mean', 'grad_norm_median', 'spike_fraction', 'steps']
    """
    _check_planner(world_model, planner)
    if not isinstance(planner, GradientPlanner):
        raise ValueError(f"planner must be a GradientPlanner, got {type(planner).__name__}")
    if planner.steps < 1:
        raise ValueError(f"planner.steps must be >= 1 to record gradients, got {planner.steps}")
    generator = torch.Generator(z_hist.device).manual_seed(seed)
    norms = torch.stack(_record_with_hook(planner, z_hist, a_hist, z_goal, init, generator)).double()  # (steps, B * R)
    spikes = norms[1:] > SPIKE_FACTOR * norms[:-1]
    return {
        "grad_norm_mean": float(norms.mean()),
        "grad_norm_median": float(norms.median()),
        "grad_norm_max": float(norms.max()),
        "spike_fraction": float(spikes.double().mean()) if spikes.numel() else 0.0,
        "steps": norms.shape[0],
    }


# ------------------------------------------- (d) does the cost see the goal?
def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two 1-d tensors (ties broken by order).

    Example:
        >>> rank_correlation(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 30.0, 20.0]))
        0.5
    """
    if a.shape != b.shape or a.ndim != 1 or a.numel() < 2:
        raise ValueError(f"rank_correlation needs two 1-d tensors of one length >= 2, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    ranks = torch.stack([a.argsort().argsort(), b.argsort().argsort()]).double()
    return float(torch.corrcoef(ranks)[0, 1])


def goal_cost_agreement(world_model: StateWorldModel, task: Task, objective: GoalCost, num_pairs: int = 200,
                        seed: int = 0, pair_mode: str | None = None) -> dict[str, float]:
    """How well the planning cost of a state ranks its true distance to the goal, before any planning.

    Encodes ``num_pairs`` seeded (state, goal) pairs and ranks their one-step
    cost ``objective.step_costs(encode(state), encode(goal))`` against
    ``task.distance(state, goal)``. Returns the rank correlations of the whole
    cost (``"cost"``), of its latent part without the proprio entries
    (``"latent"``) and of the proprio part (``"proprio"``, NaN without one).
    Near 1: descending the cost moves the system toward the goal; near 0 the
    planner is blind there, whatever its budget (for example patch tokens that
    only tell which patch holds a small object, under a cost that ignores the
    proprio part). Check it before spending hours on an evaluation.

    Example:
        >>> from torchrl_gbp.models import WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> sorted(goal_cost_agreement(model, WallTask(), GoalCost(), num_pairs=8))
        ['cost', 'latent', 'proprio']
    """
    check_positive_int("num_pairs", num_pairs)
    device = model_device(world_model)
    start, goal = (s.to(device) for s in sample_pairs(task, num_pairs, seed, pair_mode))
    with torch.no_grad():
        z, z_goal = (encode_entries(world_model, TensorDict(task.observe(states), batch_size=states.shape[:1]))
                     for states in (start, goal))
    true = task.distance(start, goal).double().cpu()
    p = objective.proprio_dim
    parts = {"cost": GoalCost("last", alpha=objective.alpha, proprio_dim=p),
             "latent": GoalCost("last", alpha=0.0, proprio_dim=p)}
    result = {name: rank_correlation(cost.step_costs(z.unsqueeze(1), z_goal)[:, 0].double().cpu(), true)
              for name, cost in parts.items()}
    result["proprio"] = (rank_correlation((z[:, -p:] - z_goal[:, -p:]).pow(2).mean(-1).double().cpu(), true)
                         if p else float("nan"))
    return result
