"""The main job: dataset, base model, finetuned models, every planner on the same goals, table and plot.

Its (seed, model) units are independent; they run here one after the other
(``backend="serial"``) or as Ray tasks (``backend="ray"``: a local Ray instance
with one task per worker, or an existing cluster given by ``ray_address``).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from ..data import load_dataset
from ..evaluate import evaluate
from ..io import atomic_write_text
from ..models import load_checkpoint
from ..models.checkpoint import read_checkpoint
from ..synthesis import METHODS
from ..tasks import OBSERVATIONS, Task, make_task
from ..train import LOGGERS, make_logger
from .pipeline import (
    COMPARED_PLANNERS,
    PLANNER_NAMES,
    finetune_model,
    finetuning_options,
    make_dataset,
    make_policy,
    train_base_model,
)
from .protocol import (
    MODES,
    OUR_BUDGET,
    OUR_CHOICES,
    PAPER_PLANNERS,
    PAPER_TABLE1,
    PROTOCOLS,
    MPCBudget,
    PaperSettings,
    evaluate_paper_cell,
    paper_settings,
    protocol_pairs,
)
from .recipes import REPORTED_PAIR_SEED_BASE, Recipe, apply_profile, recipe_for
from .reporting import (
    format_paper_table,
    format_table,
    paper_claims,
    paper_protocol_claims,
    paper_success_key,
    plot_success_vs_seconds,
    protocol_choices_note,
    summarize,
)

BACKENDS = ("serial", "ray")


@runtime_checkable
class TaskSource(Protocol):
    """How a unit sees its task and reads its dataset, and where its model runs (``device``; ``None``: where it
    was saved): :class:`TaskObservations` or :class:`~torchrl_gbp.experiments.dinowm.DinoV2Tokens`.

    Example:
        >>> isinstance(TaskObservations(), TaskSource)
        True
    """

    device: str | None

    def make_task(self, task_name: str, options: dict) -> Task:
        """The task, with the protocol's constructor ``options``."""

    def load_dataset(self, path: Path):
        """The trajectories of the dataset at ``path``."""


@dataclass(frozen=True, kw_only=True)
class TaskObservations:
    """How a unit of :func:`reproduce` sees its task and reads its dataset: the task's ``obs`` (``"state"`` or
    ``"pixels"``), our datasets, on the CPU. (:class:`~torchrl_gbp.experiments.dinowm.DinoV2Tokens` is the other
    way: the task through DINOv2, DINO-WM's datasets.)

    Example:
        >>> TaskObservations(obs="pixels").make_task("wall", {}).image_size
        64
    """

    obs: str = "state"
    device: str | None = None

    def make_task(self, task_name: str, options: dict) -> Task:
        """The task, with the protocol's constructor ``options``."""
        return make_task(task_name, obs=self.obs, **options)

    def load_dataset(self, path: Path):
        """The trajectories of the dataset at ``path``."""
        return load_dataset(path)


@dataclass(frozen=True, kw_only=True)
class RunJob:
    """One (seed, model) unit of :func:`reproduce` (and of DINO-WM's runs): finetune the ``base`` checkpoint with
    ``method`` (``"base"``: as is) under the ``recipe``, then evaluate every planner cell on the seed's pairs.

    ``settings``: the paper protocol's (``None``: ours, MPC with ``planners``); ``source``: how the unit sees the
    task and reads ``dataset`` (:class:`TaskObservations`, or DINO-WM's tokens); ``checkpoint``: where the
    finetuned model is kept (resumable); ``result``: the unit's rows, written atomically when it ends, with
    ``fingerprint`` (a finished unit of the same fingerprint is kept); ``threads``: torch threads in a Ray worker
    (``None``: here).

    Example:
        >>> job = RunJob(task="wall", method="online", seed=1, recipe=recipe_for("wall", quick=True), settings=None,
        ...              planners=("gd",), base=Path("runs/wall/base.pt"), dataset=Path("runs/wall/dataset"),
        ...              checkpoint=Path("runs/wall/online_seed1.pt"), result=Path("runs/wall/units/online_seed1.json"),
        ...              fingerprint={"method": "online"})
        >>> job.source.obs, job.threads
        ('state', None)
    """

    task: str
    method: str
    seed: int
    recipe: Recipe
    settings: PaperSettings | None
    planners: tuple[str, ...]
    base: Path
    dataset: Path | None
    checkpoint: Path | None
    result: Path
    fingerprint: dict
    source: TaskSource = TaskObservations()
    log_dir: Path | None = None
    logger: str = "csv"
    progress: bool = True
    threads: int | None = None
    verbose: bool = False


