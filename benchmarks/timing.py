"""Single-stream timing as MLPerf defines it: warm-up, then N timed calls one after another at
batch 1, the timer around inference only; p90 is the headline. Settings are data, stored
with every result."""
from __future__ import annotations

import os
import time
from pathlib import Path
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Settings:
    warmup: int = 30
    runs: int = 300
    batch_throughput: int = 8
    throughput_runs: int = 50
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


QUICK = Settings(warmup=3, runs=20, throughput_runs=5)


def single_stream(fn: Callable[[], Any], s: Settings) -> dict[str, float]:
    for _ in range(s.warmup):
        fn()
    times = np.empty(s.runs)
    for i in range(s.runs):
        t = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t
    ms = times * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def throughput(fn: Callable[[], Any], batch: int, s: Settings) -> float:
    """Images per second when `fn` processes `batch` images per call."""
    for _ in range(max(1, s.warmup // 3)):
        fn()
    t = time.perf_counter()
    for _ in range(s.throughput_runs):
        fn()
    return batch * s.throughput_runs / (time.perf_counter() - t)


def rss_mb() -> float:
    """Resident set size now, from /proc (Linux: Pi OS, JetPack and here)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def peak_rss_mb() -> float:
    """Peak resident set of this process image (VmHWM). Not ru_maxrss: Linux carries that across
    exec, so a spawned worker would report its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
