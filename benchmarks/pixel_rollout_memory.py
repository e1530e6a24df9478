"""What a pixel MPC rollout holds per env step, the memory of a pixel Wall evaluation, and one GD MPC step's time.

Run: python benchmarks/pixel_rollout_memory.py [--label NAME] [--library PATH] [--envs 50] [--steps 50]
     [--gd-steps 100] [--repeats 3]

On the Wall pixel recipe's model (64x64 images, its patch encoder and predictor; randomly initialised: neither
memory nor speed depends on the weights) it measures:

- bytes per env step of a 4-env x 6-step MPC rollout (``env.rollout`` with the policy's primer): every tensor
  the rollout keeps, root and ``"next"``, divided by envs x steps, and the uint8 image's size beside it;
- the bytes of the rollout a ``--envs`` x ``--steps`` evaluation keeps
  (:func:`torchrl_gbp.evaluate.evaluation_rollout`, GD at 1 step per plan: the budget does not change what is
  kept), and the process's peak resident memory after it;
- seconds of one GD MPC step that replans (a fresh episode: encode, then ``--gd-steps`` Adam steps over
  ``--envs`` envs at the recipe's horizon), the median of ``--repeats`` calls.

``--library PATH`` measures the torchrl_gbp package of another checkout (for example the commit before keyed
pixels) in a child process with that checkout first on ``PYTHONPATH``; the measurement detects the old
``MPCPolicy(world_model, planner, spec)`` signature and the untyped recipe (``recipe.planner_kwargs``) of
checkouts before the typed options, so both are measured by the same command on the same machine.
Raw figures go to ``benchmarks/results/raw/pixel_rollout_memory.json`` (one entry per ``--label``), and their
page, ``docs/results/pixel_rollout_memory.md``, is rendered from that file (``benchmarks/regenerate.py``).
"""
from __future__ import annotations

import argparse
import inspect
import platform
import resource
import statistics
import time

import torch
from checkouts import labelled_main

from torchrl_gbp.experiments.reporting import markdown_table


def tensordict_bytes(td) -> int:
    """Bytes of every tensor a TensorDict holds (nested entries included)."""
    return sum(t.numel() * t.element_size() for t in td.values(include_nested=True, leaves_only=True))


def library():
    """The pieces this benchmark needs, from the library on the path (the current one or an earlier one), and a
    GD MPC policy factory ``policy(model, recipe, spec, steps)`` that fits its recipe and ``MPCPolicy``."""
    from torchrl_gbp.evaluate import evaluation_rollout
    from torchrl_gbp.models import PixelWorldModel
    from torchrl_gbp.planners import GoalCost, MPCPolicy, make_planner
    from torchrl_gbp.tasks import make_task
    try:
        from torchrl_gbp.experiments.pipeline import model_config
        from torchrl_gbp.experiments.recipes import recipe_for
    except ImportError:  # the library before the experiment layer moved out
        from torchrl_gbp.pipeline import model_config

        from torchrl_gbp.tasks import recipe_for
    old = "world_model" in inspect.signature(MPCPolicy).parameters

    def planner(model, recipe, spec, steps: int):
        if hasattr(recipe, "planners"):  # typed options: the recipe's GD budget with ``steps`` replaced
            from dataclasses import replace

            return make_planner(replace(recipe.planners.gd, steps=steps), model, recipe.evaluation.horizon,
                                recipe.objective.goal_cost(model.config.proprio_dim), action_spec=spec)
        objective = GoalCost(**recipe.objective, proprio_dim=model.config.proprio_dim)  # a checkout before them
        return make_planner("gd", model, recipe.horizon, objective, action_spec=spec,
                            **{**recipe.planner_kwargs["gd"], "steps": steps})

    def policy(model, recipe, spec, steps: int):
        plan = planner(model, recipe, spec, steps)
        return MPCPolicy(model, plan, spec) if old else MPCPolicy(plan, spec)

    return evaluation_rollout, PixelWorldModel, make_task, model_config, recipe_for, policy


def measure(args) -> dict:
    evaluation_rollout, PixelWorldModel, make_task, model_config, recipe_for, policy = library()
    torch.manual_seed(0)
    task = make_task("wall", obs="pixels")
    recipe = recipe_for("wall", obs="pixels")
    model = PixelWorldModel(model_config(task, recipe)).eval()
    spec = task.make_env().action_spec

    def gd_policy(steps: int):
        return policy(model, recipe, spec, steps)

    # bytes per env step of a small rollout
    small = gd_policy(1)
    env = task.make_env(num_envs=4, seed=0).append_transform(small.make_tensordict_primer())
    with torch.no_grad():
        rollout = env.rollout(6, small, break_when_any_done=False)
    per_step = tensordict_bytes(rollout) / (4 * 6)
    keys = sorted(str(k) for k in rollout.keys(include_nested=True, leaves_only=True))

    # a full evaluation's rollout
    rollout, wall = evaluation_rollout(gd_policy(1), task, episodes=args.envs, seed=1000, max_steps=args.steps)
    evaluation_bytes = tensordict_bytes(rollout)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del rollout

    # one replanning GD MPC step over the envs
    timed = gd_policy(args.gd_steps)
    env = task.make_env(num_envs=args.envs, seed=0).append_transform(timed.make_tensordict_primer())
    start = env.reset()
    seconds = []
    for _ in range(args.repeats):
        td = start.clone()
        begin = time.perf_counter()
        with torch.no_grad():
            timed(td)
        seconds.append(time.perf_counter() - begin)
    return {
        "label": args.label, "bytes_per_env_step": per_step, "image_bytes": 64 * 64 * 3, "rollout_keys": keys,
        "evaluation": {"envs": args.envs, "steps": args.steps, "bytes": evaluation_bytes, "wall_seconds": wall},
        "peak_rss_mib": peak_mib, "gd_step": {"envs": args.envs, "gd_steps": args.gd_steps,
                                              "seconds": statistics.median(seconds), "all_seconds": seconds},
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }


def report_text(raw: dict) -> str:
    """The table of every saved label, with the ratio of each to the first."""
    header = ["label", "bytes / env step (uint8 image 12,288)", "evaluation rollout", "peak RSS",
              "GD MPC replan step", "step time / first label's"]
    rows, first = [], None
    for label, r in raw.items():
        first = first or r
        e, g = r["evaluation"], r["gd_step"]
        rows.append([label, f"{r['bytes_per_env_step']:,.0f}",
                     f"{e['bytes'] / 1e6:.1f} MB ({e['envs']} envs x {e['steps']} steps)",
                     f"{r['peak_rss_mib']:.0f} MiB",
                     f"{g['seconds']:.2f} s ({g['envs']} envs, {g['gd_steps']} Adam steps, median of "
                     f"{len(g['all_seconds'])})",
                     f"{g['seconds'] / first['gd_step']['seconds']:.2f}"])
    note = "Each label was measured with the same command on the same machine (threads and CPU in the raw file)."
    return "# Pixel MPC rollouts: memory per env step and the GD MPC step\n\n" + markdown_table(header, rows) + f"\n\n{note}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="keyed pixels, latent policy state")
    parser.add_argument("--envs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--gd-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    labelled_main(parser, __file__, measure, report_text, "pixel_rollout_memory")


if __name__ == "__main__":
    main()
