"""gymnasium-robotics' PointMaze_UMaze-v3 through the Gymnasium adapter: a world model learned from random
actions, finetuned with Online and Adversarial World Modeling, then gradient MPC beside CEM.

Any Gymnasium goal env (dict observations: observation, achieved_goal, desired_goal) is a task under the
name "gym:<id>"; with a MuJoCo simulator, its state (qpos, qvel) is set at reset, so evaluation starts from
seeded states and online synthesis executes plans. Needs: pip install 'torchrl_gbp[gymnasium]'.

Run: python examples/gym_pointmaze.py [--quick] [--train-steps 400 ...]   (every field of Options is a flag)
"""
from __future__ import annotations

import argparse
import copy
from contextlib import closing
from dataclasses import dataclass, fields, replace

import torch
from torchrl.envs import Compose, Transform

from torchrl_gbp.data import WindowReplayBuffer, make_window_buffer
from torchrl_gbp.evaluate import evaluate
from torchrl_gbp.models import LatentWorldModel, WorldModelConfig
from torchrl_gbp.planners import (
    CrossEntropyPlanner,
    GoalCost,
    GradientPlanner,
    MPCPolicy,
    Planner,
    model_action_bounds,
)
from torchrl_gbp.synthesis import AdversarialOptions, AdversarialSynthesis, OnlineOptions, OnlineSynthesis
from torchrl_gbp.tasks import make_task
from torchrl_gbp.train import build_world_model, train_world_model


@dataclass(frozen=True, kw_only=True)
class Options:
    """What the example runs. The defaults take about ten minutes on two CPU cores."""

    episode_steps: int = 200      # env steps (of 0.01 s) per episode, in the dataset and the evaluation
    trajectories: int = 200       # offline dataset: trajectories of uniform random actions
    window_frames: int = 5        # frames per training window: the history frame, then the predicted ones
    batch_size: int = 64          # windows per batch
    train_steps: int = 1500       # base model training batches
    finetune_steps: int = 100     # finetuning batches (online then adversarial synthesis)
    online_every: int = 10        # online synthesis plans and simulates every that many batches
    online_capacity: int = 20_000  # synthetic windows kept
    online_planner_steps: int = 30  # Adam steps of the plans online synthesis executes
    horizon: int = 5              # planned model steps
    gd_steps: int = 100           # gradient MPC: Adam steps per plan (warm-started plans often need a few)
    cem_samples: int = 100        # CEM: samples per iteration (a tenth are elites)
    cem_iterations: int = 10      # CEM: iterations per plan
    episodes: int = 20            # evaluation episodes, from seeded (start, goal) pairs
    seed: int = 0
    out: str = "runs/example_gym_pointmaze"  # checkpoints


OPTIONS = Options()
QUICK = replace(OPTIONS, episode_steps=100, trajectories=100, train_steps=1000, finetune_steps=10, online_every=5,
                online_planner_steps=5, gd_steps=20, cem_iterations=5, episodes=10)


