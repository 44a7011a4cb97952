"""Batched augmentation on the accelerator: one warp for the whole batch, one draw per image.

The per-image CPU pipeline (albumentations, `augment.py`) is what limits a GPU run, not the
model; here a batch already on the device is rotated, scaled, shifted and flipped by one
`affine_grid` / `grid_sample` call, then jittered in contrast and brightness and partly
erased (random erasing, Zhong et al.), all from one seeded generator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass
class Augment:
    rotate: float = 15.0          # degrees, uniform +-
    scale: tuple[float, float] = (0.85, 1.15)
    shift: float = 0.10           # fraction of the side, uniform +-
    flip: bool = True
    contrast: float = 0.3         # x -> (x - m) * U(1 +- c) + m + U(+- brightness)
    brightness: float = 0.1
    erase_p: float = 0.5          # random erasing: one rectangle of 2-20% of the area
    erase_area: tuple[float, float] = (0.02, 0.2)
    aspect: float = 0.0           # box aspect jitter: width and height scaled apart by U(1 +- aspect)


def augment(x: torch.Tensor, a: Augment, g: torch.Generator) -> torch.Tensor:
    """(B, 1, S, S) float in [0, 1] -> augmented, same shape; one random draw per image."""
    b, dev = x.shape[0], x.device
    u = lambda lo, hi: torch.rand(b, device=dev, generator=g) * (hi - lo) + lo  # noqa: E731
    ang = u(-a.rotate, a.rotate) * math.pi / 180
    s = u(*a.scale)
    asp = u(1 - a.aspect, 1 + a.aspect) if a.aspect else 1.0
    sx = s * asp * (torch.where(torch.rand(b, device=dev, generator=g) < 0.5, -1.0, 1.0) if a.flip else 1.0)
    cos, sin = torch.cos(ang), torch.sin(ang)
    # affine_grid maps output coords to input coords: zooming in by s means sampling a 1/s region
    theta = torch.stack([torch.stack([cos / sx, -sin / s, u(-a.shift, a.shift) * 2], 1),
                         torch.stack([sin / sx, cos / s, u(-a.shift, a.shift) * 2], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    m = x.mean((1, 2, 3), keepdim=True)
    x = ((x - m) * u(1 - a.contrast, 1 + a.contrast).view(b, 1, 1, 1) + m
         + u(-a.brightness, a.brightness).view(b, 1, 1, 1)).clamp(0, 1)
    if a.erase_p > 0:
        side = x.shape[-1]
        area = u(*a.erase_area) * side * side
        ratio = torch.exp(u(math.log(0.3), math.log(3.3)))
        h = (area * ratio).sqrt().clamp(1, side)
        w = (area / ratio).sqrt().clamp(1, side)
        top, left = u(0, 1) * (side - h), u(0, 1) * (side - w)
        r = torch.arange(side, device=dev, dtype=x.dtype)
        rows = (r >= top[:, None]) & (r < (top + h)[:, None])
        cols = (r >= left[:, None]) & (r < (left + w)[:, None])
        box = (rows[:, :, None] & cols[:, None, :]) & (torch.rand(b, device=dev, generator=g) < a.erase_p)[:, None, None]
        x = torch.where(box[:, None], torch.rand(x.shape, device=dev, generator=g), x)
    return x
