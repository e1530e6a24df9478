"""DINO-WM's Wall replica: env contract, settable state, fidelity to DINO-WM's own env, success, pairs, data.

The fidelity numbers (``tests/fixtures/dinowm_wall.pt``) were made by running
DINO-WM's Wall env (gaoyuezhou/dino_wm at 0a9492f, ``env/wall``:
``WallEnvWrapper.update_env`` then ``rollout(seed=0, init_state, actions)``,
``DotWall.channels_to_img`` for the 65-pixel canvas,
``sample_random_init_goal_states(seed)`` for seeds 0..3999) with
``tests/fixtures/make_dinowm_wall_fixture.py``: 8 layouts and starts, 40
actions each from ``numpy.random.default_rng(case)`` (uniform in [-4, 4], a
heading random walk, door runs, up and down the door corridor), 117 wall
and border hits in all. Measured when the fixture was made: positions
within 4e-5 pixels over all 320 steps (their float64 against our float32),
the 65-pixel canvas equal but for 2 pixels off by one colour level, the
224-pixel frames within 0.5 levels (our uint8 rounding; theirs are stored
in float16). The tolerances below are those with a margin.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.evaluate import evaluate
from torchrl_gbp.experiments.pipeline import model_config
from torchrl_gbp.experiments.recipes import recipe_for
from torchrl_gbp.models import StateWorldModel, WorldModelConfig
from torchrl_gbp.planners import GradientPlanner, MPCPolicy
from torchrl_gbp.synthesis import OnlineOptions, OnlineSynthesis
from torchrl_gbp.tasks import PixelTask, make_task
from torchrl_gbp.tasks.dinowm_wall import DinoWMWallTask
from torchrl_gbp.tasks.env import execute_actions

FIXTURE = torch.load(Path(__file__).parent / "fixtures" / "dinowm_wall.pt")
POSITION_TOLERANCE = 1e-3  # pixels; measured 4e-5


@pytest.fixture(scope="module")
def task() -> DinoWMWallTask:
    return make_task("dinowm_wall")


def fixture_states(case: dict) -> torch.Tensor:
    """The fixture's positions ``(T + 1, 2)`` with the case's layout appended: our states ``(T + 1, 4)``."""
    states = case["states"].float()
    return torch.cat([states, case["layout"].float().expand(len(states), 2)], dim=-1)


@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_env_specs(obs: str) -> None:
    task = make_task("dinowm_wall", obs=obs, image_size=32)
    check_env_specs(task.make_env(num_envs=3, seed=0))


def test_the_env_replays_dinowm_positions_step_by_step(task) -> None:
    cases = FIXTURE["cases"]
    start = torch.stack([fixture_states(case)[0] for case in cases])
    actions = torch.stack([case["actions"] for case in cases])
    _, states, executed = execute_actions(task.make_env(num_envs=len(cases)), start, actions)
    assert torch.equal(executed, actions)  # inside the action spec: nothing clipped
    expected = torch.stack([fixture_states(case)[1:] for case in cases])
    error = (states - expected).abs().amax(dim=-1)
    assert error.max() < POSITION_TOLERANCE, f"worst step {divmod(int(error.argmax()), error.shape[1])}"


def test_the_canvas_and_frames_are_drawn_as_dinowm_draws_them(task) -> None:
    states = fixture_states(FIXTURE["cases"][0])
    canvas = (task.render(states, size=65).int() - FIXTURE["canvas"].int()).abs()
    assert canvas.max() <= 1 and (canvas > 0).sum() <= 10  # measured: 2 pixels off by one level
    frames = task.render(states[list(FIXTURE["frame_steps"])])
    assert frames.shape[-3:] == (224, 224, 3)
    assert (frames.float() - FIXTURE["frames"].float()).abs().max() <= 0.65  # rounding + float16 storage


def test_walls_and_borders_stop_the_dot(task) -> None:
    # into the wall below the door, into the left border, into the top border, through the door
    start = torch.tensor([[25.0, 50.0, 32, 30], [6.0, 20.0, 32, 30], [20.0, 6.0, 32, 30], [25.0, 30.3, 32, 30]])
    action = torch.tensor([[3.0, 0.01], [-3.0, 0.01], [0.01, -3.0], [3.0, 0.01]])
    _, states, _ = execute_actions(task.make_env(num_envs=4), start, action.unsqueeze(1))
    x, y = states[:, 0, 0], states[:, 0, 1]
    assert x[0] == pytest.approx(28.5) and x[1] == pytest.approx(4.5)  # pushed back off the wall and the border
    assert y[2] == pytest.approx(4.5) and x[3] == pytest.approx(31.0)  # the door lets it in


def test_set_state_then_step_equals_stepping_the_original(task) -> None:
    start, goal = task.sample_start_goal(4, torch.Generator().manual_seed(3))
    actions = torch.randn(4, 12, 2, generator=torch.Generator().manual_seed(4)) * 2
    env = task.make_env(num_envs=4)
    _, states, _ = execute_actions(env, start, actions, goal=goal)
    assert torch.equal(env.get_state(), states[:, -1]) and torch.equal(env.get_goal_state(), goal)
    middle = states[:, 5]
    _, rest, _ = execute_actions(task.make_env(num_envs=4), middle, actions[:, 6:])
    assert torch.equal(rest, states[:, 6:])  # the layout travels in the state: the dynamics are Markov
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        env.set_state(torch.zeros(4, 2))


def test_success_and_distance_on_hand_made_states(task) -> None:
    goal = torch.tensor([40.0, 20.0, 32, 30])
    states = torch.tensor([[40.0, 24.4, 32, 30], [43.0, 23.4, 32, 30], [40.0, 24.6, 32, 30], [40.0, 20.0, 25, 12]])
    assert task.success(states, goal).tolist() == [True, False, False, True]
    assert task.distance(states, goal).tolist() == pytest.approx([4.4, 4.5343, 4.6, 0.0], abs=1e-4)
    env = task.make_env(num_envs=4)
    td = env.reset(TensorDict(start_state=states, goal_state=goal.expand(4, 4), batch_size=[4]), set_state=True)
    assert td["success"].squeeze(-1).tolist() == [True, False, False, True]


def test_pairs_lie_in_dinowm_ranges_on_both_sides_of_the_wall(task) -> None:
    start, goal = task.sample_start_goal(4000, torch.Generator().manual_seed(0))
    both = torch.cat([start, goal])
    ranges = FIXTURE["pairs"]  # the extremes of 8000 draws of their sampler at their default layout (wall 32)
    low, high = 4 + 2 * 1.7, 64 - (4 + 2 * 1.7)  # their border padding, in pixels: 7.4 and 56.6
    assert (both[:, :2] >= low - 1e-4).all() and (both[:, :2] <= high + 1e-4).all()
    assert both[:, :2].amin(0).tolist() == pytest.approx(ranges["min"].tolist(), abs=0.05)
    assert both[:, :2].amax(0).tolist() == pytest.approx(ranges["max"].tolist(), abs=0.05)
    left, right = torch.minimum(start[:, 0], goal[:, 0]), torch.maximum(start[:, 0], goal[:, 0])
    assert left.max() <= 32 - 3 - 3.4 + 1e-4 and right.min() >= 32 + 3 + 3.4 - 1e-4
    assert left.max().item() == pytest.approx(ranges["left_x_max"], abs=0.05)
    assert right.min().item() == pytest.approx(ranges["right_x_min"], abs=0.05)
    assert torch.equal(start[:, 2:], goal[:, 2:]) and (start[:, 2] == 32).all()
    doors = start[:, 3]
    assert torch.equal(doors, doors.round()) and doors.min() == 10 and doors.max() == 54
    assert 0.45 < (start[:, 0] < 32).float().mean() < 0.55  # either room first
    again = task.sample_start_goal(4000, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], start) and torch.equal(again[1], goal)


def test_pairs_follow_a_moving_wall() -> None:
    task = DinoWMWallTask(wall_x_range=(20, 44))
    start, goal = task.sample_start_goal(500, torch.Generator().manual_seed(1))
    walls = start[:, 2]
    assert walls.min() == 20 and walls.max() == 44
    assert ((start[:, 0] - walls).sign() * (goal[:, 0] - walls).sign() == -1).all()
    assert ((start[:, 0] - walls).abs().min() >= 3 + 3.4 - 1e-4) and ((goal[:, 0] - walls).abs().min() >= 6.4 - 1e-4)
    with pytest.raises(ValueError, match="wall_x_range"):
        DinoWMWallTask(wall_x_range=(5, 30))


def test_dataset_is_seeded_and_replays_in_the_env(task) -> None:
    data = task.generate_dataset(6, trajectory_steps=30, seed=5)
    assert torch.equal(data["state"], task.generate_dataset(6, trajectory_steps=30, seed=5)["state"])
    assert not torch.equal(data["action"], task.generate_dataset(6, trajectory_steps=30, seed=6)["action"])
    lengths = torch.linalg.vector_norm(data["action"], dim=-1)
    assert lengths.min() >= 0.2 - 1e-5 and lengths.max() <= 1.8 + 1e-5
    _, states, _ = execute_actions(task.make_env(num_envs=6), data["state"][:, 0], data["action"])
    assert torch.equal(states, data["next", "state"])
    x, y, walls, doors = data["next", "state"].unbind(-1)
    assert not (((x - walls).abs() <= 3) & ((y - doors).abs() > 4)).any()  # never inside the wall


def test_pixels_and_proprio_are_dinowm_s_observation() -> None:
    task = make_task("dinowm_wall", obs="pixels", image_size=65)
    assert isinstance(task, PixelTask) and task.proprio_dim == 2
    state = fixture_states(FIXTURE["cases"][0])[:1]
    observed = task.observe(state)
    assert torch.equal(observed["pixels"], task.render(state))
    assert observed["proprio"].tolist() == state[:, :2].tolist()


def test_a_gradient_mpc_policy_evaluates_on_the_replica(task) -> None:
    recipe = recipe_for("dinowm_wall", quick=True)
    model = StateWorldModel(model_config(task, recipe))
    policy = MPCPolicy(GradientPlanner(model, steps=2), task.action_spec)
    metrics = evaluate(policy, task, episodes=3, max_steps=10)
    assert len(metrics["episodes"]["success"]) == 3 and 0.0 <= metrics["success_rate"] <= 1.0


def test_online_synthesis_executes_plans_in_the_replica(task) -> None:
    model = StateWorldModel(WorldModelConfig(obs_dim=task.obs_dim, env_action_dim=2, frameskip=task.frameskip))
    synthesis = OnlineSynthesis(model, task.make_env, every=1, fraction=0.5, seed=0, options=OnlineOptions(capacity=16, planner_steps=3))
    buffer = make_window_buffer(task.generate_dataset(8, seed=0), frames=4, frameskip=task.frameskip, batch_size=4,
                                transform=synthesis, generator=torch.Generator().manual_seed(0))
    batch = buffer.sample()
    rows = batch["synthetic"].nonzero().squeeze(-1)
    assert len(rows) == 2  # a synthetic window's observations are the simulator states it reached
    assert torch.equal(batch["observation"][rows], task.observation_from_state(batch["state"][rows]))
