"""Int8-aware fine-tuning: train through the weight rounding the int8 exporters will apply.

`add_weight_fake_quant` puts a parametrization on every conv / linear weight that rounds it
to the int8 grid in the forward pass with a straight-through gradient; `remove_weight_fake_quant`
bakes the rounded weights in, so a checkpoint holds plain tensors already on that grid and the
shipped int8 artifacts answer as the fp32 model does.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from edgefer.runtime.errors import EdgeferError

SCHEMES = ("per-channel", "mixed")


class _Int8Weights(nn.Module):
    """Symmetric int8 rounding (scale = max |w| / 127) with a straight-through gradient, on the
    grid ONNX Runtime's and LiteRT's weight quantizers use, so training through it leaves the
    weights robust to that rounding. Exporters fold a following BatchNorm into the conv
    first; per-channel rounding does not care (folding scales each channel), per-tensor
    rounding does, so a per-tensor conv is rounded as folded (w * gamma / sqrt(var + eps))."""

    def __init__(self, per_tensor: bool = False, bn: nn.BatchNorm2d | None = None):
        super().__init__()
        self.per_tensor = per_tensor
        self._bn = [bn]          # a list, so the BatchNorm is not registered (twice) as a submodule

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        bn = self._bn[0]
        fold = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().view(-1, *[1] * (w.ndim - 1)) if bn is not None \
            else torch.ones(1, device=w.device)
        wf = w * fold
        amax = wf.detach().abs().amax() if self.per_tensor else wf.detach().abs().flatten(1).amax(1).view(-1, *[1] * (w.ndim - 1))
        scale = amax.clamp_min(1e-12) / 127
        q = (wf / scale).round().clamp(-127, 127) * scale / fold
        return w + (q - w).detach()


def add_weight_fake_quant(model: nn.Module, scheme: str = "per-channel") -> nn.Module:
    """scheme: "per-channel" everywhere (ONNX Runtime's int8), or "mixed" (our TFLite recipe:
    per-tensor for ordinary and pointwise convs, per-channel for depthwise convs and linear layers)."""
    from torch.nn.utils import parametrize
    if scheme not in SCHEMES:
        raise EdgeferError(None, f"unknown weight fake-quant scheme '{scheme}'", f"use one of {list(SCHEMES)}")
    mods = list(model.modules())
    for i, m in enumerate(mods):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            per_tensor = scheme == "mixed" and isinstance(m, nn.Conv2d) and m.groups == 1
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            bn = nxt if isinstance(nxt, nn.BatchNorm2d) and nxt.num_features == m.weight.shape[0] else None
            parametrize.register_parametrization(m, "weight", _Int8Weights(per_tensor, bn if per_tensor else None))
    return model


def remove_weight_fake_quant(model: nn.Module) -> nn.Module:
    """Bake the rounded weights in: the checkpoint holds plain tensors already on the int8 grid."""
    from torch.nn.utils import parametrize
    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return model


def baked_copy(model: nn.Module) -> nn.Module:
    """A copy with the rounded weights as plain parameters, while `model` trains on through its
    rounding. (torch's remove_parametrizations on a deep copy would delete the weight property
    from the parametrized class the copy shares with the original.)"""
    from torch.nn.utils import parametrize
    clone = copy.deepcopy(model)
    for m in clone.modules():
        if parametrize.is_parametrized(m, "weight"):
            with torch.no_grad():
                w = m.weight.clone()
            delattr(m, "parametrizations")
            m.__class__ = m.__class__.__bases__[0]        # this instance only
            m.weight = nn.Parameter(w)
    return clone
