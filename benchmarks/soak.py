"""Soak test: many batched MPC steps in a row; resident memory and time per step at the start and the end.

The gradient-MPC policy drives the Wall env (``--envs`` episodes in one batched
env, reset whenever they end) for ``--steps`` env steps through TorchRL's
``env.rollout``. Resident memory (VmRSS) and the mean seconds per step are
taken over the first and the last ``--window`` steps (after a warm-up window).
Passes when memory grows by less than 5% and the last window is no slower than
the first by more than 10%. Saves the raw figures as ``benchmarks/results/raw/soak.json``
and renders their page, ``docs/results/soak.md`` (``benchmarks/regenerate.py``).

    python benchmarks/soak.py [--steps 10000] [--envs 16] [--gd-steps 10] [--threads 1]
"""
from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from pathlib import Path

import torch
from regenerate import save_raw, update
from torchrl.envs import TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from torchrl_gbp.models import StateWorldModel, WorldModelConfig
from torchrl_gbp.planners import GradientOptions, MPCPolicy, make_planner
from torchrl_gbp.tasks import WallTask


def resident_mib() -> float:
    """This process's resident set size in MiB (Linux ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    """Run the soak, print its report and (unless ``--quick``) save its raw figures and render their page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="env steps of the batched policy")
    parser.add_argument("--envs", type=int, default=16, help="episodes run side by side")
    parser.add_argument("--gd-steps", type=int, default=10, help="Adam steps per planning call")
    parser.add_argument("--window", type=int, default=500, help="steps averaged at the start and the end")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="1,500 steps; prints, writes nothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = 1_500 if args.quick else args.steps
    torch.manual_seed(0)
    task = WallTask()
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=task.frameskip))
    spec = task.action_spec
    policy = MPCPolicy(make_planner(GradientOptions(steps=args.gd_steps), model, 5, action_spec=spec), spec)
    env = TransformedEnv(task.make_env(num_envs=args.envs, seed=0), policy.make_tensordict_primer())

    seconds, memory = [], []
    td = env.reset()
    start = time.perf_counter()
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(steps):
            tic = time.perf_counter()
            _, td = env.step_and_maybe_reset(policy(td))
            seconds.append(time.perf_counter() - tic)
            memory.append(resident_mib())
    total = time.perf_counter() - start
    gc.collect()

    w = args.window
    first = slice(w, 2 * w)  # after a warm-up window (allocator and autograd caches fill once)
    last = slice(steps - w, steps)
    raw = {"command": "python benchmarks/soak.py" + " ".join([""] + sys.argv[1:]),
           "machine": f"{platform.machine()} CPU, {args.threads} torch thread(s), torch {torch.__version__}",
           "steps": steps, "envs": args.envs, "gd_steps": args.gd_steps, "window": w, "total_seconds": total,
           "memory_first_mib": max(memory[first]), "memory_last_mib": max(memory[last]),
           "seconds_first": sum(seconds[first]) / w, "seconds_last": sum(seconds[last]) / w}
    print(report_text(raw))
    if not args.quick:
        save_raw("soak", raw)
        print("rewritten:", *update())


def report_text(raw: dict) -> str:
    """The report of a soak run's saved figures (``benchmarks/results/raw/soak.json``)."""
    steps, w = raw["steps"], raw["window"]
    growth = (raw["memory_last_mib"] - raw["memory_first_mib"]) / raw["memory_first_mib"]
    slowdown = raw["seconds_last"] / raw["seconds_first"]
    verdict = "passes" if growth < 0.05 and slowdown < 1.10 else "FAILS"
    return (
        f"# Soak: {steps} batched MPC steps\n\n"
        f"Command: `{raw['command']}`\n\nMachine: {raw['machine']}\n\n"
        f"Gradient MPC ({raw['gd_steps']} Adam steps per plan, horizon 5, replanning every model step) on "
        f"{raw['envs']} Wall episodes in one batched env, auto-reset, {raw['total_seconds']:.0f} s in all.\n\n"
        "| window | resident MiB (max) | ms per step (mean) |\n|---|---|---|\n"
        f"| steps {w}-{2 * w} | {raw['memory_first_mib']:.1f} | {1000 * raw['seconds_first']:.2f} |\n"
        f"| steps {steps - w}-{steps} | {raw['memory_last_mib']:.1f} | {1000 * raw['seconds_last']:.2f} |\n\n"
        f"Memory growth {100 * growth:+.2f}% (limit 5%), time per step x{slowdown:.3f} (limit 1.10): {verdict}.\n"
    )


if __name__ == "__main__":
    main()
