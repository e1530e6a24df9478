"""The pipeline steps, each a recipe-driven function: collect, train, evaluate, finetune (``torchrl-gbp`` maps onto them)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torchrl.envs import Compose, DeviceCastTransform

from ..checks import check_positive_int
from ..closing import closing
from ..data import load_dataset, make_window_buffer, save_dataset
from ..distributed import distributed_rank, distributed_training
from ..evaluate import evaluate, evaluation_pairs
from ..models import LatentWorldModel, PixelWorldModelConfig, WorldModelConfig, load_checkpoint, observation_of
from ..planners import MPCPolicy, PlannerOptions, ReturnObjective, SearchBudget, make_planner
from ..synthesis import SCHEDULES, OnlineOptions, make_synthesis
from ..tasks import PixelTask, Task, make_task
from ..train import build_world_model, make_logger, train_world_model
from ..video import check_video_target, record_video
from .recipes import CLOCKS, REFERENCE_FINETUNING, FinetuningOptions, PlannerBudgets, Recipe, apply_profile, recipe_for

# The planners reproduce compares by default (names of the recipe's PlannerBudgets): CEM MPC at the paper's budget
# against Adam MPC at the paper's 100 steps and at a few warm-started steps per replan.
COMPARED_PLANNERS = ("cem", "gd", "gd_warm")
PLANNER_NAMES = tuple(f.name for f in fields(PlannerBudgets))
# Training and finetuning write a resumable checkpoint this often (steps).
CHECKPOINT_EVERY = 250
# How finetune_model finetunes: "ours" (the recipe's FinetuningOptions) or "reference" (the reference code's:
# REFERENCE_FINETUNING, for the recipe's steps).
FINETUNINGS = ("ours", "reference")


def finetuning_options(recipe: Recipe, finetuning: str = "ours") -> FinetuningOptions:
    """The recipe's finetuning (``"ours"``) or the reference code's for the recipe's steps (``"reference"``).

    Example:
        >>> finetuning_options(recipe_for("wall"), "reference").optimizer, finetuning_options(recipe_for("wall")).steps
        ('adamw', 1000)
    """
    if finetuning not in FINETUNINGS:
        raise ValueError(f"finetuning must be one of {FINETUNINGS}, got {finetuning!r}")
    return recipe.finetuning if finetuning == "ours" else replace(REFERENCE_FINETUNING, steps=recipe.finetuning.steps)


def make_policy(model: LatentWorldModel, task: Task, planner: str | PlannerOptions, recipe: Recipe, *,
                budget: SearchBudget | None = None, compile: bool = False) -> MPCPolicy:
    """An MPC policy for ``task`` with the recipe's objective and horizon, planning with ``planner``: a name of the
    recipe's :class:`~torchrl_gbp.experiments.recipes.PlannerBudgets` (its budget there) or a budget of its own
    (:class:`~torchrl_gbp.planners.GradientOptions`, ...), executing the model steps per plan the recipe's
    evaluation gives it (:meth:`~torchrl_gbp.experiments.recipes.EvaluationOptions.executed`); ``budget``,
    ``compile``: see :class:`~torchrl_gbp.planners.Planner`.

    Tasks without a goal (``task.has_goal`` False: Gymnasium reward envs) plan on the
    predicted return, :class:`ReturnObjective` with the recipe's discount.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel
        >>> from torchrl_gbp.planners import CEMOptions
        >>> task, recipe = make_task("wall"), recipe_for("wall", quick=True)
        >>> model = StateWorldModel(model_config(task, recipe))
        >>> policy = make_policy(model, task, "cem", recipe)
        >>> type(policy.planner).__name__, policy.planner.horizon, policy.planner.samples, policy.n_taken_actions
        ('CrossEntropyPlanner', 5, 300, 5)
        >>> make_policy(model, task, CEMOptions(samples=20, elites=4), recipe).planner.samples
        20
        >>> make_policy(model, task, "gd_warm", recipe).planner.steps  # Adam, a few warm-started steps per replan
        3
        >>> env = task.make_env(num_envs=2, seed=0)
        >>> env.append_transform(policy.make_tensordict_primer()).rollout(2, policy)["action"].shape
        torch.Size([2, 2, 2])
    """
    options = recipe.planners.of(planner) if isinstance(planner, str) else planner
    objective = (recipe.objective.goal_cost(model.config.proprio_dim) if getattr(task, "has_goal", True)
                 else ReturnObjective(model, discount=recipe.objective.discount))
    plan = make_planner(options, model, recipe.evaluation.horizon, objective, action_spec=task.action_spec,
                        budget=budget, compile=compile)
    return MPCPolicy(plan, task.action_spec, n_taken_actions=recipe.evaluation.executed(options),
                     clock=CLOCKS[recipe.evaluation.clock])


def task_for_model(task_name: str, model: LatentWorldModel) -> Task:
    """Task ``task_name`` as ``model`` sees it: its state, or its pixels at the model's image size.

    Example:
        >>> from torchrl_gbp.models import PixelWorldModel, StateWorldModel
        >>> state_model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
        >>> type(task_for_model("wall", state_model)).__name__
        'WallTask'
        >>> pixel_model = PixelWorldModel(PixelWorldModelConfig(image_size=16, proprio_dim=2, env_action_dim=2,
        ...                               encoder_options={"patch_size": 8, "token_dim": 4, "hidden_dim": 8}))
        >>> task = task_for_model("wall", pixel_model)
        >>> type(task).__name__, task.image_size
        ('PixelTask', 16)
    """
    obs = observation_of(model)
    return make_task(task_name, obs=obs, image_size=model.config.image_size if obs == "pixels" else None)


def make_dataset(task: Task, out: str | os.PathLike, num_trajectories: int, seed: int = 0,
                 trajectory_steps: int | None = None) -> Path:
    """Generate ``task``'s seeded dataset and save it atomically to ``out`` (pixel tasks render straight to disk).

    Example:
        >>> import tempfile
        >>> path = make_dataset(make_task("wall"), Path(tempfile.mkdtemp()) / "wall", 3, trajectory_steps=10)
        >>> load_dataset(path).batch_size
        torch.Size([3, 10])
        >>> pixels = make_dataset(make_task("wall", obs="pixels", image_size=16), Path(tempfile.mkdtemp()) / "px",
        ...                       3, trajectory_steps=10)
        >>> load_dataset(pixels)["pixels"].shape
        torch.Size([3, 10, 16, 16, 3])
    """
    if isinstance(task, PixelTask):
        return task.write_dataset(out, num_trajectories, trajectory_steps, seed=seed)
    return save_dataset(task.generate_dataset(num_trajectories, trajectory_steps, seed=seed), out)


def collect(task_name: str, out: str | os.PathLike, num_trajectories: int | None = None, seed: int = 0,
            trajectory_steps: int | None = None, obs: str = "state") -> Path:
    """Generate the task's seeded dataset (``obs``: ``"state"`` or ``"pixels"``) and save it atomically to ``out``.

    Example:
        >>> import tempfile
        >>> path = collect("wall", Path(tempfile.mkdtemp()) / "wall", num_trajectories=3, trajectory_steps=10)
        >>> load_dataset(path)["action"].shape
        torch.Size([3, 10, 2])
    """
    n = num_trajectories if num_trajectories is not None else recipe_for(task_name, obs=obs).data.num_trajectories
    return make_dataset(make_task(task_name, obs=obs), out, n, seed, trajectory_steps)


def model_config(task: Task, recipe: Recipe) -> WorldModelConfig | PixelWorldModelConfig:
    """The recipe's world-model config for ``task`` (a pixel model for a :class:`PixelTask`).

    Example:
        >>> config = model_config(make_task("wall"), apply_profile(recipe_for("wall"), {"model.hidden_dim": 32}))
        >>> type(config).__name__, config.obs_dim, config.action_dim, config.hidden_dim, config.depth
        ('WorldModelConfig', 2, 10, 32, 3)
        >>> pixels = model_config(make_task("wall", obs="pixels"), recipe_for("wall", obs="pixels"))
        >>> type(pixels).__name__, pixels.image_size, pixels.proprio_dim
        ('PixelWorldModelConfig', 64, 2)
    """
    options = recipe.model
    shape = {"num_hist": options.num_hist, "hidden_dim": options.hidden_dim, "depth": options.depth,
             **({} if options.encoder is None else {"encoder": options.encoder})}
    if isinstance(task, PixelTask):
        return PixelWorldModelConfig(image_size=task.image_size, proprio_dim=task.proprio_dim,
                                     env_action_dim=task.action_dim, frameskip=task.frameskip, heads=options.heads,
                                     encoder_options=options.encoder_options(), **shape)
    return WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip,
                            proprio_dim=options.proprio_dim, reward_head=options.reward_head, **shape)


def train_base_model(task: Task, trajectories, recipe: Recipe, out: str | os.PathLike, seed: int = 0,
                     logger=None, progress: bool = True, resume: bool = False) -> LatentWorldModel:
    """Build the recipe's world model, train it on ``trajectories`` as the recipe's training says, checkpoint to
    ``out``.

    A checkpoint is written every :data:`CHECKPOINT_EVERY` steps; ``resume`` continues from the one at ``out``.

    Example:
        >>> import tempfile
        >>> task = make_task("wall")
        >>> data = task.generate_dataset(20, seed=0)
        >>> out = Path(tempfile.mkdtemp()) / "base.pt"
        >>> recipe = apply_profile(recipe_for("wall"), {"training.steps": 2, "training.batch_size": 8,
        ...                                             "model.hidden_dim": 32, "model.depth": 1})
        >>> model = train_base_model(task, data, recipe, out, progress=False)
        >>> model.config.hidden_dim, load_checkpoint(out)[1]["task"]
        (32, 'wall')
    """
    torch.manual_seed(seed)
    config = model_config(task, recipe)
    training = recipe.training
    model = build_world_model(config, trajectories, training.encoder_steps, seed, training.encoder_foreground_weight)
    buffer = make_window_buffer(trajectories, frames=config.num_hist + recipe.data.window_frames - 1,
                                frameskip=config.frameskip, batch_size=training.batch_size,
                                generator=torch.Generator().manual_seed(seed + distributed_rank()))
    train_world_model(model, buffer, training.steps, lr=training.lr, logger=logger, checkpoint_path=out,
                      checkpoint_every=CHECKPOINT_EVERY, checkpoint_extra={"task": task.name}, progress=progress,
                      description="base model", resume=resume)
    return model


def train(task_name: str, dataset: str | os.PathLike, out: str | os.PathLike, *, profile: Mapping[str, Any] = {},
          seed: int = 0, log_dir: str | os.PathLike | None = None, progress: bool = True, resume: bool = False,
          obs: str = "state", logger: str = "csv") -> LatentWorldModel:
    """Train the task recipe's world model (``profile``: field paths of the recipe to change, see
    :func:`~torchrl_gbp.experiments.recipes.apply_profile`) on a saved dataset and checkpoint it to ``out``
    (``resume``: continue the one there).

    With ``log_dir`` the metrics go to TorchRL logger ``logger`` (``"csv"``, ``"tensorboard"`` or ``"wandb"``,
    offline; see :func:`~torchrl_gbp.train.make_logger`) as experiment ``<task>_train``.
    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process trains on its own
    samples with DistributedDataParallel gradient averaging (gloo on CPU,
    NCCL on GPU); rank 0 writes the checkpoint and logs.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> dataset = collect("wall", folder / "data", num_trajectories=20)
        >>> small = {"training.steps": 2, "training.batch_size": 8, "model.hidden_dim": 32, "model.depth": 1}
        >>> model = train("wall", dataset, folder / "base.pt", profile=small, progress=False, log_dir=folder / "logs")
        >>> (folder / "base.pt").is_file(), model.config.hidden_dim
        (True, 32)
        >>> train("wall", "data/wall", "runs/wall/base.pt")  # the recipe: 4000 steps of batch 256  # doctest: +SKIP
    """
    recipe = apply_profile(recipe_for(task_name, obs=obs), profile, "overrides")
    with distributed_training():
        task = make_task(task_name, obs=obs)
        log = (make_logger(logger, log_dir, f"{task_name}_train") if log_dir is not None and distributed_rank() == 0
               else None)
        try:
            return train_base_model(task, load_dataset(dataset), recipe, out, seed, log,
                                    progress and distributed_rank() == 0, resume)
        finally:
            if log is not None:
                log.close()


@dataclass(frozen=True, kw_only=True)
class VideoOptions:
    """A video of evaluated episodes: the first ``episodes`` of them, each frame the state beside the goal at
    ``size`` pixels, ``fps`` frames per second, written to ``path`` (``.gif``, or ``.mp4`` with imageio-ffmpeg).

    Example:
        >>> VideoOptions(path="runs/wall/gd.gif").episodes
        2
    """

    path: str
    episodes: int = 2
    size: int = 64
    fps: float = 10.0


def evaluate_checkpoint(task_name: str, checkpoint: str | os.PathLike, planner: str = "gd", *,
                        profile: Mapping[str, Any] = {}, seed: int = 0, pair_mode: str | None = None,
                        num_workers: int = 1, budget: SearchBudget | None = None, compile: bool = False,
                        video: VideoOptions | None = None, log_dir: str | os.PathLike | None = None,
                        logger: str = "csv") -> dict[str, Any]:
    """Evaluate ``planner`` on a saved world model over the recipe's number of seeded (start, goal) pairs.

    ``profile`` changes the recipe (its planner budgets, horizon, objective, episodes: field paths, see
    :func:`~torchrl_gbp.experiments.recipes.apply_profile`); ``budget`` and ``compile`` go to the planner;
    ``pair_mode`` picks the task's kind of pairs; ``num_workers`` runs the episodes in a ``ParallelEnv``. With
    ``video`` the first evaluated episodes are recorded with the same policy (sampling planners draw their
    samples anew in the smaller batch; :func:`~torchrl_gbp.video.record_video`) and the returned metrics hold
    its ``video`` path. With ``log_dir`` the numeric metrics go to TorchRL logger ``logger`` (see
    :func:`~torchrl_gbp.train.make_logger`) as ``evaluate/<metric>`` of experiment ``<task>_evaluate_<planner>``.

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.models import StateWorldModel, save_checkpoint
        >>> folder = Path(tempfile.mkdtemp())
        >>> save_checkpoint(folder / "base.pt", StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2,
        ...                                                                      frameskip=5)))
        >>> small = {"planners.gd.steps": 2, "evaluation.episodes": 2}  # 2 GD steps a plan, 2 episodes
        >>> metrics = evaluate_checkpoint("wall", folder / "base.pt", "gd", profile=small,
        ...                               video=VideoOptions(path=str(folder / "gd.gif"), episodes=1, size=16))
        >>> len(metrics["episodes"]["success"]), 0 <= metrics["success_rate"] <= 1, Path(metrics["video"]).name
        (2, True, 'gd.gif')
        >>> evaluate_checkpoint("wall", "runs/wall/base.pt", planner="cem")  # 50 episodes  # doctest: +SKIP
    """
    model, _ = load_checkpoint(checkpoint)
    task = task_for_model(task_name, model)
    recipe = apply_profile(recipe_for(task_name, obs=observation_of(model)), profile, "overrides")
    episodes = recipe.evaluation.episodes
    if video is not None:
        check_video_target(video.path, video.fps)  # before minutes of planning
        if check_positive_int("video episodes", video.episodes) > episodes:
            raise ValueError(f"video episodes={video.episodes} exceeds the {episodes} evaluated episodes")
    policy = make_policy(model, task, planner, recipe, budget=budget, compile=compile)
    metrics: dict[str, Any] = evaluate(policy, task, episodes=episodes, seed=seed, pair_mode=pair_mode,
                                       num_workers=num_workers)
    if log_dir is not None:
        log = make_logger(logger, log_dir, f"{task_name}_evaluate_{planner}")
        for name, value in metrics.items():
            if isinstance(value, (int, float)):
                log.log_scalar(f"evaluate/{name}", float(value), step=0)
        log.close()
    if video is not None:
        pairs = evaluation_pairs(task, episodes, seed, pair_mode)[:video.episodes]
        metrics["video"] = str(record_video(policy, task, video.path, episodes=video.episodes, size=video.size,
                                            fps=video.fps, pairs=pairs))
    return metrics


def finetune_model(model: LatentWorldModel, task: Task, trajectories, method: str, recipe: Recipe, *,
                   seed: int = 0, finetuning: FinetuningOptions | None = None, online_schedule: str = "replace",
                   checkpoint_path: str | os.PathLike | None = None, logger=None, progress: bool = True,
                   resume: bool = False, device: str | torch.device | None = None) -> LatentWorldModel:
    """Finetune ``model`` in place with a synthesis transform on the replay buffer.

    Only the predictor and the action encoder train (the observation encoder
    stays frozen), each with its own learning rate, as in the paper. A checkpoint
    (with the synthesis state) is written every :data:`CHECKPOINT_EVERY` steps;
    ``resume`` continues from the one at ``checkpoint_path``. With ``device`` the model
    moves there and each sampled batch of windows follows it before synthesis (the
    dataset and the simulators stay on the CPU).

    ``finetuning`` (default: the recipe's; :func:`finetuning_options` gives the reference code's,
    :data:`~torchrl_gbp.experiments.recipes.REFERENCE_FINETUNING`): the optimiser, rates per part, clipping,
    dropout and the model's mode while synthesis plans and attacks. ``online_schedule``
    (:data:`~torchrl_gbp.synthesis.SCHEDULES`) for the
    online methods: ``"replace"`` (ours, the recipe's share of each
    batch) or ``"append"`` (the reference's: one optimiser step on each cached
    synthetic set of the batch's slot after the batch's own; a pass over the
    data, after which the slots start over, is the number of batches that
    covers every window starting at each env step once). Either way
    ``finetuning.steps`` counts sampled batches;
    the reference code runs epochs over those windows instead (a full pass is
    ``ceil(N * (T - L + 1) / batch_size)`` batches for ``N`` trajectories of
    ``T`` steps and windows of ``L`` env steps), too many for a CPU.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel
        >>> task = make_task("wall")
        >>> recipe = apply_profile(recipe_for("wall"), {"model.hidden_dim": 32, "model.depth": 1,
        ...                                             "finetuning.steps": 2})
        >>> data = task.generate_dataset(20, seed=0)
        >>> model = build_world_model(model_config(task, recipe), data)
        >>> encoder = [p.clone() for p in model.state_encoder.parameters()]
        >>> predictor = [p.clone() for p in model.predictor.parameters()]
        >>> model = finetune_model(model, task, data, "adversarial", recipe, progress=False)
        >>> all(torch.equal(a, b) for a, b in zip(encoder, model.state_encoder.parameters()))  # frozen
        True
        >>> any(not torch.equal(a, b) for a, b in zip(predictor, model.predictor.parameters()))  # trained
        True
        >>> model = finetune_model(model, task, data, "adversarial", recipe, progress=False,
        ...                        finetuning=finetuning_options(recipe, "reference"))
        >>> model.config.dropout  # finetuned with the reference's dropout (off in eval mode)
        0.1
    """
    if online_schedule not in SCHEDULES:
        raise ValueError(f"online_schedule must be one of {SCHEDULES}, got {online_schedule!r}")
    options = recipe.finetuning if finetuning is None else finetuning
    torch.manual_seed(seed)
    if device is not None:
        model.to(device)
    frames = model.num_hist + recipe.data.window_frames - 1
    batch_size = recipe.training.batch_size
    online: OnlineOptions = replace(recipe.online, planning_mode=options.synthesis_mode)
    if online_schedule == "append":
        online = replace(online, schedule="append",
                         epoch_batches=pass_batches(trajectories, frames, model.frameskip, batch_size))
    adversarial = replace(recipe.adversarial, attack_mode=options.synthesis_mode,
                          radius_statistic=options.radius_statistic)
    if options.dropout:
        model.set_dropout(options.dropout)
    transform = make_synthesis(method, model, task, online=online, adversarial=adversarial, shares=recipe.synthesis,
                               seed=seed)
    if device is not None:
        transform = Compose(DeviceCastTransform(device), transform)
    buffer = make_window_buffer(trajectories, frames=frames, frameskip=model.frameskip, batch_size=batch_size,
                                transform=transform, generator=torch.Generator().manual_seed(seed))
    with closing(buffer):  # the envs online synthesis built, closed without hiding a training error
        train_world_model(model, buffer, options.steps, lr=0.0, encoder_lr=0.0, predictor_lr=options.predictor_lr,
                          action_encoder_lr=options.action_encoder_lr,
                          proprio_encoder_lr=options.proprio_encoder_lr, optimizer=options.optimizer,
                          weight_decay=options.weight_decay, grad_clip=options.grad_clip, logger=logger,
                          checkpoint_path=checkpoint_path,
                          checkpoint_every=CHECKPOINT_EVERY if checkpoint_path else 0,
                          checkpoint_extra={"task": task.name, "method": method, "seed": seed,
                                            "finetuning": asdict(options), "online_schedule": online_schedule},
                          progress=progress, description=f"finetune {method}", resume=resume)
    return model


def pass_batches(trajectories, frames: int, frameskip: int, batch_size: int) -> int:
    """Batches of ``batch_size`` in one pass over every window of ``frames`` model frames that starts at an env
    step of ``trajectories`` ``(N, T)``: the reference code's epoch.

    Example:
        >>> data = make_task("wall").generate_dataset(4, trajectory_steps=30, seed=0)
        >>> pass_batches(data, frames=3, frameskip=5, batch_size=16)  # 4 x (30 - 11 + 1) = 80 windows
        5
    """
    n, steps = trajectories.shape[:2]
    windows = n * max(steps - (frames - 1) * frameskip, 0)
    return max(1, -(-windows // batch_size))


def finetune(task_name: str, checkpoint: str | os.PathLike, method: str, out: str | os.PathLike, *,
             profile: Mapping[str, Any] = {}, dataset: str | os.PathLike | None = None, seed: int = 0,
             finetuning: str = "ours", online_schedule: str = "replace", log_dir: str | os.PathLike | None = None,
             progress: bool = True, resume: bool = False, logger: str = "csv") -> LatentWorldModel:
    """Load a base checkpoint, finetune it with ``method`` and checkpoint the result to ``out``
    (``resume``: continue the finetuning checkpointed there; ``profile`` changes the recipe's fields, see
    :func:`~torchrl_gbp.experiments.recipes.apply_profile`; ``finetuning``: ``"ours"`` or ``"reference"``
    (:func:`finetuning_options`); ``online_schedule``: see :func:`finetune_model`).

    Without ``dataset`` the task's default dataset is regenerated with ``seed``. With ``log_dir`` the metrics
    go to TorchRL logger ``logger`` (see :func:`~torchrl_gbp.train.make_logger`) as experiment
    ``<task>_finetune_<method>``.

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.models import save_checkpoint
        >>> folder = Path(tempfile.mkdtemp())
        >>> task = make_task("wall")
        >>> dataset = make_dataset(task, folder / "data", 20)
        >>> small = apply_profile(recipe_for("wall"), {"model.hidden_dim": 32, "model.depth": 1})
        >>> save_checkpoint(folder / "base.pt", build_world_model(model_config(task, small), load_dataset(dataset)),
        ...                 extra={"task": "wall"})
        >>> model = finetune("wall", folder / "base.pt", "adversarial", folder / "adversarial.pt", dataset=dataset,
        ...                  profile={"finetuning.steps": 2}, progress=False)
        >>> load_checkpoint(folder / "adversarial.pt")[1]["method"]
        'adversarial'
        >>> finetune("wall", "runs/wall/base.pt", "online", "runs/wall/online.pt")  # doctest: +SKIP
    """
    model, _ = load_checkpoint(checkpoint)
    task = task_for_model(task_name, model)
    recipe = apply_profile(recipe_for(task_name, obs=observation_of(model)), profile, "overrides")
    options = finetuning_options(recipe, finetuning)
    trajectories = (load_dataset(dataset) if dataset is not None
                    else task.generate_dataset(recipe.data.num_trajectories, seed=seed))
    log = make_logger(logger, log_dir, f"{task_name}_finetune_{method}") if log_dir is not None else None
    try:
        return finetune_model(model, task, trajectories, method, recipe, seed=seed, finetuning=options,
                              online_schedule=online_schedule, checkpoint_path=out, logger=log, progress=progress,
                              resume=resume)
    finally:
        if log is not None:
            log.close()
