"""What a task recipe holds: defaults for data, model, training and planner budgets (each task keeps its own
``RECIPE`` in ``torchrl_gbp/experiments/recipes/<name>.py``; :func:`recipe_for` finds it)."""
from __future__ import annotations

import importlib
import json
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any

from ...tasks import GYM_PREFIX, TASKS, check_observation, make_task

# Evaluation-pair seeds: reported results use 1000 + k for the recipe's seeds k; choosing budgets, learning rates
# or any other setting uses these, never the reported ones.
REPORTED_PAIR_SEED_BASE = 1000
TUNING_PAIR_SEEDS = (5000, 5001, 5002)
# The sampling planners' budget in a quick run (the default recipe's and the paper protocol's).
QUICK_SAMPLING = {"samples": 100, "elites": 10, "iterations": 10}


@dataclass(kw_only=True)
class Recipe:
    """Defaults for one task: data, model, training and planner budgets.

    ``planner_kwargs`` maps a planner name (``"gd"``, ``"cem"``, ``"mppi"``, ``"icem"``, ``"gd_cem"``) to
    constructor arguments of :class:`GradientPlanner`, :class:`CrossEntropyPlanner`,
    :class:`PathIntegralPlanner`, :class:`ImprovedCEMPlanner` or :class:`GradientCEMPlanner`; a planner
    missing from it gets its class's defaults.

    Example:
        >>> recipe = Recipe(train_steps=500, planner_kwargs={"gd": {"steps": 20, "lr": 0.3}})
        >>> recipe.train_steps, recipe.batch_size, recipe.planner_kwargs["gd"]["steps"]
        (500, 256, 20)
        >>> sorted(recipe.fingerprint())  # the fields set away from their defaults
        ['planner_kwargs', 'train_steps']
    """

    num_trajectories: int = 2000
    model: dict[str, Any] = field(default_factory=lambda: {"num_hist": 1, "hidden_dim": 256, "depth": 3})
    window_frames: int = 5
    train_steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    horizon: int = 5
    objective: dict[str, str | float] = field(default_factory=lambda: {"mode": "all", "base": 0.5, "alpha": 1.0})
    planner_kwargs: dict[str, dict[str, int | float]] = field(default_factory=lambda: {
        "gd": {"steps": 100, "lr": 0.2, "noise_std": 0.003},
        "cem": {"samples": 300, "elites": 30, "iterations": 30},
        "mppi": {"samples": 300, "elites": 30, "iterations": 30, "temperature": 0.05},
        "icem": {"samples": 300, "elites": 30, "iterations": 10},
        "gd_cem": {"samples": 300, "elites": 30, "iterations": 3, "steps": 30, "lr": 0.2, "noise_std": 0.003},
    })
    episodes: int = 50
    finetune_steps: int = 1000
    # The paper finetunes the predictor at 1e-5; on PushT's tuning pairs (seeds 5000-5002) 1e-5 and 1e-4 gave
    # the same adversarial-finetuning success within the seed spread (docs/results/ablations_pusht.md).
    finetune_lr: dict[str, float] = field(default_factory=lambda: {"predictor_lr": 1e-4, "action_encoder_lr": 5e-4})
    online: dict[str, int | float] = field(default_factory=lambda: {"every": 10, "fraction": 0.5, "capacity": 20_000,
                                                                    "planner_steps": 100, "planner_lr": 0.3})
    adversarial: dict[str, float] = field(default_factory=lambda: {"fraction": 1.0, "latent_factor": 0.05,
                                                                   "proprio_factor": 0.02, "action_factor": 0.02})
    seeds: tuple[int, ...] = (0, 1, 2)
    mppi_models: tuple[str, ...] = ("base",)
    # The field values of this recipe's quick run (:meth:`quick`): a recipe that changes a field here states its
    # quick value too, or its quick run keeps these.
    quick_run: dict[str, Any] = field(default_factory=lambda: {
        "num_trajectories": 500, "train_steps": 800, "episodes": 20, "finetune_steps": 200, "seeds": (0,),
        "planner_kwargs": {"gd": {"steps": 100, "lr": 0.2, "noise_std": 0.003},
                           "cem": dict(QUICK_SAMPLING),
                           "mppi": {**QUICK_SAMPLING, "temperature": 0.05},
                           "icem": dict(QUICK_SAMPLING),
                           "gd_cem": {**QUICK_SAMPLING, "iterations": 3, "steps": 30, "lr": 0.2, "noise_std": 0.003}},
        "online": {"every": 10, "fraction": 0.5, "capacity": 20_000, "planner_steps": 30, "planner_lr": 0.3}})
    image_size: int = 64
    encoder_steps: int = 0
    encoder_foreground_weight: float = 0.0
    pixel_overrides: dict[str, Any] = field(default_factory=dict)

    def pixels(self) -> Recipe:
        """This task's recipe for pixel observations: :data:`PIXEL_DEFAULTS`, then ``pixel_overrides``.

        Example:
            >>> Recipe().pixels().model["hidden_dim"], Recipe().pixels().image_size
            (64, 64)
        """
        return replace(self, **{**PIXEL_DEFAULTS, **self.pixel_overrides})

    def quick(self) -> Recipe:
        """A smaller run of the same recipe (minutes, not tens of minutes): ``quick_run`` replaces those fields.

        Example:
            >>> Recipe().quick().train_steps, Recipe().quick().seeds
            (800, (0,))
        """
        return replace(self, **self.quick_run)

    def fingerprint(self) -> dict[str, Any]:
        """What makes a run of this recipe: each field that differs from its default, as JSON values, so adding
        a field with a default leaves every earlier fingerprint equal (and so does changing a default: rerun
        with ``fresh=True`` after that).

        ``pixel_overrides`` and ``quick_run`` are left out: :meth:`pixels` and :meth:`quick` have already applied
        them to the recipes they change, and they never touch the others.

        Example:
            >>> Recipe(train_steps=10, seeds=(0,)).fingerprint()
            {'train_steps': 10, 'seeds': [0]}
        """
        changed = {f.name: getattr(self, f.name) for f in fields(self)
                   if f.name not in ("pixel_overrides", "quick_run") and getattr(self, f.name) != _default(f)}
        return json.loads(json.dumps(changed))


