"""DINO-WM's PointMaze replica: d4rl's constants, point-mass dynamics, walls, camera, success, pairs, data.

What could not be compared: DINO-WM's env needs mujoco-py 2.1 and d4rl,
which do not install here, so no run of their env is recorded (the Wall and
PushT replicas have such fixtures). Instead the compiled model is checked
against the constants of their ``env/pointmaze/maze_model.py`` (gaoyuezhou/
dino_wm at 0a9492f), one env step against the damped point mass MuJoCo's
Euler integrator steps (worked out here in closed form, not with the code
under test), the velocity clip and the walls by hand-made cases, the pair
sampler against their ``sample_random_init_goal_states`` rules, and the
plain-torch frames against MuJoCo 3's own OpenGL frames of the same model
from their camera (``tests/fixtures/dinowm_pointmaze.pt``, made by
``tests/fixtures/make_dinowm_pointmaze_fixture.py``). Left unchecked: MuJoCo
2.1 against 3.x (solver and contact details; their data's speeds), and their
dataset, which is not released with its generator.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from torchrl_gbp.experiments.protocol import PAPER_SETTINGS, PAPER_TABLE1
from torchrl_gbp.experiments.recipes import recipe_for
from torchrl_gbp.tasks import PixelTask, make_task
from torchrl_gbp.tasks.dinowm_pointmaze import DinoWMPointMazeTask, dinowm_maze_model, in_pair_region
from torchrl_gbp.tasks.dinowm_pointmaze.renderer import CAMERA_DISTANCE, FOVY_DEGREES, LOOKAT
from torchrl_gbp.tasks.env import execute_actions

FIXTURE = torch.load(Path(__file__).parent / "fixtures" / "dinowm_pointmaze.pt")
# d4rl's point mass: density 1000, radius 0.1; gear 100; damping 1; 5 Euler steps of 0.01 s per env step.
MASS, GEAR, DAMPING, DT, SUBSTEPS = 1000 * 4 / 3 * math.pi * 0.1**3, 100.0, 1.0, 0.01, 5
# The U-maze's wall cells (row, col), centred at world (row + 1, col + 1); qpos = world - 1.2.
WALL_CELLS = [(r, c) for r, row in enumerate(("#####", "#GOO#", "###O#", "#OOO#", "#####"))
              for c, tile in enumerate(row) if tile == "#"]


@pytest.fixture(scope="module")
def task() -> DinoWMPointMazeTask:
    return make_task("dinowm_pointmaze")


def euler_step(position: torch.Tensor, velocity: torch.Tensor, action: torch.Tensor) -> tuple:
    """One env step of a free point mass under MuJoCo's Euler integrator, which treats the joint damping
    implicitly: ``v' = (m v + dt F) / (m + dt b)``, then ``x' = x + dt v'``, five times, after the velocity clip."""
    velocity = velocity.clamp(-5.0, 5.0)
    for _ in range(SUBSTEPS):
        velocity = (MASS * velocity + DT * GEAR * action.clamp(-1, 1)) / (MASS + DT * DAMPING)
        position = position + DT * velocity
    return position, velocity


def wall_depth(position: torch.Tensor) -> torch.Tensor:
    """How far ``(..., 2)`` qpos positions reach into the wall boxes (ball radius 0.1 included; <= 0 if clear)."""
    world = position + 1.2
    depth = torch.full(position.shape[:-1], -float("inf"))
    for r, c in WALL_CELLS:
        gap = (world - torch.tensor([r + 1.0, c + 1.0])).abs() - 0.5  # per axis, outside the box when > 0
        outside = torch.linalg.vector_norm(gap.clamp(min=0), dim=-1) + gap.amax(-1).clamp(max=0)
        depth = torch.maximum(depth, 0.1 - outside)
    return depth


@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_env_specs(obs: str) -> None:
    task = make_task("dinowm_pointmaze", obs=obs, image_size=32)
    check_env_specs(task.make_env(num_envs=3, seed=0))


def test_the_compiled_model_has_d4rl_s_constants(task) -> None:
    model = dinowm_maze_model()
    assert model.opt.timestep == 0.01 and model.opt.integrator == 0 and model.opt.iterations == 20  # Euler
    assert model.opt.gravity.tolist() == [0.0, 0.0, 0.0]
    assert model.dof_damping.tolist() == [1.0, 1.0] and model.actuator_gear[:, 0].tolist() == [100.0, 100.0]
    assert model.actuator_ctrlrange.tolist() == [[-1.0, 1.0], [-1.0, 1.0]] and model.actuator_ctrllimited.all()
    assert model.body_mass[1] == pytest.approx(MASS) and model.body_pos[1].tolist() == [1.2, 1.2, 0.0]
    assert model.geom_condim.tolist() == [1] * model.ngeom and model.geom_margin.tolist() == [0.002] * model.ngeom
    walls = sorted((round(x) - 1, round(y) - 1) for x, y, _ in model.geom_pos[model.geom_type == 6].tolist())
    assert walls == sorted(WALL_CELLS) and model.ngeom == len(WALL_CELLS) + 2  # + floor + ball
    simulator = task.make_simulator(2)
    assert (simulator.substeps, simulator.velocity_limit) == (5, 5.0)
    # the camera: mujoco-py looks at the median geom position from the model's extent
    assert model.stat.extent == pytest.approx(CAMERA_DISTANCE) and FOVY_DEGREES == model.vis.global_.fovy
    assert LOOKAT == (3.0, 3.0)


