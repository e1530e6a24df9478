"""One GD MPC step (replanning and not) of a state and a pixel model, this library beside another checkout's.

Run: python benchmarks/mpc_step.py --label NAME [--library PATH] [--envs 16] [--gd-steps 20] [--repeats 15]
     [--threads 1]

Times, on the Wall task (state model: the Wall recipe's; pixel model: the Wall pixel recipe's, 64x64 images;
both randomly initialised: the time does not depend on the weights), ``MPCPolicy`` calls on a batch of
``--envs`` envs:

- ``replan``: a fresh episode's first call (encode the observation and the goal, ``--gd-steps`` Adam steps);
- ``act``: a call between model-step boundaries (frameskip 5: no encoding, no planning), the per-step
  overhead of the policy itself.

Each figure is the median of ``--repeats`` calls. ``--library PATH`` measures the torchrl_gbp of another
checkout (for example the commit before the world-model contract) in a child process with that checkout first
on ``PYTHONPATH`` (a checkout before the typed options, whose recipe holds ``planner_kwargs``, too); run both
labels back to back on the same machine. Raw figures go to
``benchmarks/results/raw/mpc_step.json`` (one entry per ``--label``), and their page, ``docs/results/mpc_step.md``,
is rendered from that file (``benchmarks/regenerate.py``).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from checkouts import labelled_main

from torchrl_gbp.experiments.reporting import markdown_table


def measure(args) -> dict:
    from dataclasses import replace

    import torchrl_gbp
    from torchrl_gbp.experiments.pipeline import model_config
    from torchrl_gbp.experiments.recipes import recipe_for
    from torchrl_gbp.models import PixelWorldModel, StateWorldModel
    from torchrl_gbp.planners import MPCPolicy, make_planner
    from torchrl_gbp.tasks import make_task

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    out = {}
    for kind, model_class in (("state", StateWorldModel), ("pixels", PixelWorldModel)):
        task = make_task("wall", obs=kind)
        recipe = recipe_for("wall", obs=kind)
        model = model_class(model_config(task, recipe)).eval()
        spec = task.make_env().action_spec
        if hasattr(recipe, "planners"):  # typed options: the recipe's GD budget, its steps replaced
            planner = make_planner(replace(recipe.planners.gd, steps=args.gd_steps), model, recipe.evaluation.horizon,
                                   action_spec=spec)
        else:  # a checkout before the typed options
            planner = make_planner("gd", model, recipe.horizon, action_spec=spec,
                                   **{**recipe.planner_kwargs["gd"], "steps": args.gd_steps})
        policy = MPCPolicy(planner, spec)
        env = task.make_env(num_envs=args.envs, seed=0).append_transform(policy.make_tensordict_primer())
        start = env.reset()
        with torch.no_grad():
            planned = policy(start.clone())
        between = env.step(planned)["next"].exclude("reward", "done", "terminated", "truncated")
        between.update(planned.select("planner"))  # the policy's state, as step_mdp carries it
        figures = {}
        for name, td in (("replan", start), ("act", between)):
            seconds = []
            for _ in range(args.repeats):
                call = td.clone()
                begin = time.perf_counter()
                with torch.no_grad():
                    policy(call)
                seconds.append(time.perf_counter() - begin)
            figures[name] = {"seconds": statistics.median(seconds), "all_seconds": seconds}
        out[kind] = figures
    return {"label": args.label, "package": torchrl_gbp.__file__, "envs": args.envs, "gd_steps": args.gd_steps, "steps": out,
            "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__}


def report_text(raw: dict) -> str:
    """The table of every saved label, each figure with its ratio to the first label's."""
    header = ["label", "state: replan", "state: act", "pixels: replan", "pixels: act"]
    rows, first = [], None
    for label, r in raw.items():
        first = first or r
        cells = [label]
        for kind in ("state", "pixels"):
            for step in ("replan", "act"):
                seconds = r["steps"][kind][step]["seconds"]
                ratio = seconds / first["steps"][kind][step]["seconds"]
                cells.append(f"{seconds * 1e3:.2f} ms ({ratio:.2f}x)")
        rows.append(cells)
    some = next(iter(raw.values()))
    note = (f"One `MPCPolicy` call on {some['envs']} Wall envs (GD, {some['gd_steps']} Adam steps when it replans; "
            f"median of {len(some['steps']['state']['replan']['all_seconds'])} calls; ratio to the first label). "
            "The labels were measured back to back with the same command on the same machine (threads and CPU in "
            "the raw file).")
    return "# The MPC step: this library beside another checkout's\n\n" + markdown_table(header, rows) + f"\n\n{note}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="current")
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--gd-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    labelled_main(parser, __file__, measure, report_text, "mpc_step")


if __name__ == "__main__":
    main()
