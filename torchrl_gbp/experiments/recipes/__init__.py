"""What a task recipe holds: typed, frozen options for data, model, training, finetuning, synthesis, planning and
evaluation, and the profiles (quick, smoke, pixels) that change them, held as data.

Each task keeps its own ``RECIPE`` (and, where its quick or pixel run differs, ``PROFILES``) in
``torchrl_gbp/experiments/recipes/<name>.py``; :func:`recipe_for` finds it and applies the profiles asked for.
A profile is a mapping of dotted field paths (``"training.steps"``, ``"planners.cem"``) to values, applied by
:func:`apply_profile`, the one mechanism behind quick runs, pixel runs and the command line's overrides.
"""
from __future__ import annotations

import importlib
import json
import time
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, asdict, dataclass, fields, is_dataclass, replace
from typing import Any, TypeVar

from ...planners import (
    CEMOptions,
    GDCEMOptions,
    GoalCost,
    GradientOptions,
    ICEMOptions,
    MPPIOptions,
    PlannerOptions,
)
from ...synthesis import AdversarialOptions, OnlineOptions, SynthesisShares
from ...tasks import GYM_PREFIX, TASKS, check_observation, make_task

# Evaluation-pair seeds: reported results use 1000 + k for the recipe's seeds k; choosing budgets, learning rates
# or any other setting uses these, never the reported ones.
REPORTED_PAIR_SEED_BASE = 1000
TUNING_PAIR_SEEDS = (5000, 5001, 5002)
Options = TypeVar("Options")
# What planning seconds are read from (EvaluationOptions.clock).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True, kw_only=True)
class DataOptions:
    """The dataset: ``num_trajectories`` seeded trajectories of the task; training windows of ``window_frames``
    model steps after the history frames.

    Example:
        >>> recipe_for("pointmaze").data.num_trajectories
        3000
    """

    num_trajectories: int = 2000
    window_frames: int = 5


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """The world model's shape (:class:`~torchrl_gbp.models.WorldModelConfig` on states,
    :class:`~torchrl_gbp.models.PixelWorldModelConfig` on pixels, whose proprio size the task gives).

    ``heads`` and the encoder fields apply to pixel models: ``encoder`` (``None``: the config's default) and its
    options, ``patch_size``, ``token_dim`` and ``encoder_hidden_dim`` for the patch autoencoder, ``patch_size``,
    ``pool`` and ``sigma`` for the blur encoder.

    Example:
        >>> ModelOptions(encoder="blur").encoder_options()
        {'patch_size': 16, 'pool': 4, 'sigma': 8.0}
    """

    num_hist: int = 1
    hidden_dim: int = 256
    depth: int = 3
    heads: int = 4
    proprio_dim: int = 0
    reward_head: bool = False
    encoder: str | None = None
    patch_size: int = 16
    token_dim: int = 16
    encoder_hidden_dim: int = 64
    pool: int = 4
    sigma: float = 8.0

    def encoder_options(self) -> dict[str, int | float]:
        """The image encoder's constructor arguments (the patch autoencoder's unless ``encoder="blur"``)."""
        if self.encoder == "blur":
            return {"patch_size": self.patch_size, "pool": self.pool, "sigma": self.sigma}
        return {"patch_size": self.patch_size, "token_dim": self.token_dim, "hidden_dim": self.encoder_hidden_dim}


@dataclass(frozen=True, kw_only=True)
class TrainingOptions:
    """Base-model training: ``steps`` batches of ``batch_size`` windows at ``lr``; pixel models first fit their
    patch autoencoder ``encoder_steps`` steps (``encoder_foreground_weight``: see
    :func:`~torchrl_gbp.models.image_encoders.fit_patch_autoencoder`).

    Example:
        >>> recipe_for("wall", quick=True).training.steps, recipe_for("wall", obs="pixels").training.encoder_steps
        (800, 500)
    """

    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    encoder_steps: int = 0
    encoder_foreground_weight: float = 0.0


