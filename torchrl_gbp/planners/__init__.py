"""Planners sharing one rollout and one goal cost, and the MPC policy that wraps them."""
from ..objectives import GoalCost, ReturnObjective
from .base import RESULT_RULES, Planner, PlanResult, planning_inputs
from .budget import BudgetClock, SearchBudget
from .factory import (
    PLANNER_CLASSES,
    env_action_bounds,
    make_planner,
    model_action_bounds,
)
from .gradient import GradientPlanner
from .hybrid import GradientCEMPlanner
from .memory import MemoryOptions
from .options import (
    PLANNER_OPTIONS,
    CEMOptions,
    GDCEMOptions,
    GradientOptions,
    ICEMOptions,
    MPPIOptions,
    PlannerOptions,
)
from .policy import MPCPolicy, PolicyStatePrimer
from .sampling import CrossEntropyPlanner, ImprovedCEMPlanner, PathIntegralPlanner, SamplingPlanner, coloured_noise
from .torchrl_baselines import as_torchrl_world_model, make_planning_env, make_torchrl_planner, reset_planning_env

__all__ = [
    "CrossEntropyPlanner", "GoalCost", "GradientPlanner", "MPCPolicy", "PathIntegralPlanner", "PLANNER_CLASSES",
    "env_action_bounds", "make_planner", "model_action_bounds", "planning_inputs",
    "PlanResult", "Planner", "PolicyStatePrimer", "RESULT_RULES", "ReturnObjective", "SamplingPlanner", "SearchBudget", "BudgetClock",
    "GradientCEMPlanner", "ImprovedCEMPlanner", "MemoryOptions", "coloured_noise",
    "as_torchrl_world_model", "make_planning_env", "make_torchrl_planner", "reset_planning_env",
    "CEMOptions", "GDCEMOptions", "GradientOptions", "ICEMOptions", "MPPIOptions", "PLANNER_OPTIONS", "PlannerOptions",
]
