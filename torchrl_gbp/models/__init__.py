"""World models: encoders, predictors, the world model, its loss and checkpoints."""
from .adapters import TransitionWorldModel, from_torchrl_world_model
from .checkpoint import (
    load_checkpoint,
    load_weights_into,
    save_checkpoint,
)
from .contract import (
    ActionEmbeddingModel,
    ActionInterface,
    DecodingModel,
    PlanningWorldModel,
    PredictorModel,
    RewardModel,
    RolloutModel,
)
from .encoders import ActionEncoder, IdentityEncoder, MLPEncoder
from .image_encoders import BlurPoolEncoder, DINOv2Encoder, PatchAutoencoder, fit_patch_autoencoder
from .loss import TeacherForcingLoss
from .normalization import Normalizer
from .pixel_world_model import PixelWorldModel, PixelWorldModelConfig, observation_of
from .predictors import FrameCausalTransformer, FrameCausalTransformerPredictor, ResidualMLPPredictor
from .reward import RewardHead
from .world_model import LatentWorldModel, StateWorldModel, WorldModelConfig

__all__ = [
    "ActionEncoder", "IdentityEncoder", "MLPEncoder", "Normalizer", "ResidualMLPPredictor", "RewardHead",
    "StateWorldModel", "TeacherForcingLoss", "WorldModelConfig",
    "BlurPoolEncoder", "DINOv2Encoder", "FrameCausalTransformer", "FrameCausalTransformerPredictor", "LatentWorldModel",
    "PatchAutoencoder",
    "PixelWorldModel",
    "PixelWorldModelConfig", "fit_patch_autoencoder", "observation_of",
    "load_checkpoint", "load_weights_into", "save_checkpoint",
    "ActionEmbeddingModel", "ActionInterface", "DecodingModel", "PlanningWorldModel", "PredictorModel", "RewardModel",
    "RolloutModel", "TransitionWorldModel", "from_torchrl_world_model",
]
