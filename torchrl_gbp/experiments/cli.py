"""``torchrl-gbp``: the command line, one subcommand per pipeline function."""
from __future__ import annotations

import argparse
import json
import logging
import pickle
import sys

import torch

from ..planners import PLANNER_CLASSES
from ..synthesis import METHODS, SCHEDULES
from ..tasks import OBSERVATIONS
from ..train import LOGGERS
from ..video import check_video_target
from . import pipeline
from .diagnostics import diagnose
from .protocol import BUDGET_UNITS, PROTOCOLS, MPCBudget
from .reproduce import BACKENDS, reproduce

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
PLANNER_NAMES = tuple(PLANNER_CLASSES)


def set_torchrl_verbosity(verbose: bool) -> None:
    """torchrl's logger at INFO when ``verbose``, else WARNING (it logs a line per storage it initialises).

    Example:
        >>> torchrl_logger = logging.getLogger("torchrl")
        >>> previous = torchrl_logger.level
        >>> set_torchrl_verbosity(True)
        >>> logging.getLevelName(torchrl_logger.level)
        'INFO'
        >>> set_torchrl_verbosity(False)
        >>> logging.getLevelName(torchrl_logger.level)
        'WARNING'
        >>> torchrl_logger.setLevel(previous)
    """
    logging.getLogger("torchrl").setLevel(logging.INFO if verbose else logging.WARNING)


def _add_task(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="wall", help="task name (default: wall)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")


def _add_logging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-dir", default=None, help="folder for TorchRL logs (default: no logs)")
    parser.add_argument("--logger", choices=sorted(LOGGERS), default="csv",
                        help="TorchRL logger under --log-dir: csv (default), tensorboard, or wandb (offline); "
                             "tensorboard and wandb need the pip extra of that name")


def _add_obs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--obs", choices=OBSERVATIONS, default="state",
                        help="what the world model sees: the state, or rendered pixels plus proprio (default: state; "
                             "evaluate, finetune and diagnose read it from the checkpoint)")


