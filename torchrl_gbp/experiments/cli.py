"""``torchrl-gbp``: the command line, one subcommand per pipeline function, its flags generated from types.

Each subcommand is a frozen option type below (its fields are the command's own flags) plus the sections of
the task :class:`~torchrl_gbp.experiments.recipes.Recipe` it reads, whose fields are flags under the section's
name (``--training.steps``, ``--planners.gd.lr``): given flags are applied to the task's recipe as one more
profile (:func:`~torchrl_gbp.experiments.recipes.apply_profile`), so a flag shows the default of the Wall
recipe and means "the task's recipe, but this". The flags are made by
:mod:`~torchrl_gbp.experiments.typed_args` (plain argparse, no rename map: a field's name is its flag).
"""
from __future__ import annotations

import argparse
import json
import logging
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from ..planners import SearchBudget
from ..synthesis import METHODS, SCHEDULES
from ..tasks import OBSERVATIONS
from ..train import LOGGERS
from . import pipeline
from .diagnostics import diagnose
from .pipeline import FINETUNINGS, VideoOptions
from .recipes import Recipe, apply_profile, recipe_for
from .reproduce import ReproduceOptions, reproduce
from .typed_args import add_flags, build, given

RECIPE_DEST = "recipe."


def _help(text: str, choices: tuple[str, ...] | None = None) -> dict:
    """A field's command-line help (and its allowed values)."""
    return {"help": text, **({"choices": choices} if choices else {})}


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


TASK = field(default="wall", metadata=_help("task name"))
SEED = field(default=0, metadata=_help("random seed"))
OBS = field(default="state", metadata=_help("what the world model sees: the state, or rendered pixels plus proprio",
                                             OBSERVATIONS))
LOG_DIR = field(default=None, metadata=_help("folder for TorchRL logs (none: no logs)"))
LOGGER = field(default="csv", metadata=_help("TorchRL logger under --log-dir (tensorboard and wandb need the pip "
                                             "extra of that name)", tuple(sorted(LOGGERS))))
RESUME = field(default=False, metadata=_help("continue the run checkpointed at --out"))


@dataclass(frozen=True, kw_only=True)
class Collect:
    """The ``collect`` subcommand's own flags: generate a seeded dataset (pipeline.collect).

    Example:
        >>> options = parse(["collect", "--out", "data/wall", "--data.num-trajectories", "40"])[1]
        >>> options.out
        'data/wall'
    """

    help: ClassVar[str] = "generate a seeded dataset (pipeline.collect)"
    sections: ClassVar[tuple[str, ...]] = ("data",)
    out: str = field(metadata=_help("dataset folder to write"))
    task: str = TASK
    seed: int = SEED
    obs: str = OBS
    trajectory_steps: int | None = field(default=None, metadata=_help("env steps per trajectory (none: the task's)"))

    def run(self, profile: dict, verbose: bool) -> None:
        recipe = apply_profile(recipe_for(self.task, obs=self.obs), profile, "overrides")
        path = pipeline.collect(self.task, self.out, recipe.data.num_trajectories, self.seed, self.trajectory_steps,
                                obs=self.obs)
        print(f"dataset written to {path}")


@dataclass(frozen=True, kw_only=True)
class Train:
    """The ``train`` subcommand's own flags: train a world model on a dataset (pipeline.train).

    Example:
        >>> options = parse(["train", "--dataset", "data/wall", "--out", "base.pt", "--resume"])[1]
        >>> options.resume
        True
    """

    help: ClassVar[str] = "train a world model on a dataset (pipeline.train)"
    sections: ClassVar[tuple[str, ...]] = ("data", "model", "training")
    dataset: str = field(metadata=_help("dataset folder from `collect`"))
    out: str = field(metadata=_help("checkpoint file to write"))
    task: str = TASK
    seed: int = SEED
    obs: str = OBS
    log_dir: str | None = LOG_DIR
    logger: str = LOGGER
    resume: bool = RESUME

    def run(self, profile: dict, verbose: bool) -> None:
        pipeline.train(self.task, self.dataset, self.out, profile=profile, seed=self.seed, log_dir=self.log_dir,
                       resume=self.resume, obs=self.obs, logger=self.logger)
        print(f"checkpoint written to {self.out}")