def test_a_constant_force_moves_the_point_as_a_damped_point_mass(task) -> None:
    start = torch.tensor([[1.0, 1.8, 0.0, 0.0], [0.8, 1.0, 0.0, 0.0], [2.8, 2.0, 1.5, -2.0]])  # free space
    action = torch.tensor([[1.0, 0.0], [0.6, -0.3], [-0.4, 0.9]])
    simulator = task.make_simulator(3)
    simulator.set_state(start)
    simulator.step(action)
    position, velocity = euler_step(start[:, :2].double(), start[:, 2:].double(), action.double())
    state = simulator.get_state().double()
    assert (state[:, :2] - position).abs().max() < 1e-6 and (state[:, 2:] - velocity).abs().max() < 1e-6
    # from rest, the speed is the continuous damped point mass's, (F / b)(1 - exp(-b t / m)), within 0.2%
    continuous = GEAR / DAMPING * (1 - math.exp(-DAMPING * DT * SUBSTEPS / MASS))
    assert state[0, 2].item() == pytest.approx(continuous, rel=2e-3)


def test_the_velocity_is_clipped_before_each_step_not_after(task) -> None:
    start = torch.tensor([[1.0, 3.0, 8.0, -9.0], [0.8, 1.5, 0.0, 4.9]])
    action = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    simulator = task.make_simulator(2)
    simulator.set_state(start)
    simulator.step(action)
    state = simulator.get_state()
    decay = (MASS / (MASS + DT * DAMPING)) ** SUBSTEPS
    assert state[0, 2:].tolist() == pytest.approx([5 * decay, -5 * decay], abs=1e-5)
    assert state[1, 3].item() > 5.5  # full force from 4.9: the returned speed is not clipped


def test_walls_stop_the_point_and_it_slides_along_them(task) -> None:
    # into the inner wall from the top arm, into the outer wall at the bottom-left, along the inner wall
    start = torch.tensor([[0.9, 1.5, 0.0, 0.0], [0.8, 0.6, 0.0, 0.0], [1.2, 0.6, 0.0, 0.0]])
    action = torch.tensor([[1.0, 0.0], [0.0, -1.0], [1.0, 1.0]]).unsqueeze(1).expand(3, 20, 2)
    _, states, _ = execute_actions(task.make_env(num_envs=3), start, action)
    depth = wall_depth(states[..., :2])
    assert depth.max() < 0.06  # soft contacts: a few hundredths at full speed
    assert states[0, -1, 0].item() == pytest.approx(1.2, abs=0.06) and states[1, -1, 1].item() == pytest.approx(
        0.4, abs=0.06)
    # frictionless: pushed diagonally, it slides along the inner wall's face (x at 1.2) and turns its end (y 2.4)
    beside = states[2, :, 1] < 2.2
    assert beside.sum() >= 3 and states[2, beside, 0].max() < 1.26 and states[2, -1, 1] > 2.4


def test_frames_match_mujoco_s_own_frames_of_the_model(task) -> None:
    frames = task.render(FIXTURE["states"])
    assert frames.shape == (3, 224, 224, 3) and frames.dtype == torch.uint8
    error = (frames.int() - FIXTURE["frames"].int()).abs()
    assert error.float().mean() < 1.0  # measured 0.42
    assert (error.amax(-1) > 16).sum(dim=(1, 2)).max() < 400  # measured about 200 of 50176: edges
    # the ball is where the camera puts it: world = qpos + 1.2, 224 / (2 d tan 22.5) pixels per unit, row 0 at low y
    scale = 224 / (2 * CAMERA_DISTANCE * math.tan(math.radians(22.5)))
    green = (frames[..., 1].int() - frames[..., 0].int()) > 40
    rows, cols = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
    for k, state in enumerate(FIXTURE["states"]):
        weight = green[k].float()
        row, col = (rows * weight).sum() / weight.sum(), (cols * weight).sum() / weight.sum()
        expected_col = 112 + (state[0].item() + 1.2 - 3) * scale - 0.5
        expected_row = 112 + (state[1].item() + 1.2 - 3) * scale - 0.5
        assert (col.item(), row.item()) == pytest.approx((expected_col, expected_row), abs=0.5)
        assert weight.sum() == pytest.approx(math.pi * (0.2 * scale) ** 2, rel=0.15)


