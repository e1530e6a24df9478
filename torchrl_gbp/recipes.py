"""Per-task defaults (data, model, training, planner budgets) for the end-to-end pipeline."""
from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass
class Recipe:
    """Defaults for one task: data, model, training and planner budgets.

    ``planner_kwargs`` maps a planner name (``"gd"``, ``"cem"``, ``"mppi"``) to
    constructor arguments of :class:`GradientPlanner`, :class:`CrossEntropyPlanner`
    or :class:`PathIntegralPlanner`.
    """

    num_trajectories: int = 2000
    model: dict = field(default_factory=lambda: {"num_hist": 1, "hidden_dim": 256, "depth": 3})
    window_frames: int = 5
    train_steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    horizon: int = 5
    objective: dict = field(default_factory=lambda: {"mode": "all", "base": 0.5, "alpha": 1.0})
    planner_kwargs: dict = field(default_factory=lambda: {
        "gd": {"steps": 100, "lr": 0.2, "noise_std": 0.003},
        "cem": {"samples": 300, "elites": 30, "iterations": 30},
        "mppi": {"samples": 300, "elites": 30, "iterations": 30, "temperature": 0.05},
    })
    episodes: int = 50
    finetune_steps: int = 1000
    finetune_lr: dict = field(default_factory=lambda: {"predictor_lr": 1e-4, "action_encoder_lr": 5e-4})
    online: dict = field(default_factory=lambda: {"every": 10, "fraction": 0.5, "capacity": 20_000,
                                                  "planner_steps": 100, "planner_lr": 0.3})
    adversarial: dict = field(default_factory=lambda: {"fraction": 1.0, "latent_factor": 0.05,
                                                       "proprio_factor": 0.02, "action_factor": 0.02})
    seeds: tuple[int, ...] = (0, 1, 2)
    mppi_models: tuple[str, ...] = ("base",)
    quick_overrides: dict = field(default_factory=dict)

    def quick(self) -> Recipe:
        """A smaller run of the same recipe (minutes, not tens of minutes); ``quick_overrides`` apply last."""
        budgets = {k: dict(v) for k, v in self.planner_kwargs.items()}
        for name in ("cem", "mppi"):
            budgets[name].update(samples=100, elites=10, iterations=10)
        online = {**self.online, "planner_steps": 30}
        smaller = dict(num_trajectories=500, train_steps=800, episodes=20, planner_kwargs=budgets,
                       finetune_steps=200, online=online, seeds=(0,))
        return replace(self, **{**smaller, **self.quick_overrides})


