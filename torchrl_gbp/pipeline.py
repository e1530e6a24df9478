"""End-to-end recipes: collect a dataset, train a world model, evaluate planners, report."""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from torchrl.envs import Compose, Transform

from .data import load_dataset, make_window_buffer, save_dataset
from .evaluate import evaluate
from .models import StateWorldModel, WorldModelConfig, load_checkpoint
from .planners import (
    CrossEntropyPlanner,
    GoalCost,
    GradientPlanner,
    MPCPolicy,
    PathIntegralPlanner,
    Planner,
    SearchBudget,
)
from .recipes import Recipe, recipe_for
from .synthesis import AdversarialSynthesis, OnlineSynthesis
from .tasks import Task, make_task
from .train import build_world_model, csv_logger, train_world_model

PLANNERS = ("gd", "cem", "mppi")
METHODS = ("online", "adversarial", "both")


def make_planner(name: str, model: StateWorldModel, horizon: int = 5, objective: GoalCost | None = None,
                 **kwargs) -> Planner:
    """Build planner ``name`` (``"gd"``, ``"cem"`` or ``"mppi"``) on ``model``.

    ``kwargs`` go to the planner class; a ``budget`` given as a dict becomes a :class:`SearchBudget`.
    """
    classes = {"gd": GradientPlanner, "cem": CrossEntropyPlanner, "mppi": PathIntegralPlanner}
    if name not in classes:
        raise ValueError(f"unknown planner {name!r}; expected one of {sorted(classes)}")
    if isinstance(kwargs.get("budget"), dict):
        kwargs = {**kwargs, "budget": SearchBudget(**kwargs["budget"])}
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


def make_synthesis(method: str, model: StateWorldModel, task: Task, recipe: Recipe, seed: int = 0) -> Transform:
    """The replay-buffer transform of a finetuning ``method``: online, adversarial or both (online then adversarial)."""
    if method not in METHODS:
        raise ValueError(f"unknown finetuning method {method!r}; expected one of {list(METHODS)}")
    parts = []
    if method in ("online", "both"):
        parts.append(OnlineSynthesis(model, task, seed=seed, **recipe.online))
    if method in ("adversarial", "both"):
        parts.append(AdversarialSynthesis(model, generator=torch.Generator().manual_seed(seed), **recipe.adversarial))
    return parts[0] if len(parts) == 1 else Compose(*parts)


def finetune_model(model: StateWorldModel, task: Task, trajectories, method: str, recipe: Recipe,
                   steps: int | None = None, seed: int = 0, predictor_lr: float | None = None,
                   action_encoder_lr: float | None = None, checkpoint_path: str | os.PathLike | None = None,
                   logger=None, progress: bool = True) -> StateWorldModel:
    """Finetune ``model`` in place with a synthesis transform on the replay buffer.

    Only the predictor and the action encoder train (the observation encoder
    stays frozen), each with its own learning rate, as in the paper.
    """
    torch.manual_seed(seed)
    transform = make_synthesis(method, model, task, recipe, seed)
    buffer = make_window_buffer(trajectories, frames=model.num_hist + recipe.window_frames - 1,
                                frameskip=model.frameskip, batch_size=recipe.batch_size, transform=transform,
                                generator=torch.Generator().manual_seed(seed))
    lrs = {"predictor_lr": recipe.finetune_lr["predictor_lr"] if predictor_lr is None else predictor_lr,
           "action_encoder_lr": (recipe.finetune_lr["action_encoder_lr"] if action_encoder_lr is None
                                 else action_encoder_lr)}
    train_world_model(model, buffer, recipe.finetune_steps if steps is None else steps, lr=0.0, encoder_lr=0.0,
                      **lrs, logger=logger, checkpoint_path=checkpoint_path,
                      checkpoint_extra={"task": task.name, "method": method, "seed": seed},
                      progress=progress, description=f"finetune {method}")
    return model


def finetune(task_name: str, checkpoint: str | os.PathLike, method: str, out: str | os.PathLike,
             dataset: str | os.PathLike | None = None, steps: int | None = None, seed: int = 0,
             predictor_lr: float | None = None, action_encoder_lr: float | None = None,
             log_dir: str | os.PathLike | None = None, progress: bool = True) -> StateWorldModel:
    """Load a base checkpoint, finetune it with ``method`` and checkpoint the result to ``out``.

    Without ``dataset`` the task's default dataset is regenerated with ``seed``.
    """
    task = make_task(task_name)
    recipe = recipe_for(task_name)
    model, _ = load_checkpoint(checkpoint)
    trajectories = (load_dataset(dataset) if dataset is not None
                    else task.generate_dataset(recipe.num_trajectories, seed=seed))
    logger = csv_logger(log_dir, f"{task_name}_finetune_{method}") if log_dir is not None else None
    return finetune_model(model, task, trajectories, method, recipe, steps, seed, predictor_lr, action_encoder_lr,
                          checkpoint_path=out, logger=logger, progress=progress)


