"""Recipes of Gymnasium tasks: one for goal envs (goal cost), one for reward envs (learned reward, return)."""
from dataclasses import replace

from torchrl_gbp.experiments.recipes import Recipe, smoke_run

# Goal envs (gymnasium-robotics PointMaze and the like): identity latent, GoalCost over every step.
GOAL_RECIPE = Recipe(
    num_trajectories=500,
    model={"num_hist": 1, "hidden_dim": 128, "depth": 2},
    train_steps=2000,
    objective={"mode": "all", "base": 0.5, "alpha": 1.0},
    quick_run=smoke_run(num_trajectories=50, train_steps=100))

# Reward envs: the world model learns the reward; planners maximise the discounted predicted return
# (``objective`` holds ReturnObjective's arguments).
REWARD_RECIPE = replace(GOAL_RECIPE, model={**GOAL_RECIPE.model, "reward_head": True},
                        objective={"discount": 0.99})


def recipe_for_task(task) -> Recipe:
    """:data:`GOAL_RECIPE` for goal envs, :data:`REWARD_RECIPE` for reward envs."""
    return GOAL_RECIPE if task.has_goal else REWARD_RECIPE
