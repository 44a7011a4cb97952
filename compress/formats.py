"""Export formats, one row each: which precisions it makes and the function that makes them.

A builder gets the job (model, metadata, calibration, output folder) and one precision and
returns the artifacts it wrote: the windowed graph first, its streaming companion after.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata

from .graphs import StateSpec, StreamGraph, WindowGraph


@dataclass
class Job:
    model: nn.Module
    meta: ModelMetadata
    stem: str
    work: Path                               # temporary folder; moved into --out when everything passed
    calibration: np.ndarray | None           # (N, 1, S, S) normalised training faces, for int8
    clip_length: int
    state: StateSpec | None                  # None: bidirectional, no streaming graph
    notes: list[str] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)

    def path(self, precision: str, suffix: str, stream: bool = False) -> Path:
        return self.work / f"{self.stem}.{precision}{'.stream' if stream else ''}{suffix}"

    def stream_calibration(self) -> list[np.ndarray]:
        """(frame, *state) samples for the streaming graph: states reached by running the float
        model over the calibration faces in short sequences, so their ranges are realistic."""
        if "stream_cal" not in self.cache:
            frames = torch.from_numpy(self.calibration)
            state = self.state.zeros(1)
            wrapper = StreamGraph(self.model, self.state.names).eval()
            cols: list[list[np.ndarray]] = [[] for _ in range(1 + len(state))]
            with torch.no_grad():
                for i in range(len(frames)):
                    if i % 8 == 0:
                        state = self.state.zeros(1)
                    for k, t in enumerate([frames[i:i + 1], *state]):
                        cols[k].append(t.numpy())
                    state = list(wrapper(frames[i:i + 1], *state)[1:])
            self.cache["stream_cal"] = [np.concatenate(c) for c in cols]
        return self.cache["stream_cal"]


@dataclass
class Artifact:
    path: Path
    format: str
    precision: str
    graph: str                               # window | stream
    method: dict[str, Any]


def _onnx(job: Job, precision: str) -> list[Artifact]:
    from . import onnx_export as ox
    s = job.meta.input_size
    graphs = [("window", ["clips"], ["logits"], {"clips": {0: "batch", 1: "time"}})]
    if job.state:
        names = ["frame", *job.state.names]
        graphs.append(("stream", names, ["logits", *[f"{n}_out" for n in job.state.names]],
                       {n: {0: "batch"} for n in names}))
    made = []
    for graph, ins, outs, dyn in graphs:
        fp32 = job.path("fp32", ".onnx", graph == "stream")
        if not fp32.exists():
            if graph == "window":
                # T = 3 in the example: torch.export would specialise a time axis of size 1 to a constant
                module, example = WindowGraph(job.model), (torch.zeros(2, max(3, job.clip_length), 1, s, s),)
            else:
                module, example = StreamGraph(job.model, job.state.names), (torch.zeros(2, 1, s, s), *job.state.zeros(2))
            ox.export(module.eval(), example, fp32, ins, outs, dyn)
        method: dict[str, Any] = {"exporter": f"torch.onnx (dynamo), opset {ox.OPSET}"}
        target = job.path(precision, ".onnx", graph == "stream")
        if precision == "fp16":
            ox.to_fp16(fp32, target)
            method["quantization"] = "fp16 weights/activations (float32 I/O; recurrent ops kept fp32)"
        elif precision == "int8":
            cal = [job.calibration[:, None]] if graph == "window" else job.stream_calibration()
            method.update(ox.to_int8(fp32, target, cal, ins))
        made.append(Artifact(target, "onnx", precision, graph, method))
    return made


def _tflite(job: Job, precision: str) -> list[Artifact]:
    from . import tflite_export as tx
    s = job.meta.input_size
    graphs = [("window", WindowGraph(job.model), (torch.zeros(1, job.clip_length, 1, s, s),))]
    if job.state:
        graphs.append(("stream", StreamGraph(job.model, job.state.names), (torch.zeros(1, 1, s, s), *job.state.zeros(1))))
    made = []
    for graph, module, example in graphs:
        named = job.path("named", ".tflite", graph == "stream")   # work file: the quantizer needs tensor names
        if not named.exists():
            tx.export(module, example, named)
        method: dict[str, Any] = {"exporter": "litert-torch (no TensorFlow)", "batch": 1, "tensor_names": "stripped"}
        target = job.path(precision, ".tflite", graph == "stream")
        if precision == "fp16":
            method.update(tx.to_fp16(named, target))
        elif precision == "int8":
            if graph == "window":
                cal = [np.repeat(job.calibration[:, None], job.clip_length, axis=1)]
            else:
                cal = job.stream_calibration()
            method.update(tx.to_int8(named, target, cal, granularity="mixed"))
        tx.strip_names(named if precision == "fp32" else target, target)
        made.append(Artifact(target, "tflite", precision, graph, method))
    return made


def _tensorrt(job: Job, precision: str) -> list[Artifact]:
    """Engines are built on the target; here: the ONNX TensorRT parses, its op check, the INT8 cache."""
    from . import onnx_export as ox
    from .tensorrt_ops import TENSORRT_VERSION, check_file
    made = [a for a in _onnx(job, "fp32") if a.graph == "window"] if not job.path("fp32", ".onnx").exists() else []
    src = job.path("fp32", ".onnx")
    problems = check_file(src)
    if problems:
        raise EdgeferError(src, f"not parseable by TensorRT: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""),
                           "replace the op in the model or export another format")
    if precision == "int8":
        cache = job.work / f"{job.stem}.calib.cache"
        if not cache.exists():
            ranges = ox.calibration_ranges(src, [job.calibration[:, None]], ["clips"])
            ox.write_trt_cache(ranges, cache)
        made.append(Artifact(cache, "tensorrt-calibration", "int8", "window",
                             {"calibrator": "entropy (onnxruntime), TensorRT cache text format",
                              "calibration_images": int(len(job.calibration))}))
    try:
        from edgefer.runtime.backends.tensorrt_build import build_engine
        engine = build_engine(src, precision, job.work / f"{job.stem}.calib.cache", cache_dir=job.work)
        made.append(Artifact(engine, "tensorrt", precision, "window", {"builder": "TensorRT Python API"}))
    except EdgeferError as exc:
        if "not installed" not in exc.cause:
            raise
        job.notes.append(f"TensorRT engine ({precision}) not built here: {exc.cause}. The ONNX passed the static op check "
                         f"for TensorRT {TENSORRT_VERSION}; the engine is built on the Jetson at the daemon's first start (`edgefer run --tensorrt fp16|int8`).")
    return made


@dataclass(frozen=True)
class Format:
    name: str
    precisions: tuple[str, ...]
    build: Callable[[Job, str], list[Artifact]]
    help: str


FORMATS = {f.name: f for f in [
    Format("onnx", ("fp32", "fp16", "int8"), _onnx, "ONNX opset 18, dynamic batch; ONNX Runtime (CPU/CUDA/TensorRT EP)"),
    Format("tflite", ("fp32", "fp16", "int8"), _tflite, "TFLite for the Raspberry Pi (LiteRT, XNNPACK), batch 1"),
    Format("tensorrt", ("fp16", "int8"), _tensorrt, "TensorRT engine for Jetson, built on the device"),
]}
