"""Ablations on tuning pairs: what in finetuning lets gradient MPC match CEM, and what does not.

Run after ``torchrl-gbp reproduce --task T --protocol paper --out RUNS`` (it trains the dataset, base model and
finetuned models this script starts from):

    python benchmarks/ablations.py --task pusht --runs RUNS [--obs pixels]
        [--ablations steps,open_loop_steps,finetune,finetuning,online,adversarial,horizon,model,recipe,reference,ours_steps]
        [--methods online,adversarial]
        [--seeds 5000,5001,5002] [--episodes 50] [--quick]

Every evaluation but the ``recipe`` and ``ours_steps`` ablations' is the paper's protocol
(:mod:`torchrl_gbp.experiments.protocol`: its pairs, sticky success, Adam MPC at lr 0.2 with one model step executed per
replan) on pairs drawn with a tuning seed
(:data:`torchrl_gbp.experiments.recipes.TUNING_PAIR_SEEDS`), never a reported one, and every finetuning here uses that seed
too. Each row also holds the model's error on the states its own open-loop Adam plans drive the simulator to
(:func:`torchrl_gbp.diagnostics.planned_state_error`, the task's own pairs, same seed; Adam at the row's step
count, or the paper's open-loop 300 steps where the row sets none, as in the CEM row).

- ``steps``: Adam MPC at 10, 30, 100 and 300 optimiser steps per call on the run's base model and each
  finetuned model it has (finetuned with seed 0), and CEM MPC on base at the paper's budget as the target: does
  synthesis let GD optimise longer without exploiting the model?
- ``open_loop_steps``: the same question where replanning cannot hide it: Adam open loop (one plan, executed
  whole) at 10, 30, 100, 300 and 1000 optimiser steps on each model, and CEM open loop on base.
- ``finetune``: online and adversarial finetuning from the base model at predictor lr 1e-5 (the paper's) and
  1e-4 (the recipes'), for the recipe's finetuning steps and 3x as many.
- ``finetuning``: the finetuning choices where the reference code and ours differ, each finetuned from the base
  model and planned by Adam MPC and Adam open loop: our optimiser (Adam at the recipe's rates, gradient norm
  clipped at 1, no dropout) against the reference's (AdamW, predictor 1e-5, encoders 5e-4, weight decay 0.01,
  dropout 0.1, no clipping, train-mode synthesis, the per-window radius), for online synthesis each under our
  ``replace`` schedule and the reference's ``append`` one, and for adversarial synthesis the reference's optimiser
  also for 3x the recipe's steps (the amount; online finetuning steps the simulator and is too slow for that here).
- ``online``: how online data enter: the recipe's settings; synthesis every 10 batches; a bounded cache of 512
  windows; 30 planner steps instead of 100.
- ``horizon``: Adam MPC on the base model at planning horizons 3, 5 (the paper's) and 8 model steps, and CEM
  MPC at 5, each scored separately on the nearest, middle and farthest third of the pairs by start-goal
  distance (the planned-state error is the whole row's).
- ``model``: base models trained like the run's, but at half and twice the predictor width and, for the
  history, with 1 and 3 frames (the recipe's values are not retrained), each planned by Adam MPC and CEM MPC:
  does a larger or better-informed model close the gap without synthesis?
- ``adversarial``: the recipe's (adaptive radius, FGSM, perturbed rows only); radius fixed on the first batch;
  radius factors x0.5 and x2; 3 ascent steps (PGD); half the rows perturbed.
- ``ours_steps``: claim (c) under our protocol (final-state success): Adam MPC at the recipe ablation's step
  counts on the base model and each finetuned model of the run (seed 0).
- ``reference``: Adam MPC and CEM MPC on the base model at the paper's budgets, the same-seed anchor for the
  finetuning ablations' rows.
- ``choices``: the protocol's evaluation choices where the reference code and ours differ
  (``EVALUATION_CHOICES`` of :class:`~torchrl_gbp.experiments.protocol.ProtocolChoices`, ours in ``OUR_CHOICES``;
  the models are the run's, finetuned as it finetuned them): Adam open loop and Adam MPC on each model of the run under the reference's choices, under each single one
  switched to ours, and under all of ours; CEM open loop and MPC on base under both: which choice moves
  success, and does it make synthesis matter? Rows are scored by each setting's own success rule.
- ``recipe``: the recipe's own planner choices under *our* protocol (``torchrl-gbp reproduce --protocol ours``:
  the env's pairs, the recipe's horizon, objective and budgets, final-state success), on the base model: Adam
  MPC at 3, 1x, 3x and 10x the recipe's GD steps per call and with the other proprio weight alpha (0.1 or 1),
  CEM MPC from initial sampling stds 0.25, 0.5 and 1 and with the other alpha. The planned-state error of
  these rows is each row's own planner planning open loop.

``--obs pixels`` starts from ``RUNS/<task>_pixels`` (``reproduce --obs pixels``), with the pixel runs' sampling
budget. Several ``--seeds`` repeat every row on each tuning seed.

The raw rows go to ``benchmarks/results/raw/ablations_<task>[_pixels]/rows.json`` as each finishes (with the
command and the machine; rows of ablations or seeds not rerun are kept, also those another run of this script, on
other ablations, writes meanwhile); at the end their page, ``docs/results/ablations_<task>[_pixels].md``, one table
per ablation, is rendered from them (``benchmarks/regenerate.py``).
"""
from __future__ import annotations

