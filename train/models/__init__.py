"""Model registry: name -> builder, defaults and traits, as timm's create_model does.

Every model takes clips shaped (batch, T, 1, H, W) for any T >= 1 and returns class
logits (batch, classes). The CLI's --model choices and the parametrised tests come from
REGISTRY, so adding a model is adding one decorated builder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from edgefer.runtime.errors import EdgeferError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[..., nn.Module]       # build(num_classes, **kwargs)
    input_size: int                       # side of the square grayscale input the paper used
    streaming: bool                       # unidirectional: can run frame by frame with carried state
    help: str
    defaults: dict[str, Any] = field(default_factory=dict)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)   # named hyper-parameter sets
    grid: dict[str, list[Any]] = field(default_factory=dict)           # the paper's search grid, if any


REGISTRY: dict[str, ModelEntry] = {}
TRAINING_KEYS = {"batch_size", "lr"}   # preset keys that configure training, not the constructor


def register(name: str, input_size: int, streaming: bool, help: str, presets: dict | None = None,
             grid: dict | None = None, **defaults: Any):
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        REGISTRY[name] = ModelEntry(name, fn, input_size, streaming, help, defaults, presets or {}, grid or {})
        return fn
    return deco


def entry(name: str) -> ModelEntry:
    if name not in REGISTRY:
        raise EdgeferError(None, f"unknown model '{name}'", f"use one of {sorted(REGISTRY)}")
    return REGISTRY[name]


def constructor_kwargs(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults merged with overrides, minus training-only keys: what the checkpoint stores."""
    merged = {**entry(name).defaults, **(overrides or {})}
    return {k: v for k, v in merged.items() if k not in TRAINING_KEYS}


def create(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    return entry(name).build(num_classes, **constructor_kwargs(name, kwargs))


from . import backbones_gru, cnn4, cnnlstm, edge, resrnn, tiny  # noqa: E402,F401  (they register themselves)
