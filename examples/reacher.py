"""dm_control reacher, end to end through the Python API: data, world model, planners, evaluation.

The reacher's true dynamics are MuJoCo's through TorchRL's DMControlEnv; a goal
is a fingertip target. Needs the dm_control extra: pip install 'torchrl_gbp[dmc]'.

Run: python examples/reacher.py [--quick]
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
from torchrl_gbp.tasks.reacher import PROPRIO_DIM, ReacherTask
from torchrl_gbp.train import build_world_model, train_world_model

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="smaller data, training and evaluation")
parser.add_argument("--out", default="runs/example_reacher")
args = parser.parse_args()
torch.manual_seed(0)
recipe = recipe_for("reacher", quick=args.quick)  # the task's defaults: data, model, budgets

# 1. A seeded dataset simulated by dm_control: noisy PD reaches and random torques, (N, T) TensorDict.
task = ReacherTask()
data = task.generate_dataset(recipe.num_trajectories, seed=0)

# 2. A state world model over (fingertip, cos/sin of the joints, joint velocities); the last
#    PROPRIO_DIM entries are proprioception, which the goal cost down-weights by alpha.
config = WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=task.action_dim, frameskip=task.frameskip,
                          **recipe.model)
assert config.proprio_dim == PROPRIO_DIM
model = build_world_model(config, data)
buffer = make_window_buffer(data, frames=config.num_hist + recipe.window_frames - 1, frameskip=task.frameskip,
                            batch_size=recipe.batch_size)
train_world_model(model, buffer, steps=recipe.train_steps, lr=recipe.lr, checkpoint_path=f"{args.out}/base.pt")
model, _ = load_checkpoint(f"{args.out}/base.pt")

# 3. Gradient MPC and CEM as TorchRL policies, evaluated on the same (start, target) pairs.
action_spec = task.action_spec
cost = GoalCost(**recipe.objective, proprio_dim=config.proprio_dim)
planners = {
    "gd": make_planner("gd", model, recipe.horizon, cost, action_spec=action_spec, **recipe.planner_kwargs["gd"]),
    "cem": make_planner("cem", model, recipe.horizon, cost, action_spec=action_spec, **recipe.planner_kwargs["cem"]),
}
for name, planner in planners.items():
    metrics = evaluate(MPCPolicy(planner, action_spec), task, episodes=recipe.episodes, seed=1000)
    print(f"{name}: success {100 * metrics['success_rate']:.0f}%, final fingertip distance "
          f"{metrics['final_distance']:.3f}, {metrics['plan_seconds']:.3f} s per batched plan")
