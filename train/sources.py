"""Batch sources (a row each): where training batches come from, and how validation is scored.

- clips: the CPU path. Each image is augmented on its own (albumentations: the papers'
  augmentation), still images become T jittered views and CK+ items the T real frames ending
  at them (`--clip-length`), the training indices may be class-balanced (`--balance`);
  batches are normalised on the CPU and copied to the device. Keeps the last short batch.
- device: the accelerator path. The decoded training and validation pixels live on the
  device; each batch is augmented there in one warp (`device_augment.py`) from one seeded
  generator. Single frames only. Drops the last short batch.
Both yield `(x, y, raw)`: normalised model input (B, T, 1, S, S), labels, and the same clips
in [0, 1] before normalisation (for teachers, which normalise as they were trained; only
built when asked for). Under DDP (distributed.py) `epoch_order` is the same global order on
every rank and `batch` returns this rank's share of each global batch; validation is scored
in shares too. Every random stream restarts each epoch from (seed, epoch, rank), so a run
resumes from last.pt alone, at any process count.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.preprocess import normalize

from .balance import balance
from .batches import ClipSampler, eval_batches, infer
from .camera_augment import camera, framing
from .config import TrainConfig, camera_families
from .device_augment import Augment, augment
from .distributed import Ranks, pad, rank_batch, stream_seed
from .pack import SplitData

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def training_targets(data: SplitData, cfg: TrainConfig) -> np.ndarray:
    """What each item trains towards: its label index (N,) int64, or where the dataset has
    crowd votes and `vote_targets` is on, the (N, C) float32 vote shares, with
    `alt_label_weight` of the other label set's one-hot mixed in where an item has one."""
    if data.votes is None or not cfg.vote_targets:
        if cfg.alt_label_weight and data.alt_y is not None:
            raise EdgeferError(None, "--alt-label-weight mixes into vote targets", "leave --vote-targets on")
        return data.y
    t = data.votes.astype(np.float32).copy()
    if cfg.alt_label_weight and data.alt_y is not None:
        has = data.alt_y >= 0
        onehot = np.zeros_like(t)
        onehot[np.flatnonzero(has), data.alt_y[has]] = 1
        w = cfg.alt_label_weight
        t[has] = (1 - w) * t[has] + w * onehot[has]
    return t


class ClipSource:
    def __init__(self, data: SplitData, cfg: TrainConfig, mean: float, std: float, device: torch.device,
                 ranks: Ranks = Ranks()):
        self.data, self.cfg, self.mean, self.std, self.device, self.ranks = data, cfg, mean, std, device, ranks
        self.sample = balance(data.train_idx, [data.labels[i] for i in data.y[data.train_idx]], cfg.balance, cfg.seed)
        self.sampler = ClipSampler(data.items, data.pixels, mean, std, cfg.clip_length, cfg.augment, cfg.seed)
        self.targets = training_targets(data, cfg)
        if camera_families(cfg.camera):
            raise EdgeferError(None, "--camera augmentation runs on the device batch source",
                               "pass --batches device (or --recipe resident), or --camera none")
        self.samples = len(self.sample)                                  # per epoch
        self.steps_per_epoch = math.ceil(self.samples / cfg.batch_size)    # padding never adds a step

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The epoch's global order (the same on every rank), padded to a multiple of the process count."""
        self.sampler.reseed(stream_seed(self.cfg.seed, epoch, self.ranks.rank + 1))
        order = np.random.default_rng(stream_seed(self.cfg.seed, epoch)).permutation(self.sample)
        return pad(order, self.ranks.world)

    def batch(self, order: np.ndarray, step: int, raw: bool = False) -> Batch:
        idx = rank_batch(order, step, self.cfg.batch_size, self.ranks)
        clips = self.sampler.clips(idx)                                  # (B, T, S, S) uint8
        x = torch.from_numpy(normalize(clips, self.mean, self.std)[:, :, None]).to(self.device)
        y = torch.from_numpy(self.targets[idx]).to(self.device)
        r = torch.from_numpy(clips[:, :, None]).to(self.device).float() / 255 if raw else None
        return x, y, r

    def trial_batch(self) -> torch.Tensor:
        first = self.data.pixels[self.data.train_idx[:self.cfg.batch_size]]
        return torch.from_numpy(normalize(first, self.mean, self.std))[:, None, None].to(self.device)

    def val_logits(self, net: nn.Module, amp: bool, flip: bool = False, ranks: Ranks = Ranks()) -> np.ndarray:
        """Un-augmented single frames, exactly what the device's preprocessing gives (fp32); `ranks`:
        only this rank's rows of the validation split (rank r: rows r, r + world, ...)."""
        idx = self.data.val_idx[ranks.rank::ranks.world]
        batches = eval_batches(self.data.pixels, idx, self.mean, self.std, 256)
        return infer(net, (x.flip(-1) if flip else x for x in batches), self.device)


