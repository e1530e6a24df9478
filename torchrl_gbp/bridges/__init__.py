"""Foreign formats: DINO-WM checkpoints read safely (never unpickling their code) and converted to ours."""
from .dinowm_checkpoint import (
    DinoWMRun,
    PickledObject,
    UnsafeCheckpointError,
    read_hydra_config,
    read_pickled_checkpoint,
)

__all__ = ["DinoWMRun", "PickledObject", "UnsafeCheckpointError", "read_hydra_config", "read_pickled_checkpoint"]
