"""PointMaze, end to end through the Python API: maze-following data, world model, planners, evaluation.

Run: python examples/pointmaze.py [--quick] [--pair-mode random|far]   (needs: pip install 'torchrl_gbp[pointmaze]')
"""
import argparse

import torch
from torchrl.collectors import Collector

from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.evaluate import evaluate
from torchrl_gbp.experiments.recipes import recipe_for
from torchrl_gbp.models import WorldModelConfig, load_checkpoint
from torchrl_gbp.planners import (
    GoalCost,
    MPCPolicy,
    make_planner,
)
from torchrl_gbp.tasks import make_task
from torchrl_gbp.train import build_world_model, train_world_model

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="smaller data, training and evaluation")
parser.add_argument("--pair-mode", default="random", choices=["random", "far"],
                    help="'far' starts and ends at the two ends of the U (greedy goal costs stall at the wall)")
parser.add_argument("--out", default="runs/example_pointmaze")
args = parser.parse_args()
torch.manual_seed(0)
recipe = recipe_for("pointmaze")  # the defaults the benchmark uses

# 1. A seeded dataset: a noisy PD controller following BFS waypoints through the U-maze to random
#    cells, mixed with random-action segments; (N, T) TensorDict of (x, y, vx, vy) states.
task = make_task("pointmaze", pair_mode=args.pair_mode)
data = task.generate_dataset(500 if args.quick else recipe.num_trajectories, seed=0)

# 2. A state world model; the velocity (last 2 observation entries) is its down-weighted proprio part.
config = WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip,
                          **recipe.model)
model = build_world_model(config, data)
buffer = make_window_buffer(data, frames=recipe.window_frames, frameskip=task.frameskip, batch_size=256)
train_world_model(model, buffer, steps=800 if args.quick else recipe.train_steps,
                  checkpoint_path=f"{args.out}/base.pt")
model, _ = load_checkpoint(f"{args.out}/base.pt")  # checkpoints rebuild an identical model

# 3. Gradient MPC and CEM on the same (start, goal) pairs; success = ball within 0.45 of the goal.
action_spec = task.action_spec
episodes = 20 if args.quick else recipe.episodes
cost = GoalCost(**recipe.objective, proprio_dim=config.proprio_dim)
cem = recipe.planner_kwargs["cem"] if not args.quick else {"samples": 100, "elites": 10, "iterations": 10}
planners = {
    "gd": make_planner("gd", model, recipe.horizon, cost, action_spec=action_spec, **recipe.planner_kwargs["gd"]),
    "cem": make_planner("cem", model, recipe.horizon, cost, action_spec=action_spec, **cem),
}
for name, planner in planners.items():
    metrics = evaluate(MPCPolicy(planner, action_spec), task, episodes=episodes, seed=1000)
    print(f"{name}: success {100 * metrics['success_rate']:.0f}%, final distance {metrics['final_distance']:.3f}, "
          f"{metrics['plan_seconds']:.3f} s per batched plan")

# 4. The same policy drops into a TorchRL collector over batched MuJoCo envs.
policy = MPCPolicy(planners["gd"], action_spec)
collector = Collector(lambda: task.make_env(num_envs=4), policy, frames_per_batch=40, total_frames=80,
                      auto_register_policy_transforms=True)
for batch in collector:
    print("collected", tuple(batch.shape), "mean planning cost", float(batch["planner", "cost"].mean()))
collector.shutdown()