import argparse
import copy
import fcntl
import json
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from regenerate import RAW, update

from torchrl_gbp.data import load_dataset
from torchrl_gbp.diagnostics import planned_state_error
from torchrl_gbp.evaluate import evaluate
from torchrl_gbp.experiments.pipeline import finetune_model, finetuning_options, make_policy, train_base_model
from torchrl_gbp.experiments.protocol import (
    EVALUATION_CHOICES,
    OUR_CHOICES,
    PaperSettings,
    evaluate_paper_cell,
    paper_planner,
    paper_settings,
    protocol_pairs,
)
from torchrl_gbp.experiments.recipes import TUNING_PAIR_SEEDS, Recipe, apply_profile, recipe_for
from torchrl_gbp.experiments.reproduce import finetuned_checkpoint
from torchrl_gbp.io import atomic_write_text
from torchrl_gbp.models import load_checkpoint
from torchrl_gbp.planners import PlannerOptions
from torchrl_gbp.tasks import Task, make_task

ABLATIONS = ("steps", "open_loop_steps", "finetune", "finetuning", "online", "adversarial", "horizon", "model", "recipe",
             "reference", "ours_steps", "choices")
STEP_BUDGETS = (10, 30, 100, 300)
OPEN_LOOP_STEP_BUDGETS = (10, 30, 100, 300, 1000)
HORIZONS = (3, 5, 8)


def cell_result(metrics: dict, error: dict) -> dict:
    """One ablation cell from an evaluation's ``metrics`` and a planned-state ``error``: per-episode
    ``sticky_success``, ``success`` and ``final_distance`` tensors, ``plan_seconds`` and ``planned_error``."""
    per_episode = {key: torch.tensor(metrics["episodes"][key], dtype=torch.float64)
                   for key in ("sticky_success", "success", "final_distance")}
    return {**per_episode, "plan_seconds": float(metrics["plan_seconds"]), "planned_error": error["mean_error"]}


def evaluate_model(model, task: Task, settings: PaperSettings, pairs, seed: int, steps: int | None = None,
                   planner: str = "adam", mode: str = "mpc") -> dict:
    """Adam (or ``planner``) in ``mode`` (MPC or open loop) under the paper's protocol on ``pairs``: per-episode
    ``sticky_success``, ``success`` and ``final_distance`` tensors, ``plan_seconds``, and the model's
    planned-state error."""
    if steps is not None:
        settings = replace(settings, mpc_gradient=replace(settings.mpc_gradient, steps=steps),
                           open_loop_gradient=replace(settings.open_loop_gradient, steps=steps))
    metrics = evaluate_paper_cell(model, task, planner, mode, pairs, settings, seed=seed)
    open_loop = paper_planner("adam", model, task, settings, "open loop", model.config.proprio_dim)
    error = planned_state_error(model, task, open_loop, num_pairs=pairs.shape[0], seed=seed)
    return cell_result(metrics, error)