@dataclass(frozen=True, kw_only=True)
class FinetuningOptions:
    """Finetuning with data synthesis: ``steps`` batches, ``optimizer`` (``"adam"`` or ``"adamw"``, with
    ``weight_decay``) at a rate per part (the encoders stay frozen), gradient norm clipped at ``grad_clip``
    (``None``: never), the predictor's ``dropout`` while finetuning, and the model's mode while synthesis plans and
    attacks (``synthesis_mode``: ``"eval"``, or ``"train"``, dropout on, as the reference code) with the
    adversarial radius measured per ``radius_statistic``. Defaults: ours; :data:`REFERENCE_FINETUNING`: the
    reference code's.

    Example:
        >>> FinetuningOptions().predictor_lr, REFERENCE_FINETUNING.predictor_lr, REFERENCE_FINETUNING.optimizer
        (0.0001, 1e-05, 'adamw')
    """

    steps: int = 1000
    optimizer: str = "adam"
    # The paper finetunes the predictor at 1e-5; on PushT's tuning pairs (seeds 5000-5002) 1e-5 and 1e-4 gave
    # the same adversarial-finetuning success within the seed spread (docs/results/ablations_pusht.md).
    predictor_lr: float = 1e-4
    action_encoder_lr: float = 5e-4
    proprio_encoder_lr: float | None = None
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    dropout: float = 0.0
    synthesis_mode: str = "eval"
    radius_statistic: str = "batch"


# The reference code's finetuning: AdamW (weight decay 0.01, torch's AdamW default) with the predictor at 1e-5 and
# one rate, 5e-4, for the action and proprio encoders; dropout 0.1 in the predictor while finetuning, while
# online synthesis plans and while adversarial synthesis attacks (its radius per window); no gradient clipping.
# (Its decoder, Adam at 3e-4, has no counterpart here.) ``steps`` stay the recipe's.
REFERENCE_FINETUNING = FinetuningOptions(optimizer="adamw", weight_decay=0.01, predictor_lr=1e-5,
                                         action_encoder_lr=5e-4, proprio_encoder_lr=5e-4, grad_clip=None,
                                         dropout=0.1, synthesis_mode="train", radius_statistic="per_window")


@dataclass(frozen=True, kw_only=True)
class ObjectiveOptions:
    """The planning objective: :class:`~torchrl_gbp.planners.GoalCost` (``mode``, ``base``, ``alpha``) on goal
    tasks, :class:`~torchrl_gbp.planners.ReturnObjective` (``discount``) on reward tasks.

    Example:
        >>> recipe_for("pointmaze").objective.goal_cost(proprio_dim=2).alpha
        0.1
    """

    mode: str = "all"
    base: float = 0.5
    alpha: float = 1.0
    discount: float = 0.99

    def goal_cost(self, proprio_dim: int = 0) -> GoalCost:
        """The goal cost, the last ``proprio_dim`` latent entries weighted by ``alpha``."""
        return GoalCost(self.mode, self.base, self.alpha, proprio_dim=proprio_dim)


@dataclass(frozen=True, kw_only=True)
class PlannerBudgets:
    """Each planner's budget (:mod:`torchrl_gbp.planners.options`), by name: one per planner, and ``gd_warm``,
    Adam at the few warm-started steps per MPC replan that benchmarks/time_per_episode.py chose on tuning seeds (3:
    the cheapest setting within the seed spread of the best there).

    Example:
        >>> PlannerBudgets().of("mppi").temperature
        0.05
    """

    gd: GradientOptions = GradientOptions()
    gd_warm: GradientOptions = GradientOptions(steps=3)
    cem: CEMOptions = CEMOptions()
    mppi: MPPIOptions = MPPIOptions()
    icem: ICEMOptions = ICEMOptions()
    gd_cem: GDCEMOptions = GDCEMOptions()

    def of(self, planner: str) -> PlannerOptions:
        """The budget of planner ``planner``."""
        if planner not in {f.name for f in fields(self)}:
            raise ValueError(f"unknown planner {planner!r}; expected one of {[f.name for f in fields(self)]}")
        return getattr(self, planner)


