"""Inference backends, one row per engine: the artifact's suffix picks the row.

Every backend returns a `Graph`: float32 arrays in, float32 arrays out, in the positional
order the exporter defined (window graph: clips -> logits; stream graph: frame, *state ->
logits, *state). Quantized I/O (int8 TFLite) is converted inside the backend, so callers
never see a backend's dtype. Engines are imported only when their row is used: a Pi
without onnxruntime, or a workstation without TensorRT, still runs the others.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgefer.runtime.errors import EdgeferError


@dataclass
class Graph:
    backend: str
    run: Callable[[list[np.ndarray]], list[np.ndarray]]
    input_shapes: list[tuple]          # per input; None marks a dynamic axis
    fixed_batch: int | None            # None: any batch; 1: one row per call (the backend loops)
    detail: str = ""                   # e.g. the execution provider or delegate in use
    max_batch: int | None = None       # rows one call takes at most (a TensorRT profile's max); callers split


@dataclass(frozen=True)
class Backend:
    name: str
    suffixes: tuple[str, ...]
    module: str                        # edgefer.runtime.backends.<module> with open_graph(path, threads)
    requires: str                      # the package a user installs to get it


BACKENDS = [
    Backend("onnxruntime", (".onnx",), "onnxrt", "onnxruntime (or onnxruntime-gpu)"),
    Backend("litert", (".tflite",), "litert", "ai-edge-litert"),
    Backend("tensorrt", (".engine", ".plan"), "tensorrt", "tensorrt and cuda-python (JetPack)"),
]


def backend_for(path: Path) -> Backend:
    for b in BACKENDS:
        if path.suffix.lower() in b.suffixes:
            return b
    known = sorted(s for b in BACKENDS for s in b.suffixes)
    raise EdgeferError(path, f"no backend runs '{path.suffix}' files", f"pass a model with one of {known}")


def open_graph(path: Path, threads: int | None = None) -> Graph:
    b = backend_for(path)
    if not path.is_file():
        raise EdgeferError(path, "does not exist", "run `edgefer compress` to make it, or pass another --model")
    module = importlib.import_module(f"{__name__}.{b.module}")
    return module.open_graph(path, threads)


def quantize(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


def per_row(run_one: Callable[[list[np.ndarray]], list[np.ndarray]]) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """Batch-1 engines (TFLite as exported for the Pi): run each row, stack the results."""
    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        n = inputs[0].shape[0]
        if n == 1:
            return run_one(inputs)
        rows = [run_one([x[i:i + 1] for x in inputs]) for i in range(n)]
        return [np.concatenate([r[k] for r in rows]) for k in range(len(rows[0]))]
    return run
