"""Training and finetuning loops for world models on replay buffers of windows."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from tensordict import TensorDictBase
from torch.nn.parallel import DistributedDataParallel
from torchrl.data import ReplayBuffer
from torchrl.envs import Compose, Transform
from torchrl.record.loggers import CSVLogger, Logger, TensorboardLogger, WandbLogger
from tqdm.auto import tqdm

from .data import model_actions
from .distributed import distributed_rank, distributed_world_size
from .models import (
    StateWorldModel,
    TeacherForcingLoss,
    WorldModelConfig,
    save_checkpoint,
)
from .models.checkpoint import read_checkpoint
from .models.image_encoders import fit_patch_autoencoder
from .models.pixel_world_model import PixelWorldModel, PixelWorldModelConfig
from .optimizers import optimizer_class

# frames of a pixel dataset whose encoder tokens set the token statistics
NORMALIZATION_FRAMES = 2048


def build_world_model(config: WorldModelConfig | PixelWorldModelConfig, trajectories: TensorDictBase,
                      encoder_steps: int = 0, seed: int = 0,
                      encoder_foreground_weight: float = 0.0) -> StateWorldModel | PixelWorldModel:
    """A fresh world model with normalisation statistics fitted on ``trajectories`` ``(N, T)``.

    A :class:`PixelWorldModelConfig` gives a :class:`PixelWorldModel` on a pixel dataset: its patch
    autoencoder is first trained ``encoder_steps`` steps on the dataset's images (then frozen; batches are
    read from the memory map; ``encoder_foreground_weight``: see :func:`fit_patch_autoencoder`); a blur
    encoder's mean image and the token statistics come from :data:`NORMALIZATION_FRAMES` random frames.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> data = WallTask().generate_dataset(20, seed=0)
        >>> model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5), data)
        >>> type(model).__name__, torch.allclose(model.obs_normalizer.mean, data["observation"].mean((0, 1)))
        ('StateWorldModel', True)
    """
    if isinstance(config, PixelWorldModelConfig):
        return build_pixel_world_model(config, trajectories, encoder_steps, seed, encoder_foreground_weight)
    model = StateWorldModel(config)
    model.fit_normalization(trajectories["observation"], model_actions(trajectories, config.frameskip))
    return model


def build_pixel_world_model(config: PixelWorldModelConfig, trajectories: TensorDictBase, encoder_steps: int = 0,
                            seed: int = 0, encoder_foreground_weight: float = 0.0) -> PixelWorldModel:
    """See :func:`build_world_model`.

    Example:
        >>> from torchrl_gbp.tasks import make_task
        >>> data = make_task("wall", obs="pixels", image_size=16).generate_dataset(4, trajectory_steps=10, seed=0)
        >>> config = PixelWorldModelConfig(image_size=16, proprio_dim=2, env_action_dim=2, num_hist=1,
        ...                                encoder_options={"patch_size": 8, "token_dim": 4, "hidden_dim": 8})
        >>> model = build_pixel_world_model(config, data, encoder_steps=1)  # one autoencoder step, then frozen
        >>> model.encode(data["pixels"][:, :1], data["proprio"][:, :1]).shape  # 4 tokens of 4, then proprio
        torch.Size([4, 1, 18])
    """
    generator = torch.Generator().manual_seed(seed)
    model = PixelWorldModel(config)
    frames = trajectories["pixels"].reshape(-1, *trajectories["pixels"].shape[-3:])
    if config.encoder == "patch" and encoder_steps > 0:
        fit_patch_autoencoder(model.image_encoder, frames, encoder_steps, generator=generator,
                              foreground_weight=encoder_foreground_weight)
    index = torch.randperm(frames.shape[0], generator=generator)[:NORMALIZATION_FRAMES].sort().values
    if config.encoder == "blur":
        model.image_encoder.fit_background(frames[index])
    model.fit_normalization(frames[index], trajectories["proprio"], model_actions(trajectories, config.frameskip))
    return model


def parameter_groups(model: torch.nn.Module, lr: float, predictor_lr: float | None = None,
                     action_encoder_lr: float | None = None, encoder_lr: float | None = None,
                     proprio_encoder_lr: float | None = None) -> list[dict]:
    """Optimiser groups with per-part learning rates (``None``: use ``lr``; ``0``: frozen).

    The parts are the model's ``parameter_parts()`` (``"predictor"``, ``"action_encoder"``,
    ``"encoder"``, ``"proprio_encoder"``, ``"reward"`` for the package's models); a model
    without that method is one part, ``"model"``, trained at ``lr``.

    The paper finetunes the predictor at 1e-5 and the action encoder at 5e-4
    with the observation encoder frozen; the reference code trains the proprio
    encoder with the action encoder. ``proprio_encoder_lr``: a group of its own
    for the model's ``proprio_encoder`` (a pixel model's proprio embedding, a
    part of its predictor; DINO-WM's, a part of its observation encoder),
    taken out of the part that holds it; ``None``: it trains with that part.
    Models without one (state models) ignore it.

    Example:
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5, encoder="mlp"))
        >>> groups = parameter_groups(model, lr=1e-3, predictor_lr=1e-5, action_encoder_lr=5e-4, encoder_lr=0)
        >>> [(group["name"], group["lr"]) for group in groups]  # the encoder (lr 0) is left out
        [('predictor', 1e-05), ('action_encoder', 0.0005)]
        >>> optimizer = torch.optim.AdamW(groups)
    """
    parts = dict(model.parameter_parts()) if callable(getattr(model, "parameter_parts", None)) else {"model": model}
    rates = {"predictor": predictor_lr, "action_encoder": action_encoder_lr, "encoder": encoder_lr,
             "proprio_encoder": proprio_encoder_lr}
    if proprio_encoder_lr is None:
        parts.pop("proprio_encoder", None)
    proprio = parts.get("proprio_encoder")
    # the reward head trains at ``lr`` and is frozen when finetuning (lr=0); parts a model names otherwise at ``lr``
    parts = {name: (module, rates.get(name)) for name, module in parts.items()}
    taken = {id(p) for p in proprio.parameters()} if proprio is not None else set()
    groups = []
    for name, (module, part_lr) in parts.items():
        params = [p for p in module.parameters()
                  if p.requires_grad and (name == "proprio_encoder" or id(p) not in taken)]
        rate = lr if part_lr is None else part_lr
        if params and rate > 0:
            groups.append({"params": params, "lr": rate, "name": name})
    return groups


# The optimisers train_world_model takes by name (of :data:`~torchrl_gbp.optimizers.OPTIMIZERS`).
TRAINING_OPTIMIZERS = ("adam", "adamw")


def train_world_model(model: torch.nn.Module, buffer: ReplayBuffer, steps: int, *, lr: float = 1e-3,
                      predictor_lr: float | None = None, action_encoder_lr: float | None = None,
                      encoder_lr: float | None = None, proprio_encoder_lr: float | None = None,
                      optimizer: str = "adam", weight_decay: float = 0.0, grad_clip: float | None = 1.0,
                      loss_module: TeacherForcingLoss | None = None, logger: Logger | None = None,
                      log_every: int = 100, checkpoint_path: str | os.PathLike | None = None,
                      checkpoint_every: int = 0, checkpoint_extra: dict | None = None,
                      progress: bool = True, description: str = "train", resume: bool = False) -> dict[str, float]:
    """Minimise the teacher-forcing loss on windows sampled from ``buffer``.

    Every ``loss_*`` entry of ``loss_module(batch)`` is summed; the learning
    rates (per part: :func:`parameter_groups`) stay constant. ``optimizer``:
    ``"adam"`` or ``"adamw"`` (:data:`TRAINING_OPTIMIZERS`), with ``weight_decay``;
    ``grad_clip``: the gradient-norm bound (``None`` or 0: no clipping).

    ``steps`` counts sampled batches. A transform of the buffer with an
    ``appended_batches()`` method (an
    :class:`~torchrl_gbp.synthesis.OnlineSynthesis` on the ``"append"``
    schedule) adds optimiser steps: after each sampled batch's step, one step
    on each batch it returns for that batch, each first passed through the
    buffer's transforms that follow it. Inside a
    ``torch.distributed`` process group (for example under ``torchrun``, see
    :func:`~torchrl_gbp.distributed.distributed_training`) the loss runs
    through ``DistributedDataParallel``: each process samples its own batches
    (give each rank's buffer its own generator seed), gradients are averaged,
    the weights stay identical, and only rank 0 writes checkpoints. Metrics go to
    ``logger`` (a TorchRL logger) every ``log_every`` steps; a checkpoint is
    written atomically every ``checkpoint_every`` steps (0: only at the end) when
    ``checkpoint_path`` is given. Returns the last logged metrics.

    Checkpoints carry the training state: step, optimiser, the
    global torch RNG, the buffer's generator and the state of the buffer's
    transforms that have one (the synthesis transforms). With ``resume=True``
    and a checkpoint at ``checkpoint_path``, training continues after its step
    and ends with the same weights as an uninterrupted run (bitwise on CPU with
    the same thread count); without a checkpoint there it starts from scratch.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> from torchrl_gbp.data import make_window_buffer
        >>> data = WallTask().generate_dataset(50, seed=0)
        >>> model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5), data)
        >>> buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=16)
        >>> metrics = train_world_model(model, buffer, steps=3, progress=False)
        >>> sorted(metrics)
        ['loss_prediction', 'step']
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise ValueError(f"log_every must be an int >= 1, got {log_every!r}")
    for name, rate in (("lr", lr), ("predictor_lr", predictor_lr), ("action_encoder_lr", action_encoder_lr),
                       ("encoder_lr", encoder_lr), ("proprio_encoder_lr", proprio_encoder_lr),
                       ("grad_clip", grad_clip), ("weight_decay", weight_decay)):
        if rate is not None and not rate >= 0:
            raise ValueError(f"{name} must be >= 0 (0 freezes that part), got {rate!r}")
    optimizer_type = optimizer_class(optimizer, TRAINING_OPTIMIZERS)
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be >= 0 (0: only at the end), got {checkpoint_every!r}")
    loss_module = loss_module if loss_module is not None else TeacherForcingLoss(model)
    writes = distributed_rank() == 0
    step_loss = DistributedDataParallel(loss_module) if distributed_world_size() > 1 else loss_module
    groups = parameter_groups(model, lr, predictor_lr, action_encoder_lr, encoder_lr, proprio_encoder_lr)
    kind = optimizer
    optimizer = optimizer_type(groups, weight_decay=weight_decay) if groups else None
    first = 1
    if resume and checkpoint_path and Path(checkpoint_path).exists():
        first = _resume(checkpoint_path, model, optimizer, kind, buffer) + 1
    model.train()
    metrics: dict[str, float] = {}

    def descend(losses) -> torch.Tensor:
        """One optimiser step on the summed ``loss_*`` entries; returns their sum."""
        total = sum(v for k, v in losses.items() if k.startswith("loss_"))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], grad_clip)
        optimizer.step()
        return total

    def save(step: int) -> None:
        training = {"step": step, "optimizer": None if optimizer is None else optimizer.state_dict(),
                    "optimizer_kind": kind, "torch_rng": torch.get_rng_state(), "buffer_rng": _generator_state(buffer),
                    "transforms": _transform_state(buffer)}
        save_checkpoint(checkpoint_path, model, {**(checkpoint_extra or {}), "step": step}, training)

    bar = tqdm(range(first, steps + 1), desc=description, disable=not progress, dynamic_ncols=True)
    for step in bar:
        batch = buffer.sample()
        losses = step_loss(batch)
        if optimizer is None:
            total = sum(v for k, v in losses.items() if k.startswith("loss_"))
        else:
            total = descend(losses)
            for appended in appended_batches(buffer):
                descend(step_loss(appended))
        if step % log_every == 0 or step == steps:
            metrics = {k: float(v.detach()) for k, v in losses.items() if k.startswith("loss_")}
            metrics["step"] = step
            bar.set_postfix(loss=f"{float(total.detach()):.2e}")
            if logger is not None:
                for name, value in metrics.items():
                    if name != "step":
                        logger.log_scalar(f"{description}/{name}", value, step=step)
        if writes and checkpoint_path and checkpoint_every and step % checkpoint_every == 0:
            save(step)
    model.eval()
    if writes and checkpoint_path and first <= steps:
        save(steps)
    return metrics


