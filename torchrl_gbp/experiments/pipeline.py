"""The pipeline steps, each a recipe-driven function: collect, train, evaluate, finetune (``torchrl-gbp`` maps onto them)."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torchrl.envs import Compose, DeviceCastTransform

from ..checks import check_positive_int
from ..closing import closing
from ..data import load_dataset, make_window_buffer, save_dataset
from ..distributed import distributed_rank, distributed_training
from ..evaluate import evaluate, evaluation_pairs
from ..models import LatentWorldModel, PixelWorldModelConfig, WorldModelConfig, load_checkpoint, observation_of
from ..planners import GoalCost, MPCPolicy, ReturnObjective, make_planner
from ..synthesis import SCHEDULES, make_synthesis
from ..tasks import PixelTask, Task, make_task
from ..train import build_world_model, make_logger, train_world_model
from ..video import record_video
from .recipes import Recipe, recipe_for

# The planners reproduce compares by default; make_planner and the CLI accept every name of PLANNER_CLASSES.
COMPARED_PLANNERS = ("gd", "cem", "mppi")
# Training and finetuning write a resumable checkpoint this often (steps).
CHECKPOINT_EVERY = 250
# How finetune_model finetunes: "ours" (Adam at the recipe's finetune_lr, gradient norm clipped at 1, no dropout)
# or "reference" (the reference code's: REFERENCE_FINETUNING).
FINETUNINGS = ("ours", "reference")
# The reference code's finetuning: AdamW (weight decay 0.01, torch's AdamW default) with the predictor at 1e-5 and
# one rate, 5e-4, for the action and proprio encoders; dropout 0.1 in the predictor while finetuning, while
# online synthesis plans and while adversarial synthesis attacks; no gradient clipping. (Its decoder, Adam at 3e-4,
# has no counterpart here.)
REFERENCE_FINETUNING = {"optimizer": "adamw", "weight_decay": 0.01, "predictor_lr": 1e-5, "action_encoder_lr": 5e-4,
                        "proprio_encoder_lr": 5e-4, "grad_clip": None, "dropout": 0.1}


def make_policy(model: LatentWorldModel, task: Task, planner: str, recipe: Recipe, horizon: int | None = None,
                **planner_overrides) -> MPCPolicy:
    """An MPC policy for ``task`` with the recipe's objective, horizon and budget for ``planner`` (overridable).

    Tasks without a goal (``task.has_goal`` False: Gymnasium reward envs) plan on the
    predicted return, :class:`ReturnObjective` with the recipe's ``objective`` arguments.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel
        >>> task, recipe = make_task("wall"), recipe_for("wall", quick=True)
        >>> model = StateWorldModel(model_config(task, recipe))
        >>> policy = make_policy(model, task, "cem", recipe, horizon=3)
        >>> type(policy.planner).__name__, policy.planner.horizon, policy.planner.samples
        ('CrossEntropyPlanner', 3, 100)
        >>> env = task.make_env(num_envs=2, seed=0)
        >>> env.append_transform(policy.make_tensordict_primer()).rollout(2, policy)["action"].shape
        torch.Size([2, 2, 2])
    """
    kwargs = {**recipe.planner_kwargs.get(planner, {}), **planner_overrides}
    has_goal = getattr(task, "has_goal", True)
    objective = (GoalCost(**recipe.objective, proprio_dim=model.config.proprio_dim) if has_goal
                 else ReturnObjective(model, **recipe.objective))
    action_spec = task.action_spec
    plan = make_planner(planner, model, recipe.horizon if horizon is None else horizon, objective,
                        action_spec=action_spec, **kwargs)
    return MPCPolicy(plan, action_spec)


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
    n = num_trajectories if num_trajectories is not None else recipe_for(task_name, obs=obs).num_trajectories
    return make_dataset(make_task(task_name, obs=obs), out, n, seed, trajectory_steps)


def model_config(task: Task, recipe: Recipe, **overrides) -> WorldModelConfig | PixelWorldModelConfig:
    """The recipe's world-model config for ``task`` (a pixel model for a :class:`PixelTask`), ``overrides`` applied.

    Example:
        >>> config = model_config(make_task("wall"), recipe_for("wall"), hidden_dim=32)
        >>> type(config).__name__, config.obs_dim, config.action_dim, config.hidden_dim, config.depth
        ('WorldModelConfig', 2, 10, 32, 3)
        >>> pixels = model_config(make_task("wall", obs="pixels"), recipe_for("wall", obs="pixels"))
        >>> type(pixels).__name__, pixels.image_size, pixels.proprio_dim
        ('PixelWorldModelConfig', 64, 2)
    """
    fields = {**recipe.model, **overrides}
    if isinstance(task, PixelTask):
        return PixelWorldModelConfig(image_size=task.image_size, proprio_dim=task.proprio_dim,
                                     env_action_dim=task.action_dim, frameskip=task.frameskip, **fields)
    return WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip, **fields)


def train_base_model(task: Task, trajectories, recipe: Recipe, out: str | os.PathLike, seed: int = 0,
                     steps: int | None = None, lr: float | None = None, batch_size: int | None = None,
                     logger=None, progress: bool = True, resume: bool = False,
                     **model_overrides) -> LatentWorldModel:
    """Build the recipe's world model (``model_overrides`` applied), train it on ``trajectories``, checkpoint to ``out``.

    A checkpoint is written every :data:`CHECKPOINT_EVERY` steps; ``resume`` continues from the one at ``out``.

    Example:
        >>> import tempfile
        >>> task = make_task("wall")
        >>> data = task.generate_dataset(20, seed=0)
        >>> out = Path(tempfile.mkdtemp()) / "base.pt"
        >>> model = train_base_model(task, data, recipe_for("wall"), out, steps=2, batch_size=8, progress=False,
        ...                          hidden_dim=32, depth=1)
        >>> model.config.hidden_dim, load_checkpoint(out)[1]["task"]
        (32, 'wall')
    """
    torch.manual_seed(seed)
    config = model_config(task, recipe, **model_overrides)
    model = build_world_model(config, trajectories, recipe.encoder_steps, seed, recipe.encoder_foreground_weight)
    buffer = make_window_buffer(trajectories, frames=config.num_hist + recipe.window_frames - 1,
                                frameskip=config.frameskip, batch_size=batch_size or recipe.batch_size,
                                generator=torch.Generator().manual_seed(seed + distributed_rank()))
    train_world_model(model, buffer, steps if steps is not None else recipe.train_steps,
                      lr=lr if lr is not None else recipe.lr, logger=logger, checkpoint_path=out,
                      checkpoint_every=CHECKPOINT_EVERY, checkpoint_extra={"task": task.name}, progress=progress,
                      description="base model", resume=resume)
    return model


def train(task_name: str, dataset: str | os.PathLike, out: str | os.PathLike, steps: int | None = None,
          lr: float | None = None, batch_size: int | None = None, seed: int = 0,
          log_dir: str | os.PathLike | None = None, progress: bool = True, resume: bool = False,
          obs: str = "state", logger: str = "csv", **model_overrides) -> LatentWorldModel:
    """Train a world model on a saved dataset and checkpoint it to ``out`` (``resume``: continue the one there).

    With ``log_dir`` the metrics go to TorchRL logger ``logger`` (``"csv"``, ``"tensorboard"`` or ``"wandb"``,
    offline; see :func:`~torchrl_gbp.train.make_logger`) as experiment ``<task>_train``.
    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process trains on its own
    samples with DistributedDataParallel gradient averaging (gloo on CPU,
    NCCL on GPU); rank 0 writes the checkpoint and logs.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> dataset = collect("wall", folder / "data", num_trajectories=20)
        >>> model = train("wall", dataset, folder / "base.pt", steps=2, batch_size=8, progress=False,
        ...               log_dir=folder / "logs", hidden_dim=32, depth=1)
        >>> (folder / "base.pt").is_file(), model.config.hidden_dim
        (True, 32)
        >>> train("wall", "data/wall", "runs/wall/base.pt")  # the recipe: 4000 steps of batch 256  # doctest: +SKIP
    """
    with distributed_training():
        task = make_task(task_name, obs=obs)
        log = (make_logger(logger, log_dir, f"{task_name}_train") if log_dir is not None and distributed_rank() == 0
               else None)
        try:
            return train_base_model(task, load_dataset(dataset), recipe_for(task_name, obs=obs), out, seed, steps, lr,
                                    batch_size, log, progress and distributed_rank() == 0, resume, **model_overrides)
        finally:
            if log is not None:
                log.close()


def evaluate_checkpoint(task_name: str, checkpoint: str | os.PathLike, planner: str = "gd", episodes: int | None = None,
                        seed: int = 0, horizon: int | None = None, pair_mode: str | None = None,
                        num_workers: int = 1, log_dir: str | os.PathLike | None = None, logger: str = "csv",
                        **planner_overrides) -> dict[str, float]:
    """Evaluate ``planner`` on a saved world model over ``episodes`` seeded (start, goal) pairs.

    ``horizon`` and ``planner_overrides`` (planner constructor arguments) replace
    the recipe's; ``pair_mode`` picks the task's kind of pairs; ``num_workers``
    runs the episodes in a ``ParallelEnv``. With ``log_dir`` the numeric metrics go to TorchRL logger
    ``logger`` (see :func:`~torchrl_gbp.train.make_logger`) as ``evaluate/<metric>`` of experiment
    ``<task>_evaluate_<planner>``.

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.models import StateWorldModel, save_checkpoint
        >>> checkpoint = Path(tempfile.mkdtemp()) / "base.pt"
        >>> save_checkpoint(checkpoint, StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5)))
        >>> metrics = evaluate_checkpoint("wall", checkpoint, planner="gd", episodes=2, steps=2)  # 2 GD steps a plan
        >>> len(metrics["episodes"]["success"]), 0 <= metrics["success_rate"] <= 1
        (2, True)
        >>> evaluate_checkpoint("wall", "runs/wall/base.pt", planner="cem")  # 50 episodes  # doctest: +SKIP
    """
    model, _ = load_checkpoint(checkpoint)
    task = task_for_model(task_name, model)
    recipe = recipe_for(task_name, obs=observation_of(model))
    log = make_logger(logger, log_dir, f"{task_name}_evaluate_{planner}") if log_dir is not None else None
    policy = make_policy(model, task, planner, recipe, horizon, **planner_overrides)
    metrics = evaluate(policy, task, episodes=episodes or recipe.episodes, seed=seed, pair_mode=pair_mode,
                       num_workers=num_workers)
    if log is not None:
        for name, value in metrics.items():
            if isinstance(value, (int, float)):
                log.log_scalar(f"evaluate/{name}", float(value), step=0)
        log.close()
    return metrics


def record_checkpoint_video(task_name: str, checkpoint: str | os.PathLike, path: str | os.PathLike,
                            planner: str = "gd", episodes: int = 2, seed: int = 0,
                            evaluated_episodes: int | None = None, size: int = 64, fps: float = 10.0,
                            horizon: int | None = None, pair_mode: str | None = None, **planner_overrides) -> Path:
    """Write a video (``.gif`` or ``.mp4``) of ``planner`` on a saved world model: each frame the state beside the goal.

    The episodes are the first ``episodes`` of the ``evaluated_episodes``
    (default: the recipe's count) seeded pairs that :func:`evaluate_checkpoint`
    scores with the same ``seed`` and ``pair_mode``, planned with the same
    policy (sampling planners draw their samples anew in the smaller batch).
    See :func:`~torchrl_gbp.video.record_video`.

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.models import StateWorldModel, save_checkpoint
        >>> folder = Path(tempfile.mkdtemp())
        >>> save_checkpoint(folder / "base.pt", StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2,
        ...                                                                      frameskip=5)))
        >>> path = record_checkpoint_video("wall", folder / "base.pt", folder / "gd.gif", episodes=1,
        ...                                evaluated_episodes=1, size=16, steps=2)
        >>> path.name, path.stat().st_size > 0
        ('gd.gif', True)
        >>> record_checkpoint_video("wall", "runs/wall/base.pt", "runs/wall/gd.gif")  # doctest: +SKIP
    """
    model, _ = load_checkpoint(checkpoint)
    task = task_for_model(task_name, model)
    recipe = recipe_for(task_name, obs=observation_of(model))
    episodes = check_positive_int("episodes", episodes)
    evaluated = check_positive_int("evaluated_episodes", evaluated_episodes or recipe.episodes)
    if episodes > evaluated:
        raise ValueError(f"episodes={episodes} exceeds evaluated_episodes={evaluated}: a video shows evaluated episodes")
    policy = make_policy(model, task, planner, recipe, horizon, **planner_overrides)
    pairs = evaluation_pairs(task, evaluated, seed, pair_mode)[:episodes]
    return record_video(policy, task, path, episodes=episodes, size=size, fps=fps, pairs=pairs)


def finetune_model(model: LatentWorldModel, task: Task, trajectories, method: str, recipe: Recipe,
                   steps: int | None = None, seed: int = 0, predictor_lr: float | None = None,
                   action_encoder_lr: float | None = None, checkpoint_path: str | os.PathLike | None = None,
                   logger=None, progress: bool = True, resume: bool = False, finetuning: str = "ours",
                   online_schedule: str = "replace", device: str | torch.device | None = None) -> LatentWorldModel:
    """Finetune ``model`` in place with a synthesis transform on the replay buffer.

    Only the predictor and the action encoder train (the observation encoder
    stays frozen), each with its own learning rate, as in the paper. A checkpoint
    (with the synthesis state) is written every :data:`CHECKPOINT_EVERY` steps;
    ``resume`` continues from the one at ``checkpoint_path``. With ``device`` the model
    moves there and each sampled batch of windows follows it before synthesis (the
    dataset and the simulators stay on the CPU).

    ``finetuning`` (:data:`FINETUNINGS`): ``"ours"``, Adam at the recipe's
    ``finetune_lr``, gradient norm clipped at 1, no dropout; ``"reference"``,
    the reference code's optimiser, rates and dropout
    (:data:`REFERENCE_FINETUNING`; the proprio encoder, where the model has
    one, trains with the action encoder; online synthesis plans and
    adversarial synthesis attacks in train mode, the attack's radii from the
    reference's per-window statistic). ``predictor_lr`` and
    ``action_encoder_lr`` override either.
    ``online_schedule`` (:data:`~torchrl_gbp.synthesis.SCHEDULES`) for the
    online methods: ``"replace"`` (ours, the recipe's ``fraction`` of each
    batch) or ``"append"`` (the reference's: one optimiser step on each cached
    synthetic set of the batch's slot after the batch's own; a pass over the
    data, after which the slots start over, is the number of batches that
    covers every window starting at each env step once). Either way
    ``steps`` (default: the recipe's ``finetune_steps``) counts sampled batches;
    the reference code runs epochs over those windows instead (a full pass is
    ``ceil(N * (T - L + 1) / batch_size)`` batches for ``N`` trajectories of
    ``T`` steps and windows of ``L`` env steps), too many for a CPU.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel
        >>> task, recipe = make_task("wall"), recipe_for("wall")
        >>> data = task.generate_dataset(20, seed=0)
        >>> model = build_world_model(model_config(task, recipe, hidden_dim=32, depth=1), data)
        >>> encoder = [p.clone() for p in model.state_encoder.parameters()]
        >>> predictor = [p.clone() for p in model.predictor.parameters()]
        >>> model = finetune_model(model, task, data, "adversarial", recipe, steps=2, progress=False)
        >>> all(torch.equal(a, b) for a, b in zip(encoder, model.state_encoder.parameters()))  # frozen
        True
        >>> any(not torch.equal(a, b) for a, b in zip(predictor, model.predictor.parameters()))  # trained
        True
        >>> model = finetune_model(model, task, data, "adversarial", recipe, steps=2, progress=False,
        ...                        finetuning="reference")
        >>> model.config.dropout  # finetuned with the reference's dropout (off in eval mode)
        0.1
    """
    if finetuning not in FINETUNINGS:
        raise ValueError(f"finetuning must be one of {FINETUNINGS}, got {finetuning!r}")
    if online_schedule not in SCHEDULES:
        raise ValueError(f"online_schedule must be one of {SCHEDULES}, got {online_schedule!r}")
    torch.manual_seed(seed)
    if device is not None:
        model.to(device)
    frames = model.num_hist + recipe.window_frames - 1
    online = dict(recipe.online)
    if online_schedule == "append":
        online.update(schedule="append",
                      epoch_batches=pass_batches(trajectories, frames, model.frameskip, recipe.batch_size))
    adversarial = dict(recipe.adversarial)
    options: dict = {}
    lrs = dict(recipe.finetune_lr)
    if finetuning == "reference":
        reference = dict(REFERENCE_FINETUNING)
        model.set_dropout(reference.pop("dropout"))
        online["planning_mode"] = adversarial["attack_mode"] = "train"
        adversarial["radius_statistic"] = "per_window"
        lrs = {name: reference.pop(name) for name in ("predictor_lr", "action_encoder_lr")}
        options = reference
    transform = make_synthesis(method, model, task, online=online, adversarial=adversarial, seed=seed)
    if device is not None:
        transform = Compose(DeviceCastTransform(device), transform)
    buffer = make_window_buffer(trajectories, frames=frames, frameskip=model.frameskip, batch_size=recipe.batch_size,
                                transform=transform, generator=torch.Generator().manual_seed(seed))
    lrs.update({name: rate for name, rate in (("predictor_lr", predictor_lr), ("action_encoder_lr", action_encoder_lr))
                if rate is not None})
    with closing(buffer):  # the envs online synthesis built, closed without hiding a training error
        train_world_model(model, buffer, recipe.finetune_steps if steps is None else steps, lr=0.0, encoder_lr=0.0,
                          **lrs, **options, logger=logger, checkpoint_path=checkpoint_path,
                          checkpoint_every=CHECKPOINT_EVERY if checkpoint_path else 0,
                          checkpoint_extra={"task": task.name, "method": method, "seed": seed,
                                            "finetuning": finetuning, "online_schedule": online_schedule},
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


def finetune(task_name: str, checkpoint: str | os.PathLike, method: str, out: str | os.PathLike,
             dataset: str | os.PathLike | None = None, steps: int | None = None, seed: int = 0,
             predictor_lr: float | None = None, action_encoder_lr: float | None = None,
             log_dir: str | os.PathLike | None = None, progress: bool = True, resume: bool = False,
             logger: str = "csv", finetuning: str = "ours", online_schedule: str = "replace") -> LatentWorldModel:
    """Load a base checkpoint, finetune it with ``method`` and checkpoint the result to ``out``
    (``resume``: continue the finetuning checkpointed there; ``finetuning``, ``online_schedule``: see
    :func:`finetune_model`).

    Without ``dataset`` the task's default dataset is regenerated with ``seed``. With ``log_dir`` the metrics
    go to TorchRL logger ``logger`` (see :func:`~torchrl_gbp.train.make_logger`) as experiment
    ``<task>_finetune_<method>``.

    Example:
        >>> import tempfile
        >>> from torchrl_gbp.models import save_checkpoint
        >>> folder = Path(tempfile.mkdtemp())
        >>> task = make_task("wall")
        >>> dataset = make_dataset(task, folder / "data", 20)
        >>> base = build_world_model(model_config(task, recipe_for("wall"), hidden_dim=32, depth=1),
        ...                          load_dataset(dataset))
        >>> save_checkpoint(folder / "base.pt", base, extra={"task": "wall"})
        >>> model = finetune("wall", folder / "base.pt", "adversarial", folder / "adversarial.pt", dataset=dataset,
        ...                  steps=2, progress=False)
        >>> load_checkpoint(folder / "adversarial.pt")[1]["method"]
        'adversarial'
        >>> finetune("wall", "runs/wall/base.pt", "online", "runs/wall/online.pt")  # doctest: +SKIP
    """
    model, _ = load_checkpoint(checkpoint)
    task = task_for_model(task_name, model)
    recipe = recipe_for(task_name, obs=observation_of(model))
    trajectories = (load_dataset(dataset) if dataset is not None
                    else task.generate_dataset(recipe.num_trajectories, seed=seed))
    log = make_logger(logger, log_dir, f"{task_name}_finetune_{method}") if log_dir is not None else None
    try:
        return finetune_model(model, task, trajectories, method, recipe, steps, seed, predictor_lr,
                              action_encoder_lr, checkpoint_path=out, logger=log, progress=progress, resume=resume,
                              finetuning=finetuning, online_schedule=online_schedule)
    finally:
        if log is not None:
            log.close()


