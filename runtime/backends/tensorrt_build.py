"""Build TensorRT engines on the target from the shipped ONNX (+ INT8 calibration cache).

An engine is only valid for the TensorRT version and GPU that built it, so engines are
cached under a key of both and built on first use (daemon start, or `edgefer compress
--formats tensorrt` on the Jetson). INT8 uses TensorRT's entropy calibrator fed from the
calibration cache written on the workstation (`*.calib.cache`, TensorRT's text format), so
the device needs no dataset: the calibrator's batch source is empty and TensorRT reads the
cache instead. The cache header names the TensorRT version; it is rewritten to the running
version, since the per-tensor scales do not depend on it.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import read_sidecar, write_sidecar

from .tensorrt import _check, import_cudart, import_tensorrt

CACHE_HEADER = "TRT-{version}-EntropyCalibration2"
MAX_BATCH = 8                      # the profile's largest batch; DeployedModel splits bigger batches


def trt_version_code(version: str) -> int:
    major, minor, patch = (int(v) for v in (version.split(".") + ["0", "0"])[:3])
    return major * 10000 + minor * 100 + patch


def gpu_name() -> str:
    cudart = import_cudart()
    props = _check(cudart.cudaGetDeviceProperties(0))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return re.sub(r"[^A-Za-z0-9]+", "-", name.strip("\x00 ")).strip("-").lower()


def engine_path(onnx_path: Path, precision: str, cache_dir: Path, trt_version: str, gpu: str) -> Path:
    return cache_dir / f"{onnx_path.stem}.{precision}.trt{trt_version}.{gpu}.engine"


def retarget_cache(cache_text: str, version: str) -> bytes:
    lines = cache_text.strip().splitlines()
    if not lines or not lines[0].startswith("TRT-"):
        raise EdgeferError(None, "calibration cache lacks its TRT-... header line", "re-run `edgefer compress --precision int8`")
    return "\n".join([CACHE_HEADER.format(version=trt_version_code(version))] + lines[1:]).encode() + b"\n"


def build_engine(onnx_path: Path, precision: str = "fp16", calibration_cache: Path | None = None,
                 cache_dir: Path | None = None, workspace_mb: int = 512, max_batch: int = MAX_BATCH) -> Path:
    """ONNX -> serialized engine in the cache (reused when present). Returns the engine's path."""
    trt = import_tensorrt()
    cache_dir = cache_dir or onnx_path.parent / "engines"
    out = engine_path(onnx_path, precision, cache_dir, trt.__version__, gpu_name())
    if out.is_file():
        return out
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)           # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgeferError(onnx_path, f"TensorRT's ONNX parser failed ({errors[:200]})",
                           "run `edgefer compress` on the workstation: it checks every op against TensorRT")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        t = network.get_input(i)
        shape = list(t.shape)
        lo, opt, hi = ([1 if d < 0 else d for d in shape], [1 if d < 0 else d for d in shape],
                       [max_batch if d < 0 and k == 0 else (16 if d < 0 else d) for k, d in enumerate(shape)])
        profile.set_shape(t.name, lo, opt, hi)
    config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if calibration_cache is None or not calibration_cache.is_file():
            raise EdgeferError(onnx_path, "INT8 engine needs the calibration cache written by `edgefer compress`",
                               "ship <model>.calib.cache beside the ONNX or build fp16")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = cache_calibrator(trt, retarget_cache(calibration_cache.read_text(), trt.__version__))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgeferError(onnx_path, f"TensorRT could not build a {precision} engine", "see the TensorRT log above")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(out)
    return out


def cache_calibrator(trt, cache: bytes):
    """An IInt8EntropyCalibrator2 that only replays a cache: no batches on the device."""
    class CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            return None                  # no data here: TensorRT uses read_calibration_cache

        def read_calibration_cache(self):
            return cache

        def write_calibration_cache(self, data):
            return None

    return CacheCalibrator()


def engine_for(onnx_path: Path, precision: str, cache_dir: Path) -> Path:
    """The daemon's first start on a Jetson (`--tensorrt fp16|int8` with an ONNX --model):
    engines for the window graph and its streaming companion, built from the fp32 export
    beside the given ONNX when it is shipped (TensorRT quantizes from the calibration cache
    itself), cached in `cache_dir` by TensorRT version and GPU, each with the sidecar `load`
    reads. Later starts find them and build nothing. The streaming graph's tensors are not in
    the window graph's calibration cache, so it is built fp16 when int8 is asked."""
    meta = read_sidecar(onnx_path)
    fp32 = onnx_path.with_name(onnx_path.name.replace(f".{meta.precision}.", ".fp32."))
    src = fp32 if fp32.is_file() else onnx_path
    src_meta = read_sidecar(src)
    calib = src.with_name(src.name.split(".")[0] + ".calib.cache")
    window = build_engine(src, precision, calib, cache_dir)
    companions = {}
    if "stream" in src_meta.companions:
        stream_src = src.with_name(src_meta.companions["stream"])
        stream_precision = "fp16" if precision == "int8" else precision
        stream = build_engine(stream_src, stream_precision, None, cache_dir)
        write_sidecar(stream, dataclasses.replace(read_sidecar(stream_src), format="tensorrt",
                                                  precision=stream_precision))
        companions["stream"] = stream.name
    write_sidecar(window, dataclasses.replace(src_meta, format="tensorrt", precision=precision, companions=companions))
    return window