def evaluate_own_protocol(model, task: Task, planner: str | PlannerOptions, recipe: Recipe, episodes: int,
                          seed: int) -> dict:
    """:func:`evaluate_model`'s result under our own protocol instead: the recipe's MPC policy for ``planner`` (a
    name: the recipe's budget for it; or a budget of its own, :class:`~torchrl_gbp.planners.GradientOptions`, ...)
    with the recipe's objective and horizon, on the env's ``episodes`` pairs of ``seed``; the planned-state error
    is that planner's own open-loop plan on the same pairs."""
    policy = make_policy(model, task, planner, recipe)
    metrics = evaluate(policy, task, episodes=episodes, seed=seed)
    error = planned_state_error(model, task, policy.planner, num_pairs=episodes, seed=seed)
    return cell_result(metrics, error)


def own_step_budgets(recipe: Recipe) -> list[int]:
    """Adam steps per MPC call swept under our protocol: 3, and 1x, 3x and 10x the recipe's."""
    steps = recipe.planners.gd.steps
    return sorted({3, steps, 3 * steps, 10 * steps})


def recipe_settings(recipe: Recipe) -> list[tuple[str, PlannerOptions, Recipe]]:
    """``(setting label, planner budget, recipe variant)`` of the recipe ablation: the own protocol's GD steps per
    MPC call, the proprio weight alpha, and CEM's initial sampling std."""
    gd, cem = recipe.planners.gd, recipe.planners.cem
    alpha = recipe.objective.alpha
    other_alpha = 0.1 if alpha >= 1.0 else 1.0
    with_alpha = apply_profile(recipe, {"objective.alpha": other_alpha}, "recipe ablation")
    rows = [(f"Adam MPC, {n} steps per call{' (recipe)' if n == gd.steps else ''}", replace(gd, steps=n), recipe)
            for n in own_step_budgets(recipe)]
    rows.append((f"Adam MPC, {gd.steps} steps, alpha {other_alpha:g} (recipe {alpha:g})", gd, with_alpha))
    rows += [(f"CEM MPC, init std {std:g}{' (recipe)' if std == cem.init_std else ''}", replace(cem, init_std=std),
              recipe) for std in sorted({cem.init_std, 0.5, 1.0})]
    rows.append((f"CEM MPC, init std {cem.init_std:g}, alpha {other_alpha:g} (recipe {alpha:g})", cem, with_alpha))
    return rows


def score(evaluation: dict, subset: torch.Tensor) -> dict:
    """A row's figures from :func:`evaluate_model`'s result over the episodes in ``subset`` (a boolean mask)."""
    return {"episodes": int(subset.sum()),
            "sticky_success_rate": float(evaluation["sticky_success"][subset].mean()),
            "success_rate": float(evaluation["success"][subset].mean()),
            "final_distance": float(evaluation["final_distance"][subset].mean()),
            "plan_seconds": evaluation["plan_seconds"], "planned_error": evaluation["planned_error"]}


class Finetuning(NamedTuple):
    """How a finetuning ablation's row finetunes: ``profile`` (dotted recipe field paths, e.g.
    ``{"finetuning.steps": 3000}``; see :func:`~torchrl_gbp.experiments.recipes.apply_profile`) changes the recipe,
    ``finetuning`` picks our optimiser or the reference code's
    (:func:`~torchrl_gbp.experiments.pipeline.finetuning_options`) and ``online_schedule`` the online schedule.
    (A named tuple: the tests load this script without registering it as a module, which a dataclass needs.)"""

    profile: Mapping[str, Any] = {}
    finetuning: str = "ours"
    online_schedule: str = "replace"


