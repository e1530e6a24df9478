"""Planners sharing one rollout and one goal cost, and the MPC policy that wraps them."""
from .base import Planner, PlanResult
from .budget import BudgetClock, SearchBudget
from .factory import PLANNER_CLASSES, env_action_bounds, make_planner, model_action_bounds
from .gradient import GradientPlanner
from .objectives import GoalCost
from .policy import MPCPolicy
from .sampling import CrossEntropyPlanner, PathIntegralPlanner, SamplingPlanner

__all__ = [
    "CrossEntropyPlanner", "GoalCost", "GradientPlanner", "MPCPolicy", "PathIntegralPlanner", "PLANNER_CLASSES",
    "env_action_bounds", "make_planner", "model_action_bounds",
    "PlanResult", "Planner", "SamplingPlanner", "SearchBudget", "BudgetClock",
]
