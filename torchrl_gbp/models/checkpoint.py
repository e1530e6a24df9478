"""Atomic checkpoints that rebuild an identical world model."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .world_model import StateWorldModel, WorldModelConfig

FORMAT_VERSION = 1


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    A crash mid-write never leaves a truncated file at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: str | os.PathLike, model: StateWorldModel, extra: dict | None = None,
                    training: dict | None = None) -> None:
    """Save weights, normalisation statistics (buffers) and config atomically.

    ``extra`` holds anything JSON-like the caller wants back (training step, task name...);
    ``training`` the state a resumed run needs (tensors, numbers, nested dicts; see
    :func:`~torchrl_gbp.train.train_world_model`).
    """
    atomic_torch_save(
        {"format_version": FORMAT_VERSION, "config": model.config.to_dict(),
         "observation_key": model.encoder.in_keys[0],
         "state_dict": model.state_dict(), "extra": dict(extra or {}), "training": training},
        path,
    )


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw payload of a checkpoint file, checked; errors name the path and what is wrong.

    ``FileNotFoundError`` when it is missing; ``ValueError`` when it is truncated
    or not a torch file, not a torchrl_gbp checkpoint, or of another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError... for damaged files
        raise ValueError(f"checkpoint {str(path)!r} cannot be read: truncated, damaged or not a torch file "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from error
    if not isinstance(payload, dict) or "format_version" not in payload or "config" not in payload:
        raise ValueError(f"{str(path)!r} is not a torchrl_gbp checkpoint (no format_version and config)")
    if payload["format_version"] != FORMAT_VERSION:
        raise ValueError(f"checkpoint {str(path)!r} has format version {payload['format_version']!r}; this "
                         f"torchrl_gbp reads version {FORMAT_VERSION}")
    return payload


def load_checkpoint(path: str | os.PathLike) -> tuple[StateWorldModel, dict]:
    """Rebuild the saved model; returns ``(model, extra)``."""
    payload = read_checkpoint(path)
    model = StateWorldModel(WorldModelConfig.from_dict(payload["config"]),
                            observation_key=payload.get("observation_key", "observation"))
    model.load_state_dict(payload["state_dict"])
    return model, payload["extra"]


def load_weights_into(model: StateWorldModel, path: str | os.PathLike) -> dict:
    """Load a checkpoint into an existing model; a different config raises naming the fields.

    Returns the checkpoint's ``extra`` dict.
    """
    payload = read_checkpoint(path)
    saved = payload["config"]
    current = model.config.to_dict()
    diff = {k: (saved.get(k), current.get(k)) for k in set(saved) | set(current) if saved.get(k) != current.get(k)}
    if diff:
        detail = ", ".join(f"{k}: checkpoint={a!r} model={b!r}" for k, (a, b) in sorted(diff.items()))
        raise ValueError(f"checkpoint {str(path)!r} was saved with another world-model config ({detail})")
    model.load_state_dict(payload["state_dict"])
    return payload["extra"]
