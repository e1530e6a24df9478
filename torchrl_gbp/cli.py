"""``torchrl-gbp``: the command line, one subcommand per pipeline function."""
from __future__ import annotations

import argparse
import json
import sys

from . import pipeline


def _add_task(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="wall", help="task name (default: wall)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand maps onto a function of :mod:`torchrl_gbp.pipeline`."""
    parser = argparse.ArgumentParser(prog="torchrl-gbp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="generate a seeded dataset (pipeline.collect)")
    _add_task(p)
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--num-trajectories", type=int, default=None)
    p.add_argument("--trajectory-steps", type=int, default=None)

    p = sub.add_parser("train", help="train a world model on a dataset (pipeline.train)")
    _add_task(p)
    p.add_argument("--dataset", required=True, help="dataset folder from `collect`")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--hidden-dim", type=int, default=None)
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--num-hist", type=int, default=None)
    p.add_argument("--log-dir", default=None, help="folder for TorchRL CSV logs")

    p = sub.add_parser("evaluate", help="evaluate a planner on a checkpoint (pipeline.evaluate_checkpoint)")
    _add_task(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--planner", choices=pipeline.PLANNERS, default="gd")
    p.add_argument("--episodes", type=int, default=None)
    p.add_argument("--planner-steps", type=int, default=None, help="GD optimiser steps")
    p.add_argument("--planner-lr", type=float, default=None, help="GD learning rate")
    p.add_argument("--samples", type=int, default=None, help="CEM/MPPI samples")
    p.add_argument("--elites", type=int, default=None, help="CEM/MPPI elites")
    p.add_argument("--iterations", type=int, default=None, help="CEM/MPPI iterations")

    p = sub.add_parser("reproduce", help="dataset, base model, GD/CEM/MPPI table and plot (pipeline.reproduce)")
    _add_task(p)
    p.add_argument("--out", default="runs", help="output folder (default: runs)")
    p.add_argument("--quick", action="store_true", help="a smaller run (under 2 minutes)")
    p.add_argument("--planners", nargs="+", choices=pipeline.PLANNERS, default=list(pipeline.PLANNERS))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``torchrl-gbp`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "collect":
            path = pipeline.collect(args.task, args.out, args.num_trajectories, args.seed, args.trajectory_steps)
            print(f"dataset written to {path}")
        elif args.command == "train":
            overrides = {k: v for k, v in {"hidden_dim": args.hidden_dim, "depth": args.depth,
                                            "num_hist": args.num_hist}.items() if v is not None}
            pipeline.train(args.task, args.dataset, args.out, steps=args.steps, lr=args.lr,
                           batch_size=args.batch_size, seed=args.seed, log_dir=args.log_dir, **overrides)
            print(f"checkpoint written to {args.out}")
        elif args.command == "evaluate":
            names = {"planner_steps": "steps", "planner_lr": "lr", "samples": "samples", "elites": "elites",
                     "iterations": "iterations"}
            overrides = {names[k]: getattr(args, k) for k in names if getattr(args, k) is not None}
            metrics = pipeline.evaluate_checkpoint(args.task, args.checkpoint, args.planner, args.episodes,
                                                   args.seed, **overrides)
            print(json.dumps(metrics, indent=2))
        elif args.command == "reproduce":
            result = pipeline.reproduce(args.task, args.out, quick=args.quick, seed=args.seed,
                                        planners=tuple(args.planners))
            print(result["table"])
            print(f"\nplot: {result['paths']['plot']}\ntable: {result['paths']['table']}\n"
                  f"total: {result['seconds']:.0f} s")
    except (ValueError, KeyError, FileNotFoundError, TypeError) as error:
        print(f"torchrl-gbp {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
