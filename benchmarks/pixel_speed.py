"""Pixel world models: training throughput, peak memory and seconds per plan against the bare predictor.

Run: python benchmarks/pixel_speed.py [--task wall] [--envs 50] [--cem-iterations 30] [--device cpu|cuda]
     [--threads 2]

For the task's pixel recipe (image size, tokens, predictor width and depth, history) it measures, on a
randomly initialised model (speed does not depend on the weights):

- training: samples (windows) per second of one teacher-forcing step (sampling from the memory-mapped
  dataset, encoding, forward, backward, Adam) at the recipe's batch size, and the process's peak resident
  memory against the dataset's size on disk (the dataset is never loaded whole);
- planning over ``--envs`` envs at the recipe's horizon: seconds per GD optimiser step and per plan at the
  recipe's budget (eager, and compiled with ``torch.compile`` after its first, compiling call), seconds per
  CEM iteration and per plan (``--cem-iterations`` of the recipe's samples),
  and the bare predictor's rollout forward+backward for the same batch (the floor a GD step cannot beat).

The device code has no host syncs in the hot loops; ``--device cuda`` is the GPU benchmark (on CUDA the
timings synchronise only around each measured call). Raw figures go to
``benchmarks/results/raw/pixel_speed_<task>_<device>.json``, and their page,
``docs/results/pixel_speed_<task>_<device>.md``, is rendered from that file (``benchmarks/regenerate.py``).
"""
from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from regenerate import save_raw, update

from torchrl_gbp.data import load_dataset, make_window_buffer
from torchrl_gbp.experiments.pipeline import make_dataset, model_config
from torchrl_gbp.experiments.recipes import recipe_for
from torchrl_gbp.experiments.reporting import markdown_table
from torchrl_gbp.models import TeacherForcingLoss
from torchrl_gbp.planners import make_planner, planning_inputs
from torchrl_gbp.tasks import make_task
from torchrl_gbp.train import build_world_model


