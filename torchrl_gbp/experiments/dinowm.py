"""Table 1 from DINO-WM's released models: base model, datasets and DINOv2 as published, finetuned here.

One call (``torchrl-gbp reproduce --dinowm-checkpoint RUN --dataset DATA --dinov2 DINOV2``) reads the
released run safely and converts it (:func:`~torchrl_gbp.bridges.convert_dinowm_checkpoint`, with the
dataset's normalisation statistics), converts the dataset once into memory-mapped trajectories and
encodes its frames once with DINOv2 (:func:`~torchrl_gbp.bridges.write_dinov2_tokens`), then runs
:func:`~torchrl_gbp.experiments.reproduce.reproduce`'s units: the base model evaluated, Online and
Adversarial finetuning from it on the tokens, each model evaluated on the task replica seen through
the same DINOv2 (:class:`~torchrl_gbp.bridges.DinoV2TokenTask`), and the table written from the raw
per-episode results.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bridges import (
    DinoV2TokenTask,
    DinoWMImageEncoder,
    convert_dinowm_checkpoint,
    dataset_info,
    load_dinowm_dataset,
    normalization_statistics,
    open_dinowm_dataset,
    read_hydra_config,
    write_dinov2_tokens,
)
from ..io import atomic_write_text
from ..models import load_checkpoint
from ..tasks import Task, make_task
from .protocol import paper_settings
from .recipes import REFERENCE_FINETUNING, apply_profile, recipe_for
from .reproduce import ReproduceOptions, RunJob, claim_run_folder, run_jobs, summarize_runs

# The task replicas and the DINO-WM dataset each is evaluated with.
DINOWM_DATASETS = {"dinowm_wall": "wall_single", "dinowm_pusht": "pusht_noise", "dinowm_pointmaze": "point_maze"}
# The paper's finetuning rates (the reference fork's train.yaml), also under our protocol's optimiser.
DINOWM_FINETUNE_LR = {f"finetuning.{name}": getattr(REFERENCE_FINETUNING, name)
                      for name in ("predictor_lr", "action_encoder_lr")}
FINETUNE_METHODS = ("online", "adversarial")


@functools.lru_cache(maxsize=2)
def dinov2_encoder(path: str, image_size: int, device: str) -> DinoWMImageEncoder:
    """DINOv2 from the local folder ``path`` at ``image_size`` on ``device``, loaded once per process."""
    return DinoWMImageEncoder.from_pretrained(path, image_size=image_size).to(device)


@dataclass(frozen=True, kw_only=True)
class DinoV2Tokens:
    """How a unit of a DINO-WM run sees its task and reads its dataset: the task's states rendered at
    ``image_size`` and encoded by the DINOv2 in ``dinov2`` on ``device`` (loaded once per process), DINO-WM's
    converted dataset (:func:`~torchrl_gbp.bridges.load_dinowm_dataset`).

    Example:
        >>> DinoV2Tokens(dinov2="dinov2_vits14", image_size=224, device="cuda").device
        'cuda'
    """

    dinov2: str
    image_size: int
    device: str = "cpu"

    def make_task(self, task_name: str, options: dict) -> Task:
        """The task (its states, with the protocol's constructor ``options``) through DINOv2."""
        encoder = dinov2_encoder(self.dinov2, self.image_size, self.device)
        return DinoV2TokenTask(make_task(task_name, obs="state", **options), encoder, image_size=self.image_size)

    def load_dataset(self, path: Path):
        """The converted DINO-WM dataset at ``path``."""
        return load_dinowm_dataset(path)


def reproduce_dinowm(options: ReproduceOptions, *, profile: Mapping[str, Any] = {}, progress: bool = True) -> dict:
    """Base model -> tokens -> finetuned models -> Table 1, from DINO-WM's released run, dataset and DINOv2
    (``options.dinowm``, a :class:`~torchrl_gbp.experiments.reproduce.DinoWMRun`).

    ``options.task``: ``"dinowm_wall"``, ``"dinowm_pusht"`` or ``"dinowm_pointmaze"`` (:data:`DINOWM_DATASETS`).
    Results go to ``out/<task>_dinowm``: ``dataset/`` (frames, tokens, statistics), ``base.pt``, the finetuned
    checkpoints, ``units/``, ``logs/``, the table and its plot. The recipe is the task's pixel recipe (its quick
    profile with ``quick``, a dry run) with the paper's finetuning rates (:data:`DINOWM_FINETUNE_LR`), then
    ``profile``; planning follows the paper's settings for the task (its sampling budget, not our small CPU pixel
    models'). DINOv2, the finetuning and the planners run on ``dinowm.device`` (``"cuda"`` on a GPU); envs stay on
    the CPU. Interrupted runs resume as :func:`~torchrl_gbp.experiments.reproduce.reproduce`'s do; ``fresh``
    starts over. Returns ``{"rows", "runs", "table", "note", "claims", "seconds", "kept", "paths"}``.

    Example:
        >>> from torchrl_gbp.experiments.reproduce import DinoWMRun
        >>> run = DinoWMRun(run="run", dataset="data", dinov2="dinov2")
        >>> reproduce_dinowm(ReproduceOptions(task="wall", dinowm=run))  # checked before anything runs
        Traceback (most recent call last):
            ...
        ValueError: task must be one of ['dinowm_pointmaze', 'dinowm_pusht', 'dinowm_wall'], got 'wall'
        >>> run = DinoWMRun(run="outputs/wall", dataset="data/wall_single", dinov2="dinov2_vits14", device="cuda")
        >>> reproduce_dinowm(ReproduceOptions(task="dinowm_wall", protocol="paper", dinowm=run,
        ...                                   methods=("online", "adversarial")))  # hours on one GPU  # doctest: +SKIP
    """
    task_name, dinowm, protocol = options.task, options.dinowm, options.protocol
    if task_name not in DINOWM_DATASETS:
        raise ValueError(f"task must be one of {sorted(DINOWM_DATASETS)}, got {task_name!r}")
    if dinowm is None:
        raise ValueError("reproduce_dinowm needs options.dinowm (the released run, its dataset and DINOv2)")
    start = time.perf_counter()
    run_dir, dinov2 = Path(dinowm.run), Path(dinowm.dinov2)
    overrides = {**DINOWM_FINETUNE_LR, **profile}
    recipe = apply_profile(recipe_for(task_name, options.quick, obs="pixels"), overrides, "overrides")
    root = Path(options.out) / f"{task_name}_dinowm"
    fingerprint = {"task": task_name, "quick": options.quick, "run": str(run_dir.resolve()),
                   "dataset": str(Path(dinowm.dataset).resolve()), "dinov2": str(dinov2.resolve()),
                   "rollout": dinowm.rollout, "dataset_episodes": dinowm.dataset_episodes,
                   "recipe": recipe.fingerprint()}
    claim_run_folder(root, fingerprint, options.fresh, ("units",))  # the converted dataset and its tokens are kept

    data_dir = root / "dataset"
    open_dinowm_dataset(dinowm.dataset, data_dir, episodes=dinowm.dataset_episodes)
    kind = dataset_info(data_dir)["kind"]
    if kind != DINOWM_DATASETS[task_name]:
        raise ValueError(f"{str(dinowm.dataset)!r} is DINO-WM's {kind} dataset; {task_name} is evaluated with "
                         f"{DINOWM_DATASETS[task_name]}")
    image_size = int(read_hydra_config(run_dir / "hydra.yaml").get("img_size", 224))
    base = root / "base.pt"
    if not base.is_file():
        convert_dinowm_checkpoint(run_dir, base, rollout=dinowm.rollout,
                                  normalization=normalization_statistics(data_dir))
    model, _ = load_checkpoint(base)
    encoder = dinov2_encoder(str(dinov2), image_size, dinowm.device)
    if (encoder.num_tokens, encoder.token_dim) != (model.config.num_patches, model.config.visual_dim):
        raise ValueError(f"the DINOv2 in {str(dinov2)!r} gives {encoder.num_tokens} tokens of {encoder.token_dim} "
                         f"at img_size {image_size}; the model reads {model.config.num_patches} of "
                         f"{model.config.visual_dim}")
    write_dinov2_tokens(data_dir, encoder, "train", batch_size=dinowm.token_batch_size)

    settings = paper_settings(task_name, options.quick) if protocol == "paper" else None
    source = DinoV2Tokens(dinov2=str(dinov2), image_size=image_size, device=dinowm.device)
    seeds = recipe.evaluation.seeds
    jobs = [RunJob(task=task_name, method=method, seed=run_seed, recipe=recipe, settings=settings,
                   planners=("gd", "cem"), base=base, dataset=data_dir,
                   checkpoint=None if method == "base" else root / f"{method}_seed{run_seed}.pt",
                   result=root / "units" / f"{'' if protocol == 'ours' else 'paper_'}{method}_seed{run_seed}.json",
                   fingerprint={**fingerprint, "method": method, "unit_seed": run_seed, "protocol": protocol},
                   source=source, log_dir=root / "logs", logger=options.logger, progress=progress)
            for run_seed in seeds for method in ("base", *options.methods)]
    runs, kept = run_jobs(jobs, progress=progress)
    summary = summarize_runs(runs, root, task_name, protocol)
    seconds = time.perf_counter() - start
    note = (f"DINO-WM's released {task_name.removeprefix('dinowm_')} model and {kind} dataset, DINOv2 from "
            f"{str(dinov2)!r}; {recipe.evaluation.episodes} episodes per seed, seeds {list(seeds)}; {protocol} "
            f"protocol; device {dinowm.device}; {seconds:.0f} s total")
    atomic_write_text(summary["table_path"], f"{summary['table']}\n\n{note}\n\n{summary['claims']}\n")
    return {"rows": summary["rows"], "runs": runs, "table": summary["table"], "note": note,
            "claims": summary["claims"], "seconds": seconds, "kept": kept,
            "paths": {"dataset": data_dir, "checkpoint": base, "plot": summary["plot"],
                      "table": summary["table_path"]}}