@dataclass(frozen=True, kw_only=True)
class Evaluate:
    """The ``evaluate`` subcommand's own flags: evaluate a planner on a checkpoint (pipeline.evaluate_checkpoint).

    Example:
        >>> options = parse(["evaluate", "--checkpoint", "base.pt", "--compile"])[1]
        >>> options.compile
        True
    """

    help: ClassVar[str] = "evaluate a planner on a checkpoint (pipeline.evaluate_checkpoint)"
    sections: ClassVar[tuple[str, ...]] = ("objective", "planners", "evaluation")
    checkpoint: str = field(metadata=_help("the world model to evaluate"))
    task: str = TASK
    seed: int = SEED
    planner: str = field(default="gd", metadata=_help("planner (its budget: --planners.<name>.*)",
                                                      pipeline.PLANNER_NAMES))
    pair_mode: str | None = field(default=None, metadata=_help("the task's kind of (start, goal) pairs"))
    num_workers: int = field(default=1, metadata=_help("run the episodes in a ParallelEnv of this many processes"))
    budget: SearchBudget | None = field(default=None, metadata=_help("stopping rules of each planning call"))
    compile: bool = field(default=False, metadata=_help("torch.compile the rollout and cost"))
    video: VideoOptions | None = field(default=None, metadata=_help("a video of the first evaluated episodes"))
    log_dir: str | None = LOG_DIR
    logger: str = LOGGER

    def run(self, profile: dict, verbose: bool) -> None:
        metrics = pipeline.evaluate_checkpoint(self.task, self.checkpoint, self.planner, profile=profile,
                                               seed=self.seed, pair_mode=self.pair_mode, num_workers=self.num_workers,
                                               budget=self.budget, compile=self.compile, video=self.video,
                                               log_dir=self.log_dir, logger=self.logger)
        print(json.dumps({k: v for k, v in metrics.items() if k not in ("episodes", "video")}, indent=2))
        if self.video is not None:
            print(f"video written to {metrics['video']}")


@dataclass(frozen=True, kw_only=True)
class Finetune:
    """The ``finetune`` subcommand's own flags: finetune a checkpoint with data synthesis (pipeline.finetune).

    Example:
        >>> options = parse(["finetune", "--base", "base.pt", "--method", "online", "--out", "online.pt"])[1]
        >>> options.method
        'online'
    """

    help: ClassVar[str] = "finetune a checkpoint with data synthesis (pipeline.finetune)"
    sections: ClassVar[tuple[str, ...]] = ("data", "training", "finetuning", "online", "adversarial", "synthesis")
    base: str = field(metadata=_help("base checkpoint to start from"))
    method: str = field(metadata=_help("synthesis method", METHODS))
    out: str = field(metadata=_help("checkpoint file to write"))
    task: str = TASK
    seed: int = SEED
    dataset: str | None = field(default=None, metadata=_help("dataset folder (none: regenerate the task's)"))
    finetuning: str = field(default="ours", metadata=_help(
        "ours (the recipe's --finetuning.* options) or reference (the reference code's AdamW, rates and dropout "
        "0.1, no clipping)", FINETUNINGS))
    online_schedule: str = field(default="replace", metadata=_help(
        "online methods: replace a share of each batch's rows (ours) or append one optimiser step per cached "
        "synthetic set (the reference code's)", SCHEDULES))
    log_dir: str | None = LOG_DIR
    logger: str = LOGGER
    resume: bool = RESUME

    def run(self, profile: dict, verbose: bool) -> None:
        pipeline.finetune(self.task, self.base, self.method, self.out, profile=profile, dataset=self.dataset,
                          seed=self.seed, finetuning=self.finetuning, online_schedule=self.online_schedule,
                          log_dir=self.log_dir, resume=self.resume, logger=self.logger)
        print(f"checkpoint written to {self.out}")