def timed(fn, device: torch.device, repeats: int = 1) -> float:
    """Mean seconds of ``fn()`` over ``repeats`` calls (synchronising CUDA only around the timed block)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(task_name: str, envs: int, cem_iterations: int, device: torch.device, trajectories: int) -> dict:
    """All figures of one run (see the module docstring)."""
    task = make_task(task_name, obs="pixels")
    recipe = recipe_for(task_name, obs="pixels")
    folder = Path(tempfile.mkdtemp(prefix="pixel_speed_"))
    make_dataset(task, folder / "data", trajectories)
    data = load_dataset(folder / "data")
    disk_mib = sum(f.stat().st_size for f in (folder / "data").rglob("*") if f.is_file()) / 2**20
    torch.manual_seed(0)
    config = model_config(task, recipe)
    model = build_world_model(config, data).to(device)
    window_frames, batch_size, horizon = (config.num_hist + recipe.data.window_frames - 1,
                                          recipe.training.batch_size, recipe.evaluation.horizon)
    buffer = make_window_buffer(data, frames=window_frames, frameskip=task.frameskip, batch_size=batch_size,
                                generator=torch.Generator().manual_seed(0))
    loss = TeacherForcingLoss(model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=recipe.training.lr)

    def train_step() -> None:
        batch = buffer.sample().to(device)
        value = loss(batch)["loss_prediction"]
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    train_step()
    step_seconds = timed(train_step, device, repeats=10)
    sample_seconds = timed(buffer.sample, device, repeats=10)

    start, goal = task.sample_start_goal(envs, torch.Generator().manual_seed(0))
    z_hist, a_hist, z_goal = planning_inputs(model, {k: v.to(device) for k, v in task.observe(start).items()},
                                             {k: v.to(device) for k, v in task.observe(goal).items()})
    objective = recipe.objective.goal_cost(config.proprio_dim)
    gd_budget = recipe.planners.gd
    gd = make_planner(gd_budget, model, horizon, objective)
    gd_one = make_planner(replace(gd_budget, steps=1), model, horizon, objective)
    gd_compiled = make_planner(gd_budget, model, horizon, objective, compile=True)
    cem_budget = replace(recipe.planners.cem, iterations=cem_iterations)
    cem = make_planner(cem_budget, model, horizon, objective)
    actions = torch.zeros(envs, horizon, model.action_dim, device=device, requires_grad=True)

    def bare() -> None:
        objective(model.rollout(z_hist, a_hist, actions), z_goal).sum().backward()

    bare()
    figures = {
        "task": task_name, "device": str(device), "threads": torch.get_num_threads(),
        "image_size": config.image_size, "tokens": model.state_encoder.num_tokens,
        "token_dim": model.state_encoder.token_dim, "latent_dim": model.latent_dim, "width": config.hidden_dim,
        "depth": config.depth, "num_hist": config.num_hist, "batch_size": batch_size,
        "window_frames": window_frames, "trajectories": trajectories,
        "train_step_seconds": step_seconds, "sample_seconds": sample_seconds,
        "train_samples_per_second": batch_size / step_seconds,
        "dataset_mib_on_disk": disk_mib, "peak_rss_mib": peak_rss_mib(),
        "envs": envs, "horizon": horizon, "gd_steps": gd_budget.steps,
        "bare_forward_backward_seconds": timed(bare, device, repeats=5),
        "gd_step_seconds": timed(lambda: gd_one.plan(z_hist, a_hist, z_goal), device, repeats=3),
        "gd_plan_seconds": timed(lambda: gd.plan(z_hist, a_hist, z_goal), device),
        "gd_compiled_first_plan_seconds": timed(lambda: gd_compiled.plan(z_hist, a_hist, z_goal), device),
        "gd_compiled_plan_seconds": timed(lambda: gd_compiled.plan(z_hist, a_hist, z_goal), device),
        "cem_samples": cem_budget.samples, "cem_iterations": cem_iterations,
        "cem_plan_seconds": timed(lambda: cem.plan(z_hist, a_hist, z_goal), device),
    }
    figures["cem_iteration_seconds"] = figures["cem_plan_seconds"] / cem_iterations
    figures["gd_step_over_bare"] = figures["gd_step_seconds"] / figures["bare_forward_backward_seconds"]
    return figures


def report_text(raw: dict) -> str:
    """The page's text from a run's saved raw figures (``raw/pixel_speed_<task>_<device>.json``)."""
    f, command = raw["figures"], raw["command"]
    rows = [
        ["training step (sample + encode + fwd/bwd + Adam)", f"{f['train_step_seconds']:.3f} s",
         f"{f['train_samples_per_second']:.0f} windows/s (B={f['batch_size']}, {f['window_frames']} frames)"],
        ["  of which sampling from the memory map", f"{f['sample_seconds']:.3f} s", ""],
        ["peak resident memory", f"{f['peak_rss_mib']:.0f} MiB",
         f"dataset on disk {f['dataset_mib_on_disk']:.0f} MiB ({f['trajectories']} trajectories, memory-mapped); "
         "counts torch itself and every mapped page this process wrote (it rendered the dataset) or read"],
        [f"bare rollout forward+backward ({f['envs']} envs, H={f['horizon']})",
         f"{f['bare_forward_backward_seconds']:.3f} s", "the floor of one GD step"],
        ["GD optimiser step", f"{f['gd_step_seconds']:.3f} s", f"{f['gd_step_over_bare']:.2f}x the bare rollout"],
        [f"GD plan ({f['gd_steps']} steps)", f"{f['gd_plan_seconds']:.2f} s", ""],
        ["GD plan, compiled (`compile=True`)", f"{f['gd_compiled_plan_seconds']:.2f} s",
         f"{f['gd_compiled_plan_seconds'] / f['gd_plan_seconds']:.2f}x the eager plan; its first call, compiling, "
         f"{f['gd_compiled_first_plan_seconds']:.0f} s"],
        [f"CEM iteration ({f['cem_samples']} samples x {f['envs']} envs)", f"{f['cem_iteration_seconds']:.2f} s", ""],
        [f"CEM plan ({f['cem_iterations']} iterations)", f"{f['cem_plan_seconds']:.2f} s",
         f"{f['cem_plan_seconds'] / f['gd_plan_seconds']:.1f}x the GD plan"],
    ]
    model = (f"{f['image_size']}x{f['image_size']} images, {f['tokens']} tokens of {f['token_dim']} "
             f"(latent {f['latent_dim']}), a {f['width']}-wide {f['depth']}-layer frame-causal predictor over "
             f"{f['num_hist']} history frame(s)")
    return (f"# Pixel world model speed: {f['task']} on {f['device']}\n\n"
            f"Command: `{command}`\n\nMachine: {f['machine']}, {f['threads']} torch threads.\n\nModel: {model}.\n\n"
            f"{markdown_table(['measure', 'time', 'note'], rows)}\n")


def main() -> None:
    """Measure, save the raw figures and render their page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="wall")
    parser.add_argument("--envs", type=int, default=50, help="envs planned for at once (default: 50)")
    parser.add_argument("--cem-iterations", type=int, default=30, help="CEM iterations timed (default: 30)")
    parser.add_argument("--trajectories", type=int, default=500, help="pixel dataset size (default: 500)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    figures = measure(args.task, args.envs, args.cem_iterations, device, args.trajectories)
    figures["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    command = "python benchmarks/pixel_speed.py " + " ".join(sys.argv[1:])
    raw = {"command": command.strip(), "figures": figures}
    print(report_text(raw))
    save_raw(f"pixel_speed_{args.task}_{device.type}", raw)
    print("rewritten:", *update())


if __name__ == "__main__":
    main()
