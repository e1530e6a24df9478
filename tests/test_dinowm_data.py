"""DINO-WM's datasets read into our memory-mapped trajectories, DINOv2 tokens computed once beside them."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from torchrl_gbp.bridges import (
    DinoV2TokenTask,
    DinoWMConfig,
    DinoWMImageEncoder,
    DinoWMWorldModel,
    convert_dinowm_dataset,
    dinowm_data,
    dinowm_split,
    load_dinowm_dataset,
    normalization_statistics,
    open_dinowm_dataset,
    read_mp4,
    write_dinov2_tokens,
)
from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.models import TeacherForcingLoss

cv2 = pytest.importorskip("cv2")


def frames_of(episode: int, steps: int, size: int = 16) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames whose colours encode the episode and step (flat colours survive mp4 coding)."""
    t = torch.arange(steps)
    colour = torch.stack([20 + 8 * t, torch.full_like(t, 40 + 20 * episode), 200 - 6 * t], dim=-1)
    return colour[:, None, None, :].expand(steps, size, size, 3).to(torch.uint8).contiguous()


def write_mp4(path: Path, frames: torch.Tensor) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, tuple(frames.shape[2:0:-1]))
    for frame in frames.numpy():
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def write_pusht(root: Path, lengths: dict[str, list[int]], horizon: int = 9) -> dict[str, dict]:
    """DINO-WM's pusht_noise layout: train/ and val/ with padded tensors, a pickled list of lengths, mp4 videos."""
    written = {}
    for split, lens in lengths.items():
        folder = root / split
        (folder / "obses").mkdir(parents=True)
        n = len(lens)
        generator = torch.Generator().manual_seed(len(split))
        states = torch.rand(n, horizon, 5, generator=generator) * 500
        velocities = torch.randn(n, horizon, 2, generator=generator) * 50
        rel_actions = torch.randn(n, horizon, 2, generator=generator) * 20
        torch.save(states, folder / "states.pth")
        torch.save(velocities, folder / "velocities.pth")
        torch.save(rel_actions, folder / "rel_actions.pth")
        with open(folder / "seq_lengths.pkl", "wb") as file:
            pickle.dump(list(lens), file)
        for i, length in enumerate(lens):
            write_mp4(folder / "obses" / f"episode_{i:03d}.mp4", frames_of(i, length))
        written[split] = {"states": states, "velocities": velocities, "rel_actions": rel_actions}
    return written


def write_point_maze(root: Path, lengths: list[int], horizon: int = 8) -> dict:
    (root / "obses").mkdir(parents=True)
    n = len(lengths)
    generator = torch.Generator().manual_seed(1)
    states, actions = torch.randn(n, horizon, 4, generator=generator), torch.randn(n, horizon, 2, generator=generator)
    torch.save(states, root / "states.pth")
    torch.save(actions, root / "actions.pth")
    torch.save(torch.tensor(lengths), root / "seq_lengths.pth")
    for i, length in enumerate(lengths):
        torch.save(frames_of(i, length), root / "obses" / f"episode_{i:03d}.pth")  # (T, H, W, 3)
    return {"states": states, "actions": actions}


def write_wall(root: Path, n: int, steps: int = 7) -> dict:
    (root / "obses").mkdir(parents=True)
    generator = torch.Generator().manual_seed(2)
    states, actions = torch.rand(n, steps, 2, generator=generator) * 60, torch.randn(n, steps, 2, generator=generator)
    doors = torch.randint(10, 55, (n,), generator=generator)
    torch.save(states, root / "states.pth")
    torch.save(actions, root / "actions.pth")
    torch.save(doors[:, None].expand(n, steps).clone(), root / "door_locations.pth")
    torch.save(torch.full((n, steps), 32), root / "wall_locations.pth")
    for i in range(n):
        torch.save(frames_of(i, steps).permute(0, 3, 1, 2).contiguous(), root / "obses" / f"episode_{i:03d}.pth")
    return {"states": states, "actions": actions, "doors": doors}


def episode_rows(data, episode: int) -> torch.Tensor:
    return (data["episode"][0] == episode).nonzero().squeeze(-1)