def summarize(runs: list[dict]) -> list[dict]:
    """Aggregate evaluation runs over seeds: one row per (model, planner), in first-seen order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["model"], run["planner"]), []).append(run)
    rows = []
    for (model, planner), items in groups.items():
        success = torch.tensor([r["success_rate"] for r in items], dtype=torch.float64)
        rows.append({
            "model": model, "planner": planner, "seeds": len(items),
            "success_rate": float(success.mean()),
            "success_std": float(success.std(unbiased=False)) if len(items) > 1 else None,  # None: one seed
            "final_distance": sum(r["final_distance"] for r in items) / len(items),
            "plan_seconds": float(torch.tensor([r["plan_seconds"] for r in items]).median()),
            "plan_seconds_per_env": float(torch.tensor([r["plan_seconds_per_env"] for r in items]).median()),
        })
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table: model, planner, success % (mean +- std where several seeds), distance, seconds, ratio to CEM on base."""
    reference = next((r["plan_seconds"] for r in rows if r["planner"] == "cem" and r["model"] == "base"), None)
    lines = ["| model | planner | success % | final distance | s / plan (batched) | s / plan / env | time vs CEM on base |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['plan_seconds'] / reference:.3f}" if reference else "-"
        std = r.get("success_std")
        success = f"{100 * r['success_rate']:.1f}" + (f" +- {100 * std:.1f}" if std is not None else "")
        lines.append(f"| {r['model']} | {r['planner']} | {success} | {r['final_distance']:.3f} | "
                     f"{r['plan_seconds']:.3f} | {r['plan_seconds_per_env']:.4f} | {ratio} |")
    return "\n".join(lines)


def paper_claims(rows: list[dict]) -> str:
    """The paper's claims checked against summarised rows, one line each, with the numbers.

    Each success comparison also gives the difference in points and whether it
    is within seed noise (no larger than the larger of the two std over seeds).
    """
    by = {(r["model"], r["planner"]): r for r in rows}
    cem, gd = by.get(("base", "cem")), by.get(("base", "gd"))
    if cem is None or gd is None:
        return "claims need base/gd and base/cem rows"

    def pct(r: dict) -> str:
        return f"{100 * r['success_rate']:.1f}%"

    def points(r: dict) -> float:  # success in points, rounded so float32 rates compare exactly
        return round(100 * float(r["success_rate"]), 6)

    def noise(r: dict) -> str:
        diff = points(r) - points(cem)
        if r.get("success_std") is None or cem.get("success_std") is None:
            return f"{diff:+.1f} points, one seed: no noise estimate"
        std = 100 * max(r["success_std"], cem["success_std"])
        within = "within" if abs(diff) <= std else "outside"
        return f"{diff:+.1f} points, {within} seed noise (std {std:.1f})"

    verdict = "holds" if points(gd) < points(cem) else "does not hold"
    lines = [f"1. GD on base ({pct(gd)}) trails CEM on base ({pct(cem)}), the train-test gap: "
             f"{verdict} ({noise(gd)})"]
    for model in [r["model"] for r in rows if r["planner"] == "gd" and r["model"] != "base"]:
        r = by[(model, "gd")]
        verdict = "holds" if points(r) >= points(cem) else "does not hold"
        lines.append(f"2. GD on {model} ({pct(r)}) matches or beats CEM on base ({pct(cem)}): {verdict} ({noise(r)})")
    lines.append(f"3. GD seconds per plan / CEM's: {gd['plan_seconds'] / cem['plan_seconds']:.3f}")
    return "\n".join(lines)


def plot_success_vs_seconds(rows: list[dict], path: str | os.PathLike, title: str) -> Path:
    """Scatter of success rate against seconds per plan, one point per row, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    models = list(dict.fromkeys(r["model"] for r in rows))
    markers = {"gd": "o", "cem": "s", "mppi": "^"}
    for r in rows:
        color = plt.cm.tab10(models.index(r["model"]) % 10)
        ax.errorbar(r["plan_seconds_per_env"], 100 * r["success_rate"], yerr=100 * (r.get("success_std") or 0.0),
                    fmt=markers.get(r["planner"], "o"), color=color, markersize=8, capsize=3,
                    label=f"{r['model']} / {r['planner']}")
    ax.legend(fontsize=7, loc="lower right")
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


def _model_runs(job: dict) -> list[dict]:
    """One unit of :func:`reproduce`: finetune the base checkpoint with ``job["method"]`` ("base": as is), then
    evaluate every planner on the seed's (start, goal) pairs. Runs in-process or in a worker process."""
    if job["threads"] is not None:
        torch.set_num_threads(job["threads"])
    recipe = recipe_for(job["task"], job["quick"])
    task = make_task(job["task"])
    model, _ = load_checkpoint(job["base"])
    method, run_seed, progress = job["method"], job["seed"], job["progress"]
    if method != "base":
        finetune_model(model, task, load_dataset(job["dataset"]), method, recipe, seed=run_seed,
                       logger=csv_logger(job["log_dir"], f"finetune_{method}_seed{run_seed}"),
                       checkpoint_path=job["checkpoint"], progress=progress and job["threads"] is None)
        if progress and job["threads"] is not None:
            print(f"  seed {run_seed} {method}: finetuned", flush=True)
    runs = []
    for name in job["planners"]:
        if name == "mppi" and method not in recipe.mppi_models:
            continue
        metrics = evaluate(make_policy(model, task, name, recipe), task, episodes=recipe.episodes,
                           seed=1000 + run_seed)
        runs.append({"model": method, "planner": name, "seed": run_seed, **metrics})
        if progress:
            print(f"  seed {run_seed} {method}/{name}: success {100 * metrics['success_rate']:.1f}%  "
                  f"{metrics['plan_seconds']:.3f} s/plan", flush=True)
    return runs


def _run_jobs(jobs: list[dict], workers: int) -> list[list[dict]]:
    """Results of :func:`_model_runs` for ``jobs``, in order; in ``workers`` spawned processes when more than one."""
    if workers == 1:
        return [_model_runs(job) for job in jobs]
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_model_runs, [{**job, "threads": threads} for job in jobs]))


