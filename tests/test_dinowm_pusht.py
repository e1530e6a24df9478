"""DINO-WM's PushT replica: env contract, settable state, fidelity to DINO-WM's own env, success, pairs, data.

The fidelity numbers (``tests/fixtures/dinowm_pusht.pt``) were made by running
DINO-WM's PushT env (gaoyuezhou/dino_wm at 0a9492f, ``env/pusht``:
``PushTWrapper(with_velocity=True, with_target=True).rollout(seed=0,
init_state, actions)``, ``eval_state``) with
``tests/fixtures/make_dinowm_pusht_fixture.py``: 5 starts at rest, 30
relative actions each from ``numpy.random.default_rng(case)`` (four push the T
137 to 162 units, one is noise), frames at 224 and canvases at 512 pixels.
Measured when the fixture was made: agent and block positions within 0.50
units of the 512 arena and the block angle within 0.008 rad over the 150
steps, agent velocities within 3e-5 (their env keeps one pymunk space, whose
cached contacts carry over between steps; ours rebuilds it every step so that
a step is a function of the state: that is the whole difference); 224-pixel
frames within 1 colour level but for 0.02% of the pixels (mean difference
0.005 levels), 512-pixel canvases equal but for 44 of 524,288 pixels (edge
pixels of pygame's rasterisation). The tolerances below are those with a
margin.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from torchrl_gbp.experiments.recipes import recipe_for
from torchrl_gbp.tasks import make_task
from torchrl_gbp.tasks.dinowm_pusht import DinoWMPushTTask
from torchrl_gbp.tasks.env import execute_actions

FIXTURE = torch.load(Path(__file__).parent / "fixtures" / "dinowm_pusht.pt")


@pytest.fixture(scope="module")
def task() -> DinoWMPushTTask:
    return make_task("dinowm_pusht")


def ours(states7: torch.Tensor) -> torch.Tensor:
    """Their 7-number states ``(..., 7)`` as ours ``(..., 10)`` (the block at rest: only poses are compared)."""
    out = torch.zeros(*states7.shape[:-1], 10)
    out[..., :5], out[..., 5:7] = states7[..., :5], states7[..., 5:7]
    return out


@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_env_specs(obs: str) -> None:
    check_env_specs(make_task("dinowm_pusht", obs=obs, image_size=32).make_env(num_envs=2, seed=0))


def test_the_env_replays_dinowm_pushes(task) -> None:
    cases = FIXTURE["cases"]
    start = ours(torch.stack([case["start"].float() for case in cases]))
    actions = torch.stack([case["actions"].float() for case in cases])
    _, states, executed = execute_actions(task.make_env(num_envs=len(cases)), start, actions)
    assert torch.equal(executed, actions)  # inside the action spec: nothing clipped
    expected = torch.stack([case["states"][1:] for case in cases])
    assert (states[..., :4] - expected[..., :4]).abs().max() < 1.0  # units of the 512 arena; measured 0.50
    angle = torch.remainder(states[..., 4] - expected[..., 4] + math.pi, 2 * math.pi) - math.pi
    assert angle.abs().max() < 0.02  # measured 0.008 rad
    assert (states[..., 5:7] - expected[..., 5:7]).abs().max() < 1e-3  # agent velocity
    assert (expected[:, -1, 2:4] - expected[:, 0, 2:4]).norm(dim=-1).max() > 100  # the T was pushed


def test_frames_are_drawn_as_dinowm_draws_them(task) -> None:
    frames = task.render(ours(FIXTURE["cases"][0]["states"][list(FIXTURE["frame_steps"])]))
    error = (frames.int() - FIXTURE["frames"].int()).abs()
    assert frames.shape == FIXTURE["frames"].shape and error.float().mean() < 0.05  # measured 0.005 levels
    assert (error.amax(-1) > 1).float().mean() < 0.002  # measured 0.0002 of the pixels
    canvases = task.render(ours(FIXTURE["cases"][1]["states"][list(FIXTURE["canvas_steps"])]), 512)
    assert ((canvases.int() - FIXTURE["canvases"].int()).abs().amax(-1) > 0).sum() < 200  # measured 44 of 524,288


def test_the_goal_t_is_on_every_frame(task) -> None:
    image = task.render(torch.tensor([[60.0, 60.0, 420.0, 80.0, 0.0, 0, 0, 0, 0, 0]]), 512)[0]
    assert image[256, 256].tolist() == [144, 238, 144] and image[300, 300].tolist() == [255, 255, 255]


def test_success_is_dinowm_s(task) -> None:
    pairs = ours(FIXTURE["eval_pairs"].float())
    goal, state = pairs[:, 0], pairs[:, 1]
    assert task.success(state, goal).tolist() == FIXTURE["eval"]  # their eval_state on the same pairs
    # the agent counts: the block in place, the agent 25 units off, fails
    assert not task.success(goal + torch.tensor([25.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), goal).any()
    env = task.make_env(num_envs=len(goal))
    td = env.reset(TensorDict(start_state=state, goal_state=goal, batch_size=[len(goal)]), set_state=True)
    assert td["success"].squeeze(-1).tolist() == FIXTURE["eval"]


def test_set_state_then_step_equals_stepping_the_original(task) -> None:
    start, goal = task.sample_start_goal(3, torch.Generator().manual_seed(1))
    actions = 0.3 * torch.randn(3, 10, 2, generator=torch.Generator().manual_seed(2))
    env = task.make_env(num_envs=3)
    _, states, _ = execute_actions(env, start, actions, goal=goal)
    assert torch.equal(env.get_state(), states[:, -1]) and torch.equal(env.get_goal_state(), goal)
    _, rest, _ = execute_actions(task.make_env(num_envs=3), states[:, 4], actions[:, 5:])
    assert torch.equal(rest, states[:, 5:])


def test_pairs_are_held_out_segments(task) -> None:
    generator = torch.Generator().manual_seed(0)
    start, goal = task.sample_start_goal(6, generator)
    again = task.sample_start_goal(6, torch.Generator().manual_seed(0))
    assert torch.equal(start, again[0]) and torch.equal(goal, again[1])
    assert not torch.equal(start, task.sample_start_goal(6, generator)[0])
    # a goal is 25 env steps of the data's pushes after its start, in trajectories no training seed makes
    assert not any(torch.equal(task.generate_dataset(6, seed=seed)["state"][:, 0], start) for seed in range(3))
    assert (torch.linalg.vector_norm(goal[:, :2] - start[:, :2], dim=-1) > 0).all()


def test_dataset_is_seeded_and_replays_in_the_env(task) -> None:
    data = task.generate_dataset(3, trajectory_steps=20, seed=4)
    assert torch.equal(data["state"], task.generate_dataset(3, trajectory_steps=20, seed=4)["state"])
    assert not torch.equal(data["action"], task.generate_dataset(3, trajectory_steps=20, seed=5)["action"])
    _, states, executed = execute_actions(task.make_env(num_envs=3), data["state"][:, 0], data["action"])
    assert torch.equal(executed, data["action"]) and torch.equal(states, data["next", "state"])
    assert data["action"].abs().max() <= 512 / 100


def test_proprio_and_observation(task) -> None:
    state = torch.tensor([[100.0, 200.0, 256.0, 256.0, 0.0, 12.0, -5.0, 1.0, 2.0, 0.3]])
    assert task.proprio_from_state(state).tolist() == [[100.0, 200.0, 12.0, -5.0]]
    observation = task.observation_from_state(state)
    assert observation.shape == (1, 8) and observation[0, -2:].tolist() == pytest.approx([12 / 256, -5 / 256])
    assert recipe_for("dinowm_pusht").model.proprio_dim == 4
