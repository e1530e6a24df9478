"""The time claim per episode: a GD MPC setting chosen on tuning seeds against CEM MPC on the base model.

Run: python benchmarks/time_per_episode.py --run wall=/work/runs_ref/wall [--run TASK=DIR ...]
     [--steps 3,5,10,20,30,100] [--models base,online,adversarial] [--episodes 50] [--quick]

Each ``--run`` names a task and the folder of its paper-protocol reproduce run (``base.pt`` and the seed-0
finetuned checkpoints). Under the paper protocol (the reference code's choices, ``paper_settings``), for each
task:

1. Tuning pair seeds 5000-5002: CEM MPC on the base model at the paper's budget (replanning every 5 model steps)
   and Adam MPC (warm-started, replanning every model step) at each ``--steps`` on every model. The chosen
   setting is, per task, the fewest Adam steps whose success on some model reaches CEM-on-base success while its
   planning seconds per episode stay at most 10% of CEM's; where none does, the cheapest one under 10% with the
   best success, marked as not reaching.
2. Reported pair seeds 1000-1002 (the tables' seeds): every setting again, the chosen one marked, beside the
   paper's 100-step Adam.

Seconds per episode are a cell's planning seconds (every planning call of the 50 batched episodes) divided by
the episodes: CPU seconds of this process (``time.process_time``) with torch on one thread, so that other jobs
on a shared machine do not move them as they move wall time. Rows go to
``benchmarks/results/raw/time_per_episode.json`` as each cell finishes (a stopped run keeps them and resumes);
their page ``docs/results/time_per_episode.md``, its figure and README's summary of it are rendered from those
rows at the end (``benchmarks/regenerate.py``).
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from regenerate import RAW, save_raw, update

from torchrl_gbp.experiments.protocol import evaluate_paper_cell, paper_settings, protocol_pairs
from torchrl_gbp.experiments.recipes import REPORTED_PAIR_SEED_BASE, TUNING_PAIR_SEEDS
from torchrl_gbp.experiments.reporting import markdown_table
from torchrl_gbp.experiments.reproduce import finetuned_checkpoint
from torchrl_gbp.io import pyplot
from torchrl_gbp.models import load_checkpoint
from torchrl_gbp.tasks import make_task

NAME = "time_per_episode"  # the results' name: raw/time_per_episode.json, its page and figure
REPORTED_SEEDS = tuple(REPORTED_PAIR_SEED_BASE + k for k in range(3))
BUDGET = 0.1  # the claim: at most a tenth of CEM's planning seconds per episode
TIE = 1e-6  # success rates are float32 means: equal rates may differ in the last bits


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def cells(raw: dict, task: str, seeds: tuple[int, ...]) -> dict[tuple[str, str, int | None], dict]:
    """``(model, planner, steps) -> {"success", "seconds_per_episode", "seeds"}`` averaged over ``seeds``' rows."""
    grouped: dict[tuple, list[dict]] = {}
    for row in raw["rows"]:
        if row["task"] == task and row["seed"] in seeds:
            grouped.setdefault((row["model"], row["planner"], row["steps"]), []).append(row)
    return {key: {"success": _mean([r["success"] for r in rows]),
                  "success_std": torch.tensor([r["success"] for r in rows], dtype=torch.float64).std(
                      unbiased=False).item(),
                  "seconds_per_episode": _mean([r["seconds_per_episode"] for r in rows]), "seeds": len(rows)}
            for key, rows in grouped.items()}


def choose(raw: dict, task: str) -> dict | None:
    """The task's chosen Adam setting from the tuning seeds' rows (see the module docstring), or ``None`` before
    CEM on base has tuning rows: ``{"model", "steps", "reaches"}``."""
    tuned = cells(raw, task, TUNING_PAIR_SEEDS)
    cem = tuned.get(("base", "cem", None))
    if cem is None:
        return None
    affordable = [(key, cell) for key, cell in tuned.items()
                  if key[1] == "adam" and cell["seconds_per_episode"] <= BUDGET * cem["seconds_per_episode"]]
    if not affordable:
        return None
    reaching = [(key, cell) for key, cell in affordable if cell["success"] >= cem["success"] - TIE]
    if reaching:
        (model, _, steps), _ = min(reaching, key=lambda kc: (kc[0][2], -kc[1]["success"]))
    else:
        (model, _, steps), _ = max(affordable, key=lambda kc: (kc[1]["success"], -kc[0][2]))
    return {"model": model, "steps": steps, "reaches": bool(reaching)}


