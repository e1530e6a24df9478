"""Success rate against planning time: sweep GD, CEM, iCEM and GD-CEM budgets on base and finetuned world models.

Run: python benchmarks/success_vs_time.py [--task wall,pointmaze] [--models base,online,adversarial,both]
     [--planners gd,cem,icem,gd_cem] [--gd-steps 5,10,20,50,100] [--cem 3x300,10x300,30x300,30x100]
     [--icem 3x300,10x300] [--gd-cem 3x300+10,3x300+30] [--cem-models base] [--episodes N]
     [--seed 5000[,5001,5002]] [--runs runs/benchmark] [--suffix NAME] [--quick] [--note TEXT]
Needs the trained checkpoints of a reproduce run (``torchrl-gbp reproduce --task <task> --out runs/benchmark``
writes ``runs/benchmark/<task>/{base,online_seed0,adversarial_seed0,both_seed0}.pt``). Every point of a task is
evaluated on the same seeded (start, goal) pairs; ``reproduce`` evaluates its seed k on seed 1000 + k, so
``--seed 1000,1001,1002`` gives the pairs of reproduce's tables (``--protocol ours``) and the
CEM-on-base point at the recipe's budget reproduces their success (the policies are deterministic).
Prints one table per task and, per model and planner, the cheapest budget whose success reaches CEM-on-base
success (and its time as a fraction of CEM's). After every task it saves the raw rows as
``benchmarks/results/raw/success_vs_time[_<suffix>].json`` and renders their page in ``docs/results/``, with this
command, the machine, the tables and one plot per task (``benchmarks/regenerate.py``).
CEM-family budgets (CEM, iCEM and GD-CEM's CEM stage) are swept on ``--cem-models`` only.
The planners come from the library (``torchrl_gbp.experiments.pipeline.make_policy`` with the task's recipe and the
recipe's budget for the planner, ``recipe.planners.<name>``, with the swept fields replaced) and are scored by
``torchrl_gbp.evaluate.evaluate``.
"""
from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from regenerate import save_raw, update

from torchrl_gbp.evaluate import evaluate
from torchrl_gbp.experiments.pipeline import make_policy
from torchrl_gbp.experiments.recipes import TUNING_PAIR_SEEDS, Recipe, recipe_for
from torchrl_gbp.experiments.reporting import (
    markdown_table,
    success_cell,
    summarize,
)
from torchrl_gbp.io import pyplot
from torchrl_gbp.models import load_checkpoint
from torchrl_gbp.tasks import make_task

CHECKPOINTS = {"base": "base.pt", "online": "online_seed0.pt", "adversarial": "adversarial_seed0.pt",
               "both": "both_seed0.pt"}


def split_list(values: list[str]) -> list[str]:
    """Flatten repeated and comma-separated command-line values: ``["a,b", "c"] -> ["a", "b", "c"]``."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def parse_cem(spec: str) -> tuple[int, int]:
    """``"ITERATIONSxSAMPLES"`` (e.g. ``"10x300"``) -> ``(iterations, samples)``."""
    try:
        iterations, samples = (int(v) for v in spec.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"CEM budget must look like ITERATIONSxSAMPLES (e.g. 10x300), got {spec!r}")
    return iterations, samples


def parse_gd_cem(spec: str) -> tuple[int, int, int]:
    """``"ITERATIONSxSAMPLES+STEPS"`` (e.g. ``"3x300+30"``) -> ``(iterations, samples, steps)``."""
    cem, _, steps = spec.partition("+")
    try:
        return (*parse_cem(cem), int(steps))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"GD-CEM budget must look like ITERATIONSxSAMPLES+STEPS (e.g. 3x300+30), got {spec!r}")


def recipe_budget(recipe: Recipe, planner: str) -> dict:
    """The recipe's budget for ``planner`` (``recipe.planners.<planner>``) as a dict of its fields."""
    return asdict(recipe.planners.of(planner))


