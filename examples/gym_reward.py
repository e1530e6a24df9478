"""A Gymnasium MuJoCo env with a reward instead of a goal (Reacher-v5): a world model that also learns the
reward, finetuned with Online and Adversarial World Modeling, then MPC on the predicted return.

Any Gymnasium env with a Box action space is a task under the name "gym:<id>"; without a goal, the world
model gets a reward head and the planners maximise the discounted predicted return (ReturnObjective), so
the policy reads no goal. Its MuJoCo state (qpos, qvel) is set at reset: evaluation starts from seeded
states and online synthesis executes plans. Needs: pip install 'torchrl_gbp[gymnasium]'.

Run: python examples/gym_reward.py [--quick] [--env-id InvertedPendulum-v5 ...]   (every field of Options is a flag)
"""
from __future__ import annotations

import argparse
import copy
from contextlib import closing
from dataclasses import dataclass, fields, replace

import torch
from tensordict import TensorDictBase
from torchrl.envs import Compose, Transform
from torchrl.envs.utils import RandomPolicy

from torchrl_gbp.data import WindowReplayBuffer, make_window_buffer
from torchrl_gbp.evaluate import episode_metrics, evaluate, evaluation_rollout
from torchrl_gbp.models import LatentWorldModel, WorldModelConfig
from torchrl_gbp.planners import (
    CrossEntropyPlanner,
    GradientPlanner,
    MPCPolicy,
    Planner,
    ReturnObjective,
    model_action_bounds,
)
from torchrl_gbp.synthesis import AdversarialOptions, AdversarialSynthesis, OnlineOptions, OnlineSynthesis
from torchrl_gbp.tasks import make_task
from torchrl_gbp.train import build_world_model, train_world_model


@dataclass(frozen=True, kw_only=True)
class Options:
    """What the example runs. The defaults take about two minutes on two CPU cores."""

    env_id: str = "Reacher-v5"    # the Gymnasium id
    episode_steps: int = 50       # env steps per trajectory and per evaluation episode
    data_range: float = 1.0       # share of the action range the data policy samples, around its middle
    trajectories: int = 200       # offline dataset
    window_frames: int = 5        # frames per training window: the history frame, then the predicted ones
    batch_size: int = 256         # windows per batch
    train_steps: int = 1500       # base model training batches
    finetune_steps: int = 100     # finetuning batches (online then adversarial synthesis)
    online_every: int = 10        # online synthesis plans and simulates every that many batches
    online_capacity: int = 20_000  # synthetic windows kept
    online_planner_steps: int = 30  # Adam steps of the plans online synthesis executes
    horizon: int = 10             # planned model steps
    gd_steps: int = 30            # gradient MPC: Adam steps per plan (warm-started plans often need a few)
    cem_samples: int = 100        # CEM: samples per iteration (a tenth are elites)
    cem_iterations: int = 5       # CEM: iterations per plan
    episodes: int = 10            # evaluation episodes, from seeded start states
    seed: int = 0
    out: str = "runs/example_gym_reward"  # checkpoints


OPTIONS = Options()
QUICK = replace(OPTIONS, episode_steps=30, trajectories=100, train_steps=500, finetune_steps=10, online_every=5,
                online_planner_steps=5, gd_steps=10, cem_iterations=3, episodes=4)


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


# 1. The task: the Gymnasium env behind TorchRL's GymEnv, batched, with no goal key and a reward; its
#    dataset is collected by a data policy of your own (any TorchRL policy: TensorDict in, "action" written).
def data_policy(tensordict: TensorDictBase) -> TensorDictBase:
    """Uniform random actions over the middle ``data_range`` share of the action range of ``task`` (below)."""
    low, high = task.action_spec.space.low, task.action_spec.space.high
    noise = 2 * torch.rand(*tensordict.batch_size, task.action_dim) - 1
    return tensordict.set("action", (high + low) / 2 + (high - low) / 2 * options.data_range * noise)


task = make_task(f"gym:{options.env_id}", episode_steps=options.episode_steps, data_policy=data_policy)

# 2. A seeded offline dataset, a TensorDict (trajectories, steps) with ("next", "reward"); an episode that
#    terminates early gets an id of its own, so training windows never cross a reset.
data = task.generate_dataset(options.trajectories, seed=options.seed)
print("dataset:", tuple(data.shape), "(trajectories, steps),", int(data["episode"].max()) + 1, "episodes")

