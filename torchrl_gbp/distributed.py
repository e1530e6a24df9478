"""Data-parallel training under ``torchrun``: process group set-up and the rank helpers the loops use."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist


def distributed_rank() -> int:
    """This process's rank in the default process group (0 without one).

    Example:
        >>> distributed_rank()  # no process group: one process, rank 0
        0
        >>> if distributed_rank() == 0:  # only rank 0 writes files
        ...     print("writing the checkpoint")
        writing the checkpoint
    """
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def distributed_world_size() -> int:
    """Processes in the default process group (1 without one).

    Example:
        >>> distributed_world_size()  # no process group: one process
        1
        >>> 256 // distributed_world_size()  # each process's share of a global batch of 256
        256
    """
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@contextmanager
def distributed_training(backend: str | None = None) -> Iterator[int]:
    """Join the ``torchrun`` process group for a block when launched by it; yield the world size.

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) and with
    no group yet, it initialises one (``backend``: gloo on CPU, NCCL when CUDA
    is available, by default) and destroys it after the block. Otherwise the
    block runs as it is (an existing group, or one process).

    Example:
        >>> with distributed_training() as world_size:
        ...     world_size
        1
    """
    wanted = int(os.environ.get("WORLD_SIZE", "1"))
    if wanted <= 1 or dist.is_initialized():
        yield distributed_world_size()
        return
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    try:
        yield distributed_world_size()
    finally:
        dist.destroy_process_group()
