"""torchrl_gbp: gradient-based planning with learned world models, as TorchRL citizens.

World models (:mod:`torchrl_gbp.models`), planners and the MPC policy (:mod:`torchrl_gbp.planners`), data
synthesis as replay-buffer transforms (:mod:`torchrl_gbp.synthesis`) and goal-reaching tasks
(:mod:`torchrl_gbp.tasks`); the paper's reproduction layer lives apart in :mod:`torchrl_gbp.experiments`.
"""

__version__ = "0.3.0"
