"""Atomic checkpoints that rebuild an identical world model."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch
from torch import nn

from ..io import atomic_torch_save
from .pixel_world_model import PixelWorldModel, PixelWorldModelConfig
from .world_model import LatentWorldModel, StateWorldModel, WorldModelConfig

FORMAT_VERSION = 1


# checkpoint "kind" -> (model class, config class); kinds defined elsewhere add themselves (register_model_kind)
MODEL_KINDS = {"state": (StateWorldModel, WorldModelConfig), "pixel": (PixelWorldModel, PixelWorldModelConfig)}
# kind -> the torchrl_gbp module that registers it, saved in its checkpoints and imported to load them
KIND_MODULES: dict[str, str] = {}


def register_model_kind(kind: str, model_class: type, config_class: type, *, module: str) -> None:
    """Make checkpoints of ``model_class`` (built as ``model_class(config, image_encoder=..., observation_keys=...,
    goal_keys=...)`` from ``config_class.from_dict``) save and load as ``kind``.

    ``module`` is the ``torchrl_gbp`` module that calls this; checkpoints record it, and
    :func:`load_checkpoint` imports it, so loading needs no import by the caller.
    """
    if not module.startswith("torchrl_gbp."):
        raise ValueError(f"model kinds are registered by torchrl_gbp modules, got module {module!r}")
    known = MODEL_KINDS.get(kind)
    if known is not None and known != (model_class, config_class):
        raise ValueError(f"checkpoint kind {kind!r} is already registered for {known[0].__name__}")
    MODEL_KINDS[kind] = (model_class, config_class)
    KIND_MODULES[kind] = module


def model_kind(model: LatentWorldModel) -> str:
    """The checkpoint ``kind`` of a world model (``"state"`` or ``"pixel"``)."""
    for kind, (cls, _) in MODEL_KINDS.items():
        if isinstance(model, cls):
            return kind
    raise TypeError(f"cannot checkpoint a {type(model).__name__}; expected one of "
                    f"{[cls.__name__ for cls, _ in MODEL_KINDS.values()]}")


def save_checkpoint(path: str | os.PathLike, model: LatentWorldModel, extra: dict | None = None,
                    training: dict | None = None) -> None:
    """Save weights, normalisation statistics (buffers) and config atomically.

    ``extra`` holds anything JSON-like the caller wants back (training step, task name...);
    ``training`` the state a resumed run needs (tensors, numbers, nested dicts; see
    :func:`~torchrl_gbp.train.train_world_model`).

    Example:
        >>> import tempfile
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> path = Path(tempfile.mkdtemp()) / "model.pt"
        >>> save_checkpoint(path, model, extra={"task": "wall", "step": 0})
        >>> read_checkpoint(path)["kind"], read_checkpoint(path)["extra"]
        ('state', {'task': 'wall', 'step': 0})
    """
    kind = model_kind(model)
    atomic_torch_save(
        {"format_version": FORMAT_VERSION, "kind": kind, "kind_module": KIND_MODULES.get(kind),
         "config": model.config.to_dict(),
         "observation_keys": list(model.observation_keys), "goal_keys": list(model.goal_keys),
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


def load_checkpoint(path: str | os.PathLike, image_encoder: nn.Module | None = None) -> tuple[LatentWorldModel, dict]:
    """Rebuild the saved model (state or pixel); returns ``(model, extra)``.

    ``image_encoder``: the module of a pixel model saved with a ``"custom"``
    encoder (its weights are restored from the checkpoint).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "model.pt"
        >>> save_checkpoint(path, StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5)),
        ...                 extra={"task": "wall"})
        >>> model, extra = load_checkpoint(path)
        >>> type(model).__name__, model.action_dim, extra
        ('StateWorldModel', 10, {'task': 'wall'})
    """
    payload = read_checkpoint(path)
    kind = payload.get("kind", "state")
    module = payload.get("kind_module")
    if kind not in MODEL_KINDS and isinstance(module, str) and module.startswith("torchrl_gbp."):
        importlib.import_module(module)  # registers the kind
    if kind not in MODEL_KINDS:
        raise ValueError(f"checkpoint {str(path)!r} holds a model of kind {kind!r}; expected one of {list(MODEL_KINDS)}")
    model_class, config_class = MODEL_KINDS[kind]
    config = config_class.from_dict(payload["config"])
    keys = {}
    if "observation_keys" in payload:  # checkpoints before keyed pixels kept one "observation_key"
        keys = {"observation_keys": payload["observation_keys"], "goal_keys": payload["goal_keys"]}
    elif kind == "state":
        keys = {"observation_keys": [payload.get("observation_key", "observation")], "goal_keys": ["goal"]}
    if kind == "state":
        (observation_key,), (goal_key,) = keys["observation_keys"], keys["goal_keys"]
        model = model_class(config, observation_key=_key(observation_key), goal_key=_key(goal_key))
    else:
        model = model_class(config, image_encoder=image_encoder,
                            **{name: [_key(k) for k in value] for name, value in keys.items()})
    model.load_state_dict(payload["state_dict"])
    return model, payload["extra"]


def _key(key: str | list | tuple):
    """A saved TensorDict key (nested keys may come back as lists) as a key."""
    return key if isinstance(key, str) else tuple(key)


def load_weights_into(model: LatentWorldModel, path: str | os.PathLike) -> dict:
    """Load a checkpoint into an existing model; a different config raises naming the fields.

    Returns the checkpoint's ``extra`` dict.

    Example:
        >>> import tempfile
        >>> config = WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5)
        >>> trained, fresh = StateWorldModel(config), StateWorldModel(config)
        >>> trained.fit_normalization(torch.zeros(8, 2), torch.full((8, 10), 0.5))
        >>> path = Path(tempfile.mkdtemp()) / "model.pt"
        >>> save_checkpoint(path, trained, extra={"step": 100})
        >>> load_weights_into(fresh, path)
        {'step': 100}
        >>> fresh.action_normalizer.mean[:2].tolist()
        [0.5, 0.5]
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
