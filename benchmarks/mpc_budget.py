"""Success against the MPC budget, counted in env steps per episode (ours) and in MPC iterations (the reference's).

Run: python benchmarks/mpc_budget.py --run dinowm_wall=runs/dinowm_wall [--run wall=runs/wall]
     [--seeds 5000,5001,5002] [--episodes 50] [--env-steps 1250] [--note TEXT]

``--run`` names a task and the folder of a reproduce run of it (its ``base.pt``). On the base model, under the
paper protocol (the reference code's choices), three MPC planners run from the tuning pair seeds' (start, goal)
pairs (never the reported seeds 1000-1002): CEM 300 samples x 30 elites x 30 iterations executing 5 model steps
per call, Adam at the paper's 100 steps and at the 3 warm steps the time-per-episode report chose
(``docs/results/time_per_episode.md``), each executing one model step per call. Each planner's episodes
run once, ``--env-steps`` env steps long (default 1250: CEM's 50 iterations of 25 env steps), and every budget is
read from that one rollout, since the policies are deterministic and nothing they do depends on the budget left:

- env steps per episode ``E`` (ours, every planner the same ``E``): success at the ends of the executed blocks
  within ``E`` (the protocol's rule), planning seconds of the calls made within ``E``;
- MPC iterations with a cap ``k`` (the reference code's loop): ``k`` calls, each followed by its block, the loop
  ending early at the end of the block where the last episode succeeded
  (:func:`~torchrl_gbp.experiments.protocol.reference_loop_env_steps`); success and planning seconds of the
  iterations it ran. At one cap CEM executes 5x the env steps of GD.

Planning seconds per episode are the CPU seconds of this process (``time.process_time``, one torch thread) of the
batched planning calls, over the episodes. A row per (seed, planner) goes to
``benchmarks/results/raw/mpc_budget_<task>.json`` as it finishes (atomically; a stopped run resumes); the page
``docs/results/mpc_budget_<task>.md`` and its figure are rendered from those rows once the task is done
(``benchmarks/regenerate.py``). The report also names the cap whose CEM success on the
tuning seeds is closest to the paper's CEM MPC level on the base model: the cap for Table 1 under the reference's
budget unit.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from regenerate import RAW, save_raw, update

from torchrl_gbp.experiments.protocol import (
    PAPER_TABLE1,
    MPCBudget,
    evaluate_paper_cell,
    paper_settings,
    protocol_pairs,
    reference_loop_env_steps,
)
from torchrl_gbp.experiments.recipes import REPORTED_PAIR_SEED_BASE, TUNING_PAIR_SEEDS
from torchrl_gbp.experiments.reporting import markdown_table
from torchrl_gbp.io import pyplot
from torchrl_gbp.models import load_checkpoint
from torchrl_gbp.tasks import make_task

# The planners swept: (planner, Adam steps per call; None for CEM at the paper's sampling budget).
PLANNERS = (("cem", None), ("adam", 100), ("adam", 3))
# The budgets tabulated: MPC iteration caps (the 5 to 50) and env steps per episode to match them (GD's
# caps are 5x their count in env steps, CEM's 25x).
ITERATION_CAPS = (5, 10, 20, 50)
ENV_STEP_BUDGETS = (25, 50, 100, 125, 250, 500, 1250)
# Caps among which the one closest to the paper's CEM MPC level is chosen.
CAP_RANGE = range(5, 51)
REPORTED_SEEDS = range(REPORTED_PAIR_SEED_BASE, REPORTED_PAIR_SEED_BASE + 1000)


@dataclass(frozen=True, kw_only=True)
class SweepOptions:
    """What one task's sweep runs: tuning pair ``seeds``, ``episodes`` pairs per seed, ``env_steps`` per rollout.

    Example:
        >>> SweepOptions().seeds, SweepOptions().env_steps
        ((5000, 5001, 5002), 1250)
        >>> SweepOptions(seeds=(1000,))
        Traceback (most recent call last):
            ...
        ValueError: SweepOptions.seeds must be tuning pair seeds, never the reported seeds 1000-1999; got (1000,)
    """

    seeds: tuple[int, ...] = TUNING_PAIR_SEEDS
    episodes: int = 50
    env_steps: int = 1250

    def __post_init__(self) -> None:
        if not self.seeds or any(seed in REPORTED_SEEDS for seed in self.seeds):
            raise ValueError(f"SweepOptions.seeds must be tuning pair seeds, never the reported seeds "
                             f"{REPORTED_SEEDS.start}-{REPORTED_SEEDS.stop - 1}; got {self.seeds!r}")
        for name in ("episodes", "env_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"SweepOptions.{name} must be >= 1, got {getattr(self, name)!r}")


def label(planner: str, steps: int | None) -> str:
    """A planner setting's name in tables and figures.

    Example:
        >>> label("cem", None), label("adam", 3)
        ('CEM 300x30', 'Adam 3 steps')
    """
    return "CEM 300x30" if planner == "cem" else f"Adam {steps} steps"


def point(row: dict, unit: str, budget: int) -> dict | None:
    """One rollout row read at ``budget`` in ``unit`` (``"env_steps"`` or ``"mpc_iterations"``): ``{"success",
    "seconds_per_episode", "env_steps", "iterations"}``, or ``None`` where the rollout is shorter than the budget.

    Example:
        >>> row = {"block": 5, "env_steps": 20, "episodes": 2, "first_success_step": [5, 15],
        ...        "call_seconds": [1.0, 1.0, 1.0, 1.0]}
        >>> point(row, "mpc_iterations", 4)  # the loop stops after the 3rd iteration: both succeeded
        {'success': 1.0, 'seconds_per_episode': 1.5, 'env_steps': 15, 'iterations': 3}
        >>> point(row, "env_steps", 10)  # one block checked per 5 env steps: the second succeeded at 15
        {'success': 0.5, 'seconds_per_episode': 1.0, 'env_steps': 10, 'iterations': 2}
        >>> point(row, "env_steps", 25) is None
        True
    """
    block = row["block"]
    limit = budget * block if unit == "mpc_iterations" else budget
    if limit > row["env_steps"]:
        return None
    first = [step if step is not None and step <= limit else None for step in row["first_success_step"]]
    steps = reference_loop_env_steps(first, block, limit) if unit == "mpc_iterations" else limit
    checked = steps // block * block  # success is checked at the ends of executed blocks
    success = sum(step is not None and step <= checked for step in first) / len(first)
    calls = -(-steps // block)
    return {"success": success, "seconds_per_episode": sum(row["call_seconds"][:calls]) / row["episodes"],
            "env_steps": steps, "iterations": calls}


def complete_seeds(rows: list[dict]) -> list[dict]:
    """The rows of the seeds every planner setting has finished (a stopped run's last seed may be partial).

    Example:
        >>> rows = [{"seed": 1, "planner": "cem", "steps": None}, {"seed": 1, "planner": "adam", "steps": 3},
        ...         {"seed": 2, "planner": "cem", "steps": None}]
        >>> sorted({row["seed"] for row in complete_seeds(rows)})
        [1]
    """
    settings = {(row["planner"], row["steps"]) for row in rows}
    done = {seed for seed in {row["seed"] for row in rows}
            if {(row["planner"], row["steps"]) for row in rows if row["seed"] == seed} == settings}
    return [row for row in rows if row["seed"] in done]


def curve(rows: list[dict], planner: str, steps: int | None, unit: str, budget: int) -> dict | None:
    """A setting's point at ``budget`` averaged over its seeds' rows (``success_std`` over seeds), or ``None``."""
    points = [point(row, unit, budget) for row in rows if (row["planner"], row["steps"]) == (planner, steps)]
    if not points or any(p is None for p in points):
        return None
    rates = torch.tensor([p["success"] for p in points], dtype=torch.float64)
    return {"success": float(rates.mean()), "success_std": float(rates.std(unbiased=False)), "seeds": len(points),
            **{key: sum(p[key] for p in points) / len(points) for key in ("seconds_per_episode", "env_steps",
                                                                         "iterations")}}


def closest_cap(rows: list[dict], level: float) -> tuple[int, dict] | None:
    """The cap in :data:`CAP_RANGE` whose CEM success is closest to ``level`` (fewest iterations on a tie)."""
    found = [(cap, c) for cap in CAP_RANGE if (c := curve(rows, "cem", None, "mpc_iterations", cap)) is not None]
    return min(found, key=lambda item: (abs(item[1]["success"] - level), item[0])) if found else None


def _cell(c: dict | None, extra: str) -> str:
    if c is None:
        return "-"
    spread = f" +- {100 * c['success_std']:.1f}" if c["seeds"] > 1 else ""
    return f"{100 * c['success']:.1f}{spread} ({c['seconds_per_episode']:.3f} s; {c[extra]:.0f})"


def report_text(raw: dict) -> str:
    """The markdown report of one task's saved rows."""
    task, rows = raw["task"], complete_seeds(raw["rows"])
    if not rows:
        return f"# MPC budget sweep: {task}\n\nNo seed has finished every planner yet.\n"
    paper = PAPER_TABLE1.get(task, {}).get(("base", "mpc"))
    settings = list(dict.fromkeys((row["planner"], row["steps"]) for row in rows))
    seeds = sorted({row["seed"] for row in rows})
    names = [label(*setting) for setting in settings]
    iterations = markdown_table(
        ["MPC iterations (cap)", *names],
        [[cap, *[_cell(curve(rows, *setting, "mpc_iterations", cap), "env_steps") for setting in settings]]
         for cap in ITERATION_CAPS])
    env_steps = markdown_table(
        ["env steps per episode", *names],
        [[budget, *[_cell(curve(rows, *setting, "env_steps", budget), "iterations") for setting in settings]]
         for budget in ENV_STEP_BUDGETS])
    levels = ("the paper reports no level for this task" if paper is None else
              f"the paper's base-model MPC levels: GD {paper[0]}, Adam {paper[1]}, CEM {paper[2]}")
    chosen = None if paper is None else closest_cap(rows, paper[2] / 100)
    cap_line = ("" if chosen is None else
                f"\n\nThe cap closest to the paper's CEM MPC level ({paper[2]}%) on these tuning seeds: "
                f"**{chosen[0]} MPC iterations** (CEM {100 * chosen[1]['success']:.1f}%, "
                f"{chosen[1]['env_steps']:.0f} env steps per episode on average, "
                f"{chosen[1]['seconds_per_episode']:.3f} planning s per episode; caps {CAP_RANGE.start}-"
                f"{CAP_RANGE.stop - 1} considered).")
    return (f"# MPC budget sweep: {task}\n\nCommand:\n\n```bash\n{raw['command']}\n```\n\nMachine: {raw['machine']}"
            f"\n\n{raw.get('note', '')}\n\nBase model, paper protocol with the reference "
            f"code's choices, {rows[0]['episodes']} episodes per seed, tuning pair seeds {seeds}; success % (sticky "
            f"at the end of each executed block; mean +- std over seeds where several), planning CPU seconds per "
            f"episode (one torch thread) and, in the first table, the env steps an episode ran (the loop stops "
            f"once every episode has succeeded), in the second the MPC iterations it took. CEM executes 5 model "
            f"steps (25 env steps) per iteration, Adam 1 (5 env steps). {levels}.{cap_line}\n\n"
            f"Budget in MPC iterations (the reference code's unit):\n\n{iterations}\n\n"
            f"Budget in env steps per episode (ours; 50 is the task's episode):\n\n{env_steps}\n")


def plot(raw: dict):
    """The figure of success against the budget: MPC iterations (left) and env steps per episode (right), every
    planner."""
    rows, task = complete_seeds(raw["rows"]), raw["task"]
    paper = PAPER_TABLE1.get(task, {}).get(("base", "mpc"))
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for index, setting in enumerate(dict.fromkeys((row["planner"], row["steps"]) for row in rows)):
        block = next(row["block"] for row in rows if (row["planner"], row["steps"]) == setting)
        longest = min(row["env_steps"] for row in rows if (row["planner"], row["steps"]) == setting)
        for ax, unit, budgets in ((axes[0], "mpc_iterations", range(1, longest // block + 1)),
                                  (axes[1], "env_steps", range(block, longest + 1, block))):
            points = [(b, c) for b in budgets if (c := curve(rows, *setting, unit, b)) is not None]
            ax.plot([b for b, _ in points], [100 * c["success"] for _, c in points], "-",
                    color=plt.cm.tab10(index), label=label(*setting))
    if paper is not None:
        for ax in axes:
            ax.axhline(paper[2], color="black", linestyle="--", linewidth=0.8, label="paper: CEM MPC, base")
            ax.axhline(paper[1], color="gray", linestyle=":", linewidth=0.8, label="paper: Adam MPC, base")
    axes[0].set_xlim(0, max(ITERATION_CAPS))
    axes[0].set_xlabel("MPC iterations (cap; the reference's unit)")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("env steps per episode (ours; log)")
    for ax in axes:
        ax.set_ylabel("success % (tuning seeds)")
        ax.set_ylim(-5, 105)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{task}: success against the MPC budget (base model)")
    fig.tight_layout()
    return fig


def figures(raw: dict) -> dict:
    """The page's figure, once a seed has finished every planner: success against the budget in both units."""
    return {"": lambda: plot(raw)} if complete_seeds(raw["rows"]) else {}


def run_task(raw: dict, folder: Path, options: SweepOptions, save) -> None:
    """Every missing (seed, planner) row of ``raw["task"]``, each saved as it finishes."""
    task_name = raw["task"]
    task = make_task(task_name)
    settings = paper_settings(task_name)
    settings = replace(settings, choices=replace(settings.choices, budget=MPCBudget(env_steps=options.env_steps)))
    model = load_checkpoint(folder / "base.pt")[0]
    done = {(row["seed"], row["planner"], row["steps"]) for row in raw["rows"]}
    for seed in options.seeds:
        pairs = protocol_pairs(task, settings, options.episodes, seed)
        for planner, steps in PLANNERS:
            if (seed, planner, steps) in done:
                continue
            cell_settings = settings if steps is None else replace(
                settings, mpc_gradient=replace(settings.mpc_gradient, steps=steps))
            start = time.perf_counter()
            metrics = evaluate_paper_cell(model, task, planner, "mpc", pairs, cell_settings, seed=seed,
                                          clock=time.process_time)
            executed = 1 if planner == "adam" else settings.horizon
            row = {"seed": seed, "planner": planner, "steps": steps, "episodes": options.episodes,
                   "block": executed * task.frameskip, "env_steps": metrics["episode_env_steps"],
                   "first_success_step": metrics["episodes"]["first_success_step"],
                   "solved_at_start": metrics["episodes"].get("solved_at_start"),
                   "call_seconds": metrics["planning_call_seconds"], "protocol_choices": metrics["protocol_choices"]}
            raw["rows"].append(row)
            save()
            at50 = point(row, "env_steps", 50)
            print(f"{task_name} seed {seed} {label(planner, steps)}: success at 50 env steps "
                  f"{100 * at50['success']:.1f}%, at {row['env_steps']} {100 * point(row, 'env_steps', row['env_steps'])['success']:.1f}%"
                  f" ({time.perf_counter() - start:.0f} s wall)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], metavar="TASK=DIR",
                        help="a task and the folder of a reproduce run of it, holding base.pt (repeatable)")
    parser.add_argument("--seeds", default=",".join(map(str, SweepOptions.seeds)), help="tuning pair seeds")
    parser.add_argument("--episodes", type=int, default=SweepOptions.episodes, help="pairs per seed")
    parser.add_argument("--env-steps", type=int, default=SweepOptions.env_steps, help="env steps per rollout")
    parser.add_argument("--note", default="", help="how the run was made (machine load, threads)")
    args = parser.parse_args()
    options = SweepOptions(seeds=tuple(int(s) for s in args.seeds.split(",")), episodes=args.episodes,
                           env_steps=args.env_steps)
    torch.set_num_threads(1)  # process CPU seconds are one thread's
    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/mpc_budget.py", *sys.argv[1:]])
    for spec in args.run:
        task_name, sep, folder = spec.partition("=")
        if not sep:
            sys.exit(f"--run must look like TASK=DIR, got {spec!r}")
        raw_path = RAW / f"mpc_budget_{task_name}.json"
        raw = json.loads(raw_path.read_text()) if raw_path.exists() else {"task": task_name, "rows": []}
        if raw["rows"] and raw["rows"][0]["episodes"] != options.episodes:
            sys.exit(f"{raw_path} holds rows of {raw['rows'][0]['episodes']} episodes, not --episodes "
                     f"{options.episodes}: move it away to start over")
        raw["command"] = "\n".join(dict.fromkeys([*raw.get("command", "").splitlines(), command]))
        raw["machine"] = f"{platform.machine()} CPU, 1 torch thread, torch {torch.__version__}"
        raw["note"] = " ".join(dict.fromkeys(part for part in (raw.get("note", ""), args.note) if part))

        def save(raw=raw) -> None:
            save_raw(f"mpc_budget_{raw['task']}", raw)

        run_task(raw, Path(folder), options, save)
        print("rewritten:", *update())


if __name__ == "__main__":
    main()
