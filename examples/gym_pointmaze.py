"""gymnasium-robotics' PointMaze_UMaze-v3 end to end through the Gymnasium adapter: collect, train, finetune, evaluate.

Run: python examples/gym_pointmaze.py   (needs: pip install 'torchrl_gbp[gymnasium]'; a few minutes on 2 CPU cores)
"""
import argparse
import copy
from dataclasses import replace

import torch

from torchrl_gbp.evaluate import evaluate
from torchrl_gbp.experiments.pipeline import finetune_model, make_policy, train_base_model
from torchrl_gbp.experiments.recipes import recipe_for
from torchrl_gbp.tasks import make_task

parser = argparse.ArgumentParser()
parser.add_argument("--trajectories", type=int, default=200)
parser.add_argument("--train-steps", type=int, default=1500)
parser.add_argument("--finetune-steps", type=int, default=100)
parser.add_argument("--episodes", type=int, default=20)
parser.add_argument("--out", default="runs/example_gym_pointmaze")
args = parser.parse_args()
torch.manual_seed(0)

# 1. The Gymnasium env as a task: dict observations (observation / achieved_goal / desired_goal), MuJoCo state
#    (qpos, qvel) set through env.unwrapped.point_env; 0.01 s per env step, 5 env steps per model step.
task = make_task("gym:PointMaze_UMaze-v3", episode_steps=200, frameskip=5)
# The goal-env recipe, with (vx, vy) as the down-weighted proprio part of the latent (as the native PointMaze).
recipe = recipe_for(task.name)
recipe = replace(recipe, model={**recipe.model, "proprio_dim": 2}, objective={**recipe.objective, "alpha": 0.1},
                 batch_size=64, planner_kwargs={**recipe.planner_kwargs,
                                                "cem": {"samples": 100, "elites": 10, "iterations": 10}},
                 online={**recipe.online, "planner_steps": 30})

# 2. A seeded dataset of uniform random actions (TorchRL's RandomPolicy; pass data_policy= for your own).
data = task.generate_dataset(args.trajectories, seed=0)
print("dataset", tuple(data.shape))

# 3. Base world model, then online finetuning: plans from dataset windows executed in the MuJoCo env.
model = train_base_model(task, data, recipe, f"{args.out}/base.pt", steps=args.train_steps, progress=False)
finetuned = finetune_model(copy.deepcopy(model), task, data, "online", recipe, steps=args.finetune_steps,
                           checkpoint_path=f"{args.out}/online.pt", progress=False)

# 4. GD and CEM on the same seeded (start, goal) pairs; success = ball within 0.45 of the goal at the end.
for name, world_model in (("base", model), ("online", finetuned)):
    for planner in ("gd", "cem"):
        metrics = evaluate(make_policy(world_model, task, planner, recipe), task, episodes=args.episodes, seed=1000)
        print(f"{name} {planner}: success {100 * metrics['success_rate']:.0f}%, "
              f"final distance {metrics['final_distance']:.3f}, {metrics['plan_seconds']:.3f} s per batched plan")
