"""Pixel renderers and proprioception of the four tasks (Task.render, Task.proprio_from_state)."""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from torchrl_gbp.tasks import make_task
from torchrl_gbp.tasks.pointmaze import renderer as pointmaze_renderer
from torchrl_gbp.tasks.pusht import renderer as pusht_renderer
from torchrl_gbp.tasks.reacher import renderer as reacher_renderer
from torchrl_gbp.tasks.wall import renderer as wall_renderer

TASKS = ("wall", "pointmaze", "pusht", "reacher")


@pytest.fixture(scope="module")
def tasks():
    return {name: make_task(name) for name in TASKS}


def pairs(task, n=4, seed=0):
    return task.sample_start_goal(n, torch.Generator().manual_seed(seed))


def colour_centroid(image: torch.Tensor, colour: tuple[int, int, int]) -> torch.Tensor:
    """(row, col) centroid of the pixels of ``colour`` in one image (H, W, 3)."""
    mask = (image.int() - torch.tensor(colour)).abs().max(-1).values <= 2
    rows, cols = mask.nonzero(as_tuple=True)
    assert rows.numel() > 0, f"no pixel of colour {colour}"
    return torch.stack([rows.float().mean(), cols.float().mean()])


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize("size", [64, 224])
def test_render_shape_and_dtype_over_leading_dims(tasks, name, size):
    task = tasks[name]
    start, goal = pairs(task, 3)
    images = task.render(torch.stack([start, goal]), size)
    assert images.shape == (2, 3, size, size, 3) and images.dtype == torch.uint8
    assert task.render(start[:0], size).shape == (0, size, size, 3)


@pytest.mark.parametrize("name", TASKS)
def test_render_is_deterministic_and_batched_equals_one_by_one(tasks, name):
    task = tasks[name]
    start, goal = pairs(task)
    states = torch.cat([start, goal])
    images = task.render(states)
    assert torch.equal(images, task.render(states.clone()))
    for state, image in zip(states, images):
        assert torch.equal(task.render(state), image)


@pytest.mark.parametrize("name", TASKS)
def test_different_states_give_different_images(tasks, name):
    task = tasks[name]
    start, goal = pairs(task)
    assert (task.render(start) != task.render(goal)).flatten(1).any(-1).all()


@pytest.mark.parametrize("name", TASKS)
def test_an_agent_at_its_goal_sees_the_goal_image(tasks, name):
    """The goal image is render(goal_state): an env started at its goal renders its observation exactly so."""
    task = tasks[name]
    _, goal = pairs(task, 2)
    env = task.make_env(num_envs=2, seed=0)
    td = env.reset(TensorDict(start_state=goal, goal_state=goal, batch_size=[2]), set_state=True)
    assert torch.equal(task.render(td["state"]), task.render(td["goal_state"]))


def _moving_agent(task, name: str):
    """States moving the agent along one line, its colour, and the expected (row, col) pixel centre at 64 px."""
    steps = torch.linspace(0.0, 1.0, 8)
    size = 64
    if name == "wall":
        xy = torch.stack([-0.9 + 0.7 * steps, 0.5 - 0.3 * steps], -1)
        states, colour, half = xy, wall_renderer.AGENT, 1.0
    elif name == "pointmaze":  # along the U's top corridor
        xy = torch.stack([-1.0 + 2.0 * steps, torch.full_like(steps, 1.1)], -1)
        states, colour, half = torch.cat([xy, torch.zeros(8, 2)], -1), pointmaze_renderer.BALL, 2.5
    elif name == "pusht":  # the agent above the T, rows along y as in gym-pusht
        xy = torch.stack([60.0 + 380.0 * steps, 60.0 + 20.0 * steps], -1)
        block = torch.tensor([256.0, 300.0, 0.3]).expand(8, 3)
        states = torch.cat([xy, block, torch.zeros(8, 5)], -1)
        row_col = xy.flip(-1) * size / 512.0 - 0.5
        return states, pusht_renderer.AGENT, row_col
    else:  # the fingertip sweeping a quarter circle
        states = torch.stack([-0.3 + 1.5 * steps, 0.8 - 0.5 * steps, 0 * steps, 0 * steps], -1)
        xy, colour, half = task.fingertip(states), reacher_renderer.FINGERTIP, 0.3
    row_col = torch.stack([(half - xy[:, 1]), xy[:, 0] + half], -1) * size / (2 * half) - 0.5
    return states, colour, row_col


@pytest.mark.parametrize("name", TASKS)
def test_agent_pixels_track_the_agent_position(tasks, name):
    task = tasks[name]
    states, colour, expected = _moving_agent(task, name)
    centroids = torch.stack([colour_centroid(image, colour) for image in task.render(states, 64)])
    assert (centroids - expected).abs().max() < 1.0  # within a pixel of where the agent is
    moved = (expected[-1] - expected[0]).sign()
    assert ((centroids[1:] - centroids[:-1]) * moved > 0).any(-1).all()  # and moving monotonically with it


def test_pusht_block_pose_is_visible_and_unambiguous(tasks):
    task = tasks["pusht"]
    state = torch.tensor([100.0, 100.0, 256.0, 256.0, 0.4, 0, 0, 0, 0, 0])
    turned, flipped, moved = state.clone(), state.clone(), state.clone()
    turned[4] += 0.1
    flipped[4] += math.pi
    moved[2] += 10.0
    images = task.render(torch.stack([state, turned, flipped, moved]))
    for other in images[1:]:
        assert (other != images[0]).any()


def test_reacher_elbow_up_and_down_look_different(tasks):
    task = tasks["reacher"]
    target = torch.tensor([[0.12, 0.08]])
    up, down = task.goal_state_at(target, elbow=1.0), task.goal_state_at(target, elbow=-1.0)
    assert (task.render(up) != task.render(down)).any()


def test_wall_door_is_drawn_where_the_task_has_it():
    state = torch.tensor([[-0.5, 0.0]])
    low, high = make_task("wall").render(state), make_task("wall", door_center=0.5).render(state)
    assert (low != high).any()
    assert low[0, 32, 32].tolist() == list(wall_renderer.BACKGROUND)  # the default door at y = 0


@pytest.mark.parametrize("name", TASKS)
def test_proprio_from_state_shapes_and_contents(tasks, name):
    task = tasks[name]
    start, goal = pairs(task, 3)
    states = torch.stack([start, goal]).double()
    proprio = task.proprio_from_state(states)
    assert proprio.shape == (2, 3, task.proprio_dim) and proprio.dtype == torch.float32
    expected = {
        "wall": states,
        "pointmaze": states,
        "pusht": torch.cat([(states[..., :2] - 256) / 256, states[..., 5:7] / 256], -1),
        "reacher": task.observation_from_state(states)[..., 2:],
    }[name]
    torch.testing.assert_close(proprio, expected.float())


@pytest.mark.parametrize("size", [7, 0, 64.0, "64", True, None])
def test_bad_size_is_refused_by_name(tasks, size):
    state = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="size"):
        tasks["wall"].render(state, size)


@pytest.mark.parametrize("name", TASKS)
def test_bad_state_shape_is_refused_by_name(tasks, name):
    task = tasks[name]
    with pytest.raises(ValueError, match="states"):
        task.render(torch.zeros(2, task.state_dim + 1))
    with pytest.raises(ValueError, match="states"):
        task.proprio_from_state(torch.zeros(2, task.state_dim + 1))
