"""The PointMaze recipe: data, model, training and planner budgets."""
from torchrl_gbp.recipes import Recipe, smoke_overrides

# PointMaze (U-maze, random pairs): (x, y, vx, vy) with the velocity as the down-weighted proprio part, so
# planners aim at the goal position and still brake; a 128-wide predictor keeps CEM's 300x30 search cheap.
RECIPE = Recipe(
    num_trajectories=3000,
    model={"num_hist": 1, "hidden_dim": 128, "depth": 3, "proprio_dim": 2},
    train_steps=3000,
    objective={"mode": "all", "base": 0.5, "alpha": 0.1},
    quick_overrides=smoke_overrides(num_trajectories=100, train_steps=100))
