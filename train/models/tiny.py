"""`tiny`: a two-conv smoke-test model, for tests and pipeline checks, not for accuracy."""
from __future__ import annotations

import torch
from torch import nn

from . import register


class TinyCNN(nn.Module):
    """Per-frame CNN whose logits are averaged over the clip."""

    def __init__(self, num_classes: int, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        b, t = clips.shape[:2]
        logits = self.head(self.features(clips.flatten(0, 1)))
        return logits.view(b, t, -1).mean(1)


@register("tiny", input_size=48, streaming=False, help="two-conv smoke-test model (tests only)")
def tiny(num_classes: int, width: int = 8) -> nn.Module:
    return TinyCNN(num_classes, width)