@dataclass(frozen=True, kw_only=True)
class EvaluationOptions:
    """Evaluation: ``episodes`` MPC episodes per seed of ``seeds`` (also the finetuning seeds), plans of
    ``horizon`` model steps, of which gradient planners execute one and sampling planners ``sampling_executes``
    (``None``: the whole plan, as the paper's CEM MPC) before replanning; MPPI only on the models in
    ``mppi_models`` (to bound the run time). Planning time is read from ``clock``: ``"wall"`` seconds, or
    ``"cpu"``, the process's CPU seconds (steadier on a machine shared with other work).

    Example:
        >>> from torchrl_gbp.planners import GradientOptions
        >>> EvaluationOptions().executed(CEMOptions()), EvaluationOptions().executed(GradientOptions())
        (5, 1)
    """

    episodes: int = 50
    seeds: tuple[int, ...] = (0, 1, 2)
    horizon: int = 5
    sampling_executes: int | None = None
    mppi_models: tuple[str, ...] = ("base",)
    clock: str = "wall"

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise ValueError(f"EvaluationOptions.clock must be one of {tuple(CLOCKS)}, got {self.clock!r}")

    def executed(self, planner: PlannerOptions) -> int:
        """Model steps the MPC policy executes per plan of ``planner``."""
        if isinstance(planner, CEMOptions) and not isinstance(planner, GDCEMOptions):
            return self.horizon if self.sampling_executes is None else self.sampling_executes
        return 1


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """Defaults for one task, composed of typed options.

    Example:
        >>> recipe = Recipe(training=TrainingOptions(steps=500), planners=PlannerBudgets(gd=GradientOptions(steps=20)))
        >>> recipe.training.steps, recipe.training.batch_size, recipe.planners.gd.steps
        (500, 256, 20)
        >>> recipe.fingerprint()  # the fields set away from their defaults
        {'planners.gd.steps': 20, 'training.steps': 500}
    """

    data: DataOptions = DataOptions()
    model: ModelOptions = ModelOptions()
    training: TrainingOptions = TrainingOptions()
    finetuning: FinetuningOptions = FinetuningOptions()
    objective: ObjectiveOptions = ObjectiveOptions()
    planners: PlannerBudgets = PlannerBudgets()
    online: OnlineOptions = OnlineOptions(capacity=20_000, planner_steps=100, planner_lr=0.3)
    adversarial: AdversarialOptions = AdversarialOptions()
    synthesis: SynthesisShares = SynthesisShares()
    evaluation: EvaluationOptions = EvaluationOptions()

    def fingerprint(self) -> dict[str, Any]:
        """What makes a run of this recipe: each leaf field (dotted path) that differs from its default, as JSON values, so adding a field with a default leaves every earlier fingerprint equal (and so
        does changing a default: rerun with ``fresh=True`` after that).

        Example:
            >>> Recipe(evaluation=EvaluationOptions(seeds=(0,))).fingerprint()
            {'evaluation.seeds': [0]}
        """
        ours, default = flatten(self), flatten(type(self)())

        def declared(path: str) -> Any:  # a field the default recipe lacks (a section of a later type): its default
            *parents, name = path.split(".")
            owner = self
            for parent in parents:
                owner = getattr(owner, parent)
            return field_default(next(f for f in fields(owner) if f.name == name))

        return json.loads(json.dumps({k: v for k, v in sorted(ours.items())
                                      if (default[k] if k in default else declared(k)) != v}))


def flatten(options: Any, prefix: str = "") -> dict[str, Any]:
    """The leaf fields of nested option objects by dotted path (fields no command line can give, such as an
    objective object, left out).

    Example:
        >>> flatten(EvaluationOptions())
        {'episodes': 50, 'seeds': (0, 1, 2), 'horizon': 5, 'sampling_executes': None, 'mppi_models': ('base',), 'clock': 'wall'}
    """
    out: dict[str, Any] = {}
    for spec in fields(options):
        value = getattr(options, spec.name)
        if is_dataclass(value):
            out.update(flatten(value, f"{prefix}{spec.name}."))
        elif _is_plain(value):
            out[f"{prefix}{spec.name}"] = value
    return out


def _is_plain(value: Any) -> bool:
    """Whether ``value`` is a number, string, bool, ``None`` or a tuple of them (what a field path may set)."""
    if isinstance(value, tuple):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, int | float | str | bool)


def field_default(spec: Field) -> Any:
    """The default of dataclass field ``spec`` (``MISSING`` when it has none).

    Example:
        >>> field_default(fields(EvaluationOptions)[0]), field_default(fields(EvaluationOptions)[1])
        (50, (0, 1, 2))
    """
    return spec.default if spec.default_factory is MISSING else spec.default_factory()