def test_pusht_noise_reads_states_velocities_scaled_actions_and_decoded_videos(tmp_path):
    written = write_pusht(tmp_path / "pusht_noise", {"train": [9, 6, 8], "val": [7]})
    out = convert_dinowm_dataset(tmp_path / "pusht_noise", tmp_path / "ours")
    train, val = load_dinowm_dataset(out, "train"), load_dinowm_dataset(out, "val")
    assert train.batch_size == (1, 8 + 5 + 7) and val.batch_size == (1, 6)  # T - 1 transitions per episode
    raw = written["train"]
    rows = episode_rows(train, 1)
    assert rows.numel() == 5
    state = train["state"][0, rows]
    assert state.shape == (5, 10)  # our replica's state: DINO-WM's 5, the agent velocity, 3 unrecorded zeros
    torch.testing.assert_close(state[:, :5], raw["states"][1, :5])
    torch.testing.assert_close(state[:, 5:7], raw["velocities"][1, :5])
    assert (state[:, 7:] == 0).all()
    torch.testing.assert_close(train["next", "state"][0, rows][:, :5], raw["states"][1, 1:6])
    torch.testing.assert_close(train["action"][0, rows], raw["rel_actions"][1, :5] / 100)  # DINO-WM divides by 100
    proprio = train["proprio"][0, rows]  # agent position and velocity
    torch.testing.assert_close(proprio, torch.cat([raw["states"][1, :5, :2], raw["velocities"][1, :5]], dim=-1))
    pixels = train["pixels"][0, rows]
    assert pixels.dtype == torch.uint8 and pixels.shape == (5, 16, 16, 3)
    assert (pixels.int() - frames_of(1, 5).int()).abs().max() <= 6  # RGB order kept, up to mp4 coding
    stats = normalization_statistics(out)  # DINO-WM's PushT constants
    torch.testing.assert_close(stats["action_std"], torch.tensor([0.2019, 0.2002]))
    assert stats["proprio_mean"].shape == (4,)


def test_point_maze_statistics_cover_recorded_steps_and_the_split_is_dino_wms(tmp_path):
    lengths = [8, 5, 7, 6, 8, 4, 6, 7, 5, 8, 6, 7]
    raw = write_point_maze(tmp_path / "point_maze", lengths)
    out = convert_dinowm_dataset(tmp_path / "point_maze", tmp_path / "ours")
    # DINO-WM's split_traj_datasets: randperm of a generator seeded 42, the first int(0.9 N) train
    order = torch.randperm(12, generator=torch.Generator().manual_seed(42)).tolist()
    assert dinowm_split(12) == {"train": order[:10], "val": order[10:]}
    train, val = load_dinowm_dataset(out, "train"), load_dinowm_dataset(out, "val")
    assert train["episode"][0].unique().sort().values.tolist() == sorted(order[:10])
    assert val["episode"][0].unique().sort().values.tolist() == sorted(order[10:])
    assert val.shape[1] == sum(lengths[i] - 1 for i in order[10:])
    # statistics over every episode's recorded steps, all episodes (DINO-WM computes them before splitting)
    valid = torch.cat([raw["states"][i, :length] for i, length in enumerate(lengths)])
    actions = torch.cat([raw["actions"][i, :length] for i, length in enumerate(lengths)])
    stats = normalization_statistics(out)
    torch.testing.assert_close(stats["proprio_mean"], valid.mean(0))
    torch.testing.assert_close(stats["proprio_std"], valid.std(0))
    torch.testing.assert_close(stats["action_std"], actions.std(0))
    assert not torch.allclose(stats["proprio_mean"], raw["states"].flatten(0, 1).mean(0))  # padding left out
    rows = episode_rows(train, order[0])
    torch.testing.assert_close(train["proprio"][0, rows], raw["states"][order[0], :lengths[order[0]] - 1])
    assert torch.equal(train["pixels"][0, rows], frames_of(order[0], lengths[order[0]] - 1))


def test_wall_state_carries_the_layout_and_channels_first_frames_become_channels_last(tmp_path):
    raw = write_wall(tmp_path / "wall_single", n=10)
    out = convert_dinowm_dataset(tmp_path / "wall_single", tmp_path / "ours")
    train = load_dinowm_dataset(out)
    assert train.shape == (1, 9 * 6)
    episode = train["episode"][0, 0].item()
    rows = episode_rows(train, episode)
    state = train["state"][0, rows]  # our replica's (x, y, wall_x, door_y)
    torch.testing.assert_close(state[:, :2], raw["states"][episode, :6])
    assert (state[:, 2] == 32).all() and (state[:, 3] == raw["doors"][episode]).all()
    assert torch.equal(train["pixels"][0, rows], frames_of(episode, 6))
    stats = normalization_statistics(out)  # over all (N, T), before the split
    torch.testing.assert_close(stats["proprio_std"], raw["states"].flatten(0, 1).std(0))
    torch.testing.assert_close(stats["action_mean"], raw["actions"].flatten(0, 1).mean(0))
    windows = make_window_buffer(train, frames=2, frameskip=5, batch_size=4).sample()
    assert windows["pixels"].shape == (4, 2, 16, 16, 3)
    assert (windows["episode"][:, None] == train["episode"][0][windows["index"][:, ::5, 0]]).all()


