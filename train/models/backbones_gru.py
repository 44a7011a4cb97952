"""Paper 003's hybrids: DenseNet121 / VGG16 / Xception features + GRU.

- densenet121-gru: DenseNet121 -> global pooling -> GRU 256 -> GRU 128 over the frames ->
  dense 256 ReLU -> classes.
- vgg16-gru: VGG16 features -> global average pooling -> GRU over the frames -> classes.
- xception-gru: Xception -> max pooling -> flatten -> reshape to a sequence of spatial
  positions -> GRU -> dense ReLU + dropout -> classes, per frame; clips average frames.

The paper used single images (T = 1); with clips the GRUs of the first two run over time.
"""
from __future__ import annotations

import torch
from torch import nn

from . import register
from .backbones import densenet121, vgg16, xception
from .clip import ClipModel, FrameMean, Recurrent


class Pooled(nn.Module):
    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk, self.pool = trunk, nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk(x)).flatten(1)


@register("densenet121-gru", input_size=48, streaming=True, help="paper 003 DenseNet121 + GRU 256/128 + dense 256")
def densenet121_gru(num_classes: int, dense: int = 256) -> nn.Module:
    trunk, c = densenet121()
    temporal = Recurrent("gru", c, [256, 128], attention=False)
    head = nn.Sequential(nn.Linear(128, dense), nn.ReLU(inplace=True), nn.Linear(dense, num_classes))
    return ClipModel(Pooled(trunk), temporal, head)


@register("vgg16-gru", input_size=48, streaming=True, help="paper 003 VGG16 + global average pooling + GRU")
def vgg16_gru(num_classes: int, units: int = 128) -> nn.Module:
    trunk, c = vgg16()
    return ClipModel(Pooled(trunk), Recurrent("gru", c, [units], attention=False), nn.Linear(units, num_classes))


class XceptionSeqGRU(nn.Module):
    def __init__(self, num_classes: int, units: int, dense: int, dropout: float):
        super().__init__()
        self.trunk, c = xception()
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.gru = nn.GRU(c, units, batch_first=True)
        self.head = nn.Sequential(nn.Linear(units, dense), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(dense, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.pool(self.trunk(x))                      # (N, C, h, w)
        seq = f.flatten(2).transpose(1, 2)                # spatial positions as a sequence (N, h*w, C)
        out, _ = self.gru(seq)
        return self.head(out[:, -1])


@register("xception-gru", input_size=48, streaming=True, help="paper 003 Xception + max pool + spatial GRU + dense")
def xception_gru(num_classes: int, units: int = 128, dense: int = 256, dropout: float = 0.5) -> nn.Module:
    return ClipModel(XceptionSeqGRU(num_classes, units, dense, dropout), FrameMean(num_classes), nn.Identity())
