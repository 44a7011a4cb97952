"""Params and FLOPs read from a compiled graph (how peer rows get their cost columns) agree
with PyTorch's own count of the same model, and with a hand count on a known graph."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgefer.benchmarks.graph_cost import graph_cost
from edgefer.runtime.metadata import read_sidecar


def test_hand_built_onnx_graph(tmp_path):
    # conv 1 -> 8 channels, 3x3, same padding, on 16x16: 8*16*16 outputs x 9 MACs; then a 2048 -> 7 Gemm
    w = numpy_helper.from_array(np.ones((8, 1, 3, 3), np.float32), "w")
    b = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    fc = numpy_helper.from_array(np.ones((7, 2048), np.float32), "fc")
    shape = numpy_helper.from_array(np.array([1, 2048], np.int64), "shape")
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
         helper.make_node("Reshape", ["y", "shape"], ["f"]),
         helper.make_node("Gemm", ["f", "fc"], ["z"], transB=1)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 16, 16])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [w, b, fc, shape])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    cost = graph_cost(path)
    assert cost["mflops"] == pytest.approx((2 * 8 * 16 * 16 * 9 + 2 * 7 * 2048) / 1e6)
    assert cost["params"] == 8 * 9 + 8 + 7 * 2048          # the int64 shape constant is not a weight


def test_artifacts_count_what_pytorch_counts(small_artifacts, small_edge_checkpoint):
    """Every exported graph (each format, precision, window and stream) costs what PyTorch counts
    for the model: its MFLOPs, and its weights are the model's parameters with each BatchNorm
    folded into its conv (gamma and beta, 2C numbers, become the conv's bias, C). The TFLite
    window graph (T = 1 from the zero state) has no GRU recurrent matrix or bias left: their
    product with h = 0 is folded away, so its count (and MFLOPs, slightly) is lower by that."""
    import torch

    from edgefer.train import checkpoint
    from edgefer.train.models.profile import params
    folder, _, _ = small_artifacts
    model, _ = checkpoint.load(small_edge_checkpoint)
    folded = sum(b.num_features for b in model.modules() if isinstance(b, torch.nn.BatchNorm2d))
    (gru,) = [m for m in model.modules() if isinstance(m, torch.nn.GRU)]
    recurrent = gru.weight_hh_l0.numel() + gru.bias_hh_l0.numel()
    seen = set()
    for f in sorted(folder.iterdir()):
        if f.suffix not in (".onnx", ".tflite"):
            continue
        torch_cost = read_sidecar(f).metrics
        assert torch_cost["params"] == params(model), f.name
        cost = graph_cost(f)
        # ONNX keeps every matmul; TFLite folds the GRU's recurrent product away when the state is zero
        tol = 1e-3 if f.suffix == ".onnx" else 0.05
        assert cost["mflops"] == pytest.approx(torch_cost["mflops_per_frame"], rel=tol), f.name
        dropped = recurrent if (f.suffix, ".stream." in f.name) == (".tflite", False) else 0
        assert cost["params"] == params(model) - folded - dropped, f.name
        seen.add((f.suffix, ".stream." in f.name))
    assert {(".onnx", False), (".onnx", True), (".tflite", False)} <= seen


def test_unknown_format_has_no_graph_cost(tmp_path):
    assert graph_cost(tmp_path / "model.engine") is None
