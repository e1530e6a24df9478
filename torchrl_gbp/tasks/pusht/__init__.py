"""The PushT task (gym-pusht physics): push a T-shaped block to a goal pose."""
from torchrl_gbp.tasks.pusht.scripted import scripted_push_action
from torchrl_gbp.tasks.pusht.simulator import (
    AGENT_RADIUS,
    ARENA_SIZE,
    TEE_COM,
    TEE_RADIUS,
    TEE_RECTS,
    PushTSimulator,
    block_center_of_mass,
    pusht_step,
    tee_clearance,
)
from torchrl_gbp.tasks.pusht.task import PAIR_MODES, PushTTask

__all__ = ["AGENT_RADIUS", "ARENA_SIZE", "PAIR_MODES", "PushTSimulator", "PushTTask", "TEE_COM", "TEE_RADIUS", "TEE_RECTS", "block_center_of_mass", "pusht_step", "scripted_push_action", "tee_clearance"]