# 3. The world model: the normalised observation is the latent and a residual MLP predicts the next one;
#    a reward head predicts each step's reward from the action and the latent it leads to.
config = WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip,
                          hidden_dim=128, depth=2, reward_head=True)
base = build_world_model(config, data)


# 4. Training: teacher forcing on windows of model steps that a TorchRL replay buffer samples inside episodes;
#    the loss adds the reward head's error on ("next", "reward").
def window_buffer(transform: Transform | None = None) -> WindowReplayBuffer:
    """Batches of windows of the dataset, passed through ``transform`` (a synthesis) when given."""
    return make_window_buffer(data, frames=options.window_frames, frameskip=task.frameskip,
                              batch_size=options.batch_size, transform=transform,
                              generator=torch.Generator().manual_seed(options.seed))


train_world_model(base, window_buffer(), options.train_steps, lr=1e-3, checkpoint_path=f"{options.out}/base.pt",
                  description="base model")

# 5. Finetuning with data synthesis, transforms on the replay buffer: Online World Modeling plans the
#    predicted return from each window's start in the model, executes the plans in the simulator and swaps
#    half of every batch for those windows; Adversarial World Modeling then perturbs the latents and actions
#    within small radii towards higher loss. The predictor and the action encoder train at their own rates;
#    the observation encoder and the reward head stay frozen.
finetuned = copy.deepcopy(base)
synthesis = Compose(
    OnlineSynthesis(finetuned, lambda num_envs: task.make_env(num_envs=num_envs, seed=options.seed),
                    every=options.online_every, fraction=0.5, seed=options.seed,
                    options=OnlineOptions(capacity=options.online_capacity, planner_steps=options.online_planner_steps,
                                          objective=ReturnObjective(finetuned))),
    AdversarialSynthesis(finetuned, fraction=1.0, options=AdversarialOptions(),
                         generator=torch.Generator().manual_seed(options.seed)),
)
with closing(window_buffer(synthesis)) as buffer:  # closing closes the simulators online synthesis built
    train_world_model(finetuned, buffer, options.finetune_steps, lr=0.0, encoder_lr=0.0, predictor_lr=1e-4,
                      action_encoder_lr=5e-4, checkpoint_path=f"{options.out}/finetuned.pt", description="finetune")


# 6. Planning: gradient MPC (Adam on the action sequence through the model) and CEM, both maximising the
#    discounted return the model predicts over the horizon, replanning after every model step.
def planners(model: LatentWorldModel) -> dict[str, Planner]:
    """Gradient descent and CEM on ``model``, bounded to the env's actions."""
    low, high = model_action_bounds(model, task.action_spec)
    objective = ReturnObjective(model, discount=0.99)
    return {"GD": GradientPlanner(model, objective=objective, horizon=options.horizon, action_low=low,
                                  action_high=high, steps=options.gd_steps, lr=0.2),
            "CEM": CrossEntropyPlanner(model, objective=objective, horizon=options.horizon, action_low=low,
                                       action_high=high, samples=options.cem_samples,
                                       elites=options.cem_samples // 10, iterations=options.cem_iterations)}


# 7. Evaluation: random actions, then every policy, from the same seeded start states, batched; the score is
#    the mean return over the episode.
random_policy = RandomPolicy(task.action_spec.expand(options.episodes, task.action_dim))  # one row per episode
rollout, _ = evaluation_rollout(random_policy, task, episodes=options.episodes, seed=1000 + options.seed)
print(f"   random actions: mean return {episode_metrics(rollout)['mean_return']:7.1f}")
for name, model in (("base", base), ("finetuned", finetuned)):
    for planner_name, planner in planners(model).items():
        metrics = evaluate(MPCPolicy(planner, task.action_spec), task, episodes=options.episodes,
                           seed=1000 + options.seed)
        print(f"{name:>9} {planner_name:>3}: mean return {metrics['mean_return']:7.1f}, "
              f"planning {metrics['planning_seconds_total']:6.2f} s in all, {metrics['plan_seconds']:.3f} s per batched plan")
