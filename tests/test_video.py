"""Episode videos: record_video on every task, the file format rules, atomic writes and `evaluate --video`."""
from __future__ import annotations

import imageio.v3 as iio
import pytest
import torch

from torchrl_gbp import video
from torchrl_gbp.evaluate import evaluation_pairs
from torchrl_gbp.experiments.cli import main
from torchrl_gbp.experiments.pipeline import VideoOptions, evaluate_checkpoint, make_policy, model_config
from torchrl_gbp.experiments.recipes import apply_profile, recipe_for
from torchrl_gbp.models import StateWorldModel, save_checkpoint
from torchrl_gbp.planners import GradientOptions
from torchrl_gbp.tasks import make_task
from torchrl_gbp.video import SEPARATOR_WIDTH, record_video, write_video

TASKS = ("wall", "pointmaze", "pusht", "reacher")


def tiny_policy(task):
    """An untrained small world model under the quick recipe's GD planner, one optimiser step per plan."""
    torch.manual_seed(0)
    recipe = recipe_for(task.name, quick=True)
    recipe = apply_profile(recipe, {"model.hidden_dim": 16, "model.depth": 1, "evaluation.horizon": 2})
    return make_policy(StateWorldModel(model_config(task, recipe)), task, GradientOptions(steps=1), recipe)


def durations(path) -> list[float]:
    return [iio.immeta(path, index=i)["duration"] for i in range(iio.improps(path, index=None).shape[0])]


@pytest.mark.parametrize("name", TASKS)
def test_record_video_writes_each_task_with_the_goal_beside(tmp_path, name):
    task, size, steps, fps = make_task(name), 32, 4, 10.0
    path = record_video(tiny_policy(task), task, tmp_path / f"{name}.gif", episodes=2, seed=1, size=size,
                        fps=fps, max_steps=steps)
    frames = iio.imread(path, index=None)
    assert frames.shape[1:] == (size, 2 * size + SEPARATOR_WIDTH, 3)
    # 2 episodes of steps + 1 frames; GIF keeps a run of identical frames as one, shown for the run's time
    assert 1 < frames.shape[0] <= 2 * (steps + 1)
    assert sum(durations(path)) == pytest.approx(2 * (steps + 1) * 1000 / fps)
    pairs = evaluation_pairs(task, 2, seed=1)
    first = torch.from_numpy(frames[0])
    assert torch.equal(first[:, size + SEPARATOR_WIDTH:], task.render(pairs["goal_state"][0], size))
    assert torch.equal(first[:, :size], task.render(pairs["start_state"][0], size))
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_write_video_keeps_every_distinct_frame_and_its_timing(tmp_path):
    frames = torch.zeros(6, 16, 24, 3, dtype=torch.uint8)
    frames[torch.arange(6), 0, torch.arange(6)] = 255  # every frame differs from the one before
    path = write_video(frames, tmp_path / "out.gif", fps=20)
    back = iio.imread(path, index=None)
    assert back.shape == (6, 16, 24, 3) and (back == frames.numpy()).all()
    assert durations(path) == [50] * 6
    held = write_video(frames[[0, 0, 0, 1]], tmp_path / "held.gif", fps=20)
    assert iio.imread(held, index=None).shape[0] == 2 and durations(held) == [150, 50]


def test_write_video_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.gif"
    path.write_bytes(b"previous")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(iio, "imwrite", broken)
    with pytest.raises(OSError, match="disk full"):
        write_video(torch.zeros(2, 8, 8, 3, dtype=torch.uint8), path)
    assert path.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["out.gif"]


def test_video_arguments_are_checked_by_name(tmp_path, monkeypatch):
    frames = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="path must end in one of"):
        write_video(frames, tmp_path / "out.avi")
    with pytest.raises(ValueError, match="fps"):
        write_video(frames, tmp_path / "out.gif", fps=0)
    with pytest.raises(ValueError, match="frames"):
        write_video(frames.float(), tmp_path / "out.gif")
    task = make_task("wall")
    with pytest.raises(ValueError, match="size"):
        record_video(tiny_policy(task), task, tmp_path / "out.gif", size=4)
    with pytest.raises(ValueError, match="max_steps"):
        record_video(tiny_policy(task), task, tmp_path / "out.gif", max_steps=task.episode_steps + 1)
    # .mp4 needs imageio-ffmpeg: without it, the error names the package to install
    monkeypatch.setattr(video, "find_spec", lambda module: None if module == "imageio_ffmpeg" else object())
    with pytest.raises(ImportError, match="imageio-ffmpeg"):
        write_video(frames, tmp_path / "out.mp4")


def test_cli_evaluate_writes_a_video_of_evaluated_episodes(tmp_path, capsys):
    task = make_task("wall")
    checkpoint, path = tmp_path / "m.pt", tmp_path / "videos" / "wall.gif"
    save_checkpoint(checkpoint, tiny_policy(task).world_model, extra={"task": "wall"})
    flags = ["--evaluation.episodes", "3", "--planners.gd.steps", "1", "--evaluation.horizon", "2", "--seed", "2"]
    assert main(["evaluate", "--task", "wall", "--checkpoint", str(checkpoint), *flags, "--video.path", str(path),
                 "--video.episodes", "1", "--video.size", "16"]) == 0
    assert f"video written to {path}" in capsys.readouterr().out
    frames = iio.imread(path, index=None)
    goal = evaluation_pairs(task, 3, seed=2)["goal_state"][0]
    assert frames.shape[1:] == (16, 34, 3)
    assert torch.equal(torch.from_numpy(frames[0])[:, 16 + SEPARATOR_WIDTH:], task.render(goal, 16))
    assert sum(durations(path)) == pytest.approx((task.episode_steps + 1) * 100)
    # the same call from Python; bad targets fail before any planning
    again = evaluate_checkpoint("wall", checkpoint, "gd", seed=2, video=VideoOptions(
        path=str(tmp_path / "again.gif"), episodes=1, size=16),
        profile={"evaluation.episodes": 3, "planners.gd.steps": 1, "evaluation.horizon": 2})["video"]
    assert (iio.imread(again, index=None) == frames).all()
    assert main(["evaluate", "--task", "wall", "--checkpoint", str(checkpoint), "--video.path", "x.avi"]) == 2
    assert "x.avi" in capsys.readouterr().err
