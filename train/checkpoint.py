"""Self-describing checkpoints: architecture, constructor arguments, weights and metadata.

Like nanoGPT's, a checkpoint rebuilds its model from the file alone; unlike a pickled
module it loads with `weights_only=True`, so opening a stranger's file runs no code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata

from . import models

FORMAT = "edgefer-checkpoint"
VERSION = 1


def save(path: Path, model: nn.Module, architecture: str, kwargs: dict[str, Any], meta: ModelMetadata,
         extra: dict[str, Any] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "architecture": architecture, "kwargs": kwargs,
               "state_dict": model.state_dict(), "metadata": meta.to_dict(), "extra": extra or {},
               "pruned": bool(getattr(model, "pruned", False))}
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(payload, tmp)
        tmp.replace(path)     # never leave a half-written file under the real name
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise EdgeferError(path, f"cannot write checkpoint ({exc.strerror})", "free disk space or choose another --out") from None
    return path


def load_payload(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise EdgeferError(path, "does not exist", "pass a checkpoint written by `edgefer train`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise EdgeferError(path, f"not a readable PyTorch checkpoint ({type(exc).__name__})",
                           "pass a checkpoint written by `edgefer train`") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise EdgeferError(path, "is a PyTorch file but not an edgefer checkpoint",
                           "train with `edgefer train`, which records the architecture and metadata")
    return payload


def load(path: Path) -> tuple[nn.Module, ModelMetadata]:
    return build(load_payload(path), path)


def build(payload: dict[str, Any], path: Path) -> tuple[nn.Module, ModelMetadata]:
    """The model and metadata of a loaded payload (`path` names it in errors)."""
    meta = ModelMetadata.from_dict(payload["metadata"], path, legacy_preprocessing=True)
    model = models.create(payload["architecture"], len(meta.labels), **payload["kwargs"])
    if payload.get("pruned"):
        fit_shapes(model, payload["state_dict"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise EdgeferError(path, f"weights do not fit architecture '{payload['architecture']}' ({first[:120]})",
                           "the file was saved for a different model or label set") from None
    return model.eval(), meta


def fit_shapes(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Shrink layers to a channel-pruned checkpoint's shapes, so pruned models rebuild from the
    registry like any other (the constructor knows the topology, the weights know the widths)."""
    for name, m in model.named_modules():
        w = state.get(f"{name}.weight" if name else "weight")
        if isinstance(m, nn.Conv2d) and w is not None and tuple(w.shape) != tuple(m.weight.shape):
            depthwise = m.groups == m.in_channels and m.groups > 1
            m.out_channels = w.shape[0]
            m.groups = w.shape[0] if depthwise else m.groups
            m.in_channels = w.shape[1] * m.groups
            m.weight = nn.Parameter(torch.empty_like(w))
            if m.bias is not None:
                m.bias = nn.Parameter(torch.empty(w.shape[0]))
        elif isinstance(m, nn.BatchNorm2d) and w is not None and w.shape[0] != m.num_features:
            n = w.shape[0]
            m.num_features = n
            m.weight, m.bias = nn.Parameter(torch.empty(n)), nn.Parameter(torch.empty(n))
            m.running_mean, m.running_var = torch.zeros(n), torch.ones(n)
        elif isinstance(m, nn.Linear) and w is not None and tuple(w.shape) != tuple(m.weight.shape):
            m.out_features, m.in_features = w.shape
            m.weight = nn.Parameter(torch.empty_like(w))
            if m.bias is not None:
                m.bias = nn.Parameter(torch.empty(w.shape[0]))
        elif isinstance(m, (nn.GRU, nn.LSTM)):
            wih = state.get(f"{name}.weight_ih_l0")
            if wih is not None and wih.shape[1] != m.input_size:
                m.input_size = wih.shape[1]
                m.weight_ih_l0 = nn.Parameter(torch.empty_like(wih))
                m._init_flat_weights()
    model.pruned = True
    return model