def _named_path(text: str) -> tuple[str, str]:
    """``NAME=PATH`` -> ``(NAME, PATH)``, for ``diagnose --checkpoints``."""
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def _cap(text: str) -> int | None:
    """``--max-iterations``: a positive int, or ``none`` for no cap."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of MPC iterations or none, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand maps onto a function of :mod:`torchrl_gbp.experiments.pipeline`.

    Example:
        >>> args = build_parser().parse_args(["evaluate", "--checkpoint", "runs/wall/base.pt", "--planner", "cem",
        ...                                   "--samples", "64"])
        >>> args.command, args.task, args.planner, args.samples, args.episodes
        ('evaluate', 'wall', 'cem', 64, None)
    """
    parser = argparse.ArgumentParser(prog="torchrl-gbp", description=__doc__)
    parser.add_argument("--verbose", action="store_true",
                        help="show torchrl's INFO lines (storage initialisation and the like)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="generate a seeded dataset (pipeline.collect)")
    _add_task(p)
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--num-trajectories", type=int, default=None)
    _add_obs(p)
    p.add_argument("--trajectory-steps", type=int, default=None)

    p = sub.add_parser("train", help="train a world model on a dataset (pipeline.train)")
    _add_task(p)
    p.add_argument("--dataset", required=True, help="dataset folder from `collect`")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    _add_obs(p)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--hidden-dim", type=int, default=None)
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--num-hist", type=int, default=None)
    _add_logging(p)
    p.add_argument("--resume", action="store_true", help="continue the training checkpointed at --out")

    p = sub.add_parser("evaluate", help="evaluate a planner on a checkpoint (pipeline.evaluate_checkpoint)")
    _add_task(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--planner", choices=PLANNER_NAMES, default="gd")
    p.add_argument("--episodes", type=int, default=None)
    p.add_argument("--planner-steps", type=int, default=None, help="GD optimiser steps")
    p.add_argument("--planner-lr", type=float, default=None, help="GD learning rate")
    p.add_argument("--samples", type=int, default=None, help="CEM/MPPI/iCEM/GD-CEM samples")
    p.add_argument("--elites", type=int, default=None, help="CEM/MPPI/iCEM/GD-CEM elites")
    p.add_argument("--iterations", type=int, default=None, help="CEM/MPPI/iCEM/GD-CEM (CEM stage) iterations")
    p.add_argument("--max-seconds", type=float, default=None, help="time budget of one planning call")
    p.add_argument("--patience", type=int, default=None, help="stop a search after this many steps without progress")
    p.add_argument("--compile", action="store_true", help="torch.compile the rollout and cost")
    p.add_argument("--horizon", type=int, default=None, help="planned model steps (default: the recipe's)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=None, help="GD optimiser (default: adam)")
    p.add_argument("--noise-std", type=float, default=None, help="GD noise added after each optimiser step")
    p.add_argument("--restarts", type=int, default=None, help="GD parallel restarts per episode")
    p.add_argument("--init-std", type=float, default=None, help="CEM/MPPI std of the first Gaussian")
    p.add_argument("--pair-mode", default=None, help="the task's kind of (start, goal) pairs (default: the task's)")
    p.add_argument("--num-workers", type=int, default=1, help="run the episodes in a ParallelEnv of this many processes")
    _add_logging(p)
    p.add_argument("--video", default=None, metavar="PATH",
                   help="also write a video (.gif, or .mp4 with imageio-ffmpeg) of the first evaluated episodes")
    p.add_argument("--video-episodes", type=int, default=2, help="episodes in the video (default: 2)")
    p.add_argument("--video-size", type=int, default=64, help="video frame side in pixels (default: 64)")
    p.add_argument("--video-fps", type=float, default=10.0, help="video frames per second (default: 10)")

    p = sub.add_parser("finetune", help="finetune a checkpoint with data synthesis (pipeline.finetune)")
    _add_task(p)
    p.add_argument("--from", dest="checkpoint", required=True, help="base checkpoint to start from")
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--dataset", default=None, help="dataset folder (default: regenerate the task's dataset)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--predictor-lr", type=float, default=None)
    p.add_argument("--action-encoder-lr", type=float, default=None)
    p.add_argument("--finetuning", choices=pipeline.FINETUNINGS, default="ours",
                   help="ours (Adam, the recipe's rates, gradients clipped at 1) or reference (the reference code's "
                        "AdamW, rates and dropout 0.1, no clipping)")
    p.add_argument("--online-schedule", choices=SCHEDULES, default="replace",
                   help="online methods: replace a share of each batch's rows (ours) or append one optimiser step "
                        "per cached synthetic set (the reference code's)")
    _add_logging(p)
    p.add_argument("--resume", action="store_true", help="continue the finetuning checkpointed at --out")

    p = sub.add_parser("reproduce", help="dataset, base model, GD/CEM/MPPI table and plot (reproduce.reproduce)")
    _add_task(p)
    p.add_argument("--out", default="runs", help="output folder (default: runs)")
    p.add_argument("--quick", action="store_true", help="a smaller run (under 2 minutes)")
    _add_obs(p)
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="evaluation and finetuning seeds (default: the recipe's)")
    p.add_argument("--planners", nargs="+", choices=PLANNER_NAMES, default=list(pipeline.COMPARED_PLANNERS),
                   help=f"planners to compare (default: {' '.join(pipeline.COMPARED_PLANNERS)})")
    p.add_argument("--methods", nargs="*", choices=METHODS, default=list(METHODS),
                   help="finetuning methods to compare with the base model (none: base model only)")
    p.add_argument("--backend", choices=BACKENDS, default="serial",
                   help="where the (seed, model) units run: here one by one, or as Ray tasks (the [ray] extra)")
    p.add_argument("--workers", type=int, default=None,
                   help="Ray tasks side by side on this machine (default: one per CPU core)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="ours",
                   help="ours (MPC, final-state success) or paper (Table 1: open loop and MPC, SGD/Adam/CEM/MPPI, "
                        "the paper's budgets and goals, and the reference code's choices where they differ from "
                        "ours: its cost, success rule, final plans and unclipped planners, and its finetuning: online "
                        "synthetic sets appended as extra optimiser steps, AdamW at its rates with dropout 0.1)")
    p.add_argument("--budget-unit", choices=BUDGET_UNITS, default="env_steps",
                   help="with --protocol paper: what the MPC budget counts (protocol.MPCBudget.unit): env steps per "
                        "episode, the same for every planner (ours, default), or MPC iterations, each a planning call "
                        "and its executed block, until every episode has succeeded or the cap (the reference code's)")
    p.add_argument("--env-steps", type=int, default=None,
                   help="with --budget-unit env_steps: env steps per episode (default: the task's episode)")
    p.add_argument("--max-iterations", type=_cap, default=None, metavar="N|none",
                   help="with --budget-unit mpc_iterations: the cap (none: no cap, as the reference's released "
                        "configs; then --safety-env-steps is required)")
    p.add_argument("--safety-env-steps", type=int, default=None,
                   help="with --budget-unit mpc_iterations: a limit in env steps per episode, recorded with the results")
    p.add_argument("--logger", choices=sorted(LOGGERS), default="csv",
                   help="TorchRL logger for training and finetuning under <out>/<task>/logs: csv (default), "
                        "tensorboard or wandb (offline; the pip extra of that name)")
    p.add_argument("--fresh", action="store_true",
                   help="start over instead of keeping the finished units of an interrupted run in --out")
    p.add_argument("--ray-address", default=None,
                   help="an existing Ray cluster to run the units on (e.g. auto); default: a local instance")
    p.add_argument("--dinowm-checkpoint", default=None, metavar="RUN",
                   help="start from DINO-WM's released run folder (hydra.yaml, checkpoints/model_latest.pth) instead "
                        "of training a base model; needs --dataset and --dinov2 (experiments.dinowm, task dinowm_*)")
    p.add_argument("--dataset", default=None, help="with --dinowm-checkpoint: DINO-WM's dataset folder for the task")
    p.add_argument("--dinov2", default=None,
                   help="with --dinowm-checkpoint: a local DINOv2 folder (Dinov2Model.save_pretrained)")
    p.add_argument("--device", default="cpu", help="with --dinowm-checkpoint: cpu (default) or cuda")
    p.add_argument("--rollout", choices=("full", "history", "one_frame"), default="full",
                   help="with --dinowm-checkpoint: the model's rollout (default: DINO-WM's, full)")
    p.add_argument("--dataset-episodes", type=int, default=None,
                   help="with --dinowm-checkpoint: read only the first episodes of the dataset (DINO-WM's n_rollout)")

    p = sub.add_parser("diagnose", help="error on planned states, cost landscapes, gradient norms (diagnostics.diagnose)")
    _add_task(p)
    p.add_argument("--checkpoints", nargs="+", type=_named_path, required=True, metavar="NAME=PATH",
                   help="models to compare, e.g. base=runs/wall/base.pt online=runs/wall/online_seed0.pt")
    p.add_argument("--out", required=True, help="folder for landscape.png and diagnostics.md")
    p.add_argument("--pairs", type=int, default=50, help="(start, goal) pairs (default: 50)")
    p.add_argument("--landscape-pairs", type=int, default=8, help="pairs whose landscape roughness is averaged")
    p.add_argument("--planner-steps", type=int, default=300, help="open-loop GD steps (default: 300)")
    p.add_argument("--planner-lr", type=float, default=0.3, help="open-loop GD learning rate (default: 0.3)")
    p.add_argument("--resolution", type=int, default=41, help="landscape grid points per axis")
    p.add_argument("--span", type=float, default=1.0, help="landscape half width, in filter-normalised units")

    p = sub.add_parser("convert-dinowm",
                       help="read a DINO-WM training run safely and write our checkpoint (bridges.convert_dinowm_checkpoint)")
    p.add_argument("--run", required=True, help="the run folder: hydra.yaml and checkpoints/model_latest.pth")
    p.add_argument("--out", required=True, help="the checkpoint to write (loads with models.load_checkpoint)")
    p.add_argument("--checkpoint", default="checkpoints/model_latest.pth", help="the pickle, relative to --run")
    p.add_argument("--rollout", choices=("full", "history", "one_frame"), default="full",
                   help="the model's rollout: DINO-WM's (full, default), from the whole history, or one frame "
                        "per step (the paper's gradient-planning configs)")
    p.add_argument("--dinov2", default=None,
                   help="a local DINOv2 folder (Dinov2Model.save_pretrained): the model carries it and reads pixels")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``torchrl-gbp`` console script.

    Example:
        >>> import tempfile
        >>> out = tempfile.mkdtemp() + "/wall"
        >>> argv = ["collect", "--task", "wall", "--out", out, "--num-trajectories", "3", "--trajectory-steps", "10"]
        >>> main(argv)  # doctest: +ELLIPSIS
        dataset written to .../wall
        0
        >>> main(["evaluate", "--checkpoint", "missing.pt"])  # the error goes to stderr; exit status 2
        2
        >>> main(["reproduce", "--task", "wall", "--quick"])  # minutes  # doctest: +SKIP
    """
    args = build_parser().parse_args(argv)
    set_torchrl_verbosity(args.verbose)
    try:
        if args.command == "collect":
            path = pipeline.collect(args.task, args.out, args.num_trajectories, args.seed, args.trajectory_steps,
                                    obs=args.obs)
            print(f"dataset written to {path}")
        elif args.command == "train":
            overrides = {k: v for k, v in {"hidden_dim": args.hidden_dim, "depth": args.depth,
                                            "num_hist": args.num_hist}.items() if v is not None}
            pipeline.train(args.task, args.dataset, args.out, steps=args.steps, lr=args.lr,
                           batch_size=args.batch_size, seed=args.seed, log_dir=args.log_dir, resume=args.resume,
                           logger=args.logger, obs=args.obs, **overrides)
            print(f"checkpoint written to {args.out}")
        elif args.command == "evaluate":
            names = {"planner_steps": "steps", "planner_lr": "lr", "samples": "samples", "elites": "elites",
                     "iterations": "iterations", "noise_std": "noise_std", "restarts": "num_restarts",
                     "init_std": "init_std"}
            overrides = {names[k]: getattr(args, k) for k in names if getattr(args, k) is not None}
            if args.optimizer is not None:
                overrides["optimizer"] = OPTIMIZERS[args.optimizer]
            budget = {k: v for k, v in {"max_seconds": args.max_seconds, "patience": args.patience}.items()
                      if v is not None}
            overrides.update({"budget": budget} if budget else {}, **({"compile": True} if args.compile else {}))
            if args.video is not None:
                check_video_target(args.video, args.video_fps)  # before minutes of planning
            metrics = pipeline.evaluate_checkpoint(args.task, args.checkpoint, args.planner, args.episodes,
                                                   args.seed, horizon=args.horizon, pair_mode=args.pair_mode,
                                                   num_workers=args.num_workers, log_dir=args.log_dir,
                                                   logger=args.logger, **overrides)
            print(json.dumps({k: v for k, v in metrics.items() if k != "episodes"}, indent=2))
            if args.video is not None:
                path = pipeline.record_checkpoint_video(
                    args.task, args.checkpoint, args.video, args.planner, args.video_episodes, args.seed,
                    evaluated_episodes=args.episodes, size=args.video_size, fps=args.video_fps,
                    horizon=args.horizon, pair_mode=args.pair_mode, **overrides)
                print(f"video written to {path}")
        elif args.command == "finetune":
            pipeline.finetune(args.task, args.checkpoint, args.method, args.out, dataset=args.dataset,
                              steps=args.steps, seed=args.seed, predictor_lr=args.predictor_lr,
                              action_encoder_lr=args.action_encoder_lr, log_dir=args.log_dir, resume=args.resume,
                              logger=args.logger, finetuning=args.finetuning, online_schedule=args.online_schedule)
            print(f"checkpoint written to {args.out}")
        elif args.command == "reproduce":
            budget = MPCBudget(unit=args.budget_unit, env_steps=args.env_steps, max_iterations=args.max_iterations,
                               safety_env_steps=args.safety_env_steps)
            if args.dinowm_checkpoint is not None:
                if budget != MPCBudget():
                    raise ValueError(f"--dinowm-checkpoint runs keep our MPC budget; got {budget.label()!r}")
                if args.dataset is None or args.dinov2 is None:
                    raise ValueError("--dinowm-checkpoint needs --dataset (DINO-WM's dataset folder) and --dinov2 "
                                     "(a local DINOv2 folder)")
                from .dinowm import reproduce_dinowm  # DINO-WM's files need the [dinowm] and [dinov2] extras

                result = reproduce_dinowm(args.task, args.dinowm_checkpoint, args.dataset, args.dinov2, args.out,
                                          protocol=args.protocol, quick=args.quick, device=args.device,
                                          methods=tuple(args.methods), seeds=args.seeds,
                                          dataset_episodes=args.dataset_episodes, rollout=args.rollout,
                                          fresh=args.fresh, logger=args.logger)
            else:
                result = reproduce(args.task, args.out, quick=args.quick, seed=args.seed,
                                   planners=tuple(args.planners), methods=tuple(args.methods),
                                   backend=args.backend, workers=args.workers, ray_address=args.ray_address,
                                   verbose=args.verbose, fresh=args.fresh, protocol=args.protocol, obs=args.obs,
                                   logger=args.logger, seeds=args.seeds, budget=budget)
            print(result["table"])
            print(result["note"])
            print(result["claims"])
            print(f"\nplot: {result['paths']['plot']}\ntable: {result['paths']['table']}\n"
                  f"total: {result['seconds']:.0f} s")
        elif args.command == "convert-dinowm":
            from ..bridges import convert_dinowm_checkpoint  # reading hydra.yaml needs the [dinowm] extra

            path = convert_dinowm_checkpoint(args.run, args.out, checkpoint=args.checkpoint, rollout=args.rollout,
                                             dinov2=args.dinov2)
            print(f"checkpoint written to {path} (set its normalisation statistics before planning)")
        elif args.command == "diagnose":
            checkpoints = dict(args.checkpoints)
            if len(checkpoints) != len(args.checkpoints):
                raise ValueError(f"--checkpoints names must be unique, got {[name for name, _ in args.checkpoints]}")
            result = diagnose(args.task, checkpoints, args.out, num_pairs=args.pairs, seed=args.seed,
                              landscape_pairs=args.landscape_pairs, planner_steps=args.planner_steps,
                              planner_lr=args.planner_lr, resolution=args.resolution, span=args.span)
            print(result["table"])
            print(result["note"])
            print(f"\nplot: {result['paths']['plot']}\ntable: {result['paths']['table']}")
    except (ValueError, KeyError, FileNotFoundError, TypeError, ImportError, pickle.UnpicklingError) as error:
        print(f"torchrl-gbp {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
