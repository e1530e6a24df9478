"""PushT, end to end through the Python API: scripted-pusher data, world model, planners, evaluation.

Run: python examples/pusht.py [--quick]   (needs: pip install 'torchrl_gbp[pusht]')
"""
import argparse

import torch

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
parser.add_argument("--out", default="runs/example_pusht")
args = parser.parse_args()
torch.manual_seed(0)
recipe = recipe_for("pusht")  # the defaults the benchmark uses

# 1. A seeded dataset of noisy scripted pushes and random-target segments, (N, T) TensorDict.
#    States are 10 numbers (agent, block pose, velocities); observations 6 (block xy, cos/sin, agent xy).
task = make_task("pusht")
data = task.generate_dataset(300 if args.quick else recipe.num_trajectories, seed=0)

# 2. A state world model; the agent position (last 2 observation entries) is its proprio part.
config = WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip,
                          **recipe.model)
model = build_world_model(config, data)
buffer = make_window_buffer(data, frames=recipe.window_frames, frameskip=task.frameskip, batch_size=256)
train_world_model(model, buffer, steps=500 if args.quick else recipe.train_steps,
                  checkpoint_path=f"{args.out}/base.pt")
model, _ = load_checkpoint(f"{args.out}/base.pt")

# 3. Gradient MPC and CEM on the same (start, goal) pairs; success = block within 20 units and 20 degrees.
action_spec = task.action_spec
episodes = 10 if args.quick else 50
cost = GoalCost(**recipe.objective, proprio_dim=config.proprio_dim)
cem = dict(recipe.planner_kwargs["cem"])  # keeps the recipe's small init_std
if args.quick:
    cem.update(samples=100, elites=10, iterations=10)
planners = {
    "gd": make_planner("gd", model, recipe.horizon, cost, action_spec=action_spec, **recipe.planner_kwargs["gd"]),
    "cem": make_planner("cem", model, recipe.horizon, cost, action_spec=action_spec, **cem),
}
for name, planner in planners.items():
    metrics = evaluate(MPCPolicy(planner, action_spec), task, episodes=episodes, seed=1000)
    print(f"{name}: success {100 * metrics['success_rate']:.0f}%, final distance {metrics['final_distance']:.1f} "
          f"(units + degrees), {metrics['plan_seconds']:.3f} s per batched plan")
