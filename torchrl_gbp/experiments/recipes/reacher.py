"""The reacher recipe: data, model, training and planner budgets."""
from torchrl_gbp.experiments.recipes import (
    CEMOptions,
    DataOptions,
    FinetuningOptions,
    GradientOptions,
    ModelOptions,
    MPPIOptions,
    OnlineOptions,
    PlannerBudgets,
    Recipe,
    SynthesisShares,
    TrainingOptions,
    smoke,
)

# Reacher (dm_control, easy): (fingertip, cos/sin joints, joint velocities), the six joint entries last as the
# proprio part; alpha=1 still weighs each fingertip entry 3x a joint entry, and the joint part steers the
# arm out of the fingertip cost's local minima where alpha=0.1 left it stuck far from the target.
# 60-step episodes (1.2 s), a 128-wide predictor and small CEM/GD budgets keep the 3-seed benchmark short on
# 2 cores (docs/results/recipe_notes.md); online synthesis steps one dm_control env per window, hence the
# larger `every` and fewer finetune steps.
RECIPE = Recipe(
    data=DataOptions(num_trajectories=1500),
    model=ModelOptions(hidden_dim=128, proprio_dim=6),
    training=TrainingOptions(steps=2000),
    planners=PlannerBudgets(gd=GradientOptions(steps=20), cem=CEMOptions(samples=100, elites=10, iterations=10),
                            mppi=MPPIOptions(samples=100, elites=10, iterations=10)),
    finetuning=FinetuningOptions(steps=300),
    online=OnlineOptions(capacity=10_000, planner_steps=30, planner_lr=0.3),
    synthesis=SynthesisShares(every=20))
PROFILES = {"quick": smoke(num_trajectories=40, train_steps=50, gd_steps=5, capacity=1000, batch_size=32)}
