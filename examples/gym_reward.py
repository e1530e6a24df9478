"""A Gymnasium MuJoCo env with a reward (Reacher-v5): learn the reward, plan on the predicted return.

Run: python examples/gym_reward.py   (needs gymnasium's MuJoCo envs: pip install 'torchrl_gbp[gymnasium]')
"""
import argparse
from dataclasses import replace

import torch
from torchrl.envs.utils import RandomPolicy

from torchrl_gbp.evaluate import episode_metrics, evaluate, evaluation_pairs
from torchrl_gbp.experiments.pipeline import make_policy, train_base_model
from torchrl_gbp.experiments.recipes import recipe_for
from torchrl_gbp.tasks import make_task

parser = argparse.ArgumentParser()
parser.add_argument("--env-id", default="Reacher-v5")
parser.add_argument("--trajectories", type=int, default=200)
parser.add_argument("--train-steps", type=int, default=1500)
parser.add_argument("--episodes", type=int, default=10)
parser.add_argument("--episode-steps", type=int, default=50)
parser.add_argument("--data-range", type=float, default=1.0,
                    help="share of the action range the data policy samples (default: all of it)")
parser.add_argument("--out", default="runs/example_gym_reward")
args = parser.parse_args()
torch.manual_seed(0)


def data_policy(td):
    """A user-given scripted data policy: uniform random actions over the middle ``--data-range`` of the action range."""
    low, high = (torch.as_tensor(b, dtype=torch.float32) for b in task.action_bounds)
    middle, half = (high + low) / 2, (high - low) / 2
    return td.set("action", middle + half * args.data_range * (2 * torch.rand(*td.batch_size, task.action_dim) - 1))


# 1. The env as a task: no goal key, a reward; its MuJoCo state (qpos, qvel) is settable, so evaluation starts
#    from seeded states and online synthesis could execute plans.
task = make_task(f"gym:{args.env_id}", episode_steps=args.episode_steps, data_policy=data_policy)
recipe = recipe_for(task.name)  # reward-env recipe: WorldModelConfig(reward_head=True), ReturnObjective(0.99)
recipe = replace(recipe, horizon=10, planner_kwargs={"gd": {"steps": 30, "lr": 0.2},
                                                     "cem": {"samples": 100, "elites": 10, "iterations": 5}})

# 2. Data with rewards (an episode that terminates early gets its own id), then a world model whose
#    reward head learns ("next", "reward") beside the dynamics (TeacherForcingLoss's loss_reward).
data = task.generate_dataset(args.trajectories, trajectory_steps=50, seed=0)
print("dataset", tuple(data.shape), "episodes", int(data["episode"].max()) + 1)
model = train_base_model(task, data, recipe, f"{args.out}/base.pt", steps=args.train_steps, progress=False)

# 3. Random actions, then MPC maximising the predicted return (no goal key), from the same seeded starts.
env = task.make_env(num_envs=args.episodes)
start_td = env.reset(evaluation_pairs(task, args.episodes, seed=1000), set_state=True)
rollout = env.rollout(args.episode_steps, RandomPolicy(env.action_spec), tensordict=start_td, auto_reset=False,
                      break_when_any_done=False)
print(f"random: mean return {episode_metrics(rollout)['mean_return']:.1f} over {args.episode_steps} steps")
for planner in ("gd", "cem"):
    metrics = evaluate(make_policy(model, task, planner, recipe), task, episodes=args.episodes, seed=1000)
    print(f"{planner}: mean return {metrics['mean_return']:.1f} over {args.episode_steps} steps, "
          f"{metrics['plan_seconds']:.3f} s per batched plan")