def _default(spec: Field) -> Any:
    """The default value of dataclass field ``spec``."""
    return spec.default if spec.default_factory is MISSING else spec.default_factory()


def smoke_run(num_trajectories: int, train_steps: int, gd_steps: int = 10, capacity: int = 2000,
              batch_size: int | None = None, init_std: float | None = None) -> dict:
    """A ``quick_run`` of smoke size for a slow task: one seed, 4 episodes, 10 finetuning steps, CEM/MPPI/iCEM at
    30 samples x 5 elites x 3 iterations (``init_std`` when given; GD-CEM's CEM stage too, then ``gd_steps``),
    5-step online synthesis every 5 batches.

    Example:
        >>> smoke_run(100, 100)["planner_kwargs"]["cem"]
        {'samples': 30, 'elites': 5, 'iterations': 3}
    """
    sampling = {"samples": 30, "elites": 5, "iterations": 3, **({} if init_std is None else {"init_std": init_std})}
    run = {"num_trajectories": num_trajectories, "train_steps": train_steps, "episodes": 4, "finetune_steps": 10,
           "seeds": (0,),
           "planner_kwargs": {"gd": {"steps": gd_steps, "lr": 0.2}, "cem": sampling,
                              "mppi": {**sampling, "temperature": 0.05}, "icem": sampling,
                              "gd_cem": {**sampling, "steps": gd_steps, "lr": 0.2}},
           "online": {"every": 5, "fraction": 0.5, "capacity": capacity, "planner_steps": 5, "planner_lr": 0.3}}
    return run if batch_size is None else {**run, "batch_size": batch_size}


# Pixel runs on a 2-core CPU: 64x64 images, 16 tokens of 16 from a patch autoencoder (trained 500 steps on the
# task's images, then frozen), a 64-wide 2-layer frame-causal transformer over 3 history frames; smaller
# datasets, batches and online caches than the state recipes (a pixel window is 12k floats per frame). GD keeps
# the paper's budget (Adam, 100 steps, lr 0.2); CEM and MPPI get 64 samples x 10 iterations (8 elites): at the
# paper's 300 x 30 one batched CEM plan over 50 envs would cost minutes here (the CEM iteration's time in
# docs/results/pixel_speed_wall_cpu.md).
# PIXEL_SAMPLING is that budget, for our protocol and the paper's (experiments/protocol.py) alike.
PIXEL_SAMPLING = {"samples": 64, "elites": 8, "iterations": 10}
PIXEL_DEFAULTS: dict[str, Any] = {
    "num_trajectories": 500,
    "model": {"num_hist": 3, "hidden_dim": 64, "depth": 2, "heads": 4,
              "encoder": "patch", "encoder_options": {"patch_size": 16, "token_dim": 16, "hidden_dim": 64}},
    "encoder_steps": 500,
    # without it the autoencoder learns the arena but not Wall's agent dot (its tokens would not see the agent)
    "encoder_foreground_weight": 50.0,
    "window_frames": 3,
    "train_steps": 2000,
    "batch_size": 64,
    "finetune_steps": 300,
    "planner_kwargs": {"gd": {"steps": 100, "lr": 0.2, "noise_std": 0.003},
                       "cem": dict(PIXEL_SAMPLING),
                       "mppi": {**PIXEL_SAMPLING, "temperature": 0.05},
                       "icem": dict(PIXEL_SAMPLING),
                       "gd_cem": {**PIXEL_SAMPLING, "iterations": 3, "steps": 30, "lr": 0.2, "noise_std": 0.003}},
    "online": {"every": 10, "fraction": 0.5, "capacity": 512, "planner_steps": 100, "planner_lr": 0.3},
    "quick_run": {"num_trajectories": 100, "train_steps": 150, "encoder_steps": 100, "finetune_steps": 10,
                  "episodes": 4, "seeds": (0,),
                  "planner_kwargs": {"gd": {"steps": 10, "lr": 0.2, "noise_std": 0.003},
                                     "cem": {"samples": 16, "elites": 4, "iterations": 3},
                                     "mppi": {"samples": 16, "elites": 4, "iterations": 3, "temperature": 0.05},
                                     "icem": {"samples": 16, "elites": 4, "iterations": 3},
                                     "gd_cem": {"samples": 16, "elites": 4, "iterations": 2, "steps": 5, "lr": 0.2}},
                  "online": {"every": 5, "fraction": 0.5, "capacity": 32, "planner_steps": 5, "planner_lr": 0.3}},
}


def recipe_for(name: str, quick: bool = False, obs: str = "state") -> Recipe:
    """The recipe of task ``name``: ``RECIPE`` in ``experiments/recipes/<name>.py``, for pixel observations when
    ``obs="pixels"`` (:meth:`Recipe.pixels`), its quick variant when ``quick``.

    Example:
        >>> recipe_for("wall", quick=True).seeds
        (0,)
    """
    if name.startswith(GYM_PREFIX):
        from .gymnasium import recipe_for_task
        recipe = recipe_for_task(make_task(name))
        return recipe.quick() if quick else recipe
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    recipe = importlib.import_module(f"{__name__}.{name}").RECIPE
    if check_observation(obs) == "pixels":
        recipe = recipe.pixels()
    return recipe.quick() if quick else recipe
