"""PyTorch -> TFLite for the Raspberry Pi, without TensorFlow: litert-torch converts the
float graph, ai-edge-quantizer makes fp16 (float casting of weights) and full-integer int8
(static ranges from the calibration images; int8 inputs and outputs).

Why the post-conversion quantizer: litert-torch's own PT2E int8 path fails on GRU graphs;
quantizing the converted float model works for every op we emit, GRU included (it is
lowered to fully-connected and elementwise ops).
"""
from __future__ import annotations

import io
import logging
import os
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np

from edgefer.runtime.errors import EdgeferError


def _quiet():
    """litert-torch and the quantizer print banners and absl logs; keep the CLI's output readable."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("absl").setLevel(logging.ERROR)
    return redirect_stdout(io.StringIO())


def export(module, example: tuple, path: Path) -> Path:
    import litert_torch
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        try:
            litert_torch.convert(module.eval(), example).export(str(path))
        except Exception as exc:
            path.unlink(missing_ok=True)
            raise EdgeferError(path, f"litert-torch cannot convert the model ({str(exc).splitlines()[0][:160]})",
                               "use the ONNX artifact, or report the op to the litert-torch project") from None
    return path


def strip_names(src: Path, dst: Path) -> Path:
    """Drop tensor and subgraph names (debug strings: ~100 KB per graph from litert-torch's long
    module paths), keeping the signatures the runtime binds inputs by. Numerics are untouched.
    Done last, because the quantizer keys its calibration statistics by tensor name."""
    from ai_edge_litert.tools import flatbuffer_utils as fb
    model = fb.read_model(src)
    model.description = None
    for sg in model.subgraphs:
        sg.name = None
        for t in sg.tensors:
            t.name = None
    fb.write_model(model, dst)
    dst.chmod(0o644)       # the writer leaves the file executable
    return dst


def _signature_inputs(path: Path) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    from edgefer.runtime.backends.litert import _order
    return _order(Interpreter(model_path=str(path)).get_signature_runner().get_input_details())


def to_fp16(src: Path, dst: Path) -> dict:
    from ai_edge_quantizer import qtyping, quantizer, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    rm = recipe_manager.RecipeManager()
    rm.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                              algorithm_key=AlgorithmName.FLOAT_CASTING)
    qt = quantizer.Quantizer(str(src))
    qt.load_quantization_recipe(rm.get_quantization_recipe())
    with warnings.catch_warnings(), _quiet(), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        qt.quantize(enable_progress_report=False).export_model(str(dst), overwrite=True)
    return {"method": "ai-edge-quantizer float casting (fp16 weights, fp32 compute)"}


def to_int8(src: Path, dst: Path, calibration: list[np.ndarray], granularity: str = "channel") -> dict:
    """Full-integer int8; `calibration` holds one array per signature input, each (N, ...) at batch 1.

    granularity: "channel" (per-channel weights everywhere), "tensor" (per-tensor everywhere) or
    "mixed" (per-tensor for CONV_2D, i.e. the pointwise convs and the stem, per-channel for
    depthwise and fully-connected ops). Per-channel costs 24 bytes of scales and zero points
    per channel (weights and bias); depthwise kernels need it, pointwise ones tolerate less.
    """
    from ai_edge_quantizer import qtyping, quantizer, recipe_manager
    names = _signature_inputs(src)
    cw, tw = qtyping.QuantGranularity.CHANNELWISE, qtyping.QuantGranularity.TENSORWISE
    rm = recipe_manager.RecipeManager()
    rm.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=8,
                         weight_num_bits=8, weight_granularity=cw if granularity in ("channel", "mixed") else tw)
    if granularity == "mixed":
        rm.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.CONV_2D, activation_num_bits=8,
                             weight_num_bits=8, weight_granularity=tw)
    qt = quantizer.Quantizer(str(src))
    qt.load_quantization_recipe(rm.get_quantization_recipe())
    samples = [{n: arr[i:i + 1] for n, arr in zip(names, calibration)} for i in range(len(calibration[0]))]
    try:
        with warnings.catch_warnings(), _quiet(), redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            result = qt.calibrate({"serving_default": samples}, num_threads=1)
            qt.quantize(result, enable_progress_report=False).export_model(str(dst), overwrite=True)
    except Exception as exc:
        dst.unlink(missing_ok=True)
        raise EdgeferError(src, f"ai-edge-quantizer int8 failed ({str(exc).splitlines()[0][:160]})",
                           "check the calibration images, or use --precision fp16") from None
    weights = {"channel": "per-channel", "tensor": "per-tensor",
               "mixed": "per-channel depthwise / fully-connected, per-tensor 1x1 and stem convs"}[granularity]
    return {"method": f"ai-edge-quantizer static int8 ({weights} weights, int8 activations and I/O)",
            "calibration_images": len(calibration[0])}
