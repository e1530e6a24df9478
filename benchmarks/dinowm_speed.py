"""DINO-WM at its released size: seconds of one GD step and one CEM iteration over 50 envs, and a Table 1 estimate.

Run: python benchmarks/dinowm_speed.py [--envs 50] [--chunk 10] [--cem-chunk 10] [--threads 2] [--device cpu|cuda]

The model is :class:`~torchrl_gbp.bridges.DinoWMWorldModel` at DINO-WM's released size (196 DINOv2 tokens of
384 per frame, a 6-layer predictor 404 wide with 16 heads of 64 and MLP 2048, 3 history frames, frameskip 5),
randomly initialised (speed does not depend on the weights), planning from precomputed tokens (DINOv2 runs
once per observation, not per planner step, so it is left out). What is measured, each once (they are slow):

- one GD step over ``--envs`` envs, horizon 5, with the one-frame rollout of the paper's gradient configs: cost,
  backward and Adam update of the actions. It runs ``--chunk`` envs at a time (each env's cost is independent,
  so the gradient of their sum splits exactly); the time is the whole step's.
- the rollout forward of ``--cem-chunk`` CEM samples, full context (DINO-WM's rollout, the context growing to 3
  frames) and one-frame (the cost of a 1-history-frame model, Wall's): one CEM iteration over ``--envs`` envs of
  300 samples is extrapolated from it, linearly in the number of samples (the scoring and the refit of 30 elites
  are negligible beside 15,000 rollouts).

Raw figures go to ``benchmarks/results/raw/dinowm_speed.json`` (``dinowm_speed_cuda.json`` on a GPU); their page,
with the estimate of a Table 1 run on one GPU built from them, ``docs/results/dinowm_speed[_cuda].md``, is rendered
from that file (``benchmarks/regenerate.py``).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import torch
from regenerate import save_raw, update

from torchrl_gbp.bridges import DinoWMConfig, DinoWMWorldModel
from torchrl_gbp.experiments.reporting import markdown_table
from torchrl_gbp.planners import GoalCost

HORIZON, CEM_SAMPLES, CEM_ITERATIONS = 5, 300, 30
OPEN_LOOP_STEPS, MPC_STEPS = 300, 100
# ASSUMPTION (not measured here): the throughput one H200 sustains on this model's float32 matmuls and
# attention, about 60% of its 67 TFLOP/s float32 peak. The GPU estimate scales with it.
ASSUMED_GPU_TFLOPS = 40.0
# Table 1's tasks: history frames and the MPC budget in model steps (the episode length of our protocol,
# env steps / frameskip 5; the paper's MPC loop instead runs until every episode succeeded).
TABLE1_TASKS = {"pusht": {"num_hist": 3, "model_steps": 10}, "pointmaze": {"num_hist": 3, "model_steps": 12},
                "wall": {"num_hist": 1, "model_steps": 10}}
MODELS = 3  # base, online, adversarial


def timed(fn, device: torch.device) -> float:
    """Seconds of one call of ``fn()`` (synchronising CUDA around it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def forward_flops(config: DinoWMConfig, frames: int) -> float:
    """Multiply-add FLOPs (x2) of one predictor forward over ``frames`` frames of one sample (dense attention)."""
    n, w, inner, mlp = frames * config.num_patches, config.width, config.heads * config.dim_head, config.mlp_dim
    per_layer = 2 * n * w * 3 * inner + 2 * 2 * n * n * inner + 2 * n * inner * w + 2 * 2 * n * w * mlp
    return config.depth * per_layer


def rollout_flops(config: DinoWMConfig, context: int) -> float:
    """FLOPs of one sample's rollout over ``HORIZON`` steps, each seeing up to ``context`` frames."""
    return sum(forward_flops(config, min(t + 1, context)) for t in range(HORIZON))


def measure(envs: int, chunk: int, cem_chunk: int, device: torch.device) -> dict:
    """The figures of one run (see the module docstring)."""
    torch.manual_seed(0)
    config = DinoWMConfig(env_action_dim=2, proprio_in_dim=4)
    model = DinoWMWorldModel(config).to(device).eval().requires_grad_(False)
    objective = GoalCost("all", base=0.5, alpha=1.0, proprio_dim=config.proprio_dim)

    def observations(batch: int) -> torch.Tensor:
        tokens = torch.randn(batch, config.num_patches, config.visual_dim, device=device)
        return model.encode(tokens, torch.randn(batch, config.proprio_in_dim, device=device))

    z, goal = observations(envs).unsqueeze(1), observations(envs)
    no_history = z.new_zeros(envs, 0, model.action_dim)
    actions = torch.randn(envs, HORIZON, model.action_dim, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([actions], lr=0.3)

    def gd_step(rows: list[torch.Tensor]) -> None:
        optimizer.zero_grad(set_to_none=True)
        for index in rows:
            cost = objective(model.rollout(z[index], no_history[index], actions[index]), goal[index])
            cost.sum().backward()
        optimizer.step()

    def cem_rollouts() -> None:
        with torch.no_grad():
            samples = torch.randn(cem_chunk, HORIZON, model.action_dim, device=device)
            start = z[:1].expand(cem_chunk, -1, -1)
            objective(model.rollout(start, no_history[:1].expand(cem_chunk, -1, -1), samples), goal[:1])

    figures = {"device": str(device), "threads": torch.get_num_threads(), "envs": envs, "chunk": chunk,
               "cem_chunk": cem_chunk, "horizon": HORIZON, "config": config.to_dict(),
               "load_average_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    model.use_rollout("one_frame")
    gd_step([torch.arange(1, device=device)])  # warm-up: allocator, kernels
    figures["gd_step_seconds"] = timed(lambda: gd_step(list(torch.arange(envs, device=device).split(chunk))),
                                       device)
    figures["one_frame_rollout_seconds_per_sample"] = timed(cem_rollouts, device) / cem_chunk
    model.use_rollout("full")
    figures["full_rollout_seconds_per_sample"] = timed(cem_rollouts, device) / cem_chunk
    figures["load_average_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if device.type == "cuda":
        figures["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return figures


def derived(f: dict) -> dict:
    """Per-unit seconds, FLOPs and achieved rates of a run's figures."""
    config = DinoWMConfig(**f["config"])
    cem = {context: f[f"{name}_rollout_seconds_per_sample"] * CEM_SAMPLES * f["envs"]
           for context, name in ((1, "one_frame"), (config.num_hist, "full"))}
    flops = {"gd_step": 3 * rollout_flops(config, 1) * f["envs"],  # forward + backward (about twice the forward)
             "cem_iteration_full": rollout_flops(config, config.num_hist) * CEM_SAMPLES * f["envs"],
             "cem_iteration_one_frame": rollout_flops(config, 1) * CEM_SAMPLES * f["envs"]}
    rates = {"gd_step": flops["gd_step"] / f["gd_step_seconds"],
             "cem_iteration_full": flops["cem_iteration_full"] / cem[config.num_hist],
             "cem_iteration_one_frame": flops["cem_iteration_one_frame"] / cem[1]}
    return {"cem_iteration_seconds": cem, "flops": flops, "achieved_flops_per_second": rates}


def table1_estimate(f: dict, d: dict) -> list[list[object]]:
    """Rows of the Table 1 estimate: per task, planner calls per model and seconds on this machine and on one GPU."""
    rows, total_here, total_gpu = [], 0.0, 0.0
    gpu = ASSUMED_GPU_TFLOPS * 1e12
    for task, spec in TABLE1_TASKS.items():
        gd_steps = 2 * OPEN_LOOP_STEPS + 2 * MPC_STEPS * spec["model_steps"]  # SGD and Adam, open loop and MPC
        cem_iterations = CEM_ITERATIONS * (1 + math.ceil(spec["model_steps"] / HORIZON))  # CEM executes 5 per plan
        cem_key = "cem_iteration_one_frame" if spec["num_hist"] == 1 else "cem_iteration_full"
        cem_seconds = d["cem_iteration_seconds"][spec["num_hist"]]
        here = MODELS * (gd_steps * f["gd_step_seconds"] + cem_iterations * cem_seconds)
        on_gpu = MODELS * (gd_steps * d["flops"]["gd_step"] + cem_iterations * d["flops"][cem_key]) / gpu
        total_here, total_gpu = total_here + here, total_gpu + on_gpu
        rows.append([task, spec["num_hist"], spec["model_steps"], gd_steps, cem_iterations,
                     f"{here / 86400:.0f} days", f"{on_gpu / 3600:.1f} h"])
    rows.append(["all three", "", "", "", "", f"{total_here / 86400:.0f} days", f"{total_gpu / 3600:.1f} h"])
    return rows


def report_text(raw: dict) -> str:
    """The page's text from a run's saved raw figures."""
    f, command = raw["figures"], raw["command"]
    d = derived(f)
    config = DinoWMConfig(**f["config"])
    rate = d["achieved_flops_per_second"]
    rows = [
        [f"GD step (one-frame rollout, H={f['horizon']}, {f['envs']} envs; cost, backward, Adam)",
         f"{f['gd_step_seconds']:.1f} s", f"measured, {f['chunk']} envs at a time; {d['flops']['gd_step'] / 1e12:.1f} "
         f"TFLOP, {rate['gd_step'] / 1e9:.1f} GFLOP/s"],
        [f"CEM iteration, full context ({CEM_SAMPLES} samples x {f['envs']} envs)",
         f"{d['cem_iteration_seconds'][config.num_hist] / 3600:.1f} h",
         f"extrapolated from {f['cem_chunk']} samples measured ({f['full_rollout_seconds_per_sample']:.2f} s each); "
         f"{d['flops']['cem_iteration_full'] / 1e12:.0f} TFLOP, {rate['cem_iteration_full'] / 1e9:.1f} GFLOP/s"],
        [f"CEM iteration, one-frame context ({CEM_SAMPLES} samples x {f['envs']} envs)",
         f"{d['cem_iteration_seconds'][1] / 3600:.1f} h",
         f"extrapolated from {f['cem_chunk']} samples measured ({f['one_frame_rollout_seconds_per_sample']:.2f} s "
         f"each); {d['flops']['cem_iteration_one_frame'] / 1e12:.0f} TFLOP"],
    ]
    load = f"load average {f['load_average_before']:.1f} before, {f['load_average_after']:.1f} after"
    estimate = markdown_table(["task", "num_hist", "MPC model steps", "GD steps per model", "CEM iterations per model",
                               f"3 models on this {f['device']}", "3 models on one GPU (assumed rate)"],
                              table1_estimate(f, d))
    return (
        f"# DINO-WM at its released size: planner step costs on {f['device']}\n\n"
        f"Command: `{command}`\n\nMachine: {f['machine']}, {f['threads']} torch threads ({load}: the machine is "
        f"shared, so these are upper bounds).\n\n"
        f"Model: `DinoWMWorldModel` with random weights, {config.num_patches} tokens of {config.visual_dim} per "
        f"frame, a {config.depth}-layer predictor {config.width} wide ({config.heads} heads of {config.dim_head}, MLP "
        f"{config.mlp_dim}), {config.num_hist} history frames; planning from precomputed DINOv2 tokens.\n\n"
        f"{markdown_table(['measure', 'time', 'note'], rows)}\n\n"
        f"## Estimate of a Table 1 run (evaluation of the three released models) on one GPU\n\n"
        f"Per task and model: SGD and Adam open loop ({OPEN_LOOP_STEPS} steps) and with MPC ({MPC_STEPS} steps per "
        f"replan, one model step executed per replan), CEM open loop and with MPC ({CEM_ITERATIONS} iterations of "
        f"{CEM_SAMPLES} samples per plan, {HORIZON} model steps executed per replan); 50 episodes planned as one "
        f"batch of {f['envs']} envs; MPC for our protocol's episode length (the paper's loop runs until every "
        f"episode succeeded, so its runs can be longer). Planner costs only: environment steps, DINOv2 encodings "
        f"and finetuning are left out. Wall's model has one history frame, so its CEM iterations cost the "
        f"one-frame figure.\n\n"
        f"**Assumption (not measured): one GPU sustains {ASSUMED_GPU_TFLOPS:.0f} TFLOP/s on this model** (about "
        f"60% of an H200's float32 peak), against the {rate['gd_step'] / 1e9:.0f} GFLOP/s measured here; the GPU "
        f"column is the analytic FLOP count of the same calls divided by that rate, and scales with it.\n\n"
        f"{estimate}\n")


def main() -> None:
    """Measure, save the raw figures and render their page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=50, help="envs planned for at once (default: 50)")
    parser.add_argument("--chunk", type=int, default=10, help="envs per GD forward/backward (default: 10)")
    parser.add_argument("--cem-chunk", type=int, default=10, help="CEM samples measured (default: 10)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    figures = measure(args.envs, args.chunk, args.cem_chunk, device)
    figures["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    raw = {"command": ("python benchmarks/dinowm_speed.py " + " ".join(sys.argv[1:])).strip(), "figures": figures}
    print(report_text(raw))
    save_raw("dinowm_speed" + ("" if device.type == "cpu" else f"_{device.type}"), raw)
    print("rewritten:", *update())


if __name__ == "__main__":
    main()
