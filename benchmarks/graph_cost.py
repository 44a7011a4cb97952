"""Weights and FLOPs per frame read from a compiled graph, for models we have no PyTorch source of.

A peer is only a .tflite or .onnx file, so its row would have no params or MFLOPs and the
table could not say whether it is fast because it is small. Counted as PyTorch's
FlopCounterMode counts our models (convolutions and matrix products, a multiply-add = 2
FLOPs, batch 1, one frame), so the column compares like with like; "params" here are the
graph's constant weight elements (BatchNorm is folded into the convs by then).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np


def _dims(shape) -> list[int]:
    """A dynamic (symbolic or -1) dimension counts as 1: batch 1, one frame."""
    return [d if isinstance(d, (int, np.integer)) and d > 0 else 1 for d in shape]


def tflite_cost(path: Path) -> tuple[int, float]:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    shape = {t["index"]: _dims(t["shape"]) for t in it.get_tensor_details()}
    flops, weights = 0, set()
    for op in it._get_ops_details():        # no public per-op API; the same call LiteRT's own tools use
        name, ins, outs = op["op_name"], op["inputs"], op["outputs"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(ins) < 2:
            continue
        out, w = int(np.prod(shape[outs[0]])), shape[ins[1]]
        per_out = w[-1] if name == "FULLY_CONNECTED" else int(np.prod(w[1:3])) * (w[3] if name == "CONV_2D" else 1)
        flops += 2 * out * per_out
        weights.update(i for i in ins[1:] if i >= 0)
    return sum(int(np.prod(shape[i])) for i in weights), flops / 1e6


def _toposort(graph) -> None:
    """fp16 conversion appends its Cast nodes at the end; shape inference needs producers first."""
    ready = {x.name for x in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = [n for n in pending if not set(n.input) <= ready]
        done = [n for n in pending if set(n.input) <= ready]
        if not done:                       # a cycle or a dangling input: leave the rest as it was
            ordered += rest
            break
        ordered += done
        ready |= {o for n in done for o in n.output}
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


PLUMBING = {"DequantizeLinear", "Cast", "Concat", "Reshape", "Slice", "Squeeze", "Transpose", "Unsqueeze"}


def onnx_cost(path: Path) -> tuple[int, float]:
    import onnx
    from onnx import numpy_helper, shape_inference
    model = onnx.load(str(path))
    _toposort(model.graph)
    try:
        model = shape_inference.infer_shapes(model)
    except shape_inference.InferenceError:     # stale value_info (fp16 conversions keep float32 types): infer afresh
        del model.graph.value_info[:]
        model = shape_inference.infer_shapes(model)
    g = model.graph
    init = {t.name: numpy_helper.to_array(t).shape for t in g.initializer}
    shape = dict(init)
    for v in list(g.input) + list(g.value_info) + list(g.output):
        dims = v.type.tensor_type.shape.dim
        shape[v.name] = _dims([d.dim_value if d.HasField("dim_value") else None for d in dims])
    made_by = {o: n for n in g.node for o in n.output}

    def sources(name: str) -> set[str]:
        """The initializers behind a weight input, through the exporters' plumbing (QDQ, the
        GRU's gate reordering by Slice / Concat / Unsqueeze)."""
        if name in init:
            return {name}
        n = made_by.get(name)
        if n is None or n.op_type not in PLUMBING:
            return set()
        return set().union(*(sources(x) for x in (n.input if n.op_type == "Concat" else n.input[:1])))

    flops, weights = 0, set()
    for n in g.node:
        if not (len(n.input) > 1 and n.input[1] in shape and n.output[0] in shape):
            continue
        w = shape[n.input[1]]
        if n.op_type == "Conv":                   # w: (cout, cin / groups, kh, kw)
            flops += 2 * int(np.prod(shape[n.output[0]])) * int(np.prod(w[1:]))
            weights.update(n.input[1:3])
        elif n.op_type in ("MatMul", "Gemm"):
            trans = any(a.name == "transB" and a.i for a in n.attribute)
            flops += 2 * int(np.prod(shape[n.output[0]])) * int(w[-1] if trans else w[-2])
            weights.update(n.input[1:3])
        elif n.op_type in ("GRU", "LSTM", "RNN") and len(n.input) > 2:
            gates = {"GRU": 3, "LSTM": 4, "RNN": 1}[n.op_type]
            r = shape[n.input[2]]                 # w: (dirs, gates*H, I), r: (dirs, gates*H, H)
            steps = _dims(shape[n.input[0]])[0] if n.input[0] in shape else 1
            flops += 2 * steps * w[0] * gates * (w[2] + r[2]) * (w[1] // gates)
            weights.update(n.input[1:4])
    counted = set().union(*(sources(x) for x in weights if x))
    return sum(int(np.prod(init[x])) for x in counted), flops / 1e6


COST: dict[str, Callable[[Path], tuple[int, float]]] = {".tflite": tflite_cost, ".onnx": onnx_cost}


def graph_cost(path: Path) -> dict[str, float | int] | None:
    """{"params", "mflops"} of a .tflite / .onnx graph, or None for a format we cannot read this
    way or whose reader is not installed (a device install has no `onnx`): the cells stay empty."""
    fn = COST.get(Path(path).suffix)
    if fn is None:
        return None
    try:
        params, mflops = fn(Path(path))
    except ImportError:
        return None
    return {"params": int(params), "mflops": float(mflops)}