def finetuned(base, task: Task, trajectories, recipe: Recipe, method: str, seed: int, variant: Finetuning):
    """A copy of ``base`` finetuned with ``method`` as ``variant`` says."""
    recipe = apply_profile(recipe, variant.profile, "ablation")
    return finetune_model(copy.deepcopy(base), task, trajectories, method, recipe, seed=seed,
                          finetuning=finetuning_options(recipe, variant.finetuning),
                          online_schedule=variant.online_schedule, progress=False)


def ablation_settings(name: str, recipe: Recipe) -> list[tuple[str, str, Finetuning]]:
    """``(setting label, method, how it finetunes)`` of a finetuning ablation."""
    steps = recipe.finetuning.steps
    if name == "finetune":
        return [(f"{method}, predictor lr {lr:g}, {n} steps", method,
                 Finetuning(profile={"finetuning.predictor_lr": lr, "finetuning.steps": n}))
                for method in ("online", "adversarial") for lr in (1e-5, 1e-4) for n in (steps, 3 * steps)]
    if name == "finetuning":
        variants = [("ours", "ours"), ("reference optimiser", "reference")]
        rows = [(f"online, {label}, {schedule} schedule", "online",
                 Finetuning(finetuning=choice, online_schedule=schedule))
                for schedule in ("replace", "append") for label, choice in variants]
        more = [(f"adversarial, reference optimiser, {3 * steps} steps", "adversarial",
                 Finetuning(finetuning="reference", profile={"finetuning.steps": 3 * steps}))]
        return rows + [(f"adversarial, {label}", "adversarial", Finetuning(finetuning=choice))
                       for label, choice in variants] + more
    if name == "online":
        online, shares = recipe.online, recipe.synthesis
        return [(f"recipe every {shares.every}, fraction {shares.online_fraction}, capacity {online.capacity}, "
                 f"planner_steps {online.planner_steps}, planner_lr {online.planner_lr}", "online", Finetuning()),
                ("synthesis every 10 batches", "online", Finetuning(profile={"synthesis.every": 10})),
                ("bounded cache of 512 windows", "online", Finetuning(profile={"online.capacity": 512})),
                ("30 planner steps", "online", Finetuning(profile={"online.planner_steps": 30}))]
    if name == "adversarial":
        factors = {f"adversarial.{k}": getattr(recipe.adversarial, k)
                   for k in ("latent_factor", "proprio_factor", "action_factor")}
        return [("recipe (adaptive radius, 1 FGSM step, perturbed rows only)", "adversarial", Finetuning()),
                ("radius fixed on the first batch", "adversarial", Finetuning(profile={"adversarial.radius": "fixed"})),
                ("radius factors x0.5", "adversarial", Finetuning(profile={k: v / 2 for k, v in factors.items()})),
                ("radius factors x2", "adversarial", Finetuning(profile={k: v * 2 for k, v in factors.items()})),
                ("3 ascent steps (PGD)", "adversarial", Finetuning(profile={"adversarial.ascent_steps": 3})),
                ("half the rows perturbed", "adversarial",
                 Finetuning(profile={"synthesis.adversarial_fraction": 0.5}))]
    raise ValueError(f"unknown ablation {name!r}; choose from {ABLATIONS}")