def run_unit(job: RunJob) -> list[dict]:
    """One unit of :func:`reproduce`: finetune the base checkpoint with ``job.method`` (``"base"``: as is),
    then evaluate every planner on the seed's (start, goal) pairs. Runs here or in a Ray worker.

    Its rows are written atomically to ``job.result`` (JSON) when it ends; an
    interrupted finetuning resumes from its checkpoint.

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig, save_checkpoint
        >>> folder = Path(tempfile.mkdtemp())
        >>> save_checkpoint(folder / "base.pt", StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2,
        ...                                                                      frameskip=5)))
        >>> job = RunJob(task="wall", method="base", seed=0, recipe=recipe_for("wall", quick=True), settings=None,
        ...              planners=("gd",), base=folder / "base.pt", dataset=None, checkpoint=None,
        ...              result=folder / "units" / "base_seed0.json", fingerprint={"method": "base"}, progress=False)
        >>> runs = run_unit(job)  # MPC on the quick recipe's 50 episodes, seconds  # doctest: +SKIP
        >>> [(run["model"], run["mode"], run["planner"]) for run in runs]  # doctest: +SKIP
        [('base', 'mpc', 'gd')]
    """
    if job.threads is not None:
        torch.set_num_threads(job.threads)
        logging.getLogger("torchrl").setLevel(logging.INFO if job.verbose else logging.WARNING)
    recipe, settings, source = job.recipe, job.settings, job.source
    task = source.make_task(job.task, {} if settings is None else settings.task_options(job.task))
    model, _ = load_checkpoint(job.base)
    if source.device is not None:
        model.to(source.device)
    progress, remote = job.progress, job.threads is not None
    if job.method != "base":
        log = make_logger(job.logger, job.log_dir, f"finetune_{job.method}_seed{job.seed}")
        choices = OUR_CHOICES if settings is None else settings.choices
        try:
            finetune_model(model, task, source.load_dataset(job.dataset), job.method, recipe, seed=job.seed,
                           finetuning=finetuning_options(recipe, choices.finetuning),
                           online_schedule=choices.online_schedule, logger=log, checkpoint_path=job.checkpoint,
                           progress=job.verbose and not remote, resume=True, device=source.device)
        finally:
            log.close()
        if progress and remote:
            print(f"  seed {job.seed} {job.method}: finetuned", flush=True)
    runs = []
    for mode, name in unit_cells(job.planners if settings is None else None,
                                 job.method in recipe.evaluation.mppi_models):
        pair_seed = REPORTED_PAIR_SEED_BASE + job.seed
        if settings is not None:
            pairs = protocol_pairs(task, settings, recipe.evaluation.episodes, pair_seed)
            metrics = evaluate_paper_cell(model, task, name, mode, pairs, settings, seed=job.seed)
        else:
            metrics = evaluate(make_policy(model, task, name, recipe), task, episodes=recipe.evaluation.episodes,
                               seed=pair_seed)
            options = recipe.planners.of(name)
            metrics["budget"] = f"{options.describe()}, {recipe.evaluation.executed(options)} executed per plan"
        runs.append({"model": job.method, "mode": mode, "planner": name, "seed": job.seed, **metrics})
        if progress:
            print(f"  seed {job.seed} {job.method}/{mode}/{name}: success {100 * metrics['success_rate']:.1f}% "
                  f"(sticky {100 * metrics['sticky_success_rate']:.1f}%)  {metrics['plan_seconds']:.3f} s/plan",
                  flush=True)
    atomic_write_text(job.result, json.dumps({"fingerprint": job.fingerprint, "runs": runs}, indent=1))
    return runs


