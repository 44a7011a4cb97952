"""The daemon's own pipeline on a video file, looped: fps, per-stage latency, drops, memory.

Runs `Daemon.process` exactly as `edgefer run` does (file source without --fps: every frame
processed, none dropped), events to an in-memory counting sink, and samples RSS along the
way to show whether memory stays flat.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .timing import rss_mb


class CountingSink:
    def __init__(self):
        self.events = 0

    def emit(self, event):
        self.events += 1

    def close(self):
        pass


def end_to_end(video: str, model: str, frames: int, threads: int, detector: str = "auto") -> dict[str, Any]:
    from edgefer.runtime.config import RunConfig
    from edgefer.runtime.daemon import build
    cfg = RunConfig(source=f"video:{video}", model=model, loop=True, threads=threads, sink=[], max_frames=frames,
                    detector=detector)
    daemon = build(cfg)
    sink = CountingSink()
    daemon.outputs.append(sink)
    daemon.capture.start()
    rss, t0, totals = [], time.perf_counter(), []
    every = max(1, frames // 20)
    try:
        while daemon.stats.frames < frames:
            pkt = daemon.capture.get(timeout=2.0)
            if pkt is None:
                break
            t = time.perf_counter()
            daemon.process(pkt)
            totals.append((time.perf_counter() - t) * 1000 + pkt.decode_ms)
            if daemon.stats.frames % every == 0:
                rss.append(rss_mb())
    finally:
        elapsed = time.perf_counter() - t0
        daemon.close()
    n = daemon.stats.frames
    warm = rss[len(rss) // 10:] or rss
    return {"video": video, "model": str(daemon.model.path), "backend": daemon.model.window.backend,
            "detector": getattr(daemon.detector, "name", type(daemon.detector).__name__), "frames": n, "events": sink.events,
            "fps": n / elapsed if elapsed else 0.0, "frame_p50_ms": float(np.percentile(totals, 50)),
            "frame_p99_ms": float(np.percentile(totals, 99)), "stages": daemon.stats.percentiles((50, 95, 99)),
            "dropped": daemon.capture.counters.dropped, "corrupt": daemon.capture.counters.corrupt,
            "rss_mb_samples": rss, "rss_growth": (warm[-1] - warm[0]) / warm[0] if len(warm) > 1 else 0.0,
            "rss_mb_max": max(rss) if rss else None}
