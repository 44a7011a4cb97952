"""PyTorch -> ONNX (opset 18, dynamic batch), FP16, and static QDQ INT8 for ONNX Runtime.

INT8 is QDQ with uint8 activations and per-channel int8 weights (U8S8), ONNX Runtime's fast
path on x86 and ARM CPUs; symmetric int8 activations run about 2x slower here. TensorRT
does not take this file: it builds INT8 from the fp32 ONNX and the calibration cache.
Recurrent layers stay float (ONNX Runtime has no QDQ GRU/LSTM kernel).
"""
from __future__ import annotations

import io
import logging
import platform
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

from edgefer.runtime.errors import EdgeferError

OPSET = 18
KEEP_FLOAT = ["GRU", "LSTM", "RNN"]


def export(module, example: tuple, path: Path, input_names: list[str], output_names: list[str],
           dynamic: dict[str, dict[int, str]]) -> Path:
    import onnx
    import torch
    dims: dict[str, torch.export.Dim] = {}
    shapes = {}
    for name in input_names:
        shapes[name] = {axis: dims.setdefault(label, torch.export.Dim(label, min=1, max=4096))
                        for axis, label in dynamic.get(name, {}).items()} or None
    # the export API names the positional inputs by the forward() signature
    forward_names = list(module.forward.__code__.co_varnames[1:module.forward.__code__.co_argcount])
    if len(forward_names) == len(input_names):
        ds = {fn: shapes[n] for fn, n in zip(forward_names, input_names)}
    else:                              # *state: one tuple of shapes
        ds = {forward_names[0]: shapes[input_names[0]], "state": tuple(shapes[n] for n in input_names[1:])}
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(module, example, dynamo=True, opset_version=OPSET, input_names=input_names,
                                    output_names=output_names, dynamic_shapes=ds, verbose=False)
    model = program.model_proto
    onnx.checker.check_model(model)
    onnx.save(model, str(path))        # one self-contained file: weights inside, no .data sidecar
    return path


def to_fp16(src: Path, dst: Path) -> Path:
    """Weights and activations in half precision, float32 I/O; recurrent ops stay float32 so the
    graph also runs on CPU providers (they have no fp16 GRU/LSTM)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=KEEP_FLOAT)
    onnx.save(model, str(dst))
    return dst


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def needs_reduce_range(flags: set[str] | None = None, machine: str | None = None) -> bool:
    """x86 without VNNI multiplies u8 x s8 with 16-bit saturating adds (vpmaddubsw): 7-bit
    weights avoid the overflow. VNNI (avx512_vnni / avx_vnni) and ARM's dot products do not need it."""
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i686"):
        return False
    flags = cpu_flags() if flags is None else flags
    return not ({"avx512_vnni", "avx_vnni"} & flags)


def feed(calibration: list[np.ndarray], input_names: list[str]):
    """ONNX Runtime's calibration reader: one sample (batch 1) per call, every input aligned."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.rows = iter(range(len(calibration[0])))

        def get_next(self):
            i = next(self.rows, None)
            return None if i is None else {name: arr[i:i + 1] for name, arr in zip(input_names, calibration)}
    return Reader()


def to_int8(src: Path, dst: Path, calibration: list[np.ndarray], input_names: list[str],
            reduce_range: bool | None = None) -> dict:
    """Static QDQ quantization; `calibration` holds one array per input, each (N, ...)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    reduce = needs_reduce_range() if reduce_range is None else reduce_range
    n = len(calibration[0])

    pre = dst.with_suffix(".pre.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger().setLevel(logging.ERROR)
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(dst), feed(calibration, input_names), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            reduce_range=reduce, calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"WeightSymmetric": True})
    except Exception as exc:
        dst.unlink(missing_ok=True)
        raise EdgeferError(src, f"ONNX Runtime INT8 quantization failed ({str(exc).splitlines()[0][:160]})",
                           "check the calibration images (shape, count) or use --precision fp16") from None
    finally:
        pre.unlink(missing_ok=True)
    return {"method": "onnxruntime static QDQ (U8S8), MinMax, per-channel int8 weights, uint8 activations",
            "reduce_range": reduce, "calibration_images": n}


def calibration_ranges(src: Path, calibration: list[np.ndarray], input_names: list[str]) -> dict[str, float]:
    """Per-tensor |max| by entropy calibration (TensorRT's own method), for its calibration cache."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    tmp = src.with_suffix(".calib-aug.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cal = create_calibrator(str(src), calibrate_method=CalibrationMethod.Entropy,
                                    augmented_model_path=str(tmp), extra_options={"symmetric": True})
            cal.collect_data(feed(calibration, input_names))
            ranges = cal.compute_data()
    finally:
        tmp.unlink(missing_ok=True)
    out = {}
    for name, r in ranges.data.items():
        lo, hi = (float(np.asarray(v).max()) if np.ndim(v) else float(v) for v in r.range_value)
        out[name] = max(abs(lo), abs(hi))
    return out


def write_trt_cache(ranges: dict[str, float], path: Path, trt_version: str = "10.3.0") -> Path:
    """TensorRT's calibration cache text: a header line, then `tensor: <big-endian float32 scale hex>`."""
    import struct

    from edgefer.runtime.backends.tensorrt_build import CACHE_HEADER, trt_version_code
    lines = [CACHE_HEADER.format(version=trt_version_code(trt_version))]
    for name in sorted(ranges):
        scale = max(ranges[name], 1e-8) / 127.0
        lines.append(f"{name}: {struct.pack('>f', scale).hex()}")
    path.write_text("\n".join(lines) + "\n")
    return path
