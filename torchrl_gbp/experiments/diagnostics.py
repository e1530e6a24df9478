"""The diagnostics report: :mod:`torchrl_gbp.diagnostics`' measurements on saved checkpoints, as a plot and a
markdown table (``torchrl-gbp diagnose``)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..checks import check_positive_int
from ..diagnostics import (
    SPIKE_FACTOR,
    Landscape,
    cost_landscape,
    goal_cost_agreement,
    gradient_norm_statistics,
    landscape_roughness,
    make_bounded_gradient_planner,
    planned_state_error,
    plot_landscapes,
    plot_predicted_frames,
    sample_pairs,
)
from ..io import atomic_write_text
from ..models import StateWorldModel, load_checkpoint, observation_of
from ..models.contract import model_device
from ..planners import GradientPlanner, planning_inputs
from .pipeline import task_for_model
from .recipes import apply_profile, recipe_for
from .reporting import markdown_table


# ------------------------------------------------------------ (e) the report
def _mean_roughness(model: StateWorldModel, planner: GradientPlanner, problems, seed: int, span: float,
                    resolution: int) -> tuple[float, Landscape]:
    """Plan each problem, slice the landscape around the plan; mean roughness and the first landscape."""
    z_hist, a_hist, z_goal = problems
    plan = planner.plan(z_hist, a_hist, z_goal, generator=torch.Generator(z_hist.device).manual_seed(seed))
    landscapes = [cost_landscape(model, planner.objective, z_hist[i], a_hist[i], z_goal[i], plan.actions[i],
                                 span=span, resolution=resolution, seed=seed) for i in range(z_hist.shape[0])]
    roughness = sum(landscape_roughness(costs) for _, _, costs in landscapes) / len(landscapes)
    return roughness, landscapes[0]


def format_diagnostics_table(results: dict[str, dict]) -> str:
    """Markdown table of :func:`diagnose`'s per-model numbers.

    Example:
        >>> row = {"mean_error": 0.1, "error_per_step": [0.05, 0.15], "final_distance": 0.3, "success_rate": 0.5,
        ...        "roughness": 0.01, "grad_norm_median": 1.0, "grad_norm_max": 9.0, "spike_fraction": 0.0,
        ...        "cost_agreement": 0.9}
        >>> format_diagnostics_table({"base": row}).splitlines()[2].startswith("| base | 0.1")
        True
    """
    header = ["model", "error on planned states (mean)", "error per step", "final distance", "success %",
              "roughness", "grad-norm median", "grad-norm max", "spikes %", "cost vs distance (rank corr.)"]
    return markdown_table(header, [
        [name, f"{r['mean_error']:.4g}", ", ".join(f"{e:.3g}" for e in r["error_per_step"]),
         f"{r['final_distance']:.3f}", f"{100 * r['success_rate']:.1f}", f"{r['roughness']:.4g}",
         f"{r['grad_norm_median']:.3g}", f"{r['grad_norm_max']:.3g}", f"{100 * r['spike_fraction']:.2f}",
         f"{r['cost_agreement']:.2f}"]
        for name, r in results.items()])


def diagnose(task_name: str, checkpoints: dict[str, str | os.PathLike], out_dir: str | os.PathLike,
             num_pairs: int = 50, seed: int = 0, landscape_pairs: int = 8, profile: Mapping[str, Any] = {},
             planner_steps: int = 300, planner_lr: float = 0.3, span: float = 1.0, resolution: int = 41,
             pair_mode: str | None = None) -> dict:
    """Model error on planned states, landscape roughness and gradient-norm spikes of saved models.

    Every checkpoint plans with its own open-loop gradient planner
    (:func:`make_bounded_gradient_planner`: paper's open-loop Adam, lr 0.3, 300
    steps) with the task recipe's goal cost and horizon (``horizon`` overrides
    it) on the same ``num_pairs`` seeded pairs.
    Roughness is the mean :func:`landscape_roughness` over the first
    ``landscape_pairs`` pairs, each sliced around that model's own plan; the
    first pair's landscapes are plotted. Gradient statistics cover all pairs.

    Writes ``out_dir/landscape.png`` and ``out_dir/diagnostics.md`` (and, for pixel models, real vs
    predicted frames along GD plans, ``out_dir/frames_<name>.png``: :func:`plot_predicted_frames`); returns
    ``{"models": {name: numbers}, "table": str, "paths": {"plot", "table", "frames_<name>"...}}``.
    Pixel checkpoints are diagnosed on the task's pixels (all checkpoints must be of one kind).

    Example:
        >>> diagnose("wall", {}, "runs/wall/diagnostics")  # arguments are checked before anything runs
        Traceback (most recent call last):
        ...
        ValueError: checkpoints must name at least one checkpoint (name -> path)
        >>> diagnose("wall", {"base": "runs/wall/base.pt", "online": "runs/wall/online_seed0.pt"},
        ...          "runs/wall/diagnostics")  # doctest: +SKIP
    """
    if not checkpoints:
        raise ValueError("checkpoints must name at least one checkpoint (name -> path)")
    check_positive_int("landscape_pairs", landscape_pairs)
    models = {name: load_checkpoint(path)[0] for name, path in checkpoints.items()}
    kinds = {name: observation_of(model) for name, model in models.items()}
    if len(set(kinds.values())) > 1:
        raise ValueError(f"checkpoints must all be state models or all pixel models, got {kinds}")
    obs = next(iter(kinds.values()))
    task = task_for_model(task_name, next(iter(models.values())))
    recipe = apply_profile(recipe_for(task_name, obs=obs), profile, "overrides")
    horizon = recipe.evaluation.horizon
    start, goal = sample_pairs(task, num_pairs, seed, pair_mode)
    results, landscapes, frames = {}, {}, {}
    for name, model in models.items():
        model.eval()
        objective = recipe.objective.goal_cost(model.config.proprio_dim)
        planner = make_bounded_gradient_planner(model, task, horizon, planner_steps, planner_lr, objective)
        numbers = planned_state_error(model, task, planner, num_pairs, seed, pair_mode)
        device = model_device(model)
        problems = planning_inputs(model, task.observe(start.to(device)), task.observe(goal.to(device)))
        few = tuple(p[:landscape_pairs] for p in problems)
        numbers["roughness"], landscapes[name] = _mean_roughness(model, planner, few, seed, span, resolution)
        numbers.update(gradient_norm_statistics(model, planner, *problems, seed=seed))
        numbers["cost_agreement"] = goal_cost_agreement(model, task, objective, max(num_pairs, 2), seed,
                                                        pair_mode)["cost"]
        results[name] = numbers
        if obs == "pixels":
            frames[name] = plot_predicted_frames(model, task, Path(out_dir) / f"frames_{name}.png", seed=seed,
                                                 horizon=horizon, steps=planner_steps, lr=planner_lr,
                                                 objective=objective)
    out = Path(out_dir)
    plot = plot_landscapes(landscapes, out / "landscape.png", f"{task_name}: planning cost around the GD plan")
    table = format_diagnostics_table(results)
    note = (f"{num_pairs} (start, goal) pairs (seed {seed}); open-loop GD, horizon {horizon}, {planner_steps} steps, "
            f"lr {planner_lr}; roughness averaged over {min(landscape_pairs, num_pairs)} pairs on a "
            f"{resolution}x{resolution} grid of span {span}; spikes: gradient norm growing > {SPIKE_FACTOR:g}x "
            "in one step; cost vs distance: rank correlation of the goal cost of a state with its true distance "
            "to the goal over the same pairs (goal_cost_agreement).")
    table_path = out / "diagnostics.md"
    atomic_write_text(table_path, f"{table}\n\n{note}\n")
    return {"models": results, "table": table, "note": note,
            "paths": {"plot": plot, "table": table_path, **{f"frames_{k}": v for k, v in frames.items()}}}
