"""The PointMaze recipe: data, model, training and planner budgets."""
from torchrl_gbp.recipes import Recipe

# PointMaze (U-maze, random pairs): (x, y, vx, vy) with the velocity as the down-weighted proprio part, so
# planners aim at the goal position and still brake; a 128-wide predictor keeps CEM's 300x30 search cheap.
RECIPE = Recipe(
    num_trajectories=3000,
    model={"num_hist": 1, "hidden_dim": 128, "depth": 3, "proprio_dim": 2},
    train_steps=3000,
    objective={"mode": "all", "base": 0.5, "alpha": 0.1},
    quick_overrides={"num_trajectories": 100, "train_steps": 100, "episodes": 4, "finetune_steps": 10,
                     "planner_kwargs": {"gd": {"steps": 10, "lr": 0.2},
                                        "cem": {"samples": 30, "elites": 5, "iterations": 3},
                                        "mppi": {"samples": 30, "elites": 5, "iterations": 3,
                                                 "temperature": 0.05}},
                     "online": {"every": 5, "fraction": 0.5, "capacity": 2000, "planner_steps": 5,
                                "planner_lr": 0.3}})
