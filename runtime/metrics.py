"""Live pipeline statistics: per-stage latency percentiles over a sliding window, counters,
frames per second; rendered as Prometheus text for /metrics and as a dict for JSON."""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import numpy as np

STAGES = ("decode", "detect", "track_crop", "infer", "sink", "total")


@dataclass
class Stats:
    window: int = 2000
    started: float = field(default_factory=time.time)
    frames: int = 0
    faces: int = 0
    sink_errors: int = 0
    latency: dict[str, deque] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=2000)))
    stamps: deque = field(default_factory=lambda: deque(maxlen=200))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, stages: dict[str, float], faces: int) -> None:
        with self.lock:
            for k, v in stages.items():
                self.latency[k].append(v)
            self.frames += 1
            self.faces = faces
            self.stamps.append(time.perf_counter())

    def fps(self) -> float:
        with self.lock:
            if len(self.stamps) < 2:
                return 0.0
            return (len(self.stamps) - 1) / max(self.stamps[-1] - self.stamps[0], 1e-9)

    def percentiles(self, qs=(50, 95, 99)) -> dict[str, dict[str, float]]:
        with self.lock:
            return {k: {f"p{q}": float(np.percentile(v, q)) for q in qs} for k, v in self.latency.items() if v}

    def prometheus(self, capture) -> str:
        lines = ["# HELP edgefer_fps processed frames per second (last 200 frames)", "# TYPE edgefer_fps gauge",
                 f"edgefer_fps {self.fps():.3f}",
                 "# TYPE edgefer_frames_total counter", f"edgefer_frames_total {self.frames}",
                 "# TYPE edgefer_faces gauge", f"edgefer_faces {self.faces}",
                 "# TYPE edgefer_sink_errors_total counter", f"edgefer_sink_errors_total {self.sink_errors}"]
        c = capture.counters
        for name, value in (("captured", c.captured), ("dropped", c.dropped), ("corrupt", c.corrupt),
                            ("reconnects", c.reconnects)):
            lines += [f"# TYPE edgefer_frames_{name}_total counter", f"edgefer_frames_{name}_total {value}"]
        lines.append("# TYPE edgefer_source_up gauge")
        for state in ("running", "reconnecting", "ended", "stopped", "failed", "starting"):
            lines.append(f'edgefer_source_up{{state="{state}"}} {int(capture.state == state)}')
        lines.append("# HELP edgefer_stage_latency_ms per-stage latency over the last 2000 frames")
        lines.append("# TYPE edgefer_stage_latency_ms gauge")
        for stage, ps in self.percentiles((50, 95)).items():
            for q, v in ps.items():
                lines.append(f'edgefer_stage_latency_ms{{stage="{stage}",quantile="0.{q[1:]}"}} {v:.4f}')
        return "\n".join(lines) + "\n"