def cem_budgets(recipe: Recipe, specs: list[str] | None, quick: bool, planner: str = "cem") -> list[dict]:
    """CEM or iCEM (``planner``) constructor budgets to sweep; the recipe's own budget is always included (for
    CEM, it is the reference).

    Default: for CEM 3, 10 and 30 iterations at the recipe's samples, plus the recipe's iterations at a third of
    its samples; for iCEM 3 iterations at the recipe's samples. Elites keep the recipe's elite fraction.
    """
    full = recipe_budget(recipe, planner)
    if specs:
        pairs = [parse_cem(s) for s in specs]
    elif quick:
        pairs = [(2, full["samples"] // 3), (5, full["samples"])]
    elif planner == "cem":
        pairs = [(3, full["samples"]), (10, full["samples"]), (30, full["samples"]),
                 (full["iterations"], full["samples"] // 3)]
    else:
        pairs = [(3, full["samples"])]
    pairs.append((full["iterations"], full["samples"]))
    return [{"iterations": iterations, "samples": samples, "elites": elites_at(full, samples)}
            for iterations, samples in dict.fromkeys(pairs)]


def elites_at(full: dict, samples: int) -> int:
    """Elites for ``samples`` candidates at the elite fraction of budget ``full``."""
    return max(1, min(samples, round(full["elites"] / full["samples"] * samples)))


def gd_cem_budgets(recipe: Recipe, specs: list[str] | None, quick: bool) -> list[dict]:
    """GD-CEM budgets (CEM iterations x samples + gradient steps) to sweep; the recipe's own is always included.

    Default: the recipe's CEM stage with 10 gradient steps, and the recipe's budget.
    """
    full = recipe_budget(recipe, "gd_cem")
    if specs:
        triples = [parse_gd_cem(s) for s in specs]
    elif quick:
        triples = [(2, full["samples"] // 3, 5)]
    else:
        triples = [(full["iterations"], full["samples"], 10)]
    triples.append((full["iterations"], full["samples"], full["steps"]))
    return [{"iterations": iterations, "samples": samples, "elites": elites_at(full, samples), "steps": steps}
            for iterations, samples, steps in dict.fromkeys(triples)]


def gd_budgets(recipe: Recipe, steps: list[int] | None, quick: bool) -> list[dict]:
    """GD budgets (``steps``) to sweep, ascending; the recipe's own step count is always included."""
    values = steps if steps else ([2, 5] if quick else [5, 10, 20, 50, 100])
    values = sorted(set(values) | {recipe.planners.gd.steps})
    return [{"steps": s} for s in values]


def budget_label(planner: str, budget: dict) -> str:
    """Short text of a budget: ``"20 steps"``, ``"10x300"`` (iterations x samples) or ``"3x300+30"`` (GD-CEM)."""
    if planner == "gd":
        return f"{budget['steps']} steps"
    cem = f"{budget['iterations']}x{budget['samples']}"
    return f"{cem}+{budget['steps']}" if planner == "gd_cem" else cem


def evaluate_seeds(policy, task, episodes: int, seeds: list[int]) -> dict[str, float]:
    """:func:`evaluate` on each seed's pairs: success and distance averaged over seeds, seconds their median."""
    runs = [{"model": "", "planner": "", **evaluate(policy, task, episodes=episodes, seed=seed)} for seed in seeds]
    (row,) = summarize(runs)
    del row["model"], row["planner"]
    return {**row, "wall_seconds": sum(r["wall_seconds"] for r in runs)}


def sweep_task(task_name: str, runs: Path, models: list[str], gd_steps: list[int] | None,
               cem_specs: list[str] | None, cem_models: list[str], episodes: int | None, seeds: list[int],
               quick: bool, planners: tuple[str, ...] = ("gd", "cem"), icem_specs: list[str] | None = None,
               gd_cem_specs: list[str] | None = None) -> dict:
    """Evaluate every model x planner x budget of one task on the same pairs; returns rows and the reference.

    ``planners`` picks among ``"gd"``, ``"cem"``, ``"icem"`` and ``"gd_cem"``; the CEM family runs on
    ``cem_models`` only.
    """
    task = make_task(task_name)
    recipe = recipe_for(task_name)
    episodes = episodes or (4 if quick else recipe.evaluation.episodes)
    cem_full = recipe_budget(recipe, "cem")
    budgets = {"gd": lambda: gd_budgets(recipe, gd_steps, quick),
               "cem": lambda: cem_budgets(recipe, cem_specs, quick),
               "icem": lambda: cem_budgets(recipe, icem_specs, quick, "icem"),
               "gd_cem": lambda: gd_cem_budgets(recipe, gd_cem_specs, quick)}
    plan = [(model, planner, b) for planner in planners for model in models
            if planner == "gd" or model in cem_models for b in budgets[planner]()]
    loaded = {m: load_checkpoint(runs / task_name / CHECKPOINTS[m])[0] for m in models}
    rows = []
    start = time.perf_counter()
    for i, (model_name, planner, budget) in enumerate(plan):
        policy = make_policy(loaded[model_name], task, replace(recipe.planners.of(planner), **budget), recipe)
        metrics = evaluate_seeds(policy, task, episodes, seeds)
        full = planner == "cem" and all(budget[k] == cem_full[k] for k in ("iterations", "samples"))
        rows.append({"model": model_name, "planner": planner, "budget": budget_label(planner, budget),
                     "full_budget": full, **budget, **metrics})
        print(f"  [{i + 1}/{len(plan)}] {task_name} {model_name}/{planner} {budget_label(planner, budget)}: "
              f"success {100 * metrics['success_rate']:.1f}%  {metrics['plan_seconds']:.3f} s/plan  "
              f"({metrics['wall_seconds']:.0f} s)", flush=True)
    reference = next((r for r in rows if r["model"] == "base" and r["planner"] == "cem" and r["full_budget"]), None)
    return {"task": task_name, "rows": rows, "reference": reference, "episodes": episodes,
            "seconds": time.perf_counter() - start, "recipe_cem": cem_full,
            "recipe_gd": recipe_budget(recipe, "gd"),
            "recipe_others": {name: recipe_budget(recipe, name) for name in planners if name in ("icem", "gd_cem")}}


def format_rows(result: dict) -> str:
    """Markdown table of one task's sweep: success, distance, seconds and the ratio to CEM on base."""
    ref = result["reference"]
    header = ["model", "planner", "budget", "success % (mean +- std over seeds)", "final distance",
              "s / plan (batched)", "s / plan / env", "time vs CEM on base"]
    return markdown_table(header, [
        [r["model"], r["planner"], r["budget"] + (" (recipe)" if r["full_budget"] else ""), success_cell(r),
         f"{r['final_distance']:.3f}", f"{r['plan_seconds']:.3f}", f"{r['plan_seconds_per_env']:.4f}",
         f"{r['plan_seconds'] / ref['plan_seconds']:.3f}" if ref and ref["plan_seconds"] else "-"]
        for r in result["rows"]])


def reaches(row: dict, reference: dict) -> bool:
    """Whether ``row``'s success is at least ``reference``'s, up to float32 rounding of equal episode counts."""
    return round(100 * row["success_rate"], 6) >= round(100 * reference["success_rate"], 6)


def gd_matches(result: dict) -> str:
    """Per model and planner (GD, iCEM, GD-CEM): the fastest budget reaching CEM-on-base success (recipe budget),
    with its time fraction."""
    ref = result["reference"]
    if ref is None:
        return "No CEM-on-base point at the recipe's budget: nothing to compare against."
    lines = [(f"CEM on base at the recipe's budget ({ref['budget']}): {100 * ref['success_rate']:.1f}% success, "
              f"{ref['plan_seconds']:.3f} s per plan."), ""]
    cheapest_cem = min((r for r in result["rows"] if r["model"] == "base" and r["planner"] == "cem"
                        and reaches(r, ref)), key=lambda r: r["plan_seconds"])
    if cheapest_cem["budget"] != ref["budget"]:
        lines.append(f"- cheapest CEM budget on base with the same success: {cheapest_cem['budget']} "
                     f"({100 * cheapest_cem['success_rate']:.1f}%, {cheapest_cem['plan_seconds']:.3f} s, "
                     f"{cheapest_cem['plan_seconds'] / ref['plan_seconds']:.3f} of the recipe's CEM time)")
    names = {"gd": "GD", "icem": "iCEM", "gd_cem": "GD-CEM"}
    for model in dict.fromkeys(r["model"] for r in result["rows"]):
        for planner, name in names.items():
            points = sorted((r for r in result["rows"] if r["model"] == model and r["planner"] == planner),
                            key=lambda r: r["plan_seconds"])
            if not points:
                continue
            hit = next((r for r in points if reaches(r, ref)), None)
            if hit is None:
                best = max(points, key=lambda r: r["success_rate"])
                lines.append(f"- {model} / {name}: not reached; best {100 * best['success_rate']:.1f}% at "
                             f"{best['budget']} ({best['plan_seconds']:.3f} s, "
                             f"{best['plan_seconds'] / ref['plan_seconds']:.3f} of CEM)")
            else:
                lines.append(f"- {model} / {name}: {hit['budget']} reaches {100 * hit['success_rate']:.1f}% in "
                             f"{hit['plan_seconds']:.3f} s per plan = "
                             f"{hit['plan_seconds'] / ref['plan_seconds']:.3f} of CEM-on-base's time")
    return "\n".join(lines)


def plot_sweep(result: dict):
    """The figure of success % against seconds per plan (batched, log x): one line per model x planner, budgets
    annotated."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    rows = result["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    styles = {"gd": ("o", "-"), "cem": ("s", "--"), "icem": ("D", "-."), "gd_cem": ("^", ":")}
    for model in models:
        color = plt.cm.tab10(models.index(model) % 10)
        for planner, (marker, line) in styles.items():
            points = sorted((r for r in rows if r["model"] == model and r["planner"] == planner),
                            key=lambda r: r["plan_seconds"])  # a line along time, not along the budget list
            if not points:
                continue
            ax.plot([r["plan_seconds"] for r in points], [100 * r["success_rate"] for r in points], marker=marker,
                    linestyle=line, color=color, label=f"{model} / {planner}")
            if model == "base":
                for r in points:
                    ax.annotate(r["budget"], (r["plan_seconds"], 100 * r["success_rate"]), fontsize=6,
                                textcoords="offset points", xytext=(3, -9))
    ref = result["reference"]
    if ref is not None:
        ax.axhline(100 * ref["success_rate"], color="gray", linewidth=0.8, linestyle=":",
                   label=f"CEM on base, {ref['budget']}")
    ax.set_xscale("log")
    ax.set_xlabel(f"seconds per plan (one call batched over {result['episodes']} envs, log)")
    ax.set_ylabel("success %")
    success = [100 * r["success_rate"] for r in rows]
    ax.set_ylim(max(-2, min(success) - 5), min(102, max(success) + 3))  # zoomed: the differences are a few %
    ax.set_title(f"{result['task']}: success vs planning time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def figures(raw: dict) -> dict:
    """The page's figures: one plot per task, by task."""
    return {result["task"]: lambda result=result: plot_sweep(result) for result in raw["results"]}


def task_report(result: dict, seeds: list[int]) -> str:
    """The markdown section of one task: table, budgets note and the comparison with CEM."""
    gd = result["recipe_gd"]
    others = "".join(f"; {name} otherwise at the recipe's {settings}"
                     for name, settings in result.get("recipe_others", {}).items())
    return (f"## {result['task']}\n\n{format_rows(result)}\n\n"
            f"{result['episodes']} episodes on the pairs of each evaluation seed {seeds}; GD lr {gd['lr']}, "
            f"noise_std {gd.get('noise_std', '-')} (the recipe's); CEM-family elites keep the recipe's elite "
            f"fraction{others}; {result['seconds']:.0f} s for the sweep.\n\n"
            f"### Fastest budget reaching CEM-on-base success\n\n{gd_matches(result)}\n")


def report_text(raw: dict) -> str:
    """The markdown report of a run's raw rows: command, machine, note, how to read the rows, task sections."""
    sections = [task_report(result, raw["seeds"]) for result in raw["results"]]
    note = f"{raw['note']}\n\n" if raw.get("note") else ""
    return (f"# Success vs planning time\n\nCommand:\n\n```bash\n{raw['command']}\n```\n\n"
            f"Machine: {raw['machine']}\n\n{note}"
            "Each row is a closed-loop evaluation per evaluation seed (seed-0 checkpoints of the per-task "
            "benchmarks); success is averaged over seeds; seconds per plan are the median of one planning "
            "call batched over a seed's episodes, measured in this run (compare times within a task only: "
            "the machine is shared).\n\n" + "\n".join(sections))


def main() -> None:
    """Parse the arguments, sweep every task, print its tables, save the raw rows and render their page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", default=None, help="task(s), repeatable or comma list (wall)")
    parser.add_argument("--runs", default="runs/benchmark", help="where the benchmark checkpoints are")
    parser.add_argument("--models", default="base,online,adversarial,both", help="seed-0 checkpoints to sweep")
    parser.add_argument("--cem-models", default="base", help="models that also get the CEM sweep ('all' for every)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per point (the recipe's)")
    parser.add_argument("--seed", default=",".join(map(str, TUNING_PAIR_SEEDS)),
                        help="evaluation seed(s), comma list: the same (start, goal) pairs for every point; "
                             "success is averaged over seeds (default: the tuning seeds "
                             f"{TUNING_PAIR_SEEDS}; 1000,1001,1002 are the main tables' reported seeds, "
                             "never to be tuned on)")
    parser.add_argument("--gd-steps", action="append", default=None, help="GD steps to sweep (5,10,20,50,100)")
    parser.add_argument("--cem", action="append", default=None,
                        help="CEM budgets ITERATIONSxSAMPLES (3x,10x,30x the recipe's samples, and a third of them)")
    parser.add_argument("--planners", default="gd,cem,icem,gd_cem", help="planners to sweep, comma list")
    parser.add_argument("--icem", action="append", default=None,
                        help="iCEM budgets ITERATIONSxSAMPLES (3x the recipe's samples, and the recipe's)")
    parser.add_argument("--gd-cem", action="append", default=None,
                        help="GD-CEM budgets ITERATIONSxSAMPLES+STEPS (the recipe's CEM stage + 10 steps, and "
                             "the recipe's)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sweep, 4 episodes: a smoke test; prints, saves nothing")
    parser.add_argument("--note", default="", help="a line on how the run was made, kept in the report")
    parser.add_argument("--suffix", default="", help="results name suffix (success_vs_time_<suffix>)")
    args = parser.parse_args()
    planners = tuple(split_list([args.planners]))
    if unknown := [p for p in planners if p not in ("gd", "cem", "icem", "gd_cem")]:
        parser.error(f"unknown planners {unknown}; expected some of gd, cem, icem, gd_cem")

    tasks = split_list(args.task or ["wall"])
    models = split_list([args.models])
    unknown = [m for m in models if m not in CHECKPOINTS]
    if unknown:
        parser.error(f"unknown models {unknown}; expected some of {list(CHECKPOINTS)}")
    cem_models = models if args.cem_models == "all" else split_list([args.cem_models])
    gd_steps = [int(s) for s in split_list(args.gd_steps)] if args.gd_steps else None
    cem_specs = split_list(args.cem) if args.cem else None
    seeds = [int(s) for s in split_list([args.seed])]
    runs = Path(args.runs)
    missing = [runs / t / CHECKPOINTS[m] for t in tasks for m in models if not (runs / t / CHECKPOINTS[m]).exists()]
    if missing:
        commands = sorted({f"torchrl-gbp reproduce --task {p.parent.name} --out {runs}" for p in missing})
        sys.exit("missing checkpoints:\n  " + "\n  ".join(map(str, missing))
                 + "\nproduce them with:\n  " + "\n  ".join(commands))

    command = shlex.join(["python", "benchmarks/success_vs_time.py", *sys.argv[1:]])
    machine = f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    raw = {"command": command, "machine": machine, "note": args.note, "seeds": seeds, "results": []}
    icem_specs = split_list(args.icem) if args.icem else None
    gd_cem_specs = split_list(args.gd_cem) if args.gd_cem else None
    for task_name in tasks:
        result = sweep_task(task_name, runs, models, gd_steps, cem_specs, cem_models, args.episodes, seeds,
                            args.quick, planners, icem_specs, gd_cem_specs)
        raw["results"].append(result)
        print("\n" + task_report(result, seeds), flush=True)
        if args.quick:  # a smoke run never overwrites the results
            continue
        # after every task: a long run keeps what it finished
        save_raw("success_vs_time" + (f"_{args.suffix}" if args.suffix else ""), raw)
        print("rewritten:", *update())


if __name__ == "__main__":
    main()
