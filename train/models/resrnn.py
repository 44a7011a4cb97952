"""Deep residual recurrent fusion nets (papers 000 and 001): resrnn-bilstm / -lstm / -gru.

DSN (spatial): conv-BN-ReLU + max-pool, residual blocks, per frame. DTN (temporal): a
residual conv stream over the frame and its change from the previous frame (two input
channels: x_t and x_t - x_{t-1}), so it sees motion and still works for T = 1. A fusion
layer joins both per time step; then the recurrent layer, additive attention over time,
FC + dropout 0.5 and the class logits (softmax is in the loss).

Hyper-parameters "case I" / "case II" are the paper's Table 2: DTN 64 kernels of 4x4 /
128 of 5x5, DSN 32 / 128 filters, recurrent units 100 / 228, batch 32 / 64.
"""
from __future__ import annotations

import torch
from torch import nn

from . import register
from .blocks import ResidualBlock
from .clip import ClipModel, Recurrent

CASES = {
    "case-I": {"dtn_filters": 64, "dtn_kernel": 4, "dsn_filters": 32, "units": 100, "batch_size": 32},
    "case-II": {"dtn_filters": 128, "dtn_kernel": 5, "dsn_filters": 128, "units": 228, "batch_size": 64},
}


def _stream(cin: int, filters: int, kernel: int) -> nn.Sequential:
    # explicit (asymmetric for even kernels) "same" padding: exports cleanly, unlike padding="same"
    pad = nn.ZeroPad2d(((kernel - 1) // 2, kernel // 2, (kernel - 1) // 2, kernel // 2))
    stem = nn.Sequential(pad, nn.Conv2d(cin, filters, kernel, bias=False), nn.BatchNorm2d(filters),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))
    return nn.Sequential(stem, ResidualBlock(filters), nn.MaxPool2d(2), ResidualBlock(filters),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


class FusionEncoder(nn.Module):
    def __init__(self, dsn_filters: int, dtn_filters: int, dtn_kernel: int, fused: int):
        super().__init__()
        self.dsn = _stream(1, dsn_filters, 3)
        self.dtn = _stream(2, dtn_filters, dtn_kernel)
        self.fusion = nn.Sequential(nn.Linear(dsn_filters + dtn_filters, fused), nn.ReLU(inplace=True))

    def forward(self, frames: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        motion = torch.cat([frames, frames - previous], 1)
        return self.fusion(torch.cat([self.dsn(frames), self.dtn(motion)], 1))


def _resrnn(kind: str, num_classes: int, dtn_filters: int, dtn_kernel: int, dsn_filters: int, units: int,
            fc: int = 128, dropout: float = 0.5, **_: object) -> ClipModel:
    fused = dsn_filters + dtn_filters
    temporal = Recurrent(kind, fused, [units], attention=True)
    head = nn.Sequential(nn.Linear(temporal.out_dim, fc), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(fc, num_classes))
    return ClipModel(FusionEncoder(dsn_filters, dtn_filters, dtn_kernel, fused), temporal, head, uses_previous=True)


@register("resrnn-bilstm", input_size=100, streaming=False, presets=CASES, **CASES["case-I"],
          help="residual DSN+DTN fusion + BiLSTM + attention (sliding windows only: bidirectional)")
def resrnn_bilstm(num_classes: int, **kw) -> nn.Module:
    return _resrnn("bilstm", num_classes, **kw)


@register("resrnn-lstm", input_size=100, streaming=True, presets=CASES, **CASES["case-I"],
          help="residual DSN+DTN fusion + LSTM + attention")
def resrnn_lstm(num_classes: int, **kw) -> nn.Module:
    return _resrnn("lstm", num_classes, **kw)


@register("resrnn-gru", input_size=100, streaming=True, presets=CASES, **CASES["case-I"],
          help="residual DSN+DTN fusion + GRU + attention")
def resrnn_gru(num_classes: int, **kw) -> nn.Module:
    return _resrnn("gru", num_classes, **kw)
