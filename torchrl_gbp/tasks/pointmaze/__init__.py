"""The PointMaze task (MuJoCo): a ball in a maze."""
from torchrl_gbp.tasks.pointmaze.simulator import (
    BALL_MASS,
    BALL_RADIUS,
    CELL_SIZE,
    JOINT_DAMPING,
    MAZES,
    MEDIUM_MAZE,
    MOTOR_GEAR,
    SUBSTEPS,
    TIMESTEP,
    U_MAZE,
    PointMazeSimulator,
    maze_model,
    maze_xml,
    resolve_maze,
)
from torchrl_gbp.tasks.pointmaze.task import PAIR_MODES, POSITION_JITTER, SUCCESS_THRESHOLD, PointMazeTask

__all__ = ["BALL_MASS", "BALL_RADIUS", "CELL_SIZE", "JOINT_DAMPING", "MAZES", "MEDIUM_MAZE", "MOTOR_GEAR", "PAIR_MODES", "POSITION_JITTER", "PointMazeSimulator", "PointMazeTask", "SUBSTEPS", "SUCCESS_THRESHOLD", "TIMESTEP", "U_MAZE", "maze_model", "maze_xml", "resolve_maze"]
