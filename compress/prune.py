"""Structured channel pruning (torch-pruning) of a clip model's per-frame encoder.

Channels are removed for real (smaller convolutions), so the pruned model is smaller and
faster in every runtime, unlike unstructured magnitude pruning: zeroed weights in dense
kernels save nothing in ONNX Runtime, XNNPACK or TensorRT here, so we do not offer it.
The encoder's output width is kept: it is the recurrent layer's input, and torch-pruning's
dependency graph does not trace nn.GRU (its LSTM support does not cover GRU gates). So
the channel group that ends the encoder is left whole and every other group is pruned.
"""
from __future__ import annotations

import torch
from torch import nn

from edgefer.runtime.errors import EdgeferError


def output_group(encoder: nn.Module, out_dim: int) -> list[nn.Module]:
    """Layers whose output channels are the encoder's output features."""
    return [m for m in encoder.modules()
            if (isinstance(m, nn.Conv2d) and m.groups == 1 and m.out_channels == out_dim)
            or (isinstance(m, nn.Linear) and m.out_features == out_dim)]


def prune_encoder(model: nn.Module, ratio: float, size: int, round_to: int = 8) -> nn.Module:
    import torch_pruning as tp
    if not 0 < ratio < 1:
        raise EdgeferError(None, f"--prune {ratio} is not a fraction", "pass a ratio between 0 and 1, e.g. --prune 0.5")
    if getattr(model, "uses_previous", False):
        raise EdgeferError(None, "pruning supports encoders of one frame; this model's encoder also reads the previous frame",
                           "compress it without --prune")
    enc = model.encoder
    example = torch.randn(1, 1, size, size)
    with torch.no_grad():
        out_dim = enc(example).shape[-1]
    pruner = tp.pruner.MetaPruner(enc, example, importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=ratio, ignored_layers=output_group(enc, out_dim), round_to=round_to)
    pruner.step()
    with torch.no_grad():
        if enc(example).shape[-1] != out_dim:
            raise EdgeferError(None, "pruning changed the encoder's output width", "prune with a smaller ratio")
    model.pruned = True
    return model
