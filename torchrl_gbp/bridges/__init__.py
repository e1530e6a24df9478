"""Foreign formats: DINO-WM checkpoints read safely (never unpickling their code), a weight-compatible
DINO-WM world model, the one-off conversion to our checkpoints, and DINOv2 tokens computed as DINO-WM does."""
from .dinov2 import DinoWMImageEncoder, hub_position_embedding
from .dinowm_checkpoint import (
    DinoWMRun,
    PickledObject,
    UnsafeCheckpointError,
    convert_dinowm_checkpoint,
    dinowm_config,
    dinowm_world_model,
    read_hydra_config,
    read_pickled_checkpoint,
)
from .dinowm_model import Conv1dEmbedding, DinoWMConfig, DinoWMPredictor, DinoWMWorldModel

__all__ = ["Conv1dEmbedding", "DinoWMConfig", "DinoWMImageEncoder", "DinoWMPredictor", "DinoWMRun", "DinoWMWorldModel",
           "PickledObject", "UnsafeCheckpointError", "convert_dinowm_checkpoint", "dinowm_config", "dinowm_world_model",
           "hub_position_embedding", "read_hydra_config", "read_pickled_checkpoint"]
