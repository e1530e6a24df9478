"""DINO-WM's PointMaze physics: d4rl's maze2d U-maze as an MJCF written here from d4rl's constants, on MuJoCo 3.

Every constant below is read from ``env/pointmaze/maze_model.py`` of
gaoyuezhou/dino_wm (its copy of d4rl's ``point_maze`` model builder and
``MazeEnv``) unless its comment says otherwise. Coordinates are d4rl's: wall
cell ``(row, col)`` of the map is a box centred at world ``(row + 1, col + 1)``,
and the ball's body sits at world ``(1.2, 1.2)`` at ``qpos = 0``, so a state's
position ``qpos`` is the world position minus 1.2 (DINO-WM's states, pair
sampler and thresholds are all in ``qpos``).
"""
from __future__ import annotations

from functools import cache

import mujoco

from torchrl_gbp.tasks.base import Task
from torchrl_gbp.tasks.pointmaze.simulator import PointMazeSimulator

#: d4rl's ``U_MAZE`` (``maze2d-umaze``; DINO-WM's registered ``point_maze`` env), ``1`` = wall. Its ``G`` cell
#: (row 1, col 1) is free floor: the goal marker is never drawn (DINO-WM moves it off the map).
U_MAZE = (
    (1, 1, 1, 1, 1),
    (1, 0, 0, 0, 1),
    (1, 1, 1, 0, 1),
    (1, 0, 0, 0, 1),
    (1, 1, 1, 1, 1),
)


#: ``<option timestep="0.01" integrator="Euler" iterations="20" gravity="0 0 0">``.
TIMESTEP = 0.01


SOLVER_ITERATIONS = 20


#: ``<default><joint damping="1">``: viscous damping of both slide joints.
JOINT_DAMPING = 1.0


#: ``<motor gear="100" ctrlrange="-1 1" ctrllimited="true">`` on each joint: force 100 a.
MOTOR_GEAR = 100.0


CTRL_RANGE = (-1.0, 1.0)


#: ``MujocoEnv.__init__(..., frame_skip=5)``: MuJoCo steps per env step (an env step is 0.05 s).
FRAME_SKIP = 5


#: ``MazeEnv.clip_velocity``: ``qvel`` is clipped to ``+-5`` at the start of every env step, before the physics
#: runs (the state an env step returns is not clipped).
VELOCITY_LIMIT = 5.0


#: The ball: a sphere of radius 0.1 (its collision shape, invisible: alpha 0) of density 1000 (the default geom's;
#: ``inertiafromgeom``), so its mass is 4000 pi / 3 * 0.1^3 = 4.19; a green site of radius 0.2 is what the camera sees.
BALL_RADIUS, BALL_DENSITY, MARKER_RADIUS = 0.1, 1000.0, 0.2


#: The ball body's world position at ``qpos = 0``; wall boxes are ``0.5 x 0.5 x 0.2`` half-sizes; the floor plane is
#: ``40 x 40`` at ``z = -0.1``; every geom has collision margin 0.002 and ``condim`` 1 (frictionless contacts).
BODY_OFFSET, WALL_HALF_SIZE, WALL_HALF_HEIGHT, FLOOR_Z, CONTACT_MARGIN = 1.2, 0.5, 0.2, -0.1, 0.002