class DeviceSource:
    def __init__(self, data: SplitData, cfg: TrainConfig, mean: float, std: float, device: torch.device,
                 ranks: Ranks = Ranks()):
        if cfg.clip_length != 1:
            raise EdgeferError(None, "--batches device trains on single frames", "use --batches clips for --clip-length > 1")
        self.cfg, self.mean, self.std, self.device, self.ranks = cfg, mean, std, device, ranks
        tr, va = data.train_idx, data.val_idx
        self.x, self.y = torch.from_numpy(data.pixels[tr]).to(device), torch.from_numpy(training_targets(data, cfg)[tr]).to(device)
        self.xv = torch.from_numpy(data.pixels[va]).to(device)
        positions = balance(np.arange(len(tr)), [data.labels[i] for i in data.y[tr]], cfg.balance, cfg.seed)
        self.sample = None if cfg.balance == "none" else torch.from_numpy(positions).to(device)
        self.n = self.samples = len(positions)
        self.steps_per_epoch = max(1, self.n // cfg.batch_size)          # every global batch is full
        self.order_g = torch.Generator(device=device)
        self.aug_g = torch.Generator(device=device)
        self.families = camera_families(cfg.camera)
        self.aug = framing(Augment()) if "framing" in self.families else Augment()

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The epoch's global order (the same on every rank); this rank's augmentation stream restarts."""
        self.order_g.manual_seed(stream_seed(self.cfg.seed, epoch))
        self.aug_g.manual_seed(stream_seed(self.cfg.seed, epoch, self.ranks.rank + 1))
        order = torch.randperm(self.n, device=self.device, generator=self.order_g)
        return order if self.sample is None else self.sample[order]

    def batch(self, order: torch.Tensor, step: int, raw: bool = False) -> Batch:
        idx = rank_batch(order, step, self.cfg.batch_size, self.ranks)
        r = self.x[idx].float()[:, None] / 255                          # (B, 1, S, S) in [0, 1]
        if self.cfg.augment:
            r = camera(augment(r, self.aug, self.aug_g), self.families, self.aug_g)
        x = (r - self.mean) / self.std
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x[:, None], self.y[idx], r[:, None]

    def _normalize(self, x_u8: torch.Tensor) -> torch.Tensor:
        """(B, S, S) uint8 -> (B, 1, S, S) float, as the metadata tells the device to normalise."""
        return (x_u8.float()[:, None] / 255 - self.mean) / self.std

    def trial_batch(self) -> torch.Tensor:
        return self._normalize(self.x[:self.cfg.batch_size])[:, None]

    @torch.no_grad()
    def val_logits(self, net: nn.Module, amp: bool, flip: bool = False, ranks: Ranks = Ranks()) -> np.ndarray:
        net.eval()
        out = []
        xv = self.xv[ranks.rank::ranks.world]
        for i in range(0, len(xv), 1024):
            x = self._normalize(xv[i:i + 1024])
            if flip:
                x = x.flip(-1)
            with torch.autocast(x.device.type, dtype=torch.float16, enabled=amp):
                out.append(net(x[:, None]).float())
        return torch.cat(out).cpu().numpy()


BATCH_SOURCES: dict[str, Callable[..., ClipSource | DeviceSource]] = {
    "clips": ClipSource,
    "device": DeviceSource,
}


def batch_source(data: SplitData, cfg: TrainConfig, mean: float, std: float, device: torch.device,
                 ranks: Ranks = Ranks()):
    if cfg.batches not in BATCH_SOURCES:
        raise EdgeferError(None, f"unknown batch source '{cfg.batches}'", f"use one of {sorted(BATCH_SOURCES)}")
    return BATCH_SOURCES[cfg.batches](data, cfg, mean, std, device, ranks)
