"""Milliseconds per plan: our GD (eager, compiled, MPC with warm start), CEM and MPPI vs TorchRL's planners.

Run: python benchmarks/planning_speed.py [--tasks wall,pointmaze] [--batch-sizes 1,16,64] [--threads 2]
     [--device cpu] [--quick] [--rows all] [--suffix NAME]

Needs trained base models (``runs/benchmark/<task>/base.pt``, written by
``torchrl-gbp reproduce --task <task> --out runs/benchmark``). For each task and batch size B it
times one planning call on B (start, goal) pairs of the task:

- ``gd eager`` / ``gd compiled``: the recipe's GD budget from a cold start;
- ``gd mpc``: one MPC step as the policy runs it: warm start from the shifted
  previous plan, compiled, each env stopped on its own cost plateau (``SearchBudget(patience, tolerance)``),
  measured as the median batched planning call of ``evaluate`` over B episodes
  (the first, cold call of each episode included in the median's input); at B=1, ``--mpc-episodes`` of the
  same episodes one at a time (the median of their median calls);
- ``cem`` / ``mppi``: ours at the recipe's budget (samples x iterations, elites);
- ``cem bf16 compiled``: our CEM scoring candidates compiled and under bfloat16 autocast (``--bf16``;
  by default on CUDA only);
- ``torchrl cem`` / ``torchrl mppi``: TorchRL's ``CEMPlanner`` / ``MPPIPlanner``
  through ``WorldModelEnv`` on the same model, horizon, samples, elites and iterations;
- ``gd iteration`` / ``bare rollout+grad`` (eager and compiled): ms per GD optimiser step (a cold plan of
  ``--iteration-steps`` steps, no budget, over the step count) against the bare loop it wraps (the rollout,
  the cost and their gradient, nothing else), so the ratio is what the planner's loop adds;
- stable-worldmodel's ``GradientSolver`` / ``CEMSolver`` on the same model and budget, where its solver
  modules import (its package needs torchvision, which does not import beside the CPU torch here: the run
  says so and skips them).

``--rows`` picks row groups (``planners``, ``mpc``, ``torchrl``, ``iteration``, ``peers``; default all);
``--suffix`` names the results ``planning_speed_<suffix>`` (a partial run never overwrites the full one).

Prints the report and saves the raw figures as ``benchmarks/results/raw/planning_speed[_<suffix>].json``, then
renders their page (with this command, the machine and a profile of one GD plan) and its figure in
``docs/results/`` (``benchmarks/regenerate.py``).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from regenerate import save_raw, update

from torchrl_gbp.evaluate import evaluate, evaluation_pairs
from torchrl_gbp.experiments.pipeline import make_policy
from torchrl_gbp.experiments.recipes import recipe_for
from torchrl_gbp.experiments.reporting import markdown_table
from torchrl_gbp.io import pyplot
from torchrl_gbp.models import load_checkpoint
from torchrl_gbp.planners import (
    MPCPolicy,
    Planner,
    SearchBudget,
    make_planner,
    model_action_bounds,
    planning_inputs,
)
from torchrl_gbp.planners.torchrl_baselines import (
    make_torchrl_planner,
    reset_planning_env,
)
from torchrl_gbp.tasks import make_task


def planning_problem(task_name: str, model, batch: int, device: torch.device, seed: int = 0):
    """``B`` seeded (start, goal) pairs of the task as model inputs: ``z_hist``, ``a_hist``, ``z_goal``."""
    task = make_task(task_name)
    start, goal = task.sample_start_goal(batch, torch.Generator().manual_seed(seed))
    return planning_inputs(model, {k: v.to(device) for k, v in task.observe(start).items()},
                           {k: v.to(device) for k, v in task.observe(goal).items()})


def time_calls(call, repeats: int, device: torch.device) -> tuple[float, float]:
    """(first call seconds, median seconds of ``repeats`` further calls, or the first's when none) of
    ``call()``."""
    def timed() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    first = timed()
    return first, (statistics.median(timed() for _ in range(repeats)) if repeats else first)


def our_planner(name: str, model, task_name: str, low: torch.Tensor, high: torch.Tensor, steps: int | None = None,
                **shared) -> Planner:
    """The recipe's planner ``name`` (its budget, ``steps`` replaced where given) with the env's normalised action
    bounds; ``shared``: what every planner takes (``compile``, ``autocast_dtype``)."""
    recipe = recipe_for(task_name)
    options = recipe.planners.of(name)
    if steps is not None:
        options = replace(options, steps=steps)
    return make_planner(options, model, recipe.evaluation.horizon, recipe.objective.goal_cost(model.config.proprio_dim),
                        action_low=low, action_high=high, **shared)


def mpc_step_seconds(model, task_name: str, batch: int, patience: int, tolerance: float, episodes: int,
                     compile: bool) -> tuple[float, float, float]:
    """(median batched planning seconds, success rate, median search iterations per call) of warm-started,
    plateau-stopped GD MPC.

    At B > 1 the ``B`` episodes run as one batch; at B=1 the first ``episodes`` of the same seeded pairs run one
    at a time and the figure is the median over them of each episode's median call (one episode alone would
    time one start and goal, not the episodes a batch holds). The iterations are counted over every call.
    """
    task, recipe = make_task(task_name), recipe_for(task_name)
    policy: MPCPolicy = make_policy(model, task, "gd", recipe, budget=SearchBudget(patience=patience, tolerance=tolerance),
                                    compile=compile)
    evaluate(policy, task, episodes=batch, seed=10_000, max_steps=task.frameskip)  # compile for this B
    iterations = []
    plan = policy.planner.plan

    def counted_plan(*args, **kwargs):
        result = plan(*args, **kwargs)
        iterations.append(result.iterations)
        return result

    policy.planner.plan = counted_plan
    if batch > 1:
        metrics = evaluate(policy, task, episodes=batch, seed=0)
        return metrics["plan_seconds"], metrics["success_rate"], statistics.median(iterations)
    pairs = evaluation_pairs(task, episodes, seed=0)
    runs = [evaluate(policy, task, episodes=1, pairs=pairs[i:i + 1]) for i in range(episodes)]
    return (statistics.median(run["plan_seconds"] for run in runs),
            statistics.mean(run["success_rate"] for run in runs), statistics.median(iterations))


def profile_one_plan(planner: Planner, problem, rows: int = 12) -> str:
    """Self-CPU-time table of the top operators in one ``plan`` call."""
    from torch.profiler import profile

    planner.plan(*problem)
    with profile() as prof:
        planner.plan(*problem)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def iteration_rows(task_name: str, model, low: torch.Tensor, high: torch.Tensor, problem, steps: int,
                   repeats: int, device: torch.device) -> list[dict]:
    """ms per GD optimiser step against the bare rollout + cost + gradient loop, eager and compiled; the two
    are timed alternately (median of ``repeats`` each), so a busy machine slows both alike."""
    batch, rows = problem[0].shape[0], []
    for compiled in (False, True):
        planner = our_planner("gd", model, task_name, low, high, steps=steps, compile=compiled)
        generator = torch.Generator(device=device).manual_seed(0)
        start = planner.cold_start(batch, problem[0], generator).unsqueeze(1)

        def bare() -> None:
            actions = start.clone()
            for _ in range(steps):
                cost, grad = planner.value_and_grad(*problem, actions)
                actions = actions - 0.01 * grad

        plan_times, bare_times = [], []
        for _ in range(repeats + 1):
            plan_times.append(time_calls(lambda: planner.plan(*problem, generator=generator), 0, device)[0])
            bare_times.append(time_calls(bare, 0, device)[0])
        label = "compiled" if compiled else "eager"
        rows.append({"task": task_name, "planner": f"gd iteration {label}", "B": batch,
                     "ms": 1000 * statistics.median(plan_times[1:]) / (steps + 1), "first_ms": None,
                     "note": f"{steps} steps + final scoring, per step"})
        rows.append({"task": task_name, "planner": f"bare rollout+grad {label}", "B": batch,
                     "ms": 1000 * statistics.median(bare_times[1:]) / steps, "first_ms": None, "note": "per step"})
    return rows


def peer_rows(task_name: str, batch: int) -> list[dict]:
    """stable-worldmodel's solvers, where they import; here a row saying why they were skipped."""
    try:
        from stable_worldmodel.solver import CEMSolver, GradientSolver  # noqa: F401
    except Exception as error:  # its package needs torchvision, which does not import beside the CPU torch here
        reason = f"skipped: stable_worldmodel.solver does not import ({type(error).__name__}: {error})"
    else:
        reason = ("skipped: stable_worldmodel.solver imports, but its solvers are not timed here yet "
                  "(torchrl_gbp.bridges.AsCostable offers the model to them)")
    print(f"  stable-worldmodel GradientSolver / CEMSolver: {reason}", flush=True)
    return [{"task": task_name, "planner": "stable-worldmodel solvers", "B": batch, "ms": None, "first_ms": None,
             "note": reason}]