def appended_batches(buffer: ReplayBuffer) -> list[TensorDictBase]:
    """The batches the buffer's transforms append to the batch it sampled last, each passed through the
    buffer's transforms that follow the one that made it (see :func:`train_world_model`).

    A transform appends batches through an ``appended_batches()`` method; nested ``Compose`` transforms are
    searched in order.

    Example:
        >>> from torchrl_gbp.tasks import WallTask
        >>> from torchrl_gbp.data import make_window_buffer
        >>> buffer = make_window_buffer(WallTask().generate_dataset(20, seed=0), frames=3, frameskip=5, batch_size=4)
        >>> appended_batches(buffer)  # no transform appends batches
        []
    """
    transforms = _flat_transforms(getattr(buffer, "transform", None))
    out = []
    for i, transform in enumerate(transforms):
        for batch in getattr(transform, "appended_batches", list)():
            for later in transforms[i + 1:]:
                batch = later(batch)
            out.append(batch)
    return out


def _flat_transforms(transform: Transform | None) -> list[Transform]:
    """The transforms of ``transform`` in the order they run, nested ``Compose`` flattened."""
    if transform is None:
        return []
    if isinstance(transform, Compose):
        return [t for part in transform.transforms for t in _flat_transforms(part)]
    return [transform]


def _transform_state(buffer: ReplayBuffer) -> dict:
    """The ``state_dict()`` of the buffer's transforms (the synthesis transforms keep their state there)."""
    transform = getattr(buffer, "transform", None)
    return {} if transform is None else transform.state_dict()