def _check_value(path: str, expected: Any, value: Any) -> None:
    """Refuse ``value`` for field ``path`` unless it is of type ``expected`` (ints are floats; tuples checked
    entry by entry; nested options must be of their exact type)."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        if any(_matches(option, value) for option in args):
            return
    elif _matches(expected, value):
        return
    raise TypeError(f"{path} must be {_type_name(expected)}, got {value!r} ({type(value).__name__})")


def _matches(expected: Any, value: Any) -> bool:
    if expected is type(None):
        return value is None
    if typing.get_origin(expected) is tuple:
        item = typing.get_args(expected)[0]
        return isinstance(value, tuple) and all(_matches(item, v) for v in value)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _type_name(expected: Any) -> str:
    return getattr(expected, "__name__", str(expected))


def apply_profile(options: Options, profile: Mapping[str, Any], name: str = "profile") -> Options:
    """``options`` (nested frozen dataclasses) with each dotted field path of ``profile`` set to its value, in
    order (a later path under an object set earlier changes that object); the fields of one object are replaced
    together, so its checks see them all at once. An unknown path or a value of the wrong type is refused,
    naming it.

    Example:
        >>> recipe = apply_profile(Recipe(), {"training.steps": 10, "planners.cem": CEMOptions(samples=50)})
        >>> recipe.training.steps, recipe.planners.cem.samples, recipe.training.batch_size
        (10, 50, 256)
        >>> apply_profile(Recipe(), {"planners.cem.samples": 16, "planners.cem.elites": 4}).planners.cem.elites
        4
        >>> apply_profile(Recipe(), {"training.step": 10}, "quick")
        Traceback (most recent call last):
            ...
        KeyError: "quick: Recipe.training has no field 'step'; its fields: ['steps', 'batch_size', 'lr', 'encoder_steps', 'encoder_foreground_weight']"
    """
    tree: dict[str, Any] = {}
    for path, value in profile.items():
        *parents, leaf = path.split(".")
        node = tree
        for part in parents:
            child = node.get(part)
            if not isinstance(child, _Changes):
                child = node[part] = _Changes(child)  # changes on top of a whole object set earlier, if any
            node = child.fields
        node[leaf] = value
    return _apply(options, tree, name, "")


class _Changes:
    """Field changes of one nested object, on top of ``base`` (an object a profile set whole) or its current value."""

    def __init__(self, base: Any = None) -> None:
        self.base, self.fields = base, {}


def _apply(options: Any, changes: dict[str, Any], name: str, prefix: str) -> Any:
    names = [spec.name for spec in fields(options)]
    hints = typing.get_type_hints(type(options))
    values = {}
    for key, change in changes.items():
        path = prefix + key
        if key not in names:
            where = f"Recipe.{prefix[:-1]}" if prefix else type(options).__name__
            raise KeyError(f"{name}: {where} has no field {key!r}; its fields: {names}")
        if isinstance(change, _Changes):
            change = _apply(getattr(options, key) if change.base is None else change.base, change.fields, name,
                            path + ".")
        _check_value(f"{name}: {path}", hints[key], change)
        values[key] = change
    return replace(options, **values)


def sampling_budgets(sampling: CEMOptions, **gd_cem: Any) -> dict[str, Any]:
    """Profile entries giving MPPI, iCEM and GD-CEM's CEM stage the sampling budget ``sampling`` (``gd_cem``:
    GD-CEM's own changes on top of it, its CEM iterations or gradient steps).

    Example:
        >>> sampling_budgets(CEMOptions(samples=16, elites=4, iterations=3), iterations=2)["planners.gd_cem"].iterations
        2
    """
    fields_ = asdict(sampling)
    return {"planners.mppi": MPPIOptions(**fields_), "planners.icem": ICEMOptions(**fields_),
            "planners.gd_cem": GDCEMOptions(**{**fields_, **gd_cem})}


# The profiles every task shares, by name; a task's ``PROFILES`` entry of the same name is merged over it.
# quick: a smaller run of the same recipe (minutes, not tens of minutes); CEM keeps the paper's 300 x 30 (the main
# job compares GD against it), the other sampling planners at 100 x 10.
QUICK_SAMPLING = CEMOptions(samples=100, elites=10, iterations=10)
QUICK: dict[str, Any] = {
    "data.num_trajectories": 500, "training.steps": 800, "evaluation.episodes": 50, "finetuning.steps": 200,
    "evaluation.seeds": (0,), "evaluation.clock": "cpu",
    **sampling_budgets(QUICK_SAMPLING, iterations=3), "online.planner_steps": 30,
}


def smoke(num_trajectories: int, train_steps: int, gd_steps: int = 10, capacity: int = 2000,
          batch_size: int | None = None, init_std: float = 1.0) -> dict[str, Any]:
    """A quick profile of smoke size for a slow task: one seed, 4 episodes, 10 finetuning steps, the sampling
    planners at 30 samples x 5 elites x 3 iterations from ``init_std`` (GD-CEM's CEM stage too, then
    ``gd_steps``), 5-step online synthesis every 5 batches.

    Example:
        >>> smoke(100, 100)["planners.cem"]
        CEMOptions(samples=30, elites=5, iterations=3, init_std=1.0, min_std=0.01)
    """
    sampling = CEMOptions(samples=30, elites=5, iterations=3, init_std=init_std)
    profile = {"data.num_trajectories": num_trajectories, "training.steps": train_steps, "evaluation.episodes": 4,
               "finetuning.steps": 10, "evaluation.seeds": (0,), "planners.gd": GradientOptions(steps=gd_steps),
               "planners.cem": sampling, **sampling_budgets(sampling, steps=gd_steps), "online.capacity": capacity, "online.planner_steps": 5, "synthesis.every": 5}
    return profile if batch_size is None else {**profile, "training.batch_size": batch_size}


# Pixel runs on a 2-core CPU: 64x64 images, 16 tokens of 16 from a patch autoencoder (trained 500 steps on the
# task's images, then frozen), a 64-wide 2-layer frame-causal transformer over 3 history frames; smaller
# datasets, batches and online caches than the state recipes (a pixel window is 12k floats per frame). GD keeps
# the paper's budget (Adam, 100 steps, lr 0.2); CEM and MPPI get 64 samples x 10 iterations (8 elites): at the
# paper's 300 x 30 one batched CEM plan over 50 envs would cost minutes here (the CEM iteration's time in
# docs/results/pixel_speed_wall_cpu.md). PIXEL_SAMPLING is that budget, for our protocol and the paper's
# (experiments/protocol.py) alike.
PIXEL_SAMPLING = CEMOptions(samples=64, elites=8, iterations=10)
PIXEL_MODEL = ModelOptions(num_hist=3, hidden_dim=64, depth=2, heads=4, encoder="patch")
PIXELS: dict[str, Any] = {
    "data.num_trajectories": 500, "data.window_frames": 3, "model": PIXEL_MODEL,
    # without the foreground weight the autoencoder learns the arena but not Wall's agent dot
    "training.encoder_steps": 500, "training.encoder_foreground_weight": 50.0,
    "training.steps": 2000, "training.batch_size": 64, "finetuning.steps": 300,
    "planners.cem": PIXEL_SAMPLING, **sampling_budgets(PIXEL_SAMPLING, iterations=3), "online.capacity": 512,
}
# The quick run of a pixel recipe (applied after PIXELS).
PIXELS_QUICK: dict[str, Any] = {
    "data.num_trajectories": 100, "training.steps": 150, "training.encoder_steps": 100, "finetuning.steps": 10,
    "evaluation.episodes": 4, "evaluation.seeds": (0,), "planners.gd": GradientOptions(steps=10),
    "planners.cem": CEMOptions(samples=16, elites=4, iterations=3),
    **sampling_budgets(CEMOptions(samples=16, elites=4, iterations=3), iterations=2, steps=5),
    "online.capacity": 32, "online.planner_steps": 5, "synthesis.every": 5,
}
PROFILES: dict[str, dict[str, Any]] = {"quick": QUICK, "pixels": PIXELS, "pixels_quick": PIXELS_QUICK}


def profile_names(quick: bool = False, obs: str = "state") -> tuple[str, ...]:
    """The profiles a run applies, in order: ``pixels`` for pixel observations, then its quick profile.

    Example:
        >>> profile_names(quick=True, obs="pixels")
        ('pixels', 'pixels_quick')
    """
    pixels = check_observation(obs) == "pixels"
    return (*(("pixels",) if pixels else ()), *((("pixels_quick",) if pixels else ("quick",)) if quick else ()))


def recipe_for(name: str, quick: bool = False, obs: str = "state") -> Recipe:
    """The recipe of task ``name`` (``RECIPE`` in ``experiments/recipes/<name>.py``) with the profiles of
    :func:`profile_names` applied, each the shared one (:data:`PROFILES`) with the task's ``PROFILES`` entry
    of that name merged over it.

    Example:
        >>> recipe_for("wall", quick=True).evaluation.seeds
        (0,)
        >>> recipe_for("wall", obs="pixels").model.num_hist  # Wall's pixel models read one frame, as DINO-WM's
        1
    """
    if name.startswith(GYM_PREFIX):
        from .gymnasium import PROFILES as task_profiles
        from .gymnasium import recipe_for_task
        module_recipe = recipe_for_task(make_task(name))
    elif name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    else:
        module = importlib.import_module(f"{__name__}.{name}")
        module_recipe, task_profiles = module.RECIPE, getattr(module, "PROFILES", {})
    recipe = module_recipe
    for profile in profile_names(quick, obs):
        recipe = apply_profile(recipe, {**PROFILES[profile], **task_profiles.get(profile, {})}, f"{name} {profile}")
    return recipe
