"""Data-parallel training: DistributedDataParallel over gloo on CPU, by hand and under torchrun."""
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from torchrl_gbp.data import make_window_buffer, save_dataset
from torchrl_gbp.distributed import distributed_rank, distributed_world_size
from torchrl_gbp.models import WorldModelConfig, load_checkpoint
from torchrl_gbp.tasks import WallTask
from torchrl_gbp.train import build_world_model, train_world_model


def _train_rank(rank: int, world_size: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        data = WallTask().generate_dataset(40, seed=0)
        model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5), data)
        torch.save(model.state_dict(), f"{folder}/init{rank}.pt")
        buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=16,
                                    generator=torch.Generator().manual_seed(rank))  # each rank its own samples
        assert distributed_rank() == rank and distributed_world_size() == world_size
        train_world_model(model, buffer, steps=5, progress=False, checkpoint_path=f"{folder}/rank{rank}.pt")
        torch.save(model.state_dict(), f"{folder}/weights{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_training_keeps_the_ranks_in_step(tmp_path) -> None:
    mp.spawn(_train_rank, args=(2, str(tmp_path)), nprocs=2, join=True)
    first, second = (torch.load(tmp_path / f"weights{r}.pt") for r in (0, 1))
    init = torch.load(tmp_path / "init0.pt")
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(first[n], init[n]) for n in first)  # it trained
    assert (tmp_path / "rank0.pt").exists() and not (tmp_path / "rank1.pt").exists()  # rank 0 writes


@pytest.mark.slow
def test_cli_train_under_torchrun(tmp_path) -> None:
    dataset = save_dataset(WallTask().generate_dataset(40, seed=0), tmp_path / "dataset")
    out = tmp_path / "base.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "torchrl_gbp.experiments.cli", "train",
         "--task", "wall", "--dataset", str(dataset), "--out", str(out), "--training.steps", "4",
         "--training.batch-size", "16"],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    model, extra = load_checkpoint(out)
    assert extra["step"] == 4
