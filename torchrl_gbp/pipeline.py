"""End-to-end recipes: collect a dataset, train a world model, evaluate planners, report."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .data import load_dataset, make_window_buffer, save_dataset
from .evaluate import evaluate
from .models import StateWorldModel, WorldModelConfig, load_checkpoint
from .planners import CrossEntropyPlanner, GoalCost, GradientPlanner, MPCPolicy, PathIntegralPlanner, Planner
from .tasks import Task, make_task
from .train import build_world_model, csv_logger, train_world_model

PLANNERS = ("gd", "cem", "mppi")


@dataclass
class Recipe:
    """Defaults for one task: data, model, training and planner budgets.

    ``planner_kwargs`` maps a planner name (``"gd"``, ``"cem"``, ``"mppi"``) to
    constructor arguments of :class:`GradientPlanner`, :class:`CrossEntropyPlanner`
    or :class:`PathIntegralPlanner`.
    """

    num_trajectories: int = 2000
    model: dict = field(default_factory=lambda: {"num_hist": 1, "hidden_dim": 256, "depth": 3})
    window_frames: int = 5
    train_steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    horizon: int = 5
    objective: dict = field(default_factory=lambda: {"mode": "all", "base": 0.5, "alpha": 1.0})
    planner_kwargs: dict = field(default_factory=lambda: {
        "gd": {"steps": 100, "lr": 0.2, "noise_std": 0.003},
        "cem": {"samples": 300, "elites": 30, "iterations": 30},
        "mppi": {"samples": 300, "elites": 30, "iterations": 30, "temperature": 0.05},
    })
    episodes: int = 50

    def quick(self) -> "Recipe":
        """A smaller run of the same recipe (minutes, not tens of minutes)."""
        budgets = {k: dict(v) for k, v in self.planner_kwargs.items()}
        for name in ("cem", "mppi"):
            budgets[name].update(samples=100, elites=10, iterations=10)
        return replace(self, num_trajectories=500, train_steps=800, episodes=20, planner_kwargs=budgets)


RECIPES: dict[str, Recipe] = {"wall": Recipe()}


def recipe_for(task_name: str, quick: bool = False) -> Recipe:
    """The recipe of ``task_name`` (the quick variant when ``quick``)."""
    if task_name not in RECIPES:
        raise ValueError(f"no recipe for task {task_name!r}; known: {sorted(RECIPES)}")
    recipe = RECIPES[task_name]
    return recipe.quick() if quick else recipe


def make_planner(name: str, model: StateWorldModel, horizon: int = 5, objective: GoalCost | None = None,
                 **kwargs) -> Planner:
    """Build planner ``name`` (``"gd"``, ``"cem"`` or ``"mppi"``) on ``model``."""
    classes = {"gd": GradientPlanner, "cem": CrossEntropyPlanner, "mppi": PathIntegralPlanner}
    if name not in classes:
        raise ValueError(f"unknown planner {name!r}; expected one of {sorted(classes)}")
    return classes[name](model, objective=objective, horizon=horizon, **kwargs)


def make_policy(model: StateWorldModel, task: Task, planner: str, recipe: Recipe, **planner_overrides) -> MPCPolicy:
    """An MPC policy for ``task`` with the recipe's budget for ``planner`` (overridable)."""
    kwargs = {**recipe.planner_kwargs.get(planner, {}), **planner_overrides}
    objective = GoalCost(**recipe.objective, proprio_dim=model.config.proprio_dim)
    plan = make_planner(planner, model, recipe.horizon, objective, **kwargs)
    return MPCPolicy(model, plan, task.make_env().action_spec)


def collect(task_name: str, out: str | os.PathLike, num_trajectories: int | None = None, seed: int = 0,
            trajectory_steps: int | None = None) -> Path:
    """Generate the task's seeded dataset and save it atomically to ``out``."""
    task = make_task(task_name)
    n = num_trajectories if num_trajectories is not None else recipe_for(task_name).num_trajectories
    return save_dataset(task.generate_dataset(n, trajectory_steps, seed=seed), out)


def train(task_name: str, dataset: str | os.PathLike, out: str | os.PathLike, steps: int | None = None,
          lr: float | None = None, batch_size: int | None = None, seed: int = 0,
          log_dir: str | os.PathLike | None = None, progress: bool = True, **model_overrides) -> StateWorldModel:
    """Train a world model on a saved dataset and checkpoint it to ``out``."""
    task = make_task(task_name)
    recipe = recipe_for(task_name)
    torch.manual_seed(seed)
    trajectories = load_dataset(dataset)
    config = WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip,
                              **{**recipe.model, **model_overrides})
    model = build_world_model(config, trajectories)
    buffer = make_window_buffer(trajectories, frames=config.num_hist + recipe.window_frames - 1,
                                frameskip=config.frameskip, batch_size=batch_size or recipe.batch_size,
                                generator=torch.Generator().manual_seed(seed))
    logger = csv_logger(log_dir, f"{task_name}_train") if log_dir is not None else None
    train_world_model(model, buffer, steps if steps is not None else recipe.train_steps,
                      lr=lr if lr is not None else recipe.lr, logger=logger, checkpoint_path=out,
                      checkpoint_extra={"task": task_name}, progress=progress)
    return model


