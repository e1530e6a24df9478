"""Shared body of the per-task benchmarks: reproduce, diagnose, write ``results/<task>.md``."""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

from torchrl_gbp.diagnostics import diagnose
from torchrl_gbp.reproduce import reproduce
from torchrl_gbp.synthesis import METHODS


def run_benchmark(task_name: str) -> str:
    """Parse ``--quick/--seed/--out/--workers``, run the task's reproduction and diagnostics, write the report.

    The report holds the command, the machine, the model x planner table, the
    paper's claims (1-3 from the table, 4 from :func:`diagnose` on the seed-0
    checkpoints: model error on states the GD planner visits).
    """
    parser = argparse.ArgumentParser(description=f"{task_name} benchmark")
    parser.add_argument("--quick", action="store_true", help="the small recipe (minutes)")
    parser.add_argument("--seed", type=int, default=0, help="dataset and base-model seed")
    parser.add_argument("--out", default="runs/benchmark", help="where runs are written")
    parser.add_argument("--backend", choices=("serial", "ray"), default="serial",
                        help="where the (seed, model) units run (ray: side by side, needs the [ray] extra)")
    parser.add_argument("--workers", type=int, default=None,
                        help="Ray units side by side (default: one per CPU core)")
    args = parser.parse_args()

    result = reproduce(task_name, args.out, quick=args.quick, seed=args.seed, backend=args.backend,
                       workers=args.workers)
    root = Path(args.out) / task_name
    first_seed = result["runs"][0]["seed"]
    checkpoints = {"base": root / "base.pt", **{m: root / f"{m}_seed{first_seed}.pt" for m in METHODS}}
    diagnostics = diagnose(task_name, checkpoints, root / "diagnostics", seed=args.seed)

    command = f"python benchmarks/{task_name}.py" + " ".join([""] + sys.argv[1:])
    machine = (f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, "
               f"torch {torch.__version__}")
    report = (
        f"# {task_name}\n\nCommand: `{command}`\n\nMachine: {machine}\n\n{result['table']}\n\n"
        f"{result['note']}.\n\nSeconds per plan are for one planning call batched over all episodes of a "
        "seed (median over calls and seeds); 'time vs CEM on base' divides by that of CEM on the base "
        f"model.\n\n## The paper's claims here\n\n{result['claims']}\n"
        f"4. Model error on planned states (seed-{first_seed} models), see the table below.\n\n"
        f"## Diagnostics: model error where the GD planner goes\n\n{diagnostics['table']}\n\n"
        f"{diagnostics['note']}\n"
    )
    path = Path(__file__).parent / "results" / f"{task_name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report)
    print(report)
    return report
