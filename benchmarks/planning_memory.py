"""Activation memory of full-size DINO-WM planning, measured on the CPU, and the 50-env estimates it gives.

Run: python benchmarks/planning_memory.py [--threads 1] [--budget-gb 40] [--rebudget]

On a DINO-WM model of the released size (196 tokens of 384 per frame, a 6-layer ViT predictor of width 404,
mlp 2048; random weights: memory does not depend on them) with the paper's one-frame rollout and H=5 it
measures, each in a fresh process, the peak resident memory (``ru_maxrss``) one planning call adds over the
process's resident memory before it:

- one GD step (forward and backward through the rollout, then Adam) at B = 1, 2, 4 envs; the same at B=4 with
  ``MemoryOptions(chunk_rows=1)`` and with the model's activation checkpointing;
- one CEM iteration (scoring N samples of one env, no gradient) at N = 4, 8, 16; N=16 with ``chunk_rows=4``.

A least-squares line through the unchunked points gives the bytes per row (env for GD, sample for CEM) and the
fixed part; from them the report estimates one planning step for 50 envs (GD: 50 rows; CEM: 50 x 300 samples)
without bounds and with the chunk :meth:`MemoryOptions.for_budget` picks for ``--budget-gb``. Measured on the
CPU at reduced batch (labelled so): a GPU's fused attention keeps less per row, its allocator some slack more.
Raw figures: ``benchmarks/results/raw/planning_memory.json``; their page, ``docs/results/planning_memory.md``, is
rendered from them (``benchmarks/regenerate.py``; ``--rebudget`` sets the saved figures' budget and slack to
``--budget-gb`` and ``--slack-gb`` without measuring, then renders).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch
from regenerate import RAW, save_raw, update

GB = 2**30
CASES = ([{"planner": "gd", "rows": b} for b in (1, 2, 4)]
         + [{"planner": "gd", "rows": 4, "chunk_rows": 1}, {"planner": "gd", "rows": 4, "checkpoint": True}]
         + [{"planner": "cem", "rows": n} for n in (4, 8, 16)] + [{"planner": "cem", "rows": 16, "chunk_rows": 4}])


def full_size_model(checkpoint: bool = False):
    """DINO-WM at the released size (PointMaze's 2-d action and 4-d proprio), one-frame rollout, eval mode."""
    from torchrl_gbp.bridges import DinoWMConfig, DinoWMWorldModel

    model = DinoWMWorldModel(DinoWMConfig(env_action_dim=2, proprio_in_dim=4, rollout="one_frame"))
    model.use_activation_checkpointing(checkpoint).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def resident_bytes() -> int:
    """The process's resident memory now (Linux ``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def measure(case: dict) -> dict:
    """Peak bytes one planning call of ``case`` adds (run in a fresh process)."""
    from torchrl_gbp.planners import CEMOptions, GradientOptions, MemoryOptions, make_planner

    model = full_size_model(case.get("checkpoint", False))
    batch = case["rows"] if case["planner"] == "gd" else 1
    memory = MemoryOptions(chunk_rows=case.get("chunk_rows"))
    options = (GradientOptions(steps=1, init="zeros") if case["planner"] == "gd"
               else CEMOptions(samples=case["rows"], elites=2, iterations=1))
    planner = make_planner(options, model, horizon=5, memory=memory)
    z = torch.randn(batch, 1, model.latent_dim)
    inputs = (z, z.new_zeros(batch, 0, model.action_dim), torch.randn(batch, model.latent_dim))
    before = resident_bytes()
    planner.plan(*inputs, generator=torch.Generator().manual_seed(0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {**case, "peak_added_bytes": peak - before, "resident_before_bytes": before}


def fit(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares ``(fixed, per_row)`` of ``bytes = fixed + rows * per_row``."""
    n = len(points)
    mean_x, mean_y = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return mean_y - slope * mean_x, slope


def estimates(raw: dict) -> dict:
    """Per-row figures and the 50-env peaks, unbounded and chunked to the budget."""
    from torchrl_gbp.planners import MemoryOptions

    out = {}
    for name, rows in (("gd", 50), ("cem", 50 * 300)):
        points = [(c["rows"], c["peak_added_bytes"]) for c in raw["cases"]
                  if c["planner"] == name and "chunk_rows" not in c and not c.get("checkpoint")]
        fixed, per_row = fit(points)
        fixed = max(fixed, 0.0)
        weights = 4 * sum(p.numel() for p in full_size_model().parameters())
        base = fixed + weights + raw["allocator_slack_gb"] * GB
        chunk = MemoryOptions.for_budget(raw["budget_gb"] * GB, per_row, base).chunk_rows
        out[name] = {"rows_at_50_envs": rows, "fixed_bytes": fixed, "per_row_bytes": per_row, "weights_bytes": weights,
                     "unbounded_bytes": base + rows * per_row, "chunk_rows": min(chunk, rows),
                     "chunked_bytes": base + min(chunk, rows) * per_row}
    return out


def report_text(raw: dict) -> str:
    """The page's text from the raw figures."""
    lines = [f"# Planning memory: full-size DINO-WM (measured on CPU)\n\nCommand: `{raw['command']}`\n\n"
             f"Machine: {raw['machine']}. Each row is one fresh process: the peak resident memory "
             "(`ru_maxrss`) one planning call adds over the process's resident memory before it. Model: "
             "DINO-WM at the released size (196 tokens x 384 per frame, ViT predictor depth 6, 16 heads x 64, "
             "mlp 2048, width 404; random weights), one-frame rollout, H=5, fp32.\n",
             "| planner | rows (GD: envs; CEM: samples of 1 env) | chunk_rows | activation checkpointing | "
             "peak added (MB, CPU) |", "|---|---|---|---|---|"]
    for c in raw["cases"]:
        lines.append(f"| {c['planner']} | {c['rows']} | {c.get('chunk_rows', '')} | "
                     f"{'yes' if c.get('checkpoint') else ''} | {c['peak_added_bytes'] / 2**20:.0f} |")
    est = estimates(raw)
    lines += ["", "## Per row, and one planning step for 50 envs", "",
              f"Rule (`MemoryOptions.for_budget`): `chunk_rows = (budget - fixed) // per_row`, with budget "
              f"{raw['budget_gb']} GB and fixed = the measured intercept + the fp32 weights + "
              f"{raw['allocator_slack_gb']} GB of allocator slack.", "",
              "| step | per row (MB, CPU) | rows at 50 envs | estimated peak, unbounded (GB) | chunk_rows | "
              "estimated peak, chunked (GB) |", "|---|---|---|---|---|---|"]
    for name, label in (("gd", "GD step (fwd + bwd), per env"), ("cem", "CEM iteration, per sample (300 / env)")):
        e = est[name]
        lines.append(f"| {label} | {e['per_row_bytes'] / 2**20:.0f} | {e['rows_at_50_envs']} | "
                     f"{e['unbounded_bytes'] / GB:.1f} | {e['chunk_rows']} | {e['chunked_bytes'] / GB:.1f} |")
    gd = {(c.get("chunk_rows"), bool(c.get("checkpoint"))): c["peak_added_bytes"]
          for c in raw["cases"] if c["planner"] == "gd" and c["rows"] == 4}
    checkpointed = (gd[(None, True)] - est["gd"]["fixed_bytes"]) / 4
    lines += ["", f"GD at 4 envs: unbounded {gd[(None, False)] / 2**20:.0f} MB, `chunk_rows=1` "
              f"{gd[(1, False)] / 2**20:.0f} MB, activation checkpointing {gd[(None, True)] / 2**20:.0f} MB "
              f"(CPU): with checkpointing about {checkpointed / 2**20:.0f} MB per env, so 50 envs about "
              f"{(est['gd']['unbounded_bytes'] - 50 * est['gd']['per_row_bytes'] + 50 * checkpointed) / GB:.1f} GB. "
              "Target: one 50-env step under 40 GB: GD fits unbounded; CEM at 300 samples needs `chunk_rows`.", ""]
    return "\n".join(lines)


def main() -> None:
    """Measure every case in its own process (or ``--rebudget`` the saved figures), save them, render the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per measuring process")
    parser.add_argument("--budget-gb", type=float, default=36.0,
                        help="the memory budget the chunk is picked for (default: a 40 GB card less 10%%)")
    parser.add_argument("--slack-gb", type=float, default=2.0, help="allocator slack added to the fixed part")
    parser.add_argument("--rebudget", action="store_true",
                        help="set the saved figures' budget and slack, without measuring")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.case:  # a child process: one measurement, printed as JSON
        print(json.dumps(measure(json.loads(args.case))))
        return
    if args.rebudget:
        raw = {**json.loads((RAW / "planning_memory.json").read_text()), "budget_gb": args.budget_gb,
               "allocator_slack_gb": args.slack_gb}
        save_raw("planning_memory", raw)
        print("rewritten:", *update())
        return
    cases = []
    for case in CASES:
        child = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--case", json.dumps(case)],
                               capture_output=True, text=True, check=True)
        cases.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(cases[-1], flush=True)
    raw = {"command": "python benchmarks/planning_memory.py" + " ".join([""] + sys.argv[1:]),
           "machine": f"{platform.machine()} CPU, {args.threads} torch threads, torch {torch.__version__}",
           "budget_gb": args.budget_gb, "allocator_slack_gb": args.slack_gb, "cases": cases}
    print(report_text(raw))
    save_raw("planning_memory", raw)
    print("rewritten:", *update())


if __name__ == "__main__":
    main()
