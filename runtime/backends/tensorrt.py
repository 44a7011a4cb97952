"""TensorRT engines on NVIDIA Jetson (JetPack 6: TensorRT 10.x) with cuda-python for memory.

Neither package installs from PyPI on the machines this project is developed on, so both are
imported here only, when a `.engine` file is opened; tests run this where they import and
skip with the reason elsewhere. Engines are device-specific: `tensorrt_build` makes them on
the target from the shipped ONNX (and INT8 calibration cache) and caches them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgefer.runtime.errors import EdgeferError

from . import Graph


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise EdgeferError(None, "TensorRT is not installed (it comes with JetPack, not PyPI)",
                           "on a Jetson: sudo apt install python3-libnvinfer; elsewhere use the .onnx or .tflite artifact") from None
    return trt


def import_cudart():
    try:
        from cuda.bindings import runtime as cudart      # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart                       # older cuda-python
        except ImportError:
            raise EdgeferError(None, "cuda-python is not installed", "pip install cuda-python") from None
    return cudart


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise EdgeferError(None, f"CUDA call failed ({err})", "check the GPU with tegrastats / nvidia-smi")
    return rest[0] if len(rest) == 1 else rest


def open_graph(path: Path, threads: int | None) -> Graph:
    trt, cudart = import_tensorrt(), import_cudart()
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise EdgeferError(path, "TensorRT cannot deserialize it (built by another TensorRT version or GPU)",
                           "delete it; it is rebuilt from the ONNX on the next start")
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    stream = _check(cudart.cudaStreamCreate())
    buffers: dict[str, tuple[int, int]] = {}          # name -> (device pointer, bytes)

    def device_buffer(name: str, nbytes: int) -> int:
        ptr, size = buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(cudart.cudaFree(ptr))
            ptr = _check(cudart.cudaMalloc(nbytes))
            buffers[name] = (ptr, nbytes)
        return ptr

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, x in zip(inputs, arrays):
            x = np.ascontiguousarray(x, np.float32)
            context.set_input_shape(name, x.shape)
            ptr = device_buffer(name, x.nbytes)
            _check(cudart.cudaMemcpyAsync(ptr, x.ctypes.data, x.nbytes, h2d, stream))
            context.set_tensor_address(name, ptr)
        results = []
        for name in outputs:
            y = np.empty(tuple(context.get_tensor_shape(name)), np.float32)
            results.append(y)
            context.set_tensor_address(name, device_buffer(name, y.nbytes))
        if not context.execute_async_v3(stream):
            raise EdgeferError(path, "TensorRT execution failed", "rebuild the engine (delete it) and check the logs")
        for name, y in zip(outputs, results):
            _check(cudart.cudaMemcpyAsync(y.ctypes.data, buffers[name][0], y.nbytes, d2h, stream))
        _check(cudart.cudaStreamSynchronize(stream))
        return results

    shapes = [tuple(d if d >= 0 else None for d in engine.get_tensor_shape(n)) for n in inputs]
    # The optimization profile's largest batch (tensorrt_build: MAX_BATCH): a bigger batch is
    # refused by set_input_shape, so DeployedModel splits its batches to this size.
    max_batch = int(engine.get_tensor_profile_shape(inputs[0], 0)[2][0]) if shapes[0][0] is None else shapes[0][0]
    return Graph("tensorrt", run, shapes, None, detail=f"TensorRT {trt.__version__}", max_batch=max_batch)
