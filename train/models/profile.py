"""Parameters and FLOPs per frame, measured rather than quoted."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def mflops_per_frame(model: nn.Module, size: int) -> float:
    """FLOPs of one frame through the model (T = 1, batch 1), multiply-add = 2 FLOPs."""
    was = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, 1, 1, size, size))
    model.train(was)
    return counter.get_total_flops() / 1e6
