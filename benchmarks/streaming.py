"""Per-frame cost of a new frame against window length T: windowed (re-run the encoder on all
T frames) versus stateful streaming (one encoder pass, state carried). Needs a model with
both graphs and a free time axis (the ONNX export)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgefer.runtime.errors import EdgeferError

from .timing import Settings, single_stream

WINDOWS = (1, 4, 8, 16, 32)


def streaming_cost(model: str, settings: Settings) -> dict[str, Any]:
    from edgefer.runtime.daemon import shipped_dir
    from edgefer.runtime.model import load
    path = shipped_dir() / "default.fp32.onnx" if model == "default" else Path(model)
    dm = load(path, threads=settings.threads)
    if dm.stream is None or dm.window.input_shapes[0][1] is not None:
        raise EdgeferError(path, "streaming cost needs a model with a streaming graph and a free time axis",
                           "pass an .onnx artifact of a unidirectional model")
    s = dm.meta.input_size
    rng = np.random.default_rng(0)
    frame = rng.normal(size=(1, 1, s, s)).astype(np.float32)
    state = dm.init_state(1)
    stream = single_stream(lambda: dm.step(frame, state), settings)
    rows = []
    for t in WINDOWS:
        clip = rng.normal(size=(1, t, 1, s, s)).astype(np.float32)
        win = single_stream(lambda: dm.window.run([clip]), settings)
        rows.append({"T": t, "windowed_p50_ms": win["p50_ms"], "streaming_p50_ms": stream["p50_ms"],
                     "ratio_stream_to_single_frame": None})
    single = rows[0]["windowed_p50_ms"]
    for r in rows:
        r["ratio_stream_to_single_frame"] = r["streaming_p50_ms"] / single
    return {"model": str(path), "rows": rows}
