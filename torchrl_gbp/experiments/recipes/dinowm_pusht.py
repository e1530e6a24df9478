"""The recipe of DINO-WM's PushT replica: our PushT's budgets on its 8-d observation, whose last 4 numbers (agent
position and velocity, DINO-WM's proprio) form the proprio part of the cost; pixels at 64 with one history frame, as
our PushT's (DINO-WM reads 3 frames of 224: ``image_size=224`` and ``num_hist=3`` where the budget allows)."""
from dataclasses import replace

from torchrl_gbp.experiments.recipes import (
    PIXEL_MODEL,
    DataOptions,
    ModelOptions,
    Recipe,
    SynthesisShares,
    TrainingOptions,
    smoke,
)

RECIPE = Recipe(
    data=DataOptions(num_trajectories=6000),
    model=ModelOptions(hidden_dim=256, proprio_dim=4),
    training=TrainingOptions(steps=12_000),
    # pymunk steps make online synthesis slow: synthesise less often, as our PushT does
    synthesis=SynthesisShares(every=40))
PROFILES = {
    "quick": smoke(num_trajectories=100, train_steps=100, batch_size=64),
    "pixels": {"model": replace(PIXEL_MODEL, num_hist=1), "data.num_trajectories": 2000, "training.steps": 4000},
}
