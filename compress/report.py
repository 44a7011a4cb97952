"""The compression report: one row per artifact, markdown for people and JSON for tools."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np


@dataclass
class Row:
    format: str
    precision: str
    graph: str
    path: Path
    size_bytes: int
    params: int | None
    mflops: float | None
    method: dict[str, Any] = field(default_factory=dict)
    accuracy: float | None = None
    macro_f1: float | None = None
    agreement: float | None = None            # argmax agreement with the fp32 PyTorch model
    max_abs_diff: float | None = None         # max |logit - PyTorch logit| over the first 256 images
    stream_max_abs_diff: float | None = None  # same for the streaming graph over 8 steps
    latency_p50_ms: float | None = None       # batch 1, this machine, --threads


def latency_p50(fn: Callable[[], Any], warmup: int = 20, runs: int = 200) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def _fmt(v, spec: str, scale: float = 1.0) -> str:
    return "" if v is None else format(v * scale, spec)


def write_report(out: Path, rows: list[Row], context: dict[str, Any]) -> Path:
    data = {**context, "rows": [{**asdict(r), "path": str(r.path)} for r in rows]}
    (out / "report.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    lines = [f"# Compression report: `{context['model']}`", "",
             f"Accuracy on `{context['data']}` split `{context['split']}`; agreement = argmax agreement with the fp32 "
             f"PyTorch model; latency = p50 of 200 batch-1 calls, {context['threads']} thread(s), this machine.", "",
             "| artifact | format | precision | graphs | size | params | MFLOPs | accuracy | macro-F1 | agreement | max abs diff | stream diff | p50 ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r.path.name}` | {r.format} | {r.precision} | {r.graph} | {r.size_bytes / 1024:.0f} KiB | "
                     f"{'' if r.params is None else f'{r.params:,}'} | {_fmt(r.mflops, '.1f')} | {_fmt(r.accuracy, '.2f', 100)} | "
                     f"{_fmt(r.macro_f1, '.3f')} | {_fmt(r.agreement, '.2f', 100)} | {_fmt(r.max_abs_diff, '.3g')} | "
                     f"{_fmt(r.stream_max_abs_diff, '.3g')} | {_fmt(r.latency_p50_ms, '.3f')} |")
    lines += ["", "Methods:", ""] + [f"- `{r.path.name}`: " + "; ".join(f"{k}: {v}" for k, v in r.method.items()) for r in rows]
    if context.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in context["notes"]]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