def _generator_state(buffer: ReplayBuffer) -> torch.Tensor | None:
    """The state of the generator the buffer samples with (``None``: it uses the global RNG)."""
    generator = getattr(buffer, "_rng", None)  # torchrl 0.14 keeps the sampling generator there
    return None if generator is None else generator.get_state()


def _resume(path: str | os.PathLike, model: StateWorldModel, optimizer, kind: str, buffer: ReplayBuffer) -> int:
    """Load the training state saved at ``path`` into the run; returns the step it was saved at."""
    payload = read_checkpoint(path)
    training = payload.get("training")
    if training is None:
        raise ValueError(f"checkpoint {str(path)!r} holds no training state to resume from")
    model.load_state_dict(payload["state_dict"])
    if (optimizer is None) != (training["optimizer"] is None):
        raise ValueError(f"checkpoint {str(path)!r} was trained with other parameter groups; cannot resume")
    saved_kind = training.get("optimizer_kind", "adam")  # checkpoints from before the choice trained with Adam
    if optimizer is not None and saved_kind != kind:
        raise ValueError(f"checkpoint {str(path)!r} was trained with optimizer {saved_kind!r}, this run uses "
                         f"{kind!r}; cannot resume")
    if optimizer is not None:
        optimizer.load_state_dict(training["optimizer"])
    torch.set_rng_state(training["torch_rng"])
    if training["buffer_rng"] is not None:
        generator = getattr(buffer, "_rng", None)
        if generator is None:
            raise ValueError(f"checkpoint {str(path)!r} sampled with a seeded generator; the buffer has none")
        generator.set_state(training["buffer_rng"])
    transform = getattr(buffer, "transform", None)
    if set(training["transforms"]) != set(_transform_state(buffer)):
        raise ValueError(f"checkpoint {str(path)!r} was trained with other replay-buffer transforms: it saved the "
                         f"state {sorted(training['transforms'])}, this buffer's transforms have "
                         f"{sorted(_transform_state(buffer))}")
    if transform is not None:
        transform.load_state_dict(training["transforms"])
    return int(training["step"])