def benchmark_task(task_name: str, args, device: torch.device) -> tuple[list[dict], dict]:
    """All timings for one task: rows of (planner, B, ms) and the profiles."""
    path = Path(args.runs) / task_name / "base.pt"
    if not path.exists():
        sys.exit(f"no trained model at {path}: run `torchrl-gbp reproduce --task {task_name} --out {args.runs}` first")
    model, _ = load_checkpoint(path)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    recipe = recipe_for(task_name)
    low, high = (b.to(device) for b in model_action_bounds(model, make_task(task_name).action_spec))
    sampling = recipe.planners.cem
    rows, profiles = [], {}
    for batch in args.batch_sizes:
        problem = planning_problem(task_name, model, batch, device)
        repeats = args.repeats if batch <= 16 else max(1, args.repeats // 3)
        planners = {} if "planners" not in args.rows else {
            "gd eager": our_planner("gd", model, task_name, low, high),
            "gd compiled": our_planner("gd", model, task_name, low, high, compile=True),
            "cem": our_planner("cem", model, task_name, low, high),
            "mppi": our_planner("mppi", model, task_name, low, high),
        }
        if args.bf16 and "planners" in args.rows:
            planners["cem bf16 compiled"] = our_planner("cem", model, task_name, low, high, compile=True,
                                                        autocast_dtype=torch.bfloat16)
        for name, planner in planners.items():
            generator = torch.Generator(device=device).manual_seed(0)
            first, median = time_calls(lambda: planner.plan(*problem, generator=generator), repeats, device)
            result = planner.plan(*problem, generator=generator)
            rows.append({"task": task_name, "planner": name, "B": batch, "ms": 1000 * median,
                         "first_ms": 1000 * first, "note": f"{result.iterations} iterations"})
        if device.type == "cpu" and "mpc" in args.rows:
            seconds, success, iterations = mpc_step_seconds(model, task_name, batch, args.patience, args.tolerance,
                                                            args.mpc_episodes, compile=True)
            alone = f", {args.mpc_episodes} episodes one at a time" if batch == 1 else ""
            rows.append({"task": task_name, "planner": "gd mpc", "B": batch, "ms": 1000 * seconds, "first_ms": None,
                         "iterations": iterations,
                         "note": f"warm start, patience {args.patience} per env, tolerance {args.tolerance:g}, "
                                 f"compiled{alone}; success {100 * success:.0f}%; median {iterations:g} iterations "
                                 "per call"})
        if "iteration" in args.rows:
            rows += iteration_rows(task_name, model, low, high, problem, args.iteration_steps, repeats, device)
        for kind in ("cem", "mppi") if "torchrl" in args.rows else ():
            torchrl_planner = make_torchrl_planner(kind, model, make_task(task_name).make_env(),
                                                   horizon=recipe.evaluation.horizon, samples=sampling.samples,
                                                   elites=sampling.elites, iterations=sampling.iterations)
            td = reset_planning_env(torchrl_planner, problem[0][:, -1], problem[2])
            with torch.no_grad():
                first, median = time_calls(lambda: torchrl_planner(td.clone()), max(1, repeats // 2), device)
            rows.append({"task": task_name, "planner": f"torchrl {kind}", "B": batch, "ms": 1000 * median,
                         "first_ms": 1000 * first, "note": ""})
        if "peers" in args.rows:
            rows += peer_rows(task_name, batch)
        print_rows([r for r in rows if r["B"] == batch])
    if device.type == "cpu" and "planners" in args.rows:
        problem = planning_problem(task_name, model, 1, device)
        profiles["eager"] = profile_one_plan(our_planner("gd", model, task_name, low, high), problem)
        profiles["compiled"] = profile_one_plan(our_planner("gd", model, task_name, low, high, compile=True),
                                                problem)
    return rows, profiles


def print_rows(rows: list[dict]) -> None:
    """Print timing rows as they arrive."""
    for r in rows:
        ms = "" if r["ms"] is None else f"{r['ms']:10.2f} ms"
        print(f"  {r['task']} B={r['B']:>3} {r['planner']:<26} {ms}  {r['note']}", flush=True)


def table(rows: list[dict]) -> str:
    """Markdown table of ms per plan with the ratio to TorchRL's CEM at the same task and B (where timed)."""
    def reference(r: dict) -> str:
        base = [x["ms"] for x in rows if x["task"] == r["task"] and x["B"] == r["B"] and x["planner"] == "torchrl cem"]
        return f"{r['ms'] / base[0]:.3f}" if base and r["ms"] is not None else ""

    header = ["task", "B", "planner", "ms per plan", "first call ms", "vs TorchRL CEM", "note"]
    return markdown_table(header, [
        [r["task"], r["B"], r["planner"], "" if r["ms"] is None else f"{r['ms']:.1f}",
         "" if r["first_ms"] is None else f"{r['first_ms']:.1f}", reference(r), r["note"]] for r in rows])


def targets(rows: list[dict]) -> str:
    """The issues' speed targets, met or not, per task."""
    lines = []
    for task_name in dict.fromkeys(r["task"] for r in rows):
        get = {(r["planner"], r["B"]): r["ms"] for r in rows if r["task"] == task_name and r["ms"] is not None}
        batches = sorted({b for _, b in get})
        b_min, b_max = batches[0], batches[-1]
        if ("gd mpc", b_min) in get:
            mpc = get["gd mpc", b_min]
            lines.append(f"- {task_name}: GD MPC step (B={b_min}) {mpc:.1f} ms, target <= 25 ms: "
                         f"{'met' if mpc <= 25 else 'not met'}")
        for name in ("gd mpc", "gd compiled", "gd eager", "cem"):
            if (name, b_max) in get and (name, b_min) in get and b_max > b_min:
                ratio = get[name, b_max] / get[name, b_min]
                lines.append(f"- {task_name}: {name} B={b_max} / B={b_min} = {ratio:.2f}x, target <= 3x: "
                             f"{'met' if ratio <= 3 else 'not met'}")
        mpc = {r["B"]: r for r in rows if r["task"] == task_name and r["planner"] == "gd mpc" and "iterations" in r}
        per_iteration = {b: get.get(("gd iteration compiled", b)) for b in (b_min, b_max)}
        if b_min in mpc and b_max in mpc and b_max > b_min:
            split = (f" x per-iteration time {per_iteration[b_max] / per_iteration[b_min]:.2f}x (compiled GD "
                     "iteration rows)") if None not in per_iteration.values() else ""
            lines.append(f"- {task_name}: of that, median iterations per call {mpc[b_max]['iterations']:g} / "
                         f"{mpc[b_min]['iterations']:g} = {mpc[b_max]['iterations'] / mpc[b_min]['iterations']:.2f}x"
                         f"{split}")
        for label in ("eager", "compiled"):
            for b in (b for b in batches if (f"gd iteration {label}", b) in get):
                ratio = get[f"gd iteration {label}", b] / get[f"bare rollout+grad {label}", b]
                lines.append(f"- {task_name}: GD iteration / bare rollout+grad ({label}) at B={b}: {ratio:.2f}x, "
                             f"target <= 1.1x: {'met' if ratio <= 1.1 else 'not met'}")
        for name in ("cem", "cem bf16 compiled"):
            for b in (b for b in batches if (name, b) in get and ("torchrl cem", b) in get):
                speedup = get["torchrl cem", b] / get[name, b]
                lines.append(f"- {task_name}: our {name} / TorchRL's CEMPlanner at B={b}: {speedup:.1f}x faster, "
                             f"target >= 5x: {'met' if speedup >= 5 else 'not met'}")
    return "\n".join(lines)


def plot(rows: list[dict]):
    """The figure of ms per plan against B, one line per task x planner (log-log)."""
    plt = pyplot()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for ax, task_name in zip(axes[0], tasks):
        for name in dict.fromkeys(r["planner"] for r in rows):
            points = [(r["B"], r["ms"]) for r in rows
                      if r["task"] == task_name and r["planner"] == name and r["ms"] is not None]
            ax.plot(*zip(*points), marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("envs planned in one call (B)")
        ax.set_ylabel("ms per plan")
        ax.set_title(task_name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def figures(raw: dict) -> dict:
    """The page's figure: ms per plan against B."""
    return {"": lambda: plot(raw["rows"])}


def report_text(raw: dict) -> str:
    """The page's text from a run's saved raw figures (``raw/planning_speed*.json``)."""
    rows = raw["rows"]
    profile_text = "\n\n".join(f"### {name}: one GD plan, B=1\n\n```\n{text}\n```"
                                for name, text in raw["profiles"].items())
    return (
        f"# Planning speed\n\nCommand: `{raw['command']}`\n\nMachine: {raw['machine']}\n\n{table(rows)}\n\n"
        "Median over repeated calls, after one untimed-in-the-median first call (which includes compilation "
        "for the compiled planners). Same model, horizon, samples, elites and iterations for ours and TorchRL's.\n\n"
        f"## Targets\n\n{targets(rows)}\n" + (f"\n## Where the time goes\n\n{profile_text}\n" if profile_text else "")
    )


def main() -> None:
    """Parse arguments, time every planner, save the raw figures and render their page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="wall,pointmaze", help="comma-separated task names")
    parser.add_argument("--batch-sizes", default="1,16,64", help="comma-separated envs per planning call")
    parser.add_argument("--runs", default="runs/benchmark", help="folder with <task>/base.pt")
    parser.add_argument("--repeats", type=int, default=9, help="timed calls per point (a third for B > 16)")
    parser.add_argument("--patience", type=int, default=5, help="plateau patience of the GD MPC step")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="plateau tolerance of the GD MPC step (relative to each env's first cost)")
    parser.add_argument("--mpc-episodes", type=int, default=32,
                        help="episodes the B=1 GD MPC step runs one at a time")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="B=1,4 and 3 repeats; prints, saves nothing")
    parser.add_argument("--rows", default="planners,mpc,torchrl,iteration,peers",
                        help="comma-separated row groups: planners, mpc, torchrl, iteration, peers")
    parser.add_argument("--iteration-steps", type=int, default=50, help="GD steps of the iteration rows")
    parser.add_argument("--suffix", default="", help="results name suffix (planning_speed_<suffix>)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="also time CEM under bf16 autocast, compiled (default: on CUDA only; on a CPU "
                             "without bf16 matmul units it was 5-7x slower than fp32 and most of the sweep's time)")
    args = parser.parse_args()
    if args.bf16 is None:
        args.bf16 = args.device.startswith("cuda")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # Every compiled planner instance and batch size is one more Dynamo cache entry of the shared scoring code.
    torch._dynamo.config.recompile_limit = 256
    args.batch_sizes = [1, 4] if args.quick else [int(b) for b in args.batch_sizes.split(",")]
    args.repeats = 3 if args.quick else args.repeats
    args.rows = set(args.rows.split(","))
    device = torch.device(args.device)

    rows, profiles = [], {}
    for task_name in args.tasks.split(","):
        task_rows, task_profiles = benchmark_task(task_name, args, device)
        rows += task_rows
        profiles.update({f"{task_name}, {k}": v for k, v in task_profiles.items()})

    suffix = ("" if device.type == "cpu" else f"_{device.type}") + (f"_{args.suffix}" if args.suffix else "")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    raw = {"command": "python benchmarks/planning_speed.py" + " ".join([""] + sys.argv[1:]),
           "machine": f"{device_name}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
           "rows": rows, "profiles": profiles}
    print(report_text(raw))
    if args.quick:  # a smoke run never overwrites the results
        return
    save_raw(f"planning_speed{suffix}", raw)
    print("rewritten:", *update())


if __name__ == "__main__":
    main()