def test_a_second_open_reads_the_memory_map_without_decoding_again(tmp_path, monkeypatch):
    write_pusht(tmp_path / "pusht_noise", {"train": [9, 6], "val": [7]})
    decoded = []
    monkeypatch.setattr(dinowm_data, "read_mp4", lambda path: decoded.append(path) or read_mp4(path))
    first = open_dinowm_dataset(tmp_path / "pusht_noise", tmp_path / "ours")
    assert len(decoded) == 3
    second = open_dinowm_dataset(tmp_path / "pusht_noise", tmp_path / "ours")
    assert len(decoded) == 3 and torch.equal(first["pixels"], second["pixels"])
    assert Path(second["pixels"].filename).is_relative_to(tmp_path / "ours")
    open_dinowm_dataset(tmp_path / "pusht_noise", tmp_path / "ours", episodes=1)  # another selection: converted
    assert len(decoded) == 5
    assert json.loads((tmp_path / "ours" / "dinowm_dataset.json").read_text())["episodes"] == 1


def test_bad_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not one of DINO-WM's datasets"):
        convert_dinowm_dataset(tmp_path, tmp_path / "ours")
    write_point_maze(tmp_path / "maze", [8, 5])
    torch.save(torch.zeros(3), tmp_path / "maze" / "seq_lengths.pth")
    with pytest.raises(ValueError, match="must hold 2 episode lengths"):
        convert_dinowm_dataset(tmp_path / "maze", tmp_path / "ours")
    write_pusht(tmp_path / "pusht", {"train": [5], "val": [5]})
    with open(tmp_path / "pusht" / "train" / "seq_lengths.pkl", "wb") as file:
        pickle.dump([Exploit()], file)
    with pytest.raises(pickle.UnpicklingError, match=r"seq_lengths.pkl': refusing the global os\.system"):
        convert_dinowm_dataset(tmp_path / "pusht", tmp_path / "ours")


class Exploit:
    def __reduce__(self):
        import os

        return os.system, ("echo pwned",)


# ------------------------------------------------------------------------------ DINOv2 tokens, once
TINY_DINO = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
             "patch_size": 7, "image_size": 28}


@pytest.fixture(scope="module")
def dinov2():
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    encoder = DinoWMImageEncoder.from_config(TINY_DINO, image_size=32)  # 2 x 2 patches of 16
    calls = []
    encoder.model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(1), with_kwargs=True)
    encoder.calls = calls
    return encoder


def test_tokens_are_computed_once_stored_beside_the_frames_and_read_by_training(tmp_path, dinov2):
    write_wall(tmp_path / "wall_single", n=10)
    out = convert_dinowm_dataset(tmp_path / "wall_single", tmp_path / "ours")
    before = len(dinov2.calls)
    path = write_dinov2_tokens(out, dinov2, batch_size=16)
    assert path == out / "tokens_train" and len(dinov2.calls) - before == 1 + 4  # a probe, then 54 frames in 16s
    train = load_dinowm_dataset(out)
    assert train["tokens"].shape == (1, 54, 4, 16) and Path(train["tokens"].filename).parent == path
    expected = dinov2(train["pixels"][0, :5].permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(train["tokens"][0, :5], expected, rtol=0, atol=1e-5)
    calls = len(dinov2.calls)
    write_dinov2_tokens(out, dinov2, batch_size=16)  # the same encoder and frames: kept
    assert len(dinov2.calls) == calls
    # training windows carry the tokens, not the frames, and the loss never runs the encoder
    config = DinoWMConfig(env_action_dim=2, proprio_in_dim=2, frameskip=5, num_hist=1, num_patches=4, visual_dim=16,
                          depth=1, heads=2, dim_head=4, mlp_dim=16)
    model = DinoWMWorldModel(config)
    model.set_normalization(**normalization_statistics(out))
    batch = make_window_buffer(train, frames=2, frameskip=5, batch_size=4).sample()
    assert batch["tokens"].shape == (4, 2, 4, 16) and "pixels" not in batch.keys()
    loss = TeacherForcingLoss(model)(batch)["loss_prediction"]
    assert torch.isfinite(loss) and len(dinov2.calls) == calls
    other = DinoWMImageEncoder.from_config(TINY_DINO, image_size=32)  # other weights: the tokens are rewritten
    write_dinov2_tokens(out, other, batch_size=64)
    assert not torch.allclose(load_dinowm_dataset(out)["tokens"][0, :5], expected)


def test_a_token_task_observes_dinov2_tokens_of_its_rendered_states(dinov2):
    from torchrl_gbp.tasks import make_task

    task = DinoV2TokenTask(make_task("dinowm_wall"), dinov2, image_size=32)
    start, goal = task.sample_start_goal(2, torch.Generator().manual_seed(0))
    observed = task.observe(start)
    expected = dinov2(task.render(start).permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(observed["tokens"], expected, rtol=0, atol=1e-5)
    rollout = task.make_env(num_envs=2, seed=0).rollout(3)
    assert rollout["tokens"].shape == (2, 3, 4, 16) and rollout["next", "goal", "tokens"].shape == (2, 3, 4, 16)
    torch.testing.assert_close(rollout["next", "proprio"], task.proprio_from_state(rollout["next", "state"]))
