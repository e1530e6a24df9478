"""Wall from pixels, end to end through the Python API: rendered dataset, frozen encoder, token predictor, planning.

Run: python examples/wall_pixels.py [--quick]
"""
import argparse

import torch

from torchrl_gbp.data import load_dataset, make_window_buffer
from torchrl_gbp.diagnostics import plot_predicted_frames
from torchrl_gbp.evaluate import evaluate
from torchrl_gbp.models import PixelWorldModelConfig, load_checkpoint
from torchrl_gbp.planners import GoalCost, MPCPolicy, make_planner
from torchrl_gbp.tasks import PixelTask, WallTask
from torchrl_gbp.train import build_world_model, train_world_model

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="smaller data, training and evaluation")
parser.add_argument("--out", default="runs/example_wall_pixels")
args = parser.parse_args()
torch.manual_seed(0)

# 1. Wall seen through 64x64 images plus the agent position (proprio). The dataset is rendered straight
#    into a memory-mapped folder: uint8 "pixels" (N, T, 64, 64, 3) and "proprio" (N, T, 2).
task = PixelTask(WallTask(), image_size=64)
data = load_dataset(task.write_dataset(f"{args.out}/dataset", 100 if args.quick else 500, seed=0))

# 2. A patch autoencoder is trained on the task's images and frozen (the stand-in for DINOv2), then a
#    frame-causal transformer learns to roll its 16 tokens (and the proprio) forward under actions.
config = PixelWorldModelConfig(image_size=64, proprio_dim=task.proprio_dim, env_action_dim=task.action_dim,
                               frameskip=task.frameskip, num_hist=1)
model = build_world_model(config, data, encoder_steps=150 if args.quick else 500)
buffer = make_window_buffer(data, frames=3, frameskip=task.frameskip, batch_size=64)
train_world_model(model, buffer, steps=300 if args.quick else 2000, checkpoint_path=f"{args.out}/base.pt")
model, _ = load_checkpoint(f"{args.out}/base.pt")  # the checkpoint carries the encoder's weights

# 3. Gradient MPC and CEM over tokens, as TorchRL policies, on the same (start, goal) pairs.
action_spec = task.action_spec
cost = GoalCost(mode="all", base=0.5, proprio_dim=task.proprio_dim)
planners = {
    "gd": make_planner("gd", model, 5, cost, action_spec=action_spec, steps=30 if args.quick else 100, lr=0.2),
    "cem": make_planner("cem", model, 5, cost, action_spec=action_spec, samples=64 if args.quick else 300,
                                elites=8 if args.quick else 30, iterations=5 if args.quick else 30),
}
for name, planner in planners.items():
    metrics = evaluate(MPCPolicy(planner, action_spec), task, episodes=8 if args.quick else 50, seed=1000)
    print(f"{name}: success {100 * metrics['success_rate']:.0f}%, final distance {metrics['final_distance']:.3f}, "
          f"{metrics['plan_seconds']:.3f} s per batched plan")

# 4. What the model predicts along open-loop GD plans, beside what the simulator does.
print("frames:", plot_predicted_frames(model, task, f"{args.out}/frames.png", num_pairs=3, steps=100))
