"""The PushT recipe: data, model, training and planner budgets."""
from dataclasses import replace

from torchrl_gbp.experiments.recipes import (
    PIXEL_MODEL,
    CEMOptions,
    DataOptions,
    GradientOptions,
    ModelOptions,
    MPPIOptions,
    PlannerBudgets,
    Recipe,
    SynthesisShares,
    TrainingOptions,
    smoke,
)

# PushT: 6-d observation with the agent position last (proprio_dim=2). The goal's agent sits clear of the
# placed T and alpha=1 holds the planner to it, so the agent backs off instead of roaming around (and
# knocking) the placed T: success is scored on the final state. CEM/MPPI start from init_std=0.25
# (normalised action units) as jittery 1.0 samples sweep the agent through the T where the model is least
# accurate. The model's push predictions limit CEM, so more data and training pay (base CEM success with 3000
# and 6000 trajectories: docs/results/recipe_notes.md). GD takes 10 steps per MPC call: longer descent
# found plans that exploit the model's push errors. These choices, first made partly on pairs that are now
# reported seeds, were re-made on TUNING_PAIR_SEEDS (benchmarks/ablations.py --ablations recipe): 10 GD steps,
# init_std 0.25 and alpha 1 each came out best of the values tried (docs/results/ablations_pusht.md).
# The paper's protocol (torchrl_gbp.experiments.protocol) overrides the planner budgets and the pairs; the ablations on
# tuning pairs (benchmarks/ablations.py, docs/results/ablations_pusht.md) sweep GD steps there.
RECIPE = Recipe(
    data=DataOptions(num_trajectories=6000),
    model=ModelOptions(hidden_dim=256, proprio_dim=2),
    training=TrainingOptions(steps=12_000),
    planners=PlannerBudgets(gd=GradientOptions(steps=10), cem=CEMOptions(init_std=0.25),
                            mppi=MPPIOptions(init_std=0.25)),
    # Online synthesis steps the pymunk simulator, which makes online finetuning slow: synthesise less often
    # (docs/results/ablations_pusht.md, recipe_notes.md).
    synthesis=SynthesisShares(every=40))
PROFILES = {
    "quick": smoke(num_trajectories=100, train_steps=100, batch_size=64, init_std=0.25),
    # Pixels: one history frame, as the state model reads (its 6-d observation has no velocities either; pymunk's
    # damping leaves the T little momentum over a 5-step frameskip), where DINO-WM reads 3: three frames triple
    # the tokens every GD step runs the predictor on, too slow for the pixel Table 1 run on 2 cores
    # (docs/results/recipe_notes.md). More data and training than the pixel default, as on states, where
    # the model's push predictions limit every planner.
    "pixels": {"model": replace(PIXEL_MODEL, num_hist=1), "data.num_trajectories": 2000, "training.steps": 4000},
}