def run(task_name: str, runs: Path, ablations: list[str], seed: int, episodes: int, quick: bool,
        methods: tuple[str, ...] = ("online", "adversarial"), on_row=None, obs: str = "state") -> list[dict]:
    """Every row of the chosen ablations on tuning pair ``seed``, printed (and handed to ``on_row``) as each
    finishes; the finetuning ablation runs for ``methods`` only; ``obs="pixels"``: the pixel run's models."""
    if seed not in TUNING_PAIR_SEEDS:
        raise ValueError(f"ablations run on tuning pair seeds {TUNING_PAIR_SEEDS}, got {seed}")
    folder = runs / (task_name if obs == "state" else f"{task_name}_{obs}")
    if not (folder / "base.pt").exists():
        raise FileNotFoundError(f"{folder / 'base.pt'} is missing; run `torchrl-gbp reproduce --task {task_name} "
                                f"--obs {obs} --protocol paper --out {runs}` first")
    task, recipe = make_task(task_name, obs=obs), recipe_for(task_name, quick, obs=obs)
    settings = paper_settings(task_name, quick, obs)
    pairs = protocol_pairs(task, settings, episodes, seed)
    base, _ = load_checkpoint(folder / "base.pt")
    def run_models():
        """``(name, model)``: the base model, then each finetuned model of the run (seed 0) it has: finetuned as
        the paper protocol finetunes, else (a run made before the finetuning choices) our way."""
        yield "base", base
        for method in ("online", "adversarial", "both"):
            path = finetuned_checkpoint(folder, method, 0, settings)
            path = path if path.exists() else finetuned_checkpoint(folder, method, 0)
            if path.exists():
                yield method, load_checkpoint(path)[0]

    cem_budget = ("the paper's budget" if obs == "state" else
                  f"{settings.sampling.samples} samples x {settings.sampling.iterations} iterations")
    rows = []

    def record(ablation: str, setting: str, model_name: str, model, settings: PaperSettings = settings,
               subsets: list[tuple[str, torch.Tensor]] | None = None, evaluation: dict | None = None,
               started: float | None = None, **kwargs) -> None:
        """Evaluate once (unless given ``evaluation``, begun at ``started``); one row for all pairs, or one per
        ``(label, mask)`` of ``subsets``."""
        start = time.perf_counter() if started is None else started
        if evaluation is None:
            evaluation = evaluate_model(model, task, settings, pairs, seed, **kwargs)
        for label, subset in subsets or [("", torch.ones(pairs.shape[0], dtype=torch.bool))]:
            row = {"ablation": ablation, "setting": f"{setting}, {label}" if label else setting,
                   "model": model_name, "seed": seed, **score(evaluation, subset)}
            rows.append(row)
            if on_row is not None:
                on_row(row)
            print(f"{ablation:12s} {row['setting']:55s} {model_name:12s} success "
                  f"{100 * row['sticky_success_rate']:5.1f}% (final {100 * row['success_rate']:5.1f}%)  "
                  f"planned-state error {row['planned_error']:.4f}  ({time.perf_counter() - start:.0f} s)",
                  flush=True)

    for name in ablations:
        if name in ("steps", "open_loop_steps"):
            mode, label = ("mpc", "MPC") if name == "steps" else ("open loop", "open loop")
            budgets = STEP_BUDGETS if name == "steps" else OPEN_LOOP_STEP_BUDGETS
            for model_name, model in run_models():
                for steps in budgets[:2] if quick else budgets:
                    record(name, f"Adam {label}, {steps} steps per call", model_name, model, steps=steps, mode=mode)
            record(name, f"CEM {label} at {cem_budget}", "base", base, planner="cem", mode=mode)
            continue
        if name == "horizon":
            distance = task.distance(pairs["start_state"], pairs["goal_state"])
            order = distance.argsort()
            thirds = []
            for label, part in zip(("nearest", "middle", "farthest"), order.tensor_split(3)):
                mask = torch.zeros(len(order), dtype=torch.bool)
                mask[part] = True
                thirds.append((f"{label} third (distance {distance[part].min():.3g}-{distance[part].max():.3g})",
                               mask))
            for planner, horizons in (("adam", HORIZONS), ("cem", (settings.horizon,))):
                for horizon in horizons:
                    record(name, f"{'Adam' if planner == 'adam' else 'CEM'} MPC, horizon {horizon}", "base", base,
                           planner=planner, settings=replace(settings, horizon=horizon), subsets=thirds)
            continue
        if name == "choices":
            variants = [("reference choices", settings)]
            variants += [(f"reference but {key}={getattr(OUR_CHOICES, key)}",  # the models are given: no finetuning
                          replace(settings, choices=replace(settings.choices, **{key: getattr(OUR_CHOICES, key)})))
                         for key in EVALUATION_CHOICES]
            variants.append(("our choices", replace(settings, choices=settings.choices.evaluated_as(OUR_CHOICES))))
            for model_name, model in run_models():
                for mode, label in (("open loop", "Adam open loop"), ("mpc", "Adam MPC")):
                    for setting, variant in variants:
                        record(name, f"{label}, {setting}", model_name, model, settings=variant, mode=mode)
            for mode, label in (("open loop", "CEM open loop"), ("mpc", "CEM MPC")):
                for setting, variant in (variants[0], variants[-1]):
                    record(name, f"{label}, {setting}", "base", base, settings=variant, planner="cem", mode=mode)
            continue
        if name == "reference":
            record(name, "Adam MPC at the paper's budget", "base", base)
            record(name, f"CEM MPC at {cem_budget}", "base", base, planner="cem")
            continue
        if name == "ours_steps":
            for model_name, model in run_models():
                for steps in own_step_budgets(recipe)[:2] if quick else own_step_budgets(recipe):
                    started = time.perf_counter()
                    evaluation = evaluate_own_protocol(model, task, replace(recipe.planners.gd, steps=steps), recipe,
                                                       episodes, seed)
                    record(name, f"Adam MPC, our protocol, {steps} steps per call", model_name, model,
                           evaluation=evaluation, started=started)
            continue
        if name == "recipe":
            for setting, planner, variant in recipe_settings(recipe):
                started = time.perf_counter()
                evaluation = evaluate_own_protocol(base, task, planner, variant, episodes, seed)
                record(name, setting, "base", base, evaluation=evaluation, started=started)
            continue
        if name == "model":
            trajectories = load_dataset(folder / "dataset")
            width, history = recipe.model.hidden_dim, recipe.model.num_hist
            variants = [(f"hidden_dim {w}", {"model.hidden_dim": w}) for w in (width // 2, width * 2)]
            variants += [(f"{h} history frame(s)", {"model.num_hist": h}) for h in (1, 3) if h != history]
            for setting, profile in variants:
                path = folder / "ablation_models" / (setting.replace(" ", "_").replace("(s)", "") + ".pt")
                path.parent.mkdir(exist_ok=True)
                if quick:
                    profile = {**profile, "training.steps": min(recipe.training.steps, 50)}
                model = train_base_model(task, trajectories, apply_profile(recipe, profile, "model ablation"), path,
                                         seed=0, progress=False, resume=True)
                for planner in ("adam", "cem"):
                    record(name, f"{setting}: {'Adam' if planner == 'adam' else 'CEM'} MPC", "base", model,
                           planner=planner)
            continue
        trajectories = load_dataset(folder / "dataset")
        for setting, method, variant in ablation_settings(name, recipe):
            if name in ("finetune", "finetuning") and method not in methods:
                continue
            if quick:
                steps = min(variant.profile.get("finetuning.steps", recipe.finetuning.steps), 20)
                variant = variant._replace(profile={**variant.profile, "finetuning.steps": steps})
            model = finetuned(base, task, trajectories, recipe, method, seed, variant)
            for mode in ("mpc", "open loop") if name == "finetuning" else ("mpc",):
                record(name, f"{setting}: Adam {'MPC' if mode == 'mpc' else mode}", method, model, mode=mode)
    return rows


def replaced_by_run(row: dict, ablations: list[str], seeds: list[int], methods: tuple[str, ...]) -> bool:
    """Whether a run of ``ablations`` on ``seeds`` (finetuning ``methods`` in the finetune ablation) replaces the
    saved ``row``: only rows that run writes again; every other row is kept."""
    if row["ablation"] not in ablations or row["seed"] not in seeds:
        return False
    return row["ablation"] not in ("finetune", "finetuning") or row["model"] in methods


def merged_note(saved: str | None, mine_before: str | None, mine: str, keeps_others: bool) -> str:
    """An ablation's note after this run writes ``mine``: it replaces what this run wrote before
    (``mine_before``), or joins the ``saved`` note where rows of other runs are kept (runs of other seeds or
    methods, also ones running side by side), or else stands alone."""
    if saved and mine_before and mine_before in saved:
        return saved.replace(mine_before, mine)
    if saved and keeps_others:
        return f"{saved} Other rows: {mine}"
    return mine


def main() -> None:
    """Run the ablations, save their raw rows, and render their page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="pusht")
    parser.add_argument("--runs", type=Path, default=Path("runs/paper"),
                        help="the --out folder of `torchrl-gbp reproduce --protocol paper`")
    parser.add_argument("--ablations", default=",".join(ABLATIONS), help=f"comma-separated, from {ABLATIONS}")
    parser.add_argument("--obs", choices=("state", "pixels"), default="state",
                        help="pixels: the models of `reproduce --obs pixels` (RUNS/<task>_pixels)")
    parser.add_argument("--seeds", default=str(TUNING_PAIR_SEEDS[0]),
                        help=f"comma-separated tuning pair seeds, from {TUNING_PAIR_SEEDS}")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--methods", default="online,adversarial", help="finetuning methods of the finetune ablation")
    parser.add_argument("--quick", action="store_true", help="smoke run: short budgets, nothing saved")
    parser.add_argument("--note", default="", help="a line on how it was run (time, machine load)")
    args = parser.parse_args()
    chosen = [a.strip() for a in args.ablations.split(",") if a.strip()]
    for name in chosen:
        if name not in ABLATIONS:
            parser.error(f"unknown ablation {name!r}; choose from {ABLATIONS}")
    start = time.perf_counter()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    name = args.task if args.obs == "state" else f"{args.task}_{args.obs}"
    target = RAW / f"ablations_{name}"
    saved, meta = target / "rows.json", target / "meta.json"
    machine = f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    mine: list[dict] = []

    @contextmanager
    def results_locked() -> Iterator[None]:
        """Several of these scripts may run side by side on different ablations of one task: each rewrites the
        shared files from what is on disk now, one at a time."""
        lock = Path(tempfile.gettempdir()) / f"torchrl_gbp_ablations_{name}.lock"
        with open(lock, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    methods = tuple(args.methods.split(","))

    def rerun(row: dict) -> bool:
        return replaced_by_run(row, chosen, seeds, methods)

    written: dict[str, str] = {}  # the note this run last wrote, per ablation

    def write_meta(finished: bool, on_disk: list[dict]) -> None:
        """Rewrite the notes of the chosen ablations, ``on_disk`` being the saved rows now."""
        minutes = (time.perf_counter() - start) / 60
        so_far = "" if finished else " so far"
        notes = json.loads(meta.read_text())["notes"] if meta.exists() else {}
        for ablation in chosen:
            note = (f"`{command}`: {minutes:.1f} min{so_far} for {', '.join(chosen)}; {machine}. "
                    f"{args.note}").strip()
            keeps_others = any(r["ablation"] == ablation and not rerun(r) for r in on_disk)
            notes[ablation] = merged_note(notes.get(ablation), written.get(ablation), note, keeps_others)
            written[ablation] = note
        atomic_write_text(meta, json.dumps({"kind": "ablations", "task": args.task, "obs": args.obs, "notes": notes},
                                           indent=1))

    def save(row: dict) -> None:  # after every row, atomically: an interrupted run keeps what it finished
        if args.quick:
            return
        mine.append(row)
        target.mkdir(parents=True, exist_ok=True)
        with results_locked():
            others = [r for r in json.loads(saved.read_text()) if not rerun(r)] if saved.exists() else []
            atomic_write_text(saved, json.dumps(others + mine, indent=1))
            write_meta(finished=False, on_disk=others + mine)

    for seed in seeds:
        run(args.task, args.runs, chosen, seed, args.episodes, args.quick, methods, save, obs=args.obs)
    if not args.quick:
        with results_locked():
            write_meta(finished=True, on_disk=json.loads(saved.read_text()) if saved.exists() else [])
        print("rewritten:", *update())


if __name__ == "__main__":
    main()
