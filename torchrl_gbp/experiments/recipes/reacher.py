"""The reacher recipe: data, model, training and planner budgets."""
from torchrl_gbp.experiments.recipes import Recipe, smoke_run

# Reacher (dm_control, easy): (fingertip, cos/sin joints, joint velocities), the six joint entries last as the
# proprio part; alpha=1 still weighs each fingertip entry 3x a joint entry, and the joint part steers the
# arm out of the fingertip cost's local minima where alpha=0.1 left it stuck far from the target.
# 60-step episodes (1.2 s), a 128-wide predictor and small CEM/GD budgets keep the 3-seed benchmark short on
# 2 cores (docs/results/recipe_notes.md); online synthesis steps one dm_control env per window, hence the
# larger `every` and fewer finetune steps.
RECIPE = Recipe(
    num_trajectories=1500,
    model={"num_hist": 1, "hidden_dim": 128, "depth": 3, "proprio_dim": 6},
    train_steps=2000,
    objective={"mode": "all", "base": 0.5, "alpha": 1.0},
    planner_kwargs={"gd": {"steps": 20, "lr": 0.2, "noise_std": 0.003},
                    "cem": {"samples": 100, "elites": 10, "iterations": 10},
                    "mppi": {"samples": 100, "elites": 10, "iterations": 10, "temperature": 0.05}},
    finetune_steps=300,
    online={"every": 20, "fraction": 0.5, "capacity": 10_000, "planner_steps": 30, "planner_lr": 0.3},
    quick_run=smoke_run(num_trajectories=40, train_steps=50, gd_steps=5, capacity=1000, batch_size=32))
