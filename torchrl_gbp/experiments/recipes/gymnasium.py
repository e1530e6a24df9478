"""Recipes of Gymnasium tasks: one for goal envs (goal cost), one for reward envs (learned reward, return)."""
from dataclasses import replace

from torchrl_gbp.experiments.recipes import DataOptions, ModelOptions, Recipe, TrainingOptions, smoke

# Goal envs (gymnasium-robotics PointMaze and the like): identity latent, GoalCost over every step.
GOAL_RECIPE = Recipe(
    data=DataOptions(num_trajectories=500),
    model=ModelOptions(hidden_dim=128, depth=2),
    training=TrainingOptions(steps=2000))
# Reward envs: the world model learns the reward; planners maximise the discounted predicted return
# (ReturnObjective with the objective's discount).
REWARD_RECIPE = replace(GOAL_RECIPE, model=replace(GOAL_RECIPE.model, reward_head=True))
PROFILES = {"quick": smoke(num_trajectories=50, train_steps=100)}


def recipe_for_task(task) -> Recipe:
    """:data:`GOAL_RECIPE` for goal envs, :data:`REWARD_RECIPE` for reward envs."""
    return GOAL_RECIPE if task.has_goal else REWARD_RECIPE
