"""dm_control's reacher: a world model learned from offline data, finetuned with Online and Adversarial World
Modeling, then gradient MPC beside CEM on the same start and goal pairs.

A two-link arm brings its fingertip onto a target; the dynamics are MuJoCo's through TorchRL's DMControlEnv.
An observation is (fingertip x, y, cos and sin of both joints, joint velocities); an action two torques.
Needs: pip install 'torchrl_gbp[dmc]'.

Run: python examples/reacher.py [--quick] [--pair-mode far] [--train-steps 400 ...]   (every field of Options is a flag)
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
    """What the example runs. Small planning budgets keep the full run short on a CPU."""

    pair_mode: str = "random"     # evaluation pairs: dm_control's targets, or "far": the fingertip 0.15 away at least
    trajectories: int = 1500      # offline dataset: 60-step noisy PD reaches and random torques
    window_frames: int = 5        # frames per training window: the history frame, then the predicted ones
    batch_size: int = 256         # windows per batch
    train_steps: int = 2000       # base model training batches
    finetune_steps: int = 300     # finetuning batches (online then adversarial synthesis)
    online_every: int = 20        # online synthesis plans and simulates every that many batches
    online_capacity: int = 10_000  # synthetic windows kept
    online_planner_steps: int = 30  # Adam steps of the plans online synthesis executes
    horizon: int = 5              # planned model steps
    gd_steps: int = 20            # gradient MPC: Adam steps per plan (warm-started plans often need a few)
    cem_samples: int = 100        # CEM: samples per iteration (a tenth are elites)
    cem_iterations: int = 10      # CEM: iterations per plan
    episodes: int = 50            # evaluation episodes, from seeded (start, goal) pairs
    seed: int = 0
    out: str = "runs/example_reacher"  # checkpoints


OPTIONS = Options()
QUICK = replace(OPTIONS, trajectories=100, batch_size=64, train_steps=400, finetune_steps=10, online_every=5,
                online_planner_steps=5, gd_steps=10, cem_iterations=5, episodes=10)


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

# 1. The task: its TorchRL env (one dm_control env per batch entry, states set at reset), (start, goal) sampler
#    and success test. A state is the joints' angles and velocities; a goal, the joint angles that put the
#    fingertip on the target.
task = make_task("reacher", pair_mode=options.pair_mode)

# 2. A seeded offline dataset simulated by dm_control, a TensorDict (trajectories, steps): noisy PD reaches
#    and random torques.
data = task.generate_dataset(options.trajectories, seed=options.seed)
print("dataset:", tuple(data.shape), "(trajectories, steps)")

# 3. The world model: the normalised observation is the latent, whose last six entries (the joints) are its
#    proprio part; a residual MLP predicts the next latent from a model step of `frameskip` env actions.
config = WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip,
                          hidden_dim=128, proprio_dim=6)
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
#    latent distance to the goal over the horizon, replanning after every model step. With the joints weighed
#    as much as the fingertip (alpha 1; three times less per entry), the joint part steers the arm out of
#    the fingertip cost's local minima.
def planners(model: LatentWorldModel) -> dict[str, Planner]:
    """Gradient descent and CEM on ``model``, bounded to the env's actions."""
    low, high = model_action_bounds(model, task.action_spec)
    cost = GoalCost(mode="all", base=0.5, alpha=1.0, proprio_dim=config.proprio_dim)
    return {"GD": GradientPlanner(model, objective=cost, horizon=options.horizon, action_low=low, action_high=high,
                                  steps=options.gd_steps, lr=0.2),
            "CEM": CrossEntropyPlanner(model, objective=cost, horizon=options.horizon, action_low=low,
                                       action_high=high, samples=options.cem_samples,
                                       elites=options.cem_samples // 10, iterations=options.cem_iterations)}


# 7. Evaluation: every policy on the same (start, goal) pairs, seeded apart from the data, all episodes batched;
#    success is the fingertip within dm_control's reward radius (0.06 on "easy") of the target at the end of the
#    episode.
for name, model in (("base", base), ("finetuned", finetuned)):
    for planner_name, planner in planners(model).items():
        metrics = evaluate(MPCPolicy(planner, task.action_spec), task, episodes=options.episodes,
                           seed=1000 + options.seed)
        print(f"{name:>9} {planner_name:>3}: success {100 * metrics['success_rate']:5.1f}%, "
              f"planning {metrics['planning_seconds_total']:6.2f} s in all, {metrics['plan_seconds']:.3f} s per batched plan")
