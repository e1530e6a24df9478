"""The PointMaze recipe: data, model, training and planner budgets."""
from torchrl_gbp.experiments.recipes import PIXEL_DEFAULTS, Recipe, smoke_run

# PointMaze (U-maze, random pairs): (x, y, vx, vy) with the velocity as the down-weighted proprio part, so
# planners aim at the goal position and still brake; a 128-wide predictor keeps CEM's 300x30 search cheap.
RECIPE = Recipe(
    num_trajectories=3000,
    model={"num_hist": 1, "hidden_dim": 128, "depth": 3, "proprio_dim": 2},
    train_steps=3000,
    objective={"mode": "all", "base": 0.5, "alpha": 0.1},
    quick_run=smoke_run(num_trajectories=100, train_steps=100),
    # Pixels: one history frame, as in the state recipe: the proprio (qpos, qvel) carries the velocity a single
    # frame cannot show, which is why DINO-WM reads 3. Three frames triple the tokens every GD step runs the
    # predictor on, too slow for the pixel Table 1 run on 2 cores (docs/results/recipe_notes.md).
    # The blur encoder, not the patch autoencoder: under the paper's PointMaze cost (tokens only, alpha 0) patch
    # tokens do not rank goal distance (they tell which patch holds the ball, not how far it is) and blurred
    # tokens at sigma 8 pixels do (diagnostics.goal_cost_agreement; docs/results/recipe_notes.md).
    pixel_overrides={"model": {**PIXEL_DEFAULTS["model"], "num_hist": 1, "encoder": "blur",
                               "encoder_options": {"patch_size": 16, "pool": 4, "sigma": 8.0}},
                     "encoder_steps": 0})