# Logger backends by name: (TorchRL logger class, the package it needs, the pip extra that installs it).
LOGGERS: dict[str, tuple[type[Logger], str | None, str | None]] = {
    "csv": (CSVLogger, None, None),
    "tensorboard": (TensorboardLogger, "tensorboard", "tensorboard"),
    "wandb": (WandbLogger, "wandb", "wandb"),
}


def make_logger(name: str, log_dir: str | os.PathLike, exp_name: str) -> Logger:
    """TorchRL logger ``name`` (a key of :data:`LOGGERS`) writing experiment ``exp_name`` under ``log_dir``.

    ``"csv"`` (no extra package) writes ``log_dir/exp_name/scalars/<metric>.csv``; ``"tensorboard"`` writes
    event files under ``log_dir/exp_name``; ``"wandb"`` runs offline (nothing leaves the machine) into
    ``log_dir/wandb/offline-run-*``, to upload later with ``wandb sync``. Call ``close()`` on the logger when
    done so every backend has written its files.

    Example:
        >>> import tempfile
        >>> logger = make_logger("csv", tempfile.mkdtemp(), "train")
        >>> logger.log_scalar("loss", 0.5, step=1)
        >>> type(logger).__name__
        'CSVLogger'
    """
    if name not in LOGGERS:
        raise ValueError(f"logger must be one of {sorted(LOGGERS)}, got {name!r}")
    cls, package, extra = LOGGERS[name]
    if package is not None and importlib.util.find_spec(package) is None:
        raise ImportError(f"the {name} logger needs the {package!r} package, which is not installed; "
                          f"pip install 'torchrl_gbp[{extra}]'")
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    if name == "wandb":
        return cls(exp_name=exp_name, offline=True, save_dir=str(log_dir), project="torchrl_gbp")
    return cls(exp_name=exp_name, log_dir=str(log_dir))
