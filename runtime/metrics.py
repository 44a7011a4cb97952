"""Live pipeline statistics: per-stage latency percentiles over a sliding window, counters,
frames per second; rendered as Prometheus text for /metrics and as a dict for JSON.

Latency is exported as a Prometheus summary in seconds (quantiles over the window, with
`_sum` and `_count` over the whole run), the unit and type Prometheus' rate() and
histogram_quantile() users expect; counters are read live, not filled in at shutdown."""
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
    latency: dict[str, deque] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=2000)))
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))   # ms over the whole run
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    stamps: deque = field(default_factory=lambda: deque(maxlen=200))
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_face: float = field(default_factory=time.monotonic)     # start counts as "seen", so the gauge starts at 0

    def since_face(self) -> float:
        """Seconds since a frame last had a face: a detector that sees nobody in a busy view shows here."""
        return time.monotonic() - self.last_face

    def record(self, stages: dict[str, float], faces: int) -> None:
        with self.lock:
            for k, v in stages.items():
                self.latency[k].append(v)
                self.sums[k] += v
                self.counts[k] += 1
            self.frames += 1
            self.faces = faces
            if faces:
                self.last_face = time.monotonic()
            self.stamps.append(time.perf_counter())

    def fps(self) -> float:
        with self.lock:
            if len(self.stamps) < 2:
                return 0.0
            return (len(self.stamps) - 1) / max(self.stamps[-1] - self.stamps[0], 1e-9)

    def percentiles(self, qs=(50, 95, 99)) -> dict[str, dict[str, float]]:
        with self.lock:
            return {k: {f"p{q}": float(np.percentile(v, q)) for q in qs} for k, v in self.latency.items() if v}

    def prometheus(self, capture, sink_errors: int = 0, sink_states: dict[str, str] | None = None) -> str:
        lines = ["# HELP edgefer_fps processed frames per second (last 200 frames)", "# TYPE edgefer_fps gauge",
                 f"edgefer_fps {self.fps():.3f}",
                 "# HELP edgefer_frames_total frames processed", "# TYPE edgefer_frames_total counter",
                 f"edgefer_frames_total {self.frames}",
                 "# HELP edgefer_faces faces in the last frame", "# TYPE edgefer_faces gauge", f"edgefer_faces {self.faces}",
                 "# HELP edgefer_seconds_since_face seconds since a frame last had a face",
                 "# TYPE edgefer_seconds_since_face gauge", f"edgefer_seconds_since_face {self.since_face():.1f}",
                 "# HELP edgefer_sink_errors_total events a sink failed to deliver (dropped)",
                 "# TYPE edgefer_sink_errors_total counter", f"edgefer_sink_errors_total {sink_errors}"]
        c = capture.counters
        for name, value in (("captured", c.captured), ("dropped", c.dropped), ("corrupt", c.corrupt),
                            ("reconnects", c.reconnects)):
            lines += [f"# TYPE edgefer_frames_{name}_total counter", f"edgefer_frames_{name}_total {value}"]
        lines += ["# HELP edgefer_source_up 1 for the capture's current state", "# TYPE edgefer_source_up gauge"]
        for state in ("running", "reconnecting", "ended", "stopped", "failed", "starting"):
            lines.append(f'edgefer_source_up{{state="{state}"}} {int(capture.state == state)}')
        if sink_states:
            lines += ["# HELP edgefer_sink_up 1 while the sink delivers", "# TYPE edgefer_sink_up gauge"]
            lines += [f'edgefer_sink_up{{sink="{name}"}} {int(state == "ok")}' for name, state in sink_states.items()]
        lines += ["# HELP edgefer_stage_latency_seconds per-stage latency (quantiles over the last 2000 frames)",
                  "# TYPE edgefer_stage_latency_seconds summary"]
        ps = self.percentiles((50, 95, 99))
        with self.lock:
            totals = {k: (self.sums[k], self.counts[k]) for k in ps}
        for stage, qs in ps.items():
            for q, v in qs.items():
                lines.append(f'edgefer_stage_latency_seconds{{stage="{stage}",quantile="0.{q[1:]}"}} {v / 1000:.6f}')
            total, count = totals[stage]
            lines.append(f'edgefer_stage_latency_seconds_sum{{stage="{stage}"}} {total / 1000:.6f}')
            lines.append(f'edgefer_stage_latency_seconds_count{{stage="{stage}"}} {count}')
        return "\n".join(lines) + "\n"