RECIPES: dict[str, Recipe] = {"wall": Recipe(),
    # PointMaze (U-maze, random pairs): (x, y, vx, vy) with the velocity as the down-weighted proprio part, so
    # planners aim at the goal position and still brake; a 128-wide predictor keeps CEM's 300x30 search cheap.
    "pointmaze": Recipe(
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
                                    "planner_lr": 0.3}}),
    # PushT: 6-d observation with the agent position last (proprio_dim=2). The goal's agent sits clear of the
    # placed T and alpha=1 holds the planner to it, so the agent backs off instead of roaming around (and
    # knocking) the placed T: success is scored on the final state. CEM/MPPI start from init_std=0.25
    # (normalised action units: ~27 env units per target) as jittery 1.0 samples sweep the agent through the
    # T where the model is least accurate. The model's push predictions limit CEM, so more data and training
    # (~35 s to generate, ~2.5 min to train on one core) pay: base CEM on 50 pairs (seed 1000) 62% with 3000
    # trajectories and 12k steps, 72% with 6000 (8% with 3000, 4k steps, alpha 0.1 and init_std 1); over the
    # 3 evaluation seeds base CEM 69 +- 3%, MPPI 66 +- 5% (a CEM on the true simulator: 85-95%). GD takes 10
    # steps per MPC call: longer descent finds plans that exploit the model's push errors (budget sweep on the
    # seed-0 evaluation pairs, benchmarks/results/success_vs_time_pusht.md: base GD 26% at 10 steps, 10% at 100,
    # 6% at 300); over the 3 seeds base GD 19 +- 5% at 10 steps, 9 +- 5% at 100.
    "pusht": Recipe(
        num_trajectories=6000,
        model={"num_hist": 1, "hidden_dim": 256, "depth": 3, "proprio_dim": 2},
        train_steps=12_000,
        objective={"mode": "all", "base": 0.5, "alpha": 1.0},
        planner_kwargs={"gd": {"steps": 10, "lr": 0.2, "noise_std": 0.003},
                        "cem": {"samples": 300, "elites": 30, "iterations": 30, "init_std": 0.25},
                        "mppi": {"samples": 300, "elites": 30, "iterations": 30, "temperature": 0.05,
                                 "init_std": 0.25}},
        # Online synthesis steps the pymunk simulator (~2 s per round of 256 windows): synthesise less often.
        online={"every": 40, "fraction": 0.5, "capacity": 20_000, "planner_steps": 100, "planner_lr": 0.3},
        quick_overrides={"num_trajectories": 100, "train_steps": 100, "batch_size": 64, "episodes": 4,
                         "finetune_steps": 10,
                         "planner_kwargs": {"gd": {"steps": 10, "lr": 0.2},
                                            "cem": {"samples": 30, "elites": 5, "iterations": 3, "init_std": 0.25},
                                            "mppi": {"samples": 30, "elites": 5, "iterations": 3,
                                                     "temperature": 0.05, "init_std": 0.25}},
                         "online": {"every": 5, "fraction": 0.5, "capacity": 2000, "planner_steps": 5,
                                    "planner_lr": 0.3}}),
    # Reacher (dm_control, easy): (fingertip, cos/sin joints, joint velocities), the six joint entries last as the
    # proprio part; alpha=1 still weighs each fingertip entry 3x a joint entry, and the joint part steers the
    # arm out of the fingertip cost's local minima (alpha=0.1: ~85% success, stuck far from the target).
    # 60-step episodes (1.2 s), a 128-wide predictor and small CEM/GD budgets keep the 3-seed benchmark well
    # within 30 min on 2 cores; online synthesis steps one dm_control env per window, hence the larger `every`
    # and fewer finetune steps.
    "reacher": Recipe(
        num_trajectories=1500,
        model={"num_hist": 1, "hidden_dim": 128, "depth": 3, "proprio_dim": 6},
        train_steps=2000,
        objective={"mode": "all", "base": 0.5, "alpha": 1.0},
        planner_kwargs={"gd": {"steps": 20, "lr": 0.2, "noise_std": 0.003},
                        "cem": {"samples": 100, "elites": 10, "iterations": 10},
                        "mppi": {"samples": 100, "elites": 10, "iterations": 10, "temperature": 0.05}},
        finetune_steps=300,
        online={"every": 20, "fraction": 0.5, "capacity": 10_000, "planner_steps": 30, "planner_lr": 0.3},
        quick_overrides={"num_trajectories": 40, "train_steps": 50, "batch_size": 32, "episodes": 4,
                         "finetune_steps": 10,
                         "planner_kwargs": {"gd": {"steps": 5, "lr": 0.2},
                                            "cem": {"samples": 30, "elites": 5, "iterations": 3},
                                            "mppi": {"samples": 30, "elites": 5, "iterations": 3,
                                                     "temperature": 0.05}},
                         "online": {"every": 5, "fraction": 0.5, "capacity": 1000, "planner_steps": 5,
                                    "planner_lr": 0.3}}),
}


def recipe_for(task_name: str, quick: bool = False) -> Recipe:
    """The recipe of ``task_name`` (the quick variant when ``quick``)."""
    if task_name not in RECIPES:
        raise ValueError(f"no recipe for task {task_name!r}; known: {sorted(RECIPES)}")
    recipe = RECIPES[task_name]
    return recipe.quick() if quick else recipe
