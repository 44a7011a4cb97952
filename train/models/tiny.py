"""`tiny`: a two-conv smoke-test model, for tests and pipeline checks, not for accuracy."""
from __future__ import annotations

from torch import nn

from . import register
from .clip import ClipModel, FrameMean


@register("tiny", input_size=48, streaming=True, help="two-conv smoke-test model (tests only)")
def tiny(num_classes: int, width: int = 8) -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))
    return ClipModel(net, FrameMean(num_classes), nn.Identity())
