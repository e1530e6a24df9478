"""The PointMaze recipe: data, model, training and planner budgets."""
from dataclasses import replace

from torchrl_gbp.experiments.recipes import (
    PIXEL_MODEL,
    DataOptions,
    ModelOptions,
    ObjectiveOptions,
    Recipe,
    TrainingOptions,
    smoke,
)

# PointMaze (U-maze, random pairs): (x, y, vx, vy) with the velocity as the down-weighted proprio part, so
# planners aim at the goal position and still brake; a 128-wide predictor keeps CEM's 300x30 search cheap.
RECIPE = Recipe(
    data=DataOptions(num_trajectories=3000),
    model=ModelOptions(hidden_dim=128, proprio_dim=2),
    training=TrainingOptions(steps=3000),
    objective=ObjectiveOptions(alpha=0.1))
PROFILES = {
    "quick": smoke(num_trajectories=100, train_steps=100),
    # Pixels: one history frame, as in the state recipe: the proprio (qpos, qvel) carries the velocity a single
    # frame cannot show, which is why DINO-WM reads 3. Three frames triple the tokens every GD step runs the
    # predictor on, too slow for the pixel Table 1 run on 2 cores (docs/results/recipe_notes.md).
    # The blur encoder, not the patch autoencoder: under the paper's PointMaze cost (tokens only, alpha 0) patch
    # tokens do not rank goal distance (they tell which patch holds the ball, not how far it is) and blurred
    # tokens at sigma 8 pixels do (diagnostics.goal_cost_agreement; docs/results/recipe_notes.md).
    "pixels": {"model": replace(PIXEL_MODEL, num_hist=1, encoder="blur", pool=4, sigma=8.0),
               "training.encoder_steps": 0},
}