def task_section(raw: dict, task: str) -> str:
    """One task's table on the reported seeds (tuning figures beside them) and its verdict."""
    tuned, reported = cells(raw, task, TUNING_PAIR_SEEDS), cells(raw, task, REPORTED_SEEDS)
    chosen = choose(raw, task)
    cem = reported.get(("base", "cem", None))
    rows = []
    for key in sorted(reported, key=lambda k: (k[1] != "cem", k[0], k[2] or 0)):
        model, planner, steps = key
        cell, tune = reported[key], tuned.get(key)
        ratio = "-" if cem is None else f"{cell['seconds_per_episode'] / cem['seconds_per_episode']:.3f}"
        marks = []
        if chosen is not None and (model, steps) == (chosen["model"], chosen["steps"]) and planner == "adam":
            marks.append("chosen")
        if steps == 100:
            marks.append("paper's GD")
        label = f"CEM MPC, {raw['cem_budget'][task]}" if planner == "cem" else f"Adam MPC, {steps} steps"
        rows.append([label + (f" ({', '.join(marks)})" if marks else ""), model,
                     f"{100 * cell['success']:.1f} +- {100 * cell['success_std']:.1f}",
                     "-" if tune is None else f"{100 * tune['success']:.1f}",
                     f"{cell['seconds_per_episode']:.4f}", ratio])
    table = markdown_table(["setting", "model", "success % (reported seeds)", "success % (tuning seeds)",
                            "planning s / episode", "x CEM's s / episode"], rows)
    verdict = ("no Adam setting ran under 10% of CEM's seconds per episode on the tuning seeds."
               if ("base", "cem", None) in tuned else "no chosen setting yet (tuning rows missing).")
    if chosen is not None and cem is not None and ("base", "cem", None) in reported:
        pick = reported.get((chosen["model"], "adam", chosen["steps"]))
        if pick is not None:
            ratio = pick["seconds_per_episode"] / cem["seconds_per_episode"]
            holds = pick["success"] >= cem["success"] - TIE and ratio <= BUDGET
            verdict = (f"chosen on tuning seeds: Adam MPC at {chosen['steps']} steps on the {chosen['model']} model"
                       f"{'' if chosen['reaches'] else ' (no setting under 10% reached CEM on the tuning seeds)'}; "
                       f"on the reported seeds {100 * pick['success']:.1f}% vs CEM-on-base {100 * cem['success']:.1f}%"
                       f" at {ratio:.3f} of CEM's seconds per episode: the claim "
                       f"{'holds' if holds else 'does not hold'} here.")
    return f"### {task}\n\n{table}\n\n{verdict}\n"


def summary_table(raw: dict) -> str:
    """The results summary's table: per task, CEM MPC on base, the chosen Adam setting and the paper's 100-step
    Adam on the same model, with their success on the reported seeds and seconds per episode as a fraction of
    CEM's."""
    rows = []
    for task in dict.fromkeys(row["task"] for row in raw["rows"]):
        reported, chosen = cells(raw, task, REPORTED_SEEDS), choose(raw, task)
        cem = reported.get(("base", "cem", None))
        if chosen is None or cem is None:
            continue
        pick = reported.get((chosen["model"], "adam", chosen["steps"]))
        paper = reported.get((chosen["model"], "adam", 100))
        if pick is None or paper is None:
            continue

        def cell(c: dict) -> str:
            ratio = c["seconds_per_episode"] / cem["seconds_per_episode"]
            return f"{100 * c['success']:.1f} +- {100 * c['success_std']:.1f} ({ratio:.3f})"

        rows.append([task, f"{100 * cem['success']:.1f} +- {100 * cem['success_std']:.1f}",
                     f"{chosen['steps']} steps, {chosen['model']} model", cell(pick), cell(paper)])
    return markdown_table(["task", "CEM MPC on base, success %", "Adam MPC chosen on tuning seeds",
                           "its success % (x CEM's s / episode)", "Adam MPC, 100 steps (x CEM's s / episode)"], rows)


def report_text(raw: dict) -> str:
    """The markdown report of the saved rows."""
    tasks = list(dict.fromkeys(row["task"] for row in raw["rows"]))
    return ("# Time per episode: GD MPC against CEM MPC\n\n"
            f"Command:\n\n```bash\n{raw['command']}\n```\n\nMachine: {raw['machine']}\n\n"
            f"{raw.get('note', '')}\n\nPaper protocol with the reference code's "
            f"choices, {raw['rows'][0]['episodes']} episodes per seed; success under the protocol's rule (sticky at the end of each executed "
            "block), mean +- std over the reported pair seeds 1000-1002; the tuning seeds 5000-5002 chose the "
            "setting. Seconds per episode: the CPU seconds (one torch thread) of all planning calls of a seed's "
            "batched episodes divided by the episodes.\n\n"
            + "\n".join(task_section(raw, task) for task in tasks))


