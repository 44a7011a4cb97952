"""Optimisers (a row each) and weight averaging.

adam is `edgefer train`'s original (Adam, L2 on every parameter, as the papers); adamw and
sgd (Nesterov, momentum 0.9) decay conv / linear weights only, never BatchNorm or biases.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from edgefer.runtime.errors import EdgeferError

from .config import TrainConfig


def _decay_groups(model: nn.Module, wd: float) -> list[dict]:
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


OPTIMIZERS: dict[str, Callable[[nn.Module, TrainConfig], torch.optim.Optimizer]] = {
    "adam": lambda m, c: torch.optim.Adam(m.parameters(), lr=c.lr, weight_decay=c.weight_decay),
    "adamw": lambda m, c: torch.optim.AdamW(_decay_groups(m, c.weight_decay), lr=c.lr),
    "sgd": lambda m, c: torch.optim.SGD(_decay_groups(m, c.weight_decay), lr=c.lr, momentum=0.9, nesterov=True),
}


def optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer not in OPTIMIZERS:
        raise EdgeferError(None, f"unknown optimizer '{cfg.optimizer}'", f"use one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[cfg.optimizer](model, cfg)


def averaged(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """Exponential moving average of the weights and buffers, updated after every step (None when decay is 0)."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
