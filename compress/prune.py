"""Structured channel pruning (torch-pruning) of a clip model's per-frame encoder.

Channels are removed for real (smaller convolutions), so the pruned model is smaller and
faster in every runtime, unlike unstructured magnitude pruning: zeroed weights in dense
kernels save nothing in ONNX Runtime, XNNPACK or TensorRT here, so we do not offer it.
The encoder's output width is kept: it is the recurrent layer's input, and torch-pruning's
dependency graph does not trace nn.GRU (its LSTM support does not cover GRU gates). So
the channel group that ends the encoder is left whole and every other group is pruned.

Two ways to spend the ratio (`PRUNE_METHODS`): "uniform" takes the same fraction from every
group by L2 norm; "global" ranks channels of all groups together by LAMP score (Lee et al.,
ICLR 2021: a weight's magnitude relative to the larger ones of its own layer, so the ranks
are comparable across layers) and removes the lowest half of all channels, so cheap wide
layers give up more than the high-resolution early ones. Uniform is the default because it
measured better: on the default's parent (A1) at 0.5 the global ranking starts far ahead
(52.6% vs 38.4% with BatchNorm statistics re-estimated, before any training) but ends behind
after the distillation fine-tune (66.17% vs 66.29%) while costing 27.5 instead of 20.1
MFLOPs per frame (README, "Compression of `default`").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgefer.runtime.errors import EdgeferError


def output_group(encoder: nn.Module, out_dim: int) -> list[nn.Module]:
    """Layers whose output channels are the encoder's output features."""
    return [m for m in encoder.modules()
            if (isinstance(m, nn.Conv2d) and m.groups == 1 and m.out_channels == out_dim)
            or (isinstance(m, nn.Linear) and m.out_features == out_dim)]


@dataclass(frozen=True)
class PruneMethod:
    describe: str              # the report's words, {} = the ratio
    importance: str            # a torch_pruning.importance class, scored with the L2 norm
    global_pruning: bool       # rank channels of all groups together (else each group alone)
    max_ratio: float = 1.0     # cap per group, so a global ranking cannot empty one


PRUNE_METHODS: dict[str, PruneMethod] = {
    "uniform": PruneMethod("torch-pruning L2 magnitude, {:.0%} of the channels of every group", "MagnitudeImportance", False),
    "global": PruneMethod("torch-pruning LAMP score, {:.0%} of all channels ranked across groups", "LAMPImportance", True, 0.9),
}


def check_method(method: str) -> PruneMethod:
    if method not in PRUNE_METHODS:
        raise EdgeferError(None, f"unknown pruning method '{method}'", f"use one of: {', '.join(PRUNE_METHODS)}")
    return PRUNE_METHODS[method]


def prune_encoder(model: nn.Module, ratio: float, size: int, round_to: int = 8, method: str = "uniform") -> nn.Module:
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
    how = check_method(method)
    pruner = tp.pruner.MetaPruner(enc, example, importance=getattr(tp.importance, how.importance)(p=2),
                                  global_pruning=how.global_pruning, max_pruning_ratio=how.max_ratio, pruning_ratio=ratio,
                                  ignored_layers=output_group(enc, out_dim), round_to=round_to)
    before = sum(p.numel() for p in enc.parameters())
    pruner.step()
    if sum(p.numel() for p in enc.parameters()) == before:
        raise EdgeferError(None, f"{method} pruning at {ratio} removed no channels (they go in multiples of {round_to})",
                           "raise --prune, or use --prune-method uniform")
    with torch.no_grad():
        if enc(example).shape[-1] != out_dim:
            raise EdgeferError(None, "pruning changed the encoder's output width", "prune with a smaller ratio")
    model.pruned = True
    return model
