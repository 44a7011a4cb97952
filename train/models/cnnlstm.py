"""The CNN and CNN+LSTM models of paper 002, layer for layer from its Tables 2-4.

Each runs on one 48x48 frame (the LSTMs run over reshaped feature maps, not over time);
a clip's logits are the mean of its frames'. Parameter counts equal the tables when
counted as Keras does (blocks.keras_param_count): 117,031 / 303,495 / 457,863.

Deviations, all where the paper contradicts itself: the prose of model 1 describes model
2's first layers (32 then 64 filters, dense 200, dropout 0.6); we follow Table 2 (16, 32,
dense 32) and use dropout 0.5 there, which the table leaves unstated. Tables 3-4 list BN
after every conv; ReLU follows each BN (prose). Keras flattens/reshapes channels-last, so
feature maps are permuted to NHWC before every reshape, as the tables' shapes imply.
"""
from __future__ import annotations

import torch
from torch import nn

from . import register
from .blocks import SingleBiasLSTM, conv_bn_relu
from .clip import ClipModel, FrameMean


def _valid(cin: int, cout: int) -> nn.Sequential:
    return conv_bn_relu(cin, cout, 3, padding=0, bias=True)


def _same(cin: int, cout: int) -> nn.Sequential:
    return conv_bn_relu(cin, cout, 3, padding=1, bias=True)


class CNN1(nn.Module):
    def __init__(self, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(_valid(1, 16), _same(16, 32), nn.MaxPool2d(2), _valid(32, 32), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(10 * 10 * 32, 32), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                        nn.Linear(32, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).permute(0, 2, 3, 1).flatten(1))


def _conv_trunk() -> nn.Sequential:
    """Tables 3-4: conv 32 (valid), 64 (same), pool, 64 (valid), 128 (same), pool, 128 (valid), pool -> 4x4x128."""
    return nn.Sequential(_valid(1, 32), _same(32, 64), nn.MaxPool2d(2), _valid(64, 64), _same(64, 128),
                         nn.MaxPool2d(2), _valid(128, 128), nn.MaxPool2d(2))


class CNNLSTM(nn.Module):
    """conv trunk -> reshape (L1, D1) -> LSTM u1 -> reshape (L2, D2) -> LSTM u2 -> dense 200 -> dropout -> classes."""

    def __init__(self, num_classes: int, seq1: tuple[int, int], u1: int, seq2: tuple[int, int], u2: int,
                 dense: int = 200, dropout: float = 0.6):
        super().__init__()
        self.features, self.seq1, self.seq2 = _conv_trunk(), seq1, seq2
        self.lstm1, self.lstm2 = SingleBiasLSTM(seq1[1], u1), SingleBiasLSTM(seq2[1], u2)
        self.classifier = nn.Sequential(nn.Linear(u2, dense), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                        nn.Linear(dense, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x).permute(0, 2, 3, 1).reshape(x.shape[0], *self.seq1)
        h = self.lstm1(f).reshape(x.shape[0], *self.seq2)
        return self.classifier(self.lstm2(h))


def _per_frame(net: nn.Module, num_classes: int) -> ClipModel:
    return ClipModel(net, FrameMean(num_classes), nn.Identity())


@register("cnn1", input_size=48, streaming=True, help="paper 002 CNN model 1 (Table 2), 117,031 params")
def cnn1(num_classes: int, dropout: float = 0.5) -> nn.Module:
    return _per_frame(CNN1(num_classes, dropout), num_classes)


@register("cnnlstm2", input_size=48, streaming=True, help="paper 002 CNN+LSTM model 2 (Table 3), 303,495 params")
def cnnlstm2(num_classes: int, dropout: float = 0.6) -> nn.Module:
    return _per_frame(CNNLSTM(num_classes, (64, 32), 32, (1, 32), 32, dropout=dropout), num_classes)


@register("cnnlstm3", input_size=48, streaming=True, help="paper 002 CNN+LSTM model 3 (Table 4), 457,863 params")
def cnnlstm3(num_classes: int, dropout: float = 0.6) -> nn.Module:
    return _per_frame(CNNLSTM(num_classes, (16, 128), 128, (2, 64), 64, dropout=dropout), num_classes)
