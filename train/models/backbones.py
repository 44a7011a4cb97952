"""DenseNet121, VGG16 and Xception feature extractors for 1-channel faces, written out here.

torchvision does not import beside our pinned torch and no hub may be reached, so the
three backbones of paper 003 are defined in the standard layer configurations (Huang et
al. 2017; Simonyan & Zisserman 2015; Chollet 2017) and trained from scratch, or loaded
from a state-dict file the user provides (`--init-weights`).
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import conv_bn_relu


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int = 4):
        super().__init__()
        self.f = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, bn_size * growth, 1, bias=False),
                               nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True),
                               nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.f(x)], 1)


def densenet121(growth: int = 32, blocks: tuple[int, ...] = (6, 12, 24, 16), init: int = 64) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = [nn.Conv2d(1, init, 7, 2, 3, bias=False), nn.BatchNorm2d(init), nn.ReLU(inplace=True),
                               nn.MaxPool2d(3, 2, 1)]
    c = init
    for i, n in enumerate(blocks):
        for _ in range(n):
            layers.append(_DenseLayer(c, growth))
            c += growth
        if i < len(blocks) - 1:
            layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, ceil_mode=True)]
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers), c


def vgg16() -> tuple[nn.Module, int]:
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers, c = [], 1
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        else:
            layers.append(conv_bn_relu(c, v, 3))
            c = v
    return nn.Sequential(*layers), c


class _SepConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, relu_first: bool = True):
        super().__init__(*([nn.ReLU(inplace=False)] if relu_first else []),
                         nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False),
                         nn.BatchNorm2d(cout))


class _XBlock(nn.Module):
    def __init__(self, cin: int, cout: int, reps: int, stride: int, relu_first: bool = True, grow_first: bool = True):
        super().__init__()
        mids = [cout if grow_first else cin] * reps
        chans = [cin] + mids[:-1] + [cout]
        seps = [_SepConv(chans[i], chans[i + 1], relu_first or i > 0) for i in range(reps)]
        self.body = nn.Sequential(*seps, *([nn.MaxPool2d(3, stride, 1)] if stride > 1 else []))
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride > 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def xception() -> tuple[nn.Module, int]:
    """Entry flow (stride 2 stem, blocks 128/256/728), middle flow (8 x 728), exit flow (1024, 1536, 2048)."""
    layers: list[nn.Module] = [conv_bn_relu(1, 32, 3, 2), conv_bn_relu(32, 64, 3),
                               _XBlock(64, 128, 2, 2, relu_first=False), _XBlock(128, 256, 2, 2), _XBlock(256, 728, 2, 2)]
    layers += [_XBlock(728, 728, 3, 1) for _ in range(8)]
    layers += [_XBlock(728, 1024, 2, 2, grow_first=False), _SepConv(1024, 1536, relu_first=False), nn.ReLU(inplace=True),
               _SepConv(1536, 2048, relu_first=False), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers), 2048
