"""Data-parallel training under torchrun: which process this is, and the few collectives the loop needs.

`torchrun --nproc-per-node N -m edgefer.train ...` (or `edgefer train --nproc N`, which calls
torchrun) starts N copies of the one training loop; each reads RANK / WORLD_SIZE / LOCAL_RANK
from its environment. A single process (no torchrun) is rank 0 of 1 and every helper here is
then the identity, so the loop has one code path.

How the pieces are decided, and why:
- batches: every rank draws the same global order for an epoch (seeded by seed and epoch),
  padded by wrapping to a multiple of the world size, and takes every world-th item of each
  global batch: exactly torch's DistributedSampler partition (a test holds them equal), done
  per global batch so the GPU-resident source can shard its on-device permutation too. The
  union of the ranks' step-s batches is the 1-process step-s batch, so a run's result does not
  depend on how many processes share it (within BatchNorm, below).
- random streams (augmentation, dropout) are derived from (seed, epoch, rank): ranks draw
  differently, and a run resumed at another world size has nothing to restore.
- BatchNorm: on CUDA, SyncBatchNorm (statistics over the global batch, as one process would
  compute them). On CPU, torch's SyncBatchNorm refuses non-GPU tensors, so each process
  normalises with its own B/N items; DDP broadcasts rank 0's running statistics each step and
  `sync_buffers` does again before validation, so every rank scores and saves the same model.
- gloo on CPU, nccl on CUDA (the backends torch recommends for each).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from edgefer.runtime.errors import EdgeferError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0           # this process among all
    world: int = 1          # processes in the run (all nodes)
    local_rank: int = 0     # this process on its node: its GPU

    @property
    def main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs, curves and progress bars."""
        return self.rank == 0


def from_env() -> Ranks:
    """torchrun's environment, or rank 0 of 1 outside it."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return Ranks()
    return Ranks(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def device_for(ranks: Ranks, device: torch.device) -> torch.device:
    """One GPU per process on a node: cuda:LOCAL_RANK."""
    if device.type != "cuda" or ranks.world == 1:
        return device
    if ranks.local_rank >= torch.cuda.device_count():
        raise EdgeferError(None, f"local rank {ranks.local_rank} has no GPU ({torch.cuda.device_count()} visible)",
                           f"pass --nproc-per-node {torch.cuda.device_count()} or fewer, or --device cpu")
    torch.cuda.set_device(ranks.local_rank)
    return torch.device("cuda", ranks.local_rank)


@contextmanager
def session(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """The process group for one run (joined if torchrun's caller already made one)."""
    own = ranks.world > 1 and not dist.is_initialized()
    if own:
        dist.init_process_group(backend_for(device))
    try:
        yield
    finally:
        if own and dist.is_initialized():
            dist.destroy_process_group()


def check_batch(batch_size: int, ranks: Ranks) -> None:
    """The batch is global: each process takes batch/world items of every step."""
    if batch_size % ranks.world:
        fits = [b for b in range(ranks.world, 4 * ranks.world + batch_size, ranks.world) if b >= batch_size][:1]
        raise EdgeferError(None, f"--batch-size {batch_size} does not split over {ranks.world} processes "
                                 f"(the batch is global; each process takes batch/{ranks.world})",
                           f"pass --batch-size {fits[0]} (a multiple of {ranks.world}), or another process count")


def stream_seed(*parts: int) -> int:
    """A 32-bit seed for one random stream, e.g. (seed, epoch, rank): independent across parts."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def pad(order, world: int):
    """DistributedSampler's padding: wrap the order's head onto its end up to a multiple of world
    (a NumPy array, or a tensor on its device)."""
    short = -len(order) % world
    if not short:
        return order
    wrap = np.arange(len(order) + short) % len(order)
    return order[wrap if isinstance(order, np.ndarray) else torch.from_numpy(wrap).to(order.device)]


def rank_batch(order, step: int, batch_size: int, ranks: Ranks):
    """This rank's part of global batch `step` of a padded order: every world-th item."""
    return order[step * batch_size:(step + 1) * batch_size][ranks.rank::ranks.world]


def prepare_model(model: nn.Module, ranks: Ranks, device: torch.device, sync_bn: bool) -> nn.Module:
    """SyncBatchNorm where it exists (CUDA) and is wanted; before the optimiser sees the parameters."""
    if ranks.world > 1 and device.type == "cuda" and sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def wrap(model: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """DistributedDataParallel (gradients averaged over ranks in backward), or the model itself."""
    if ranks.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_sum(*tensors: torch.Tensor) -> None:
    """In place: each tensor becomes its sum over ranks (no-op for one process)."""
    if dist.is_initialized():
        for t in tensors:
            dist.all_reduce(t)


def agree(value: float) -> float:
    """Rank 0's value on every rank: decisions taken from a local clock must not differ."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64,
                     device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(t, 0)
    return float(t.item())


def sync_buffers(module: nn.Module) -> None:
    """BatchNorm running statistics (and every other buffer) from rank 0."""
    if dist.is_initialized():
        for b in module.buffers():
            dist.broadcast(b, 0)


def gather_rows(part: np.ndarray, ranks: Ranks) -> np.ndarray:
    """Rows scored on each rank (rank r: rows r, r+world, ...) back in their original order, on every rank."""
    if ranks.world == 1:
        return part
    parts: list = [None] * ranks.world
    dist.all_gather_object(parts, part)
    full = np.empty((sum(len(p) for p in parts), *part.shape[1:]), part.dtype)
    for r, p in enumerate(parts):
        full[r::ranks.world] = p
    return full