@dataclass(frozen=True, kw_only=True)
class Diagnose:
    """The ``diagnose`` subcommand's own flags: error on planned states, cost landscapes, gradient norms (diagnostics.diagnose).

    Example:
        >>> options = parse(["diagnose", "--checkpoints", "base=base.pt", "--out", "diag"])[1]
        >>> options.checkpoints
        ('base=base.pt',)
    """

    help: ClassVar[str] = "error on planned states, cost landscapes, gradient norms (diagnostics.diagnose)"
    sections: ClassVar[tuple[str, ...]] = ("objective", "evaluation")
    checkpoints: tuple[str, ...] = field(metadata=_help(
        "models to compare as NAME=PATH, e.g. base=runs/wall/base.pt online=runs/wall/online_seed0.pt"))
    out: str = field(metadata=_help("folder for landscape.png and diagnostics.md"))
    task: str = TASK
    seed: int = SEED
    pairs: int = field(default=50, metadata=_help("(start, goal) pairs"))
    landscape_pairs: int = field(default=8, metadata=_help("pairs whose landscape roughness is averaged"))
    planner_steps: int = field(default=300, metadata=_help("open-loop GD steps"))
    planner_lr: float = field(default=0.3, metadata=_help("open-loop GD learning rate"))
    resolution: int = field(default=41, metadata=_help("landscape grid points per axis"))
    span: float = field(default=1.0, metadata=_help("landscape half width, in filter-normalised units"))

    def run(self, profile: dict, verbose: bool) -> None:
        checkpoints = dict(named_path(text) for text in self.checkpoints)
        if len(checkpoints) != len(self.checkpoints):
            raise ValueError(f"--checkpoints names must be unique, got {list(self.checkpoints)}")
        result = diagnose(self.task, checkpoints, self.out, num_pairs=self.pairs, seed=self.seed,
                          landscape_pairs=self.landscape_pairs, profile=profile,
                          planner_steps=self.planner_steps, planner_lr=self.planner_lr, resolution=self.resolution,
                          span=self.span)
        print(result["table"])
        print(result["note"])
        print(f"\nplot: {result['paths']['plot']}\ntable: {result['paths']['table']}")


@dataclass(frozen=True, kw_only=True)
class ConvertDinowm:
    """The ``convert-dinowm`` subcommand's own flags: read a DINO-WM training run safely and write our checkpoint (bridges.convert_dinowm_checkpoint).

    Example:
        >>> options = parse(["convert-dinowm", "--run-dir", "outputs/wall", "--out", "wall.pt"])[1]
        >>> options.pickle
        'checkpoints/model_latest.pth'
    """

    help: ClassVar[str] = "read a DINO-WM training run safely and write our checkpoint (bridges.convert_dinowm_checkpoint)"
    sections: ClassVar[tuple[str, ...]] = ()
    run_dir: str = field(metadata=_help("the run folder: hydra.yaml and checkpoints/model_latest.pth"))
    out: str = field(metadata=_help("the checkpoint to write (loads with models.load_checkpoint)"))
    pickle: str = field(default="checkpoints/model_latest.pth", metadata=_help("the pickle, relative to --run-dir"))
    rollout: str = field(default="full", metadata=_help(
        "the model's rollout: DINO-WM's, from the whole history, or one frame per step (the paper's gradient-planning "
        "configs)", ("full", "history", "one_frame")))
    dinov2: str | None = field(default=None, metadata=_help(
        "a local DINOv2 folder (Dinov2Model.save_pretrained): the model carries it and reads pixels"))

    def run(self, profile: dict, verbose: bool) -> None:
        from ..bridges import convert_dinowm_checkpoint  # reading hydra.yaml needs the [dinowm] extra

        path = convert_dinowm_checkpoint(self.run_dir, self.out, checkpoint=self.pickle, rollout=self.rollout,
                                         dinov2=self.dinov2)
        print(f"checkpoint written to {path} (set its normalisation statistics before planning)")


def run_reproduce(options: ReproduceOptions, profile: dict, verbose: bool) -> None:
    """``reproduce``: the main job (:func:`~torchrl_gbp.experiments.reproduce.reproduce`, or
    :func:`~torchrl_gbp.experiments.dinowm.reproduce_dinowm` from DINO-WM's released model), its table, claims and
    paths printed.

    Example:
        >>> run_reproduce(*parse(["reproduce", "--quick"])[1:])  # about a minute on 2 cores  # doctest: +SKIP
    """
    if options.dinowm is not None:
        from .dinowm import reproduce_dinowm  # DINO-WM's files need the [dinowm] and [dinov2] extras

        result = reproduce_dinowm(options, profile=profile)
    else:
        result = reproduce(options, profile=profile, verbose=verbose)
    print(result["table"])
    print(result["note"])
    print(result["claims"])
    print(f"\nplot: {result['paths']['plot']}\ntable: {result['paths']['table']}\ntotal: {result['seconds']:.0f} s")


@dataclass(frozen=True)
class Command:
    """A subcommand: its option type (the command's flags), help line, the recipe sections it reads (their
    flags) and what runs it, ``run(options, profile, verbose)``.

    Example:
        >>> COMMANDS["train"].sections
        ('data', 'model', 'training')
    """

    options: type
    help: str
    sections: tuple[str, ...]
    run: Callable[[Any, dict, bool], None]