def parse_options() -> Options:
    """:data:`OPTIONS`, or :data:`QUICK` with ``--quick``, with the fields given as flags replaced."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tens of seconds (QUICK)")
    for spec in fields(Options):
        parser.add_argument(f"--{spec.name.replace('_', '-')}", type=type(spec.default),
                            help=f"{getattr(OPTIONS, spec.name)}, quick {getattr(QUICK, spec.name)}")
    flags = vars(parser.parse_args())
    profile = QUICK if flags.pop("quick") else OPTIONS
    return replace(profile, **{name: value for name, value in flags.items() if value is not None})


options = parse_options()
torch.manual_seed(options.seed)

# 1. The task: the Gymnasium env behind TorchRL's GymEnv, batched, (start, goal) pairs from seeded Gymnasium
#    resets, success the env's own radius (0.45); 5 env steps make one model step.
task = make_task("gym:PointMaze_UMaze-v3", episode_steps=options.episode_steps, frameskip=5)

# 2. A seeded offline dataset, a TensorDict (trajectories, steps), of uniform random actions (TorchRL's
#    RandomPolicy; make_task(..., data_policy=policy) collects with your own).
data = task.generate_dataset(options.trajectories, seed=options.seed)
print("dataset:", tuple(data.shape), "(trajectories, steps)")

# 3. The world model: the normalised observation (x, y, vx, vy) is the latent, whose last two entries (the
#    velocity) are the proprio part that the goal cost down-weights; a residual MLP predicts the next latent
#    from a model step of `frameskip` env actions.
config = WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip,
                          hidden_dim=128, depth=2, proprio_dim=2)
base = build_world_model(config, data)


# 4. Training: teacher forcing on windows of model steps that a TorchRL replay buffer samples inside episodes.
def window_buffer(transform: Transform | None = None) -> WindowReplayBuffer:
    """Batches of windows of the dataset, passed through ``transform`` (a synthesis) when given."""
    return make_window_buffer(data, frames=options.window_frames, frameskip=task.frameskip,
                              batch_size=options.batch_size, transform=transform,
                              generator=torch.Generator().manual_seed(options.seed))


train_world_model(base, window_buffer(), options.train_steps, lr=1e-3, checkpoint_path=f"{options.out}/base.pt",
                  description="base model")

# 5. Finetuning with data synthesis, transforms on the replay buffer: Online World Modeling plans from each
#    window's start to its end in the model, executes the plans in the simulator and swaps half of every
#    batch for those corrected windows; Adversarial World Modeling then perturbs the latents and actions
#    within small radii towards higher loss. The observation encoder stays frozen; the predictor and the
#    action encoder train at their own rates.
finetuned = copy.deepcopy(base)
synthesis = Compose(
    OnlineSynthesis(finetuned, lambda num_envs: task.make_env(num_envs=num_envs, seed=options.seed),
                    every=options.online_every, fraction=0.5, seed=options.seed,
                    options=OnlineOptions(capacity=options.online_capacity,
                                          planner_steps=options.online_planner_steps)),
    AdversarialSynthesis(finetuned, fraction=1.0, options=AdversarialOptions(),
                         generator=torch.Generator().manual_seed(options.seed)),
)
with closing(window_buffer(synthesis)) as buffer:  # closing closes the simulators online synthesis built
    train_world_model(finetuned, buffer, options.finetune_steps, lr=0.0, encoder_lr=0.0, predictor_lr=1e-4,
                      action_encoder_lr=5e-4, checkpoint_path=f"{options.out}/finetuned.pt", description="finetune")


# 6. Planning: gradient MPC (Adam on the action sequence through the model) and CEM, both minimising the
#    latent distance to the goal over the horizon (the velocity at a tenth of the weight, so the ball aims at
#    the goal position and still brakes), replanning after every model step.
def planners(model: LatentWorldModel) -> dict[str, Planner]:
    """Gradient descent and CEM on ``model``, bounded to the env's actions."""
    low, high = model_action_bounds(model, task.action_spec)
    cost = GoalCost(mode="all", base=0.5, alpha=0.1, proprio_dim=config.proprio_dim)
    return {"GD": GradientPlanner(model, objective=cost, horizon=options.horizon, action_low=low, action_high=high,
                                  steps=options.gd_steps, lr=0.2),
            "CEM": CrossEntropyPlanner(model, objective=cost, horizon=options.horizon, action_low=low,
                                       action_high=high, samples=options.cem_samples,
                                       elites=options.cem_samples // 10, iterations=options.cem_iterations)}


# 7. Evaluation: every policy on the same (start, goal) pairs, seeded apart from the data, all episodes batched;
#    success is the ball within 0.45 of the goal position at the end of the episode.
for name, model in (("base", base), ("finetuned", finetuned)):
    for planner_name, planner in planners(model).items():
        metrics = evaluate(MPCPolicy(planner, task.action_spec), task, episodes=options.episodes,
                           seed=1000 + options.seed)
        print(f"{name:>9} {planner_name:>3}: success {100 * metrics['success_rate']:5.1f}%, "
              f"planning {metrics['planning_seconds_total']:6.2f} s in all, {metrics['plan_seconds']:.3f} s per batched plan")
