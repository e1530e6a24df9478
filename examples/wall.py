"""Wall, end to end through the Python API: data, world model, planners, evaluation.

Run: python examples/wall.py [--quick]
"""
import argparse

import torch
from torchrl.collectors import Collector

from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.evaluate import evaluate
from torchrl_gbp.models import WorldModelConfig, load_checkpoint
from torchrl_gbp.planners import (
    GoalCost,
    MPCPolicy,
    make_planner,
)
from torchrl_gbp.tasks import WallTask
from torchrl_gbp.train import build_world_model, train_world_model

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="smaller data, training and evaluation")
parser.add_argument("--out", default="runs/example_wall")
args = parser.parse_args()
torch.manual_seed(0)

# 1. A seeded dataset of random and door-seeking trajectories, (N, T) TensorDict.
task = WallTask()
data = task.generate_dataset(500 if args.quick else 2000, seed=0)

# 2. A state world model with dataset normalisation, trained on model-step windows
#    sampled from a TorchRL replay buffer (SliceSampler inside episodes).
config = WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip)
model = build_world_model(config, data)
buffer = make_window_buffer(data, frames=5, frameskip=task.frameskip, batch_size=256)
train_world_model(model, buffer, steps=800 if args.quick else 4000, checkpoint_path=f"{args.out}/base.pt")
model, _ = load_checkpoint(f"{args.out}/base.pt")  # checkpoints rebuild an identical model

# 3. Gradient MPC and CEM as TorchRL policies, evaluated on the same (start, goal) pairs.
action_spec = task.action_spec
episodes = 20 if args.quick else 50
cost = GoalCost(mode="all", base=0.5)
planners = {
    "gd": make_planner("gd", model, 5, cost, action_spec=action_spec, steps=100, lr=0.2),
    "cem": make_planner("cem", model, 5, cost, action_spec=action_spec, samples=100 if args.quick else 300,
                                elites=10 if args.quick else 30, iterations=10 if args.quick else 30),
}
for name, planner in planners.items():
    policy = MPCPolicy(planner, action_spec)
    metrics = evaluate(policy, task, episodes=episodes, seed=1000)
    print(f"{name}: success {100 * metrics['success_rate']:.0f}%, final distance {metrics['final_distance']:.3f}, "
          f"{metrics['plan_seconds']:.3f} s per batched plan")

# 4. The same policy drops into a TorchRL collector over batched envs.
policy = MPCPolicy(planners["gd"], action_spec)
collector = Collector(lambda: task.make_env(num_envs=4), policy, frames_per_batch=40, total_frames=80,
                      auto_register_policy_transforms=True)
for batch in collector:
    print("collected", tuple(batch.shape), "mean planning cost", float(batch["planner", "cost"].mean()))
collector.shutdown()
