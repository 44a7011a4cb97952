"""cnn4 (paper 004): four conv + ReLU + max-pool layers, one dense layer, dropout 0.2.

The paper tunes it by grid search (Adam 1e-3, batch 16, 100 epochs) on FER2013's
4-class subset (angry, happy, neutral, sad) downsampled to equal class sizes; filters,
kernel size and dense width are the searched knobs (`edgefer search --model cnn4`). The
defaults are the grid's centre. Paper 004 also adds BatchNorm after the convolutions in
its improved model, which we keep.
"""
from __future__ import annotations

from torch import nn

from . import register
from .blocks import conv_bn_relu
from .clip import ClipModel, FrameMean

GRID = {"filters": [32, 64], "kernel": [3, 5], "dense": [128, 256], "dropout": [0.2], "lr": [1e-3], "batch_size": [16]}


@register("cnn4", input_size=48, streaming=True, help="paper 004 4-conv CNN (4-class subset, grid-searched)",
          grid=GRID)
def cnn4(num_classes: int, filters: int = 32, kernel: int = 3, dense: int = 256, dropout: float = 0.2) -> nn.Module:
    widths = [filters, filters * 2, filters * 4, filters * 8]
    layers, cin = [], 1
    for w in widths:
        layers += [conv_bn_relu(cin, w, kernel), nn.MaxPool2d(2)]
        cin = w
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin * 3 * 3, dense), nn.ReLU(inplace=True),
                        nn.Dropout(dropout), nn.Linear(dense, num_classes))
    return ClipModel(net, FrameMean(num_classes), nn.Identity())
