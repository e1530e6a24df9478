"""The recipe of DINO-WM's PushT replica: our PushT's budgets on its 8-d observation, whose last 4 numbers (agent
position and velocity, DINO-WM's proprio) form the proprio part of the cost; pixels at 64 with one history frame, as
our PushT's (DINO-WM reads 3 frames of 224: ``image_size=224`` and ``num_hist=3`` where the budget allows)."""
from torchrl_gbp.experiments.recipes import PIXEL_DEFAULTS, Recipe, smoke_run

RECIPE = Recipe(
    num_trajectories=6000,
    model={"num_hist": 1, "hidden_dim": 256, "depth": 3, "proprio_dim": 4},
    train_steps=12_000,
    # pymunk steps make online synthesis slow: synthesise less often, as our PushT does
    online={"every": 40, "fraction": 0.5, "capacity": 20_000, "planner_steps": 100, "planner_lr": 0.3},
    quick_run=smoke_run(num_trajectories=100, train_steps=100, batch_size=64),
    pixel_overrides={"model": {**PIXEL_DEFAULTS["model"], "num_hist": 1}, "num_trajectories": 2000,
                     "train_steps": 4000})
