"""LiteRT (TFLite) via ai-edge-litert, XNNPACK on CPU: the Raspberry Pi path.

Full-integer models take and give int8: inputs are quantized and outputs dequantized here
with the scale and zero point stored in the model, so callers always pass float32.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgefer.runtime.errors import EdgeferError

from . import Graph, dequantize, per_row, quantize


def _order(names) -> list[str]:
    """Signature tensors are named args_0, args_1 / output_0, ...: sort by their index."""
    return sorted(names, key=lambda n: int(re.findall(r"\d+", n)[-1]) if re.findall(r"\d+", n) else 0)


def _to_model(x: np.ndarray, detail: dict) -> np.ndarray:
    scale, zp = detail["quantization"]
    return quantize(x, detail["dtype"], scale, zp) if scale else x.astype(detail["dtype"])


def _from_model(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zp = detail["quantization"]
    return dequantize(y, scale, zp) if scale else y.astype(np.float32)


def open_graph(path: Path, threads: int | None) -> Graph:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise EdgeferError(path, "ai-edge-litert is not installed", "pip install ai-edge-litert") from None
    try:
        interp = Interpreter(model_path=str(path), num_threads=threads or None)
        if not interp.get_signature_list():      # older converters wrote no signatures: plain tensor I/O
            return _tensor_graph(interp)
        runner = interp.get_signature_runner()
    except Exception as exc:
        raise EdgeferError(path, f"LiteRT cannot load it ({str(exc).splitlines()[0][:160]})",
                           "re-export it with `edgefer compress`") from None
    ins, outs = runner.get_input_details(), runner.get_output_details()
    in_names, out_names = _order(ins), _order(outs)

    def run_one(inputs: list[np.ndarray]) -> list[np.ndarray]:
        result = runner(**{name: _to_model(x, ins[name]) for name, x in zip(in_names, inputs)})
        return [_from_model(result[name], outs[name]) for name in out_names]

    shapes = [tuple(int(v) for v in ins[n]["shape"]) for n in in_names]
    int8 = any(ins[n]["dtype"] != np.float32 for n in in_names)
    return Graph("litert", per_row(run_one), shapes, 1, detail=f"XNNPACK, {'int8' if int8 else 'float'} I/O")


def _tensor_graph(interp) -> Graph:
    interp.allocate_tensors()
    ins, outs = interp.get_input_details(), interp.get_output_details()

    def run_one(inputs: list[np.ndarray]) -> list[np.ndarray]:
        for d, x in zip(ins, inputs):
            interp.set_tensor(d["index"], _to_model(x, d))
        interp.invoke()
        return [_from_model(interp.get_tensor(d["index"]), d) for d in outs]

    return Graph("litert", per_row(run_one), [tuple(int(v) for v in d["shape"]) for d in ins], 1, detail="XNNPACK")