COMMANDS: dict[str, Command] = {
    name: Command(options, options.help, options.sections, options.run)
    for name, options in (("collect", Collect), ("train", Train), ("evaluate", Evaluate), ("finetune", Finetune),
                          ("diagnose", Diagnose), ("convert-dinowm", ConvertDinowm))
}
COMMANDS["reproduce"] = Command(ReproduceOptions, "dataset, base model, finetuned models, every planner on the same "
                                                  "goals, table and plot (reproduce.reproduce)",
                                tuple(f.name for f in fields(Recipe)), run_reproduce)


def named_path(text: str) -> tuple[str, str]:
    """``NAME=PATH`` -> ``(NAME, PATH)``, for ``diagnose --checkpoints``.

    Example:
        >>> named_path("base=runs/wall/base.pt")
        ('base', 'runs/wall/base.pt')
    """
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise ValueError(f"expected NAME=PATH, got {text!r}")
    return name, path


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, generated from :data:`COMMANDS`' option types and the recipe sections each reads.

    Example:
        >>> args = build_parser().parse_args(["evaluate", "--checkpoint", "runs/wall/base.pt", "--planner", "cem",
        ...                                   "--planners.cem.samples", "64"])
        >>> args.command, vars(args)["command.planner"], vars(args)["recipe.planners.cem.samples"]
        ('evaluate', 'cem', 64)
    """
    parser = argparse.ArgumentParser(prog="torchrl-gbp", description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", action="store_true",
                        help="show torchrl's INFO lines (storage initialisation and the like)")
    sub = parser.add_subparsers(dest="command", required=True)
    wall = recipe_for("wall")
    for name, spec in COMMANDS.items():
        command = sub.add_parser(name, help=spec.help, description=spec.help)
        add_flags(command, spec.options, dest_prefix="command.")
        for section in spec.sections:
            group = command.add_argument_group(f"recipe: {section}", "the task recipe's, changed (help: Wall's)")
            add_flags(group, type(getattr(wall, section)), prefix=f"{section}.", dest_prefix=f"{RECIPE_DEST}{section}.",
                      defaults=getattr(wall, section), default_label="wall")
    return parser


def parse(argv: list[str] | None = None) -> tuple[str, Any, dict[str, Any], bool]:
    """(subcommand, its option object, the recipe profile of the flags given, ``--verbose``) of ``argv``.

    Example:
        >>> name, options, profile, verbose = parse(["reproduce", "--quick", "--protocol", "paper", "--budget.unit",
        ...                                          "mpc_iterations",
        ...                                          "--budget.max-iterations", "10", "--evaluation.seeds", "0", "1"])
        >>> name, options.quick, options.budget.label(), profile
        ('reproduce', True, 'mpc_iterations:cap=10', {'evaluation.seeds': (0, 1)})
    """
    args = build_parser().parse_args(argv)
    options = build(COMMANDS[args.command].options, given(args, "command."))
    return args.command, options, given(args, RECIPE_DEST), args.verbose


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``torchrl-gbp`` console script.

    Example:
        >>> import tempfile
        >>> out = tempfile.mkdtemp() + "/wall"
        >>> argv = ["collect", "--task", "wall", "--out", out, "--data.num-trajectories", "3", "--trajectory-steps", "10"]
        >>> main(argv)  # doctest: +ELLIPSIS
        dataset written to .../wall
        0
        >>> main(["evaluate", "--checkpoint", "missing.pt"])  # the error goes to stderr; exit status 2
        2
        >>> main(["reproduce", "--task", "wall", "--quick"])  # minutes  # doctest: +SKIP
    """
    try:
        name, options, profile, verbose = parse(argv)
    except (ValueError, TypeError, KeyError) as error:  # a flag's value the option type refuses
        print(f"torchrl-gbp: error: {error}", file=sys.stderr)
        return 2
    set_torchrl_verbosity(verbose)
    try:
        apply_profile(recipe_for(getattr(options, "task", "wall")), profile, "flags")  # refused before any work
        COMMANDS[name].run(options, profile, verbose)
    except (ValueError, KeyError, FileNotFoundError, TypeError, ImportError, pickle.UnpicklingError) as error:
        print(f"torchrl-gbp {name}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
