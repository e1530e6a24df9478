"""World models: encoders, predictors, the world model, its loss and checkpoints."""
from .checkpoint import (
    atomic_torch_save,
    load_checkpoint,
    load_weights_into,
    save_checkpoint,
)
from .encoders import ActionEncoder, IdentityEncoder, MLPEncoder
from .loss import TeacherForcingLoss
from .normalization import Normalizer
from .predictors import ResidualMLPPredictor
from .reward import RewardHead
from .world_model import StateWorldModel, WorldModelConfig

__all__ = [
    "ActionEncoder", "IdentityEncoder", "MLPEncoder", "Normalizer", "ResidualMLPPredictor", "RewardHead",
    "StateWorldModel", "TeacherForcingLoss", "WorldModelConfig",
    "atomic_torch_save", "load_checkpoint", "load_weights_into", "save_checkpoint",
]