def finetuned_checkpoint(root: Path, method: str, seed: int, settings: PaperSettings | None = None) -> Path:
    """Where :func:`reproduce` keeps the model finetuned with ``method`` and ``seed`` under ``root``:
    ``<method>_seed<k>.pt``, shared by both protocols when the protocol (``settings``; ``None``: ours) finetunes
    as ours does, else ``paper_<method>_seed<k>.pt``.

    Example:
        >>> finetuned_checkpoint(Path("runs/wall"), "online", 0).name
        'online_seed0.pt'
        >>> finetuned_checkpoint(Path("runs/wall"), "online", 0, PaperSettings()).name  # the reference's finetuning
        'paper_online_seed0.pt'
    """
    ours = settings is None or settings.choices.finetunes_as() == OUR_CHOICES.finetunes_as()
    return root / f"{'' if ours else 'paper_'}{method}_seed{seed}.pt"


def unit_cells(planners: tuple[str, ...] | None, with_mppi: bool) -> list[tuple[str, str]]:
    """The (mode, planner) cells a unit evaluates: ours, MPC with ``planners``; the paper's (``planners=None``),
    Table 1's cells.

    MPPI only where ``with_mppi`` (the recipe's ``mppi_models``), to bound the run time.

    Example:
        >>> unit_cells(("gd", "cem", "mppi"), with_mppi=False)
        [('mpc', 'gd'), ('mpc', 'cem')]
        >>> cells = unit_cells(None, with_mppi=False)  # Table 1: both modes x SGD, Adam, CEM
        >>> len(cells), cells[0], cells[-1]
        (6, ('open loop', 'sgd'), ('mpc', 'cem'))
    """
    if planners is None:
        return [(mode, name) for mode in MODES for name in PAPER_PLANNERS if name != "mppi" or with_mppi]
    return [("mpc", name) for name in planners if name != "mppi" or with_mppi]


def finished_runs(job: RunJob) -> list[dict] | None:
    """The rows a previous run of ``job`` wrote, if its result file is complete and of the same configuration.

    Example:
        >>> import tempfile
        >>> from dataclasses import replace
        >>> result = Path(tempfile.mkdtemp()) / "base_seed0.json"
        >>> job = RunJob(task="wall", method="base", seed=0, recipe=recipe_for("wall"), settings=None, planners=(),
        ...              base=Path("base.pt"), dataset=None, checkpoint=None, result=result,
        ...              fingerprint={"method": "base"})
        >>> finished_runs(job) is None  # no result file yet
        True
        >>> _ = result.write_text(json.dumps({"fingerprint": {"method": "base"},
        ...                                   "runs": [{"planner": "gd", "success_rate": 0.5}]}))
        >>> finished_runs(job)
        [{'planner': 'gd', 'success_rate': 0.5}]
        >>> finished_runs(replace(job, fingerprint={"method": "online"})) is None  # another configuration
        True
    """
    try:
        saved = json.loads(Path(job.result).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("fingerprint") != job.fingerprint:
        return None
    runs = saved.get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, dict) and "success_rate" in r for r in runs):
        return None
    if job.checkpoint is not None:
        try:
            read_checkpoint(job.checkpoint)
        except (OSError, ValueError):
            return None
    return runs


def longest_first(jobs: list[RunJob]) -> list[int]:
    """Indices of ``jobs`` in the order to submit them to a pool of workers: longest expected first.

    Units that finetune with online synthesis plan and step the simulator while
    they finetune and take longest; base units evaluate MPPI as well; the
    adversarial units are the shortest. Handing out long units first keeps a
    worker from running the last long unit alone while the others sit idle
    (as one of the two workers did at the end of the full pixel Wall run in
    submission order: docs/results/wall_pixels_paper.md,
    recipe_notes.md). Ties keep their order.

    Example:
        >>> from types import SimpleNamespace
        >>> longest_first([SimpleNamespace(method=m) for m in ("base", "online", "adversarial", "both")])
        [1, 3, 0, 2]
    """
    def rank(job: RunJob) -> int:
        method = job.method
        return 0 if method in ("online", "both") else 1 if method == "base" else 2
    return sorted(range(len(jobs)), key=lambda i: rank(jobs[i]))


