"""Where a run starts: the device, the model's hyper-parameters, and its first weights.

A model starts fresh, from the matching weights of another checkpoint (`--init`: a
FER2013-trained encoder into a CK+ model with another label set, or a GRU model's encoder
into a frame-mean one), or from a pruned checkpoint with its own shapes; `--prune` then
removes channels (compress/prune.py) before training.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgefer.runtime.errors import EdgeferError

from . import checkpoint, models
from .config import TrainConfig


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgeferError(None, "--device cuda asked for, but no CUDA device is visible", "use --device cpu")
    return torch.device(name)


def resolve_hparams(cfg: TrainConfig) -> tuple[TrainConfig, dict[str, Any]]:
    """Model defaults < preset < explicit --set overrides; presets may also set batch size / lr.
    Returns the config with those applied, and the model's constructor arguments."""
    entry = models.entry(cfg.model)
    if cfg.preset and cfg.preset != "paper" and cfg.preset not in entry.presets:
        raise EdgeferError(None, f"model '{cfg.model}' has no preset '{cfg.preset}'",
                           f"use one of {['paper', *entry.presets]}")
    merged = {**(entry.presets.get(cfg.preset, {}) if cfg.preset else {}), **cfg.model_kwargs}
    cfg = replace(cfg, batch_size=int(merged.get("batch_size", cfg.batch_size)), lr=float(merged.get("lr", cfg.lr)))
    return cfg, models.constructor_kwargs(cfg.model, merged)


def warm_start(model: nn.Module, source: Path, payload: dict[str, Any] | None = None) -> int:
    """Copy every tensor whose name and shape match; the rest keeps its fresh initialisation.
    A tensor of both with another shape is an error unless it belongs to the label head (its
    first dimension is the checkpoint's class count: another label set, or another temporal
    head feeding it): other settings mean another model, and a silent partial start."""
    from .default_model import resolve
    payload = payload or checkpoint.load_payload(resolve(str(source)))
    src, own = payload["state_dict"], model.state_dict()
    n_src = len(payload["metadata"]["labels"])
    clash = [k for k in own if k in src and own[k].shape != src[k].shape
             and src[k].shape[:1] != (n_src,)]
    if clash:
        k = clash[0]
        raise EdgeferError(source, f"is a '{payload['architecture']}' {payload['kwargs']} checkpoint, not this model: "
                                   f"{len(clash)} tensors differ in shape ({k}: {tuple(src[k].shape)} vs {tuple(own[k].shape)})",
                           "pass the same --model and --set as the run that wrote it")
    matched = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise EdgeferError(source, "shares no weights with this model", "warm-start from a checkpoint of the same architecture")
    model.load_state_dict(matched, strict=False)
    return len(matched)


def head_rows_by_label(model: nn.Module, payload: dict[str, Any], labels: list[str]) -> int:
    """Another label set: copy the label head's row (and bias) of every label both share, so a
    7-class FER2013 model warm-starts an 8-class FERPlus one with only contempt's row fresh.
    Returns how many labels were carried over (0 when the head's shapes already matched)."""
    src_labels = list(payload["metadata"]["labels"])
    head = getattr(model, "head", None)
    w, b = payload["state_dict"].get("head.weight"), payload["state_dict"].get("head.bias")
    if src_labels == labels or not isinstance(head, nn.Linear) or w is None or w.shape[1:] != head.weight.shape[1:]:
        return 0
    shared = [(labels.index(lab), i) for i, lab in enumerate(src_labels) if lab in labels]
    with torch.no_grad():
        for dst, src in shared:
            head.weight[dst] = w[src]
            if b is not None and head.bias is not None:
                head.bias[dst] = b[src]
    return len(shared)


def initial_model(cfg: TrainConfig, kwargs: dict[str, Any], labels: list[str], size: int) -> nn.Module:
    """Fresh, warm-started, or a pruned checkpoint as it is; then pruned if --prune."""
    from .default_model import resolve
    if cfg.init is None:
        if cfg.prune:
            raise EdgeferError(None, "--prune needs --init", "prune a trained checkpoint: --init CKPT --prune 0.5")
        return models.create(cfg.model, len(labels), **kwargs)
    source = resolve(str(cfg.init))
    payload = checkpoint.load_payload(source)
    if payload["architecture"] != cfg.model:
        raise EdgeferError(source, f"is a '{payload['architecture']}' checkpoint, not '{cfg.model}'",
                           "pass the same --model as the run that wrote it")
    if payload.get("pruned"):                  # its own (smaller) shapes: the same settings and labels
        if models.constructor_kwargs(cfg.model, payload["kwargs"]) != kwargs:
            raise EdgeferError(source, f"is a pruned '{cfg.model}' {payload['kwargs']} checkpoint, not {kwargs}",
                               "pass the same --set as the run that wrote it")
        model, meta = checkpoint.build(payload, source)
        if meta.labels != labels:
            raise EdgeferError(source, f"labels {meta.labels} differ from the data's {labels}", "use a checkpoint of this dataset")
    else:
        model = models.create(cfg.model, len(labels), **kwargs)
        warm_start(model, source, payload)
        head_rows_by_label(model, payload, labels)
    if cfg.prune:                              # in eval mode: tracing must not move BatchNorm statistics
        from edgefer.compress.prune import prune_encoder
        model = prune_encoder(model.eval(), cfg.prune, size, method=cfg.prune_method)
    return model.train()