def plot(raw: dict):
    """The figure of success (reported seeds) against planning seconds per episode, one panel per task."""
    tasks = list(dict.fromkeys(row["task"] for row in raw["rows"]))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        reported = cells(raw, task, REPORTED_SEEDS)
        models = sorted({key[0] for key in reported if key[1] == "adam"})
        for index, model in enumerate(models):
            points = sorted((key[2], cell) for key, cell in reported.items() if key[:2] == (model, "adam"))
            ax.plot([c["seconds_per_episode"] for _, c in points], [100 * c["success"] for _, c in points], "o-",
                    color=plt.cm.tab10(index), label=f"Adam MPC, {model}")
            for steps, c in points:
                ax.annotate(str(steps), (c["seconds_per_episode"], 100 * c["success"]), fontsize=6,
                            textcoords="offset points", xytext=(3, -8))
        cem = reported.get(("base", "cem", None))
        if cem is not None:
            ax.plot([cem["seconds_per_episode"]], [100 * cem["success"]], "s", color="black", label="CEM MPC, base")
            ax.axvline(BUDGET * cem["seconds_per_episode"], color="gray", linestyle=":", linewidth=0.8,
                       label="10% of CEM's s / episode")
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("planning s / episode (log)")
        ax.set_ylabel("success % (seeds 1000-1002)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def figures(raw: dict) -> dict:
    """The page's figure: success against planning seconds per episode."""
    return {"": lambda: plot(raw)}


def run_task(raw: dict, task_name: str, folder: Path, steps: list[int], models: list[str], episodes: int,
             quick: bool, save) -> None:
    """Every missing row of one task, saved as each finishes."""
    task = make_task(task_name)
    settings = paper_settings(task_name, quick)
    sampling = settings.sampling
    raw.setdefault("cem_budget", {})[task_name] = (
        f"{sampling.samples} samples x {sampling.elites} elites x {sampling.iterations} iterations")
    paths = {name: folder / "base.pt" if name == "base" else finetuned_checkpoint(folder, name, 0, settings)
             for name in models}
    # a run made before the finetuning choices finetuned our way
    paths = {name: path if path.exists() else finetuned_checkpoint(folder, name, 0) for name, path in paths.items()}
    loaded = {name: load_checkpoint(path)[0] for name, path in paths.items() if path.exists()}
    if "base" not in loaded:
        raise FileNotFoundError(f"{folder / 'base.pt'} is missing: give --run {task_name}=<a reproduce run's folder>")
    done = {(r["task"], r["seed"], r["model"], r["planner"], r["steps"]) for r in raw["rows"]}
    for seed in (*TUNING_PAIR_SEEDS, *REPORTED_SEEDS):
        pairs = protocol_pairs(task, settings, episodes, seed)
        grid = [("base", "cem", None)] + [(m, "adam", s) for m in loaded for s in steps]
        for model_name, planner, n in grid:
            if (task_name, seed, model_name, planner, n) in done:
                continue
            cell_settings = settings if n is None else replace(
                settings, mpc_gradient=replace(settings.mpc_gradient, steps=n))
            start = time.perf_counter()
            metrics = evaluate_paper_cell(loaded[model_name], task, planner, "mpc", pairs, cell_settings, seed=seed,
                                          clock=time.process_time)
            row = {"task": task_name, "seed": seed, "model": model_name, "planner": planner, "steps": n,
                   "success": float(metrics["reported_success_rate"]),
                   "seconds_per_episode": float(metrics["planning_seconds_total"]) / pairs.shape[0],
                   "planning_calls": int(metrics["planning_calls"]), "episodes": int(pairs.shape[0])}
            raw["rows"].append(row)
            save()
            print(f"{task_name:14s} seed {seed} {model_name:12s} {planner} {n or '':>4} success "
                  f"{100 * row['success']:5.1f}%  {row['seconds_per_episode']:.4f} s/episode "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], metavar="TASK=DIR",
                        help="a task and its paper-protocol reproduce run folder (repeatable)")
    parser.add_argument("--steps", default="3,5,10,20,30,100", help="Adam steps per MPC call to sweep")
    parser.add_argument("--models", default="base,online,adversarial", help="models to plan with (seed-0 files)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--quick", action="store_true",
                        help="the protocol's quick budgets (a smoke run); prints, saves nothing")
    parser.add_argument("--note", default="", help="how the run was made (machine load, threads)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # process CPU seconds are one thread's
    saved = RAW / f"{NAME}.json"
    raw = json.loads(saved.read_text()) if saved.exists() and not args.quick else {"rows": []}
    runs = {}
    for spec in args.run:
        task_name, sep, folder = spec.partition("=")
        if not sep:
            sys.exit(f"--run must look like TASK=DIR, got {spec!r}")
        runs[task_name] = Path(folder)
    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/time_per_episode.py", *sys.argv[1:]])
    raw["command"] = "\n".join(dict.fromkeys([*raw.get("command", "").splitlines(), command]))
    raw["machine"] = f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    raw["note"] = " ".join(part for part in (raw.get("note", ""), args.note) if part)

    def save() -> None:
        if not args.quick:  # a smoke run never overwrites the results
            save_raw(NAME, raw)

    for task_name, folder in runs.items():
        run_task(raw, task_name, folder, [int(s) for s in args.steps.split(",")], args.models.split(","),
                 args.episodes, args.quick, save)
    if not args.quick:
        print("rewritten:", *update())


if __name__ == "__main__":
    main()
