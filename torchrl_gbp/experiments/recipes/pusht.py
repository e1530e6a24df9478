"""The PushT recipe: data, model, training and planner budgets."""
from torchrl_gbp.experiments.recipes import PIXEL_DEFAULTS, Recipe, smoke_run

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
    num_trajectories=6000,
    model={"num_hist": 1, "hidden_dim": 256, "depth": 3, "proprio_dim": 2},
    train_steps=12_000,
    objective={"mode": "all", "base": 0.5, "alpha": 1.0},
    planner_kwargs={"gd": {"steps": 10, "lr": 0.2, "noise_std": 0.003},
                    "cem": {"samples": 300, "elites": 30, "iterations": 30, "init_std": 0.25},
                    "mppi": {"samples": 300, "elites": 30, "iterations": 30, "temperature": 0.05,
                             "init_std": 0.25}},
    # Online synthesis steps the pymunk simulator, which makes online finetuning slow: synthesise less often
    # (docs/results/ablations_pusht.md, recipe_notes.md).
    online={"every": 40, "fraction": 0.5, "capacity": 20_000, "planner_steps": 100, "planner_lr": 0.3},
    quick_run=smoke_run(num_trajectories=100, train_steps=100, batch_size=64, init_std=0.25),
    # Pixels: one history frame, as the state model reads (its 6-d observation has no velocities either; pymunk's
    # damping leaves the T little momentum over a 5-step frameskip), where DINO-WM reads 3: three frames triple
    # the tokens every GD step runs the predictor on, too slow for the pixel Table 1 run on 2 cores
    # (docs/results/recipe_notes.md). More data and training than the pixel default, as on states, where
    # the model's push predictions limit every planner.
    pixel_overrides={"model": {**PIXEL_DEFAULTS["model"], "num_hist": 1}, "num_trajectories": 2000,
                     "train_steps": 4000})