def dinowm_maze_xml(maze: tuple[tuple[int, ...], ...] = U_MAZE) -> str:
    """The MJCF of d4rl's point-maze model builder for a 0/1 ``maze`` map, written for MuJoCo 3.

    d4rl's own XML, with three changes that do not touch the dynamics: no
    ``coordinate="local"`` (MuJoCo 3 removed the attribute; local was its only
    value), no target site (DINO-WM parks it at ``(11, 11)``, off the map) and
    no skybox (never in a top-down view); and one that does, slightly: the
    solver's warm start is disabled, so a step depends on ``qpos``, ``qvel``
    and the action only (``set_state`` then ``step`` reproduces a run
    exactly; with warm start the solver's starting point would carry over).

    Example:
        >>> model = mujoco.MjModel.from_xml_string(dinowm_maze_xml())
        >>> model.opt.timestep, float(model.dof_damping[0]), float(model.actuator_gear[0, 0]), model.ngeom
        (0.01, 1.0, 100.0, 20)
    """
    walls = "\n".join(
        f'    <geom name="wall_{row}_{col}" type="box" material="wall" pos="{row + 1} {col + 1} 0" '
        f'size="{WALL_HALF_SIZE:g} {WALL_HALF_SIZE:g} {WALL_HALF_HEIGHT:g}" conaffinity="1"/>'
        for row, cells in enumerate(maze) for col, wall in enumerate(cells) if wall)
    low, high = CTRL_RANGE
    motors = "\n".join(f'    <motor joint="{joint}" ctrlrange="{low:g} {high:g}" ctrllimited="true" gear="{MOTOR_GEAR:g}"/>'
                       for joint in ("ball_x", "ball_y"))
    return f"""<mujoco model="point_maze">
  <compiler inertiafromgeom="true" angle="radian"/>
  <option timestep="{TIMESTEP:g}" gravity="0 0 0" iterations="{SOLVER_ITERATIONS}" integrator="Euler">
    <flag warmstart="disable"/>
  </option>
  <default>
    <joint damping="{JOINT_DAMPING:g}" limited="false"/>
    <geom friction=".5 .1 .1" density="{BALL_DENSITY:g}" margin="{CONTACT_MARGIN:g}" condim="1" contype="2"
          conaffinity="1"/>
  </default>
  <asset>
    <texture type="2d" name="groundplane" builtin="checker" rgb1="0.2 0.3 0.4" rgb2="0.1 0.2 0.3" width="100"
             height="100"/>
    <material name="groundplane" texture="groundplane" texrepeat="20 20"/>
    <material name="wall" rgba=".7 .5 .3 1"/>
  </asset>
  <visual>
    <headlight ambient=".4 .4 .4" diffuse=".8 .8 .8" specular="0.1 0.1 0.1"/>
    <map znear=".01"/>
    <quality shadowsize="2048"/>
  </visual>
  <worldbody>
    <geom name="ground" size="40 40 0.25" pos="0 0 {FLOOR_Z:g}" type="plane" contype="1" conaffinity="0"
          material="groundplane"/>
    <body name="particle" pos="{BODY_OFFSET:g} {BODY_OFFSET:g} 0">
      <geom name="particle_geom" type="sphere" size="{BALL_RADIUS:g}" rgba="0 0 1 0" contype="1"/>
      <site name="particle_site" pos="0 0 0" size="{MARKER_RADIUS:g}" rgba="0.3 0.6 0.3 1"/>
      <joint name="ball_x" type="slide" pos="0 0 0" axis="1 0 0"/>
      <joint name="ball_y" type="slide" pos="0 0 0" axis="0 1 0"/>
    </body>
{walls}
  </worldbody>
  <actuator>
{motors}
  </actuator>
</mujoco>
"""


@cache
def dinowm_maze_model() -> mujoco.MjModel:
    """The compiled ``MjModel`` of :func:`dinowm_maze_xml` (the U-maze), built once."""
    return mujoco.MjModel.from_xml_string(dinowm_maze_xml())


class DinoWMPointMazeSimulator(PointMazeSimulator):
    """``num_envs`` copies of DINO-WM's point maze: per env step, clip ``qvel`` to ``+-5``, then 5 MuJoCo steps.

    States are ``(x, y, vx, vy)`` = ``qpos`` and ``qvel`` (float32), as
    DINO-WM's env returns them; the action is clamped to ``[-1, 1]`` (its
    ``np.clip`` and the actuators' ``ctrlrange``) and held for the 5 steps.

    Example:
        >>> import torch
        >>> from torchrl_gbp.tasks.dinowm_pointmaze import DinoWMPointMazeTask
        >>> simulator = DinoWMPointMazeSimulator(DinoWMPointMazeTask(), 1)
        >>> simulator.set_state(torch.tensor([[1.0, 3.0, 7.0, 0.0]]))
        >>> simulator.step(torch.tensor([[0.0, 1.0]]))
        >>> [round(v, 3) for v in simulator.get_state()[0, 2:].tolist()]  # vx clipped to 5, then damped; vy from rest
        [4.941, 1.185]
    """

    substeps = FRAME_SKIP
    velocity_limit = VELOCITY_LIMIT

    def compiled_model(self, task: Task) -> mujoco.MjModel:
        """:func:`dinowm_maze_model`: d4rl's U-maze."""
        return dinowm_maze_model()