def test_set_state_then_step_equals_stepping_the_original(task) -> None:
    start, goal = task.sample_start_goal(4, torch.Generator().manual_seed(3))
    actions = 2 * torch.rand(4, 12, 2, generator=torch.Generator().manual_seed(4)) - 1
    env = task.make_env(num_envs=4)
    _, states, _ = execute_actions(env, start, actions, goal=goal)
    assert torch.equal(env.get_state(), states[:, -1]) and torch.equal(env.get_goal_state(), goal)
    _, rest, _ = execute_actions(task.make_env(num_envs=4), states[:, 5], actions[:, 6:])
    assert torch.equal(rest, states[:, 6:])
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        env.set_state(torch.zeros(4, 2))


def test_success_and_distance_on_hand_made_states(task) -> None:
    goal = torch.tensor([1.0, 3.0, 2.0, -1.0])
    states = torch.tensor([[1.3, 3.39, 2.0, -1.0], [1.3, 3.4, 0.0, 0.0], [1.0, 2.49, 2.0, -1.0],
                           [1.0, 3.0, -5.0, 5.0]])
    assert task.success(states, goal).tolist() == [True, False, False, True]  # velocities do not count
    assert task.distance(states, goal).tolist() == pytest.approx([0.4920, 0.5, 0.51, 0.0], abs=1e-4)
    env = task.make_env(num_envs=4)
    td = env.reset(TensorDict(start_state=states, goal_state=goal.expand(4, 4), batch_size=[4]), set_state=True)
    assert td["success"].squeeze(-1).tolist() == [True, False, False, True]


def test_pairs_follow_dinowm_s_sampler(task) -> None:
    start, goal = task.sample_start_goal(4000, torch.Generator().manual_seed(0))
    both = torch.cat([start, goal])
    assert in_pair_region(both[:, :2]).all() and (wall_depth(both[:, :2]) <= -0.1 + 1e-6).all()  # 0.1 off walls
    assert both[:, :2].amin(0).tolist() == pytest.approx([0.5, 0.5], abs=0.01)
    assert both[:, :2].amax(0).tolist() == pytest.approx([3.1, 3.1], abs=0.01)
    assert both[:, 2:].abs().max() <= 5.2262554 and both[:, 2:].abs().max() > 5.2
    base = (both[:, 0] > 1.1) & (both[:, 0] < 2.5)
    assert base.float().mean().item() == pytest.approx(0.84 / 3.96, abs=0.02)  # uniform over the free area
    again = task.sample_start_goal(4000, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], start) and torch.equal(again[1], goal)
    assert not torch.equal(task.sample_start_goal(4000, torch.Generator().manual_seed(1))[0], start)


def test_dataset_is_seeded_random_actions_that_replay_in_the_env(task) -> None:
    data = task.generate_dataset(8, trajectory_steps=30, seed=5)
    assert data.batch_size == (8, 30) and data["action"].shape == (8, 30, 2)
    assert torch.equal(data["state"], task.generate_dataset(8, trajectory_steps=30, seed=5)["state"])
    assert not torch.equal(data["action"], task.generate_dataset(8, trajectory_steps=30, seed=6)["action"])
    assert data["action"].abs().max() <= 1 and data["action"].abs().max() > 0.95
    assert in_pair_region(data["state"][:, 0, :2]).all()
    _, states, _ = execute_actions(task.make_env(num_envs=8), data["state"][:, 0], data["action"])
    assert torch.equal(states, data["next", "state"])
    assert wall_depth(data["next", "state"][..., :2]).max() < 0.08  # never through a wall
    assert torch.equal(data["observation"], data["state"])
    assert len(task.generate_dataset(2, seed=0)["action"][0]) == task.episode_steps


def test_pixels_and_proprio_are_dinowm_s_observation() -> None:
    task = make_task("dinowm_pointmaze", obs="pixels", image_size=224)
    assert isinstance(task, PixelTask) and task.proprio_dim == 4
    state = FIXTURE["states"][:2]
    observed = task.observe(state)
    assert torch.equal(observed["pixels"], task.render(state)) and observed["pixels"].shape == (2, 224, 224, 3)
    assert torch.equal(observed["proprio"], state)


def test_recipes_and_the_paper_protocol_know_the_replica() -> None:
    assert recipe_for("dinowm_pointmaze") == recipe_for("pointmaze")
    assert recipe_for("dinowm_pointmaze", obs="pixels") == recipe_for("pointmaze", obs="pixels")
    assert PAPER_SETTINGS["dinowm_pointmaze"].alpha == 0.0
    assert PAPER_TABLE1["dinowm_pointmaze"] == PAPER_TABLE1["pointmaze"]


@pytest.mark.slow
def test_the_quick_reproduction_runs(tmp_path) -> None:
    from torchrl_gbp.experiments.cli import main

    assert main(["reproduce", "--task", "dinowm_pointmaze", "--quick", "--out", str(tmp_path)]) == 0  # ~20 s
    assert (tmp_path / "dinowm_pointmaze" / "results.md").exists()