def reproduce(task_name: str = "wall", out_dir: str | os.PathLike = "runs", quick: bool = False, seed: int = 0,
              planners: tuple[str, ...] = PLANNERS, methods: tuple[str, ...] = METHODS,
              progress: bool = True, workers: int | None = None) -> dict:
    """Dataset -> base model -> finetuned models -> planners on the same goals -> table and plot.

    The dataset and the base model are made once (``seed``). For each seed of
    the recipe, every ``method`` finetunes a copy of the base model, and every
    model is evaluated with every planner on that seed's (start, goal) pairs
    (MPPI only on the recipe's ``mppi_models``, to bound the run time).
    The (seed, model) units are independent: ``workers`` processes run them
    side by side, each with ``cpu_count // workers`` torch threads (default:
    one worker per CPU core, at most one per unit; ``1`` runs them here, in
    order). Results do not depend on ``workers`` beyond the floating-point
    effect of the thread count.
    Writes ``out_dir/<task>/{dataset, base.pt, <method>_seed<k>.pt, logs,
    results.md, success_vs_seconds.png}`` and returns ``{"rows", "runs", "table", "seconds", "paths"}``.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    start = time.perf_counter()
    recipe = recipe_for(task_name, quick)
    task = make_task(task_name)
    root = Path(out_dir) / task_name
    torch.manual_seed(seed)
    dataset_path = save_dataset(task.generate_dataset(recipe.num_trajectories, seed=seed), root / "dataset")
    trajectories = load_dataset(dataset_path)
    config = WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip,
                              **recipe.model)
    base = build_world_model(config, trajectories)
    buffer = make_window_buffer(trajectories, frames=config.num_hist + recipe.window_frames - 1,
                                frameskip=config.frameskip, batch_size=recipe.batch_size,
                                generator=torch.Generator().manual_seed(seed))
    train_world_model(base, buffer, recipe.train_steps, lr=recipe.lr, logger=csv_logger(root / "logs", "reproduce"),
                      checkpoint_path=root / "base.pt", checkpoint_extra={"task": task_name}, progress=progress,
                      description="base model")
    jobs = [{"task": task_name, "quick": quick, "base": root / "base.pt", "dataset": dataset_path,
             "log_dir": root / "logs", "method": method, "seed": run_seed, "planners": tuple(planners),
             "checkpoint": None if method == "base" else root / f"{method}_seed{run_seed}.pt",
             "progress": progress, "threads": None}
            for run_seed in recipe.seeds for method in ("base", *methods)]
    workers = min(len(jobs), (os.cpu_count() or 1) if workers is None else workers)
    runs = [run for result in _run_jobs(jobs, workers) for run in result]
    rows = summarize(runs)
    table = format_table(rows)
    plot = plot_success_vs_seconds(rows, root / "success_vs_seconds.png", f"{task_name}: success vs planning time")
    seconds = time.perf_counter() - start
    note = (f"{recipe.episodes} episodes per seed, seeds {list(recipe.seeds)} (evaluation pairs and finetuning); "
            f"one dataset and base model (seed {seed}); {seconds:.0f} s total, "
            f"{workers} worker process(es)")
    claims = paper_claims(rows)
    (root / "results.md").write_text(f"{table}\n\n{note}\n\n{claims}\n")
    return {"rows": rows, "runs": runs, "table": table, "note": note, "claims": claims, "seconds": seconds,
            "paths": {"dataset": dataset_path, "checkpoint": root / "base.pt", "plot": plot,
                      "table": root / "results.md"}}
