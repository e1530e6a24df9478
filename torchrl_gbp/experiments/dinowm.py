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

import json
import os
import time
from pathlib import Path

from ..bridges import (
    DinoWMImageEncoder,
    convert_dinowm_checkpoint,
    dataset_info,
    normalization_statistics,
    open_dinowm_dataset,
    read_hydra_config,
    write_dinov2_tokens,
)
from ..io import atomic_write_text
from ..models import load_checkpoint
from .pipeline import REFERENCE_FINETUNING
from .protocol import PROTOCOLS
from .recipes import recipe_for
from .reproduce import claim_run_folder, run_jobs, summarize_runs

# The task replicas and the DINO-WM dataset each is evaluated with.
DINOWM_DATASETS = {"dinowm_wall": "wall_single", "dinowm_pusht": "pusht_noise", "dinowm_pointmaze": "point_maze"}
# The paper's finetuning rates (the reference fork's train.yaml), also under our protocol's optimiser.
DINOWM_FINETUNE_LR = {name: REFERENCE_FINETUNING[name] for name in ("predictor_lr", "action_encoder_lr")}
FINETUNE_METHODS = ("online", "adversarial")


def reproduce_dinowm(task_name: str, run_dir: str | os.PathLike, dataset: str | os.PathLike,
                     dinov2: str | os.PathLike, out_dir: str | os.PathLike = "runs", *, protocol: str = "paper",
                     quick: bool = False, device: str = "cpu", methods: tuple[str, ...] = FINETUNE_METHODS,
                     seeds: tuple[int, ...] | None = None, episodes: int | None = None,
                     finetune_steps: int | None = None, dataset_episodes: int | None = None, rollout: str = "full",
                     token_batch_size: int = 64, progress: bool = True, fresh: bool = False,
                     logger: str = "csv") -> dict:
    """Base model -> tokens -> finetuned models -> Table 1, from DINO-WM's released run, dataset and DINOv2.

    Args:
        task_name: ``"dinowm_wall"``, ``"dinowm_pusht"`` or ``"dinowm_pointmaze"`` (:data:`DINOWM_DATASETS`).
        run_dir: the released run folder (``hydra.yaml``, ``checkpoints/model_latest.pth``), read safely.
        dataset: DINO-WM's dataset folder for the task (``wall_single``, ``pusht_noise``, ``point_maze``).
        dinov2: a local folder of ``Dinov2Model.save_pretrained`` (ViT-S/14; nothing is downloaded).
        out_dir: results go to ``out_dir/<task>_dinowm``: ``dataset/`` (frames, tokens, statistics),
            ``base.pt``, the finetuned checkpoints, ``units/``, ``logs/``, the table and its plot.
        protocol: ``"paper"`` (Table 1's cells) or ``"ours"``.
        quick: the task's quick pixel recipe and protocol (a dry run).
        device: where DINOv2, the finetuning and the planners run (``"cuda"`` on a GPU); envs stay on the CPU.
        methods: finetuning methods besides the base model.
        seeds, episodes, finetune_steps: replace the recipe's (a run within a time budget: say so).
        dataset_episodes: read only the first episodes of the dataset (DINO-WM's ``n_rollout``).
        rollout: the model's rollout (see :class:`~torchrl_gbp.bridges.DinoWMConfig`).
        token_batch_size: frames per DINOv2 batch when the dataset's tokens are computed.

    Interrupted runs resume as :func:`~torchrl_gbp.experiments.reproduce.reproduce`'s do; ``fresh`` starts over.
    Returns ``{"rows", "runs", "table", "note", "claims", "seconds", "kept", "paths"}``.

    Example:
        >>> reproduce_dinowm("wall", "run", "data", "dinov2")  # arguments are checked before anything runs
        Traceback (most recent call last):
            ...
        ValueError: task must be one of ['dinowm_pointmaze', 'dinowm_pusht', 'dinowm_wall'], got 'wall'
        >>> reproduce_dinowm("dinowm_wall", "outputs/wall", "data/wall_single", "dinov2_vits14",
        ...                  device="cuda")  # hours on one GPU (docs/guides/dinowm.md)  # doctest: +SKIP
    """
    if task_name not in DINOWM_DATASETS:
        raise ValueError(f"task must be one of {sorted(DINOWM_DATASETS)}, got {task_name!r}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    start = time.perf_counter()
    run_dir, dinov2 = Path(run_dir), Path(dinov2)
    overrides = {"finetune_lr": dict(DINOWM_FINETUNE_LR),
                 **({} if seeds is None else {"seeds": tuple(seeds)}),
                 **({} if episodes is None else {"episodes": episodes}),
                 **({} if finetune_steps is None else {"finetune_steps": finetune_steps})}
    recipe = recipe_for(task_name, quick, obs="pixels")
    root = Path(out_dir) / f"{task_name}_dinowm"
    fingerprint = {"task": task_name, "quick": quick, "run": str(run_dir.resolve()),
                   "dataset": str(Path(dataset).resolve()), "dinov2": str(dinov2.resolve()), "rollout": rollout,
                   "dataset_episodes": dataset_episodes,
                   "overrides": json.loads(json.dumps(overrides))}
    claim_run_folder(root, fingerprint, fresh, ("units",))  # the converted dataset and its tokens are kept

    data_dir = root / "dataset"
    open_dinowm_dataset(dataset, data_dir, episodes=dataset_episodes)
    kind = dataset_info(data_dir)["kind"]
    if kind != DINOWM_DATASETS[task_name]:
        raise ValueError(f"{str(dataset)!r} is DINO-WM's {kind} dataset; {task_name} is evaluated with "
                         f"{DINOWM_DATASETS[task_name]}")
    image_size = int(read_hydra_config(run_dir / "hydra.yaml").get("img_size", 224))
    base = root / "base.pt"
    if not base.is_file():
        convert_dinowm_checkpoint(run_dir, base, rollout=rollout, normalization=normalization_statistics(data_dir))
    model, _ = load_checkpoint(base)
    encoder = DinoWMImageEncoder.from_pretrained(dinov2, image_size=image_size).to(device)
    if (encoder.num_tokens, encoder.token_dim) != (model.config.num_patches, model.config.visual_dim):
        raise ValueError(f"the DINOv2 in {str(dinov2)!r} gives {encoder.num_tokens} tokens of {encoder.token_dim} "
                         f"at img_size {image_size}; the model reads {model.config.num_patches} of "
                         f"{model.config.visual_dim}")
    write_dinov2_tokens(data_dir, encoder, "train", batch_size=token_batch_size)
    del encoder

    seeds_run = overrides.get("seeds", recipe.seeds)
    dinowm = {"dinov2": str(dinov2), "image_size": image_size, "device": device, "recipe": overrides}
    jobs = [{"task": task_name, "obs": "pixels", "quick": quick, "base": base, "dataset": data_dir,
             "log_dir": root / "logs", "logger": logger, "method": method, "seed": run_seed, "planners": ("gd", "cem"),
             "checkpoint": None if method == "base" else root / f"{method}_seed{run_seed}.pt",
             "result": root / "units" / f"{'' if protocol == 'ours' else 'paper_'}{method}_seed{run_seed}.json",
             "fingerprint": {**fingerprint, "method": method, "unit_seed": run_seed, "protocol": protocol},
             "protocol": protocol, "progress": progress, "threads": None, "verbose": False, "dinowm": dinowm}
            for run_seed in seeds_run for method in ("base", *methods)]
    runs, kept = run_jobs(jobs, progress=progress)
    summary = summarize_runs(runs, root, task_name, protocol)
    seconds = time.perf_counter() - start
    note = (f"DINO-WM's released {task_name.removeprefix('dinowm_')} model and {kind} dataset, DINOv2 from "
            f"{str(dinov2)!r}; {overrides.get('episodes', recipe.episodes)} episodes per seed, seeds "
            f"{list(seeds_run)}; {protocol} protocol; device {device}; {seconds:.0f} s total")
    atomic_write_text(summary["table_path"], f"{summary['table']}\n\n{note}\n\n{summary['claims']}\n")
    return {"rows": summary["rows"], "runs": runs, "table": summary["table"], "note": note,
            "claims": summary["claims"], "seconds": seconds, "kept": kept,
            "paths": {"dataset": data_dir, "checkpoint": base, "plot": summary["plot"],
                      "table": summary["table_path"]}}
