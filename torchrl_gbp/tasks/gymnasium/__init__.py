"""Any Gymnasium env as a task of this package (goal envs and MuJoCo envs with a reward), through TorchRL's GymEnv."""
from torchrl_gbp.tasks.gymnasium.access import MujocoStateAccess
from torchrl_gbp.tasks.gymnasium.env import GymnasiumBatchEnv, GymnasiumEnv
from torchrl_gbp.tasks.gymnasium.task import GymnasiumSimulator, GymnasiumTask

__all__ = ["GymnasiumBatchEnv", "GymnasiumEnv", "GymnasiumSimulator", "GymnasiumTask", "MujocoStateAccess"]
