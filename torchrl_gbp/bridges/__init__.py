"""Foreign formats: DINO-WM checkpoints read safely (never unpickling their code), a weight-compatible
DINO-WM world model, the one-off conversion to our checkpoints, DINO-WM's datasets as memory-mapped
trajectories, and DINOv2 tokens computed as DINO-WM does; stable-worldmodel's ``Costable`` protocol both ways."""
from .dinov2 import DinoWMImageEncoder, hub_position_embedding
from .dinov2_tokens import DinoV2TokenTask, encode_images, encoder_fingerprint, write_dinov2_tokens
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
from .dinowm_data import (
    DATASET_KINDS,
    DinoWMEpisodes,
    convert_dinowm_dataset,
    dataset_info,
    dataset_kind,
    dinowm_split,
    dinowm_statistics,
    load_dinowm_dataset,
    normalization_statistics,
    open_dinowm_dataset,
    read_dinowm_episodes,
    read_mp4,
    write_episodes,
)
from .dinowm_model import Conv1dEmbedding, DinoWMConfig, DinoWMPredictor, DinoWMWorldModel
from .stable_worldmodel import MODEL_COST, AsCostable, Costable, CostableWorldModel, ModelCost

__all__ = ["Conv1dEmbedding", "DinoV2TokenTask", "encode_images", "encoder_fingerprint", "write_dinov2_tokens", "convert_dinowm_checkpoint", "convert_dinowm_dataset", "dataset_info", "dataset_kind",
           "DATASET_KINDS", "dinowm_config", "dinowm_split", "dinowm_statistics", "dinowm_world_model",
           "DinoWMConfig", "DinoWMEpisodes", "DinoWMImageEncoder", "DinoWMPredictor", "DinoWMRun",
           "DinoWMWorldModel", "hub_position_embedding", "load_dinowm_dataset", "normalization_statistics",
           "open_dinowm_dataset", "PickledObject", "read_dinowm_episodes", "read_hydra_config", "read_mp4",
           "read_pickled_checkpoint", "UnsafeCheckpointError", "write_episodes",
           "AsCostable", "Costable", "CostableWorldModel", "MODEL_COST", "ModelCost"]
