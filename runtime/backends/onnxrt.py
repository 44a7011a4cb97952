"""ONNX Runtime: CPU everywhere; CUDA / TensorRT execution providers where the wheel has them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgefer.runtime.errors import EdgeferError

from . import Graph

PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def open_graph(path: Path, threads: int | None) -> Graph:
    try:
        import onnxruntime as ort
    except ImportError:
        raise EdgeferError(path, "onnxruntime is not installed (the device install runs .tflite)", "pip install 'edgefer[onnx]', or pass the .tflite model") from None
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    available = set(ort.get_available_providers())
    providers = [p for p in PREFERRED if p in available]
    try:
        sess = ort.InferenceSession(str(path), so, providers=providers)
    except Exception as exc:  # ORT raises its own exception types for corrupt or foreign files
        raise EdgeferError(path, f"onnxruntime cannot load it ({str(exc).splitlines()[0][:160]})",
                           "re-export it with `edgefer compress`") from None
    names = [i.name for i in sess.get_inputs()]
    shapes = [tuple(d if isinstance(d, int) else None for d in i.shape) for i in sess.get_inputs()]
    fixed = shapes[0][0] if shapes and shapes[0] and shapes[0][0] is not None else None

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        outs = sess.run(None, {n: np.ascontiguousarray(x, np.float32) for n, x in zip(names, inputs)})
        return [np.asarray(o, np.float32) for o in outs]

    return Graph("onnxruntime", run, shapes, fixed, detail=sess.get_providers()[0])