def run_units(jobs: list[RunJob], backend: str = "serial", workers: int | None = None,
              ray_address: str | None = None) -> list[list[dict]]:
    """Results of :func:`run_unit` for ``jobs``, in order.

    ``"serial"`` runs them here. ``"ray"`` submits them, longest first (see
    :func:`longest_first`), as Ray tasks of ``cpu_count // workers`` CPUs
    (torch threads) each, so at most ``workers``
    run at once on this machine (default: one per core); with
    ``ray_address`` (for example ``"auto"`` or ``"ray://head:10001"``) they go to
    that cluster instead of a local instance started (and stopped) here.

    Example:
        >>> run_units([], backend="serial")
        []
        >>> run_units([], backend="dask")
        Traceback (most recent call last):
            ...
        ValueError: backend must be one of ('serial', 'ray'), got 'dask'
        >>> results = run_units(jobs, backend="ray", workers=2)  # jobs as run_unit takes them  # doctest: +SKIP
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "serial":
        return [run_unit(job) for job in jobs]
    try:
        import ray
    except ImportError as error:
        raise ImportError("backend='ray' needs Ray: pip install -e '.[ray]'") from error
    cores = os.cpu_count() or 1
    workers = min(len(jobs), cores) if workers is None else workers
    threads = max(1, cores // workers)
    started = not ray.is_initialized()
    if started:
        # without an address, always a fresh local instance (never a cluster someone started with `ray start`)
        local = {} if ray_address else {"num_cpus": workers * threads}
        ray.init(address=ray_address or "local", include_dashboard=False, logging_level="ERROR", **local)
    try:
        unit = ray.remote(num_cpus=threads)(run_unit)
        order = longest_first(jobs)
        results = ray.get([unit.remote(replace(jobs[i], threads=threads)) for i in order])
        by_job = dict(zip(order, results))
        return [by_job[i] for i in range(len(jobs))]
    finally:
        if started:
            ray.shutdown()


@dataclass(frozen=True, kw_only=True)
class DinoWMRun:
    """Start :func:`reproduce` from DINO-WM's released model instead of training a base model
    (:mod:`~torchrl_gbp.experiments.dinowm`): its ``run`` folder (``hydra.yaml``,
    ``checkpoints/model_latest.pth``), its ``dataset`` folder for the task, a local ``dinov2`` folder
    (``Dinov2Model.save_pretrained``), the ``device`` DINOv2, finetuning and planning run on, the model's
    ``rollout`` (``"full"``: DINO-WM's; ``"history"``, ``"one_frame"``), the first ``dataset_episodes`` of the
    dataset only (DINO-WM's ``n_rollout``; ``None``: all), and ``token_batch_size`` frames per DINOv2 batch.

    Example:
        >>> DinoWMRun(run="outputs/wall", dataset="data/wall_single", dinov2="dinov2_vits14").device
        'cpu'
    """

    run: str
    dataset: str
    dinov2: str
    device: str = "cpu"
    rollout: str = "full"
    dataset_episodes: int | None = None
    token_batch_size: int = 64


@dataclass(frozen=True, kw_only=True)
class ReproduceOptions:
    """What :func:`reproduce` runs: ``task`` seen as ``obs``, in ``out/<task>``, the dataset and base model from
    ``seed``; its ``quick`` profile; the ``protocol`` (``"ours"``: MPC with ``planners``; ``"paper"``: Table 1,
    its MPC ``budget`` an :class:`~torchrl_gbp.experiments.protocol.MPCBudget`); the finetuning ``methods``; the
    units on ``backend`` (``"serial"``, or ``"ray"`` with ``workers`` side by side, on the cluster at
    ``ray_address`` if given); TorchRL ``logger``; ``fresh``: start over; ``dinowm``: start from DINO-WM's released model (:class:`DinoWMRun`).

    Example:
        >>> ReproduceOptions(task="pusht", quick=True).planners
        ('cem', 'gd', 'gd_warm')
        >>> ReproduceOptions(backend="slurm")
        Traceback (most recent call last):
            ...
        ValueError: ReproduceOptions.backend must be one of ('serial', 'ray'), got 'slurm'
    """

    task: str = "wall"
    out: str = "runs"
    quick: bool = False
    obs: str = "state"
    seed: int = 0
    protocol: str = "ours"
    planners: tuple[str, ...] = COMPARED_PLANNERS
    methods: tuple[str, ...] = ("online", "adversarial")
    budget: MPCBudget = OUR_BUDGET
    backend: str = "serial"
    workers: int | None = None
    ray_address: str | None = None
    logger: str = "csv"
    fresh: bool = False
    dinowm: DinoWMRun | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("backend", BACKENDS), ("protocol", PROTOCOLS), ("obs", OBSERVATIONS),
                              ("logger", tuple(LOGGERS))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"ReproduceOptions.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name, allowed in (("planners", PLANNER_NAMES), ("methods", METHODS)):
            unknown = [value for value in getattr(self, name) if value not in allowed]
            if unknown:
                raise ValueError(f"ReproduceOptions.{name}: unknown {unknown}; expected names of {allowed}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"ReproduceOptions.workers must be >= 1, got {self.workers}")
        if self.budget != OUR_BUDGET and (self.protocol != "paper" or self.dinowm is not None):
            raise ValueError(f"budget={self.budget.label()!r} needs protocol='paper' and our models (ours runs the "
                             f"recipe's episode; DINO-WM runs keep our MPC budget)")


def reproduce(options: ReproduceOptions = ReproduceOptions(), *, profile: Mapping[str, Any] = {},
              progress: bool = True, verbose: bool = False) -> dict:
    """Dataset -> base model -> finetuned models -> planners on the same goals -> table and plot.

    The dataset and the base model are made once (``options.seed``). For each seed of
    the recipe, every method finetunes a copy of the base model, and every
    model is evaluated with every planner on that seed's (start, goal) pairs
    (MPPI only on the recipe's ``mppi_models``, to bound the run time).
    ``profile`` changes the task recipe's fields (:func:`~torchrl_gbp.experiments.recipes.apply_profile`; e.g.
    ``{"evaluation.seeds": (0,)}``: a run within a time budget, say so where it is reported).
    The (seed, model) units run on ``options.backend`` (see :func:`run_units`; Ray
    runs ``workers`` side by side). Results do not depend on the backend
    beyond the floating-point effect of the torch thread count.
    Writes ``out/<task>/{dataset, base.pt, <method>_seed<k>.pt, units/, logs,
    results.md, success_vs_seconds.png}`` and returns ``{"rows", "runs", "table", "seconds", "paths",
    "kept"}``.

    Interrupted runs resume: the same call again keeps the dataset, continues
    the base model's training from its checkpoint, keeps every unit whose result
    file (``units/<method>_seed<k>.json``, written atomically when the unit
    ends) is complete and of the same configuration, and redoes the rest
    (their finetuning resumes from its checkpoint). ``fresh=True`` starts over.
    ``protocol`` (:mod:`torchrl_gbp.experiments.protocol`): ``"ours"`` (``results.md``) or ``"paper"`` (Table 1's
    layout, ``results_paper.md``; the dataset and base model are shared with ``"ours"`` in the same folder, the
    finetuned models too where the paper protocol finetunes as ours does (:func:`finetuned_checkpoint`)).
    ``obs="pixels"``: the same job on the task's pixels with pixel world models
    (:class:`~torchrl_gbp.tasks.PixelTask`, the pixel recipe), in ``out/<task>_pixels``. ``progress``: a line per
    evaluated cell; ``verbose``: progress bars of training and finetuning too, and torchrl's INFO lines in Ray
    workers (the caller's own logger is left as it is).
    ``budget`` (the paper protocol only): what its MPC budget counts; another budget's units and table are kept
    apart from the default's (``units/paper_<budget>_<method>_seed<k>.json``, ``results_paper_<budget>.md``,
    :func:`budget_tag`). Options with ``dinowm`` (DINO-WM's released model) are run by
    :func:`~torchrl_gbp.experiments.dinowm.reproduce_dinowm`.

    Example:
        >>> result = reproduce(ReproduceOptions(task="wall", quick=True))  # minutes on a laptop  # doctest: +SKIP
        >>> print(result["table"])  # doctest: +SKIP
        >>> sorted(result["paths"])  # doctest: +SKIP
        ['checkpoint', 'dataset', 'plot', 'table']
    """
    if options.dinowm is not None:
        raise ValueError("options.dinowm starts from DINO-WM's released model: run "
                         "torchrl_gbp.experiments.dinowm.reproduce_dinowm(options) (the command line does)")
    start = time.perf_counter()
    task_name, obs, seed, protocol, budget = options.task, options.obs, options.seed, options.protocol, options.budget
    recipe = apply_profile(recipe_for(task_name, options.quick, obs=obs), profile, "overrides")
    task = make_task(task_name, obs=obs)
    settings = None
    if protocol == "paper":
        settings = paper_settings(task_name, options.quick, obs)
        settings = replace(settings, choices=replace(settings.choices, budget=budget))
    root = Path(options.out) / (task_name if obs == "state" else f"{task_name}_{obs}")
    fingerprint = {"task": task_name, "quick": options.quick, "seed": seed, "recipe": recipe.fingerprint(),
                   **({} if obs == "state" else {"obs": obs})}
    claim_run_folder(root, fingerprint, options.fresh, ("dataset", "units"))
    torch.manual_seed(seed)
    dataset_path = root / "dataset"
    if not _dataset_matches(dataset_path, recipe.data.num_trajectories):
        make_dataset(task, dataset_path, recipe.data.num_trajectories, seed=seed)
    log = make_logger(options.logger, root / "logs", "reproduce")
    try:
        if progress:
            print(f"{task_name}: dataset of {recipe.data.num_trajectories} trajectories; training the base model "
                  f"({recipe.training.steps} steps)", flush=True)
        train_base_model(task, load_dataset(dataset_path), recipe, root / "base.pt", seed, logger=log,
                         progress=verbose, resume=True)
    finally:
        log.close()
    tag = budget_tag(budget)
    planners = tuple(options.planners)
    jobs = [RunJob(task=task_name, method=method, seed=run_seed, recipe=recipe, settings=settings,
                   planners=planners, base=root / "base.pt", dataset=dataset_path,
                   checkpoint=None if method == "base" else finetuned_checkpoint(root, method, run_seed, settings),
                   result=root / "units" / f"{'' if protocol == 'ours' else 'paper_'}{tag}{method}_seed{run_seed}.json",
                   fingerprint={**fingerprint, "method": method, "unit_seed": run_seed, "planners": list(planners),
                                "protocol": protocol, **({} if budget == OUR_BUDGET else {"budget": budget.label()}),
                                **({} if settings is None or method == "base"
                                   else {"finetuning_choices": settings.choices.finetunes_as()})},
                   source=TaskObservations(obs=obs), log_dir=root / "logs", logger=options.logger,
                   progress=progress, verbose=verbose)
            for run_seed in recipe.evaluation.seeds for method in ("base", *options.methods)]
    runs, kept = run_jobs(jobs, options.backend, options.workers, options.ray_address, progress)
    summary = summarize_runs(runs, root, task_name, protocol, tag)
    seconds = time.perf_counter() - start
    side_by_side = options.workers if options.workers is not None else min(len(jobs), os.cpu_count() or 1)
    where = "serially" if options.backend == "serial" else f"on Ray ({side_by_side} workers)"
    note = (f"{recipe.evaluation.episodes} episodes per seed, seeds {list(recipe.evaluation.seeds)} (evaluation pairs "
            f"and finetuning); one dataset and base model (seed {seed}); {protocol} protocol"
            f"{'' if budget == OUR_BUDGET else f', MPC budget {budget.label()}'}; planning time in "
            f"{'CPU seconds of this process' if recipe.evaluation.clock == 'cpu' else 'wall seconds'}; "
            f"{seconds:.0f} s total, units run {where}")
    atomic_write_text(summary["table_path"], f"{summary['table']}\n\n{note}\n\n{summary['claims']}\n")
    return {"rows": summary["rows"], "runs": runs, "table": summary["table"], "note": note,
            "claims": summary["claims"], "seconds": seconds, "kept": kept,
            "paths": {"dataset": dataset_path, "checkpoint": root / "base.pt", "plot": summary["plot"],
                      "table": summary["table_path"]}}


def run_jobs(jobs: list[RunJob], backend: str = "serial", workers: int | None = None, ray_address: str | None = None,
             progress: bool = True) -> tuple[list[dict], int]:
    """The rows of every unit of ``jobs``: those a previous run finished (:func:`finished_runs`) kept, the others
    run (:func:`run_units`); returns ``(rows in job order, number of units kept)``.

    Example:
        >>> run_jobs([])
        ([], 0)
    """
    kept = {i: finished for i, job in enumerate(jobs) if (finished := finished_runs(job)) is not None}
    if kept and progress:
        names = ", ".join(f"{jobs[i].method}/seed {jobs[i].seed}" for i in kept)
        print(f"kept {len(kept)} finished unit(s) of an earlier run: {names}", flush=True)
    todo = [job for i, job in enumerate(jobs) if i not in kept]
    done = iter(run_units(todo, backend, workers, ray_address) if todo else [])
    return [run for i in range(len(jobs)) for run in (kept[i] if i in kept else next(done))], len(kept)


def summarize_runs(runs: list[dict], root: Path, task_name: str, protocol: str, tag: str = "") -> dict:
    """The table, claims and success-vs-seconds plot of a run's rows (``ours``: MPC per planner; ``paper``:
    Table 1 beside the paper's numbers); the plot is written into ``root``. Returns ``rows``, ``table``,
    ``claims``, ``plot`` and ``table_path`` (``results.md`` or ``results_paper.md`` in ``root``, not written;
    ``tag``, a budget's :func:`budget_tag`, goes into the paper protocol's file names: ``results_paper_<tag>.md``).

    Example:
        >>> import tempfile
        >>> runs = [{"model": "base", "mode": "mpc", "planner": p, "seed": 0, "success_rate": 0.5,
        ...          "final_distance": 1.0, "plan_seconds": 0.1, "plan_seconds_per_env": 0.01}
        ...         for p in ("gd", "cem")]
        >>> summary = summarize_runs(runs, Path(tempfile.mkdtemp()), "wall", "ours")
        >>> summary["table_path"].name, summary["plot"].is_file()
        ('results.md', True)
    """
    suffix = "" if protocol == "ours" else f"_paper{'_' + tag.rstrip('_') if tag else ''}"
    if protocol == "paper":
        rows = summarize(runs, by=("model", "mode", "planner"), success=paper_success_key(runs))
        table = f"{format_paper_table(rows, PAPER_TABLE1.get(task_name))}\n\n{protocol_choices_note(runs)}"
        claims = paper_protocol_claims(rows)
        points = [{**r, "model": f"{r['model']} {r['mode']}"} for r in rows]
    else:
        rows = summarize(runs)
        table = format_table(rows)
        claims = paper_claims(rows)
        points = rows
    plot = plot_success_vs_seconds(points, root / f"success_vs_seconds{suffix}.png",
                                   f"{task_name}: success vs planning time ({protocol} protocol)")
    return {"rows": rows, "table": table, "claims": claims, "plot": plot, "table_path": root / f"results{suffix}.md"}


def budget_tag(budget: MPCBudget) -> str:
    """The prefix that keeps a budget's unit files apart from the default budget's: ``""`` for ours, else its
    :meth:`~torchrl_gbp.experiments.protocol.MPCBudget.label` in file-name characters, then ``_``.

    Example:
        >>> budget_tag(OUR_BUDGET), budget_tag(MPCBudget(unit="mpc_iterations", max_iterations=10))
        ('', 'mpc_iterations_cap_10_')
    """
    return "" if budget == OUR_BUDGET else re.sub(r"\W+", "_", budget.label()) + "_"


def claim_run_folder(root: Path, fingerprint: dict, fresh: bool, cleared: tuple[str, ...]) -> None:
    """Make ``root`` the folder of the run ``fingerprint`` names: with ``fresh``, first remove its ``cleared``
    subfolders and its checkpoints; a folder holding another configuration's ``run.json`` is refused.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> claim_run_folder(root, {"task": "wall"}, fresh=False, cleared=("units",))
        >>> claim_run_folder(root, {"task": "pusht"}, fresh=False, cleared=("units",))
        Traceback (most recent call last):
            ...
        ValueError: ... holds a run of another configuration ...
    """
    if fresh:
        for name in cleared:
            shutil.rmtree(root / name, ignore_errors=True)
        for checkpoint in root.glob("*.pt"):
            checkpoint.unlink()
    run_file = root / "run.json"
    if run_file.exists() and json.loads(run_file.read_text()) != fingerprint:
        raise ValueError(f"{str(root)!r} holds a run of another configuration ({run_file}); pass fresh=True "
                         f"(--fresh) to start over there, or choose another output folder")
    atomic_write_text(run_file, json.dumps(fingerprint))


def _dataset_matches(path: Path, num_trajectories: int) -> bool:
    """Whether ``path`` holds a complete saved dataset of ``num_trajectories`` trajectories (writes are atomic)."""
    if not path.is_dir():
        return False
    try:
        return load_dataset(path).shape[0] == num_trajectories
    except (OSError, ValueError, KeyError, RuntimeError):
        return False