def evaluate_checkpoint(task_name: str, checkpoint: str | os.PathLike, planner: str = "gd", episodes: int | None = None,
                        seed: int = 0, **planner_overrides) -> dict[str, float]:
    """Evaluate ``planner`` on a saved world model over ``episodes`` seeded (start, goal) pairs."""
    task = make_task(task_name)
    recipe = recipe_for(task_name)
    model, _ = load_checkpoint(checkpoint)
    policy = make_policy(model, task, planner, recipe, **planner_overrides)
    return evaluate(policy, task, episodes=episodes or recipe.episodes, seed=seed)


def format_table(rows: list[dict]) -> str:
    """Markdown table of evaluation rows (model, planner, success, distance, seconds, ratio to CEM)."""
    reference = next((r["plan_seconds"] for r in rows if r["planner"] == "cem" and r["model"] == "base"), None)
    lines = ["| model | planner | success % | final distance | s / plan (batched) | s / plan / env | time vs CEM |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['plan_seconds'] / reference:.3f}" if reference else "-"
        lines.append(f"| {r['model']} | {r['planner']} | {100 * r['success_rate']:.1f} | {r['final_distance']:.3f} | "
                     f"{r['plan_seconds']:.3f} | {r['plan_seconds_per_env']:.4f} | {ratio} |")
    return "\n".join(lines)


def plot_success_vs_seconds(rows: list[dict], path: str | os.PathLike, title: str) -> Path:
    """Scatter of success rate against seconds per plan, one point per row, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in rows:
        ax.scatter(r["plan_seconds_per_env"], 100 * r["success_rate"], s=50)
        ax.annotate(f"{r['model']}/{r['planner']}", (r["plan_seconds_per_env"], 100 * r["success_rate"]),
                    textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per plan per env (log)")
    ax.set_ylabel("success %")
    ax.set_ylim(-5, 105)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def reproduce(task_name: str = "wall", out_dir: str | os.PathLike = "runs", quick: bool = False, seed: int = 0,
              planners: tuple[str, ...] = PLANNERS, progress: bool = True) -> dict:
    """Dataset -> base world model -> every planner on the same goals -> table and plot.

    Writes ``out_dir/<task>/{dataset, base.pt, results.md, success_vs_seconds.png}``
    and returns ``{"rows", "table", "seconds", "paths"}``.
    """
    start = time.perf_counter()
    recipe = recipe_for(task_name, quick)
    task = make_task(task_name)
    root = Path(out_dir) / task_name
    torch.manual_seed(seed)
    dataset_path = save_dataset(task.generate_dataset(recipe.num_trajectories, seed=seed), root / "dataset")
    trajectories = load_dataset(dataset_path)
    config = WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip,
                              **recipe.model)
    model = build_world_model(config, trajectories)
    buffer = make_window_buffer(trajectories, frames=config.num_hist + recipe.window_frames - 1,
                                frameskip=config.frameskip, batch_size=recipe.batch_size,
                                generator=torch.Generator().manual_seed(seed))
    train_world_model(model, buffer, recipe.train_steps, lr=recipe.lr, logger=csv_logger(root / "logs", "base"),
                      checkpoint_path=root / "base.pt", checkpoint_extra={"task": task_name}, progress=progress,
                      description="base model")
    rows = []
    for name in planners:
        policy = make_policy(model, task, name, recipe)
        metrics = evaluate(policy, task, episodes=recipe.episodes, seed=seed + 1000)
        rows.append({"model": "base", "planner": name, **metrics})
        if progress:
            print(f"  {name}: success {100 * metrics['success_rate']:.1f}%  "
                  f"{metrics['plan_seconds']:.3f} s/plan", flush=True)
    table = format_table(rows)
    plot = plot_success_vs_seconds(rows, root / "success_vs_seconds.png", f"{task_name}: success vs planning time")
    seconds = time.perf_counter() - start
    (root / "results.md").write_text(f"{table}\n\n{recipe.episodes} episodes, seed {seed}, {seconds:.0f} s total\n")
    return {"rows": rows, "table": table, "seconds": seconds,
            "paths": {"dataset": dataset_path, "checkpoint": root / "base.pt", "plot": plot,
                      "table": root / "results.md"}}
