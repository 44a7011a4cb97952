"""`edgefer run`: capture -> detect -> track -> crop -> sequence inference -> sinks, until
the source ends or SIGTERM / SIGINT, then a clean shutdown that flushes every sink.

Settings come from --config (TOML) with command-line options on top. No frame or crop is
written anywhere; the HTTP page serves the latest annotated frame from memory only.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

try:
    import tomllib                     # Python 3.11+
except ModuleNotFoundError:            # JetPack 6 ships Python 3.10
    import tomli as tomllib

from . import detect, sinks, sources
from .capture import Capture
from .crop import crop_face, framing
from .errors import EdgeferError
from .metrics import Stats
from .model import DeployedModel, load
from .sequence import SequenceInference
from .track import Tracker

log = logging.getLogger("edgefer")

DEFAULTS: dict[str, Any] = {
    "source": "demo", "model": "default", "detector": "auto", "sink": ["jsonl"], "http": False,
    "http_host": "127.0.0.1", "http_port": 8080, "http_token": None, "max_faces": 4, "fps": None,
    "loop": False, "threads": 2, "max_frames": None, "margin": None, "align": None,
    "smoothing_alpha": 0.4, "smoothing_hold": 3, "horizon": None, "detect_threshold": 0.5,
}


def shipped_dir() -> Path:
    """The package folder holding the shipped `default` artifacts, found without importing torch."""
    spec = importlib.util.find_spec("edgefer.train")
    return Path(list(spec.submodule_search_locations)[0]) / "default"


def resolve_model(spec: str) -> Path:
    if spec == "default":
        d = shipped_dir()
        candidates = ["default.int8.onnx", "default.fp32.onnx"]
        if importlib.util.find_spec("ai_edge_litert") is not None:
            candidates.insert(0, "default.int8.tflite")
        for name in candidates:
            if (d / name).is_file():
                return d / name
        raise EdgeferError(d, "no exported default model is shipped in this install",
                           "run `edgefer compress default --precision int8` and pass --model PATH")
    path = Path(spec)
    if path.suffix == ".pt":
        raise EdgeferError(path, "is a PyTorch checkpoint; the device runs exported models",
                           f"export it: edgefer compress {path} --precision int8 --formats onnx,tflite")
    return path


def load_config(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise EdgeferError(path, f"cannot read config ({exc.strerror})", "pass an existing TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise EdgeferError(path, f"invalid TOML ({exc})", "fix the line named") from None
    data = {k.replace("-", "_"): v for k, v in data.get("edgefer", data).items()}
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise EdgeferError(path, f"unknown settings {unknown}", f"use keys from {sorted(DEFAULTS)}")
    return data


def settings(args: argparse.Namespace) -> dict[str, Any]:
    merged = {**DEFAULTS, **load_config(getattr(args, "config", None))}
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            merged[key] = value
    if isinstance(merged["sink"], str):
        merged["sink"] = [merged["sink"]]
    return merged


@dataclass
class Daemon:
    cfg: dict[str, Any]
    model: DeployedModel
    capture: Capture
    detector: Any
    tracker: Tracker
    sequence: SequenceInference
    outputs: list
    stats: Stats = field(default_factory=Stats)
    broadcast: sinks.Broadcast = field(default_factory=sinks.Broadcast)
    stopping: threading.Event = field(default_factory=threading.Event)
    _annotated: tuple | None = None

    @property
    def framing(self):
        """The model's pixel contract; `margin` / `align` settings override it only when given."""
        return framing(self.model.meta, self.cfg["margin"], self.cfg["align"])

    def health(self) -> dict[str, Any]:
        c = self.capture
        return {"status": "ok" if c.state == "running" else "degraded", "source": c.state, "error": c.error,
                "frames": self.stats.frames, "fps": round(self.stats.fps(), 2), "dropped": c.counters.dropped,
                "corrupt": c.counters.corrupt, "reconnects": c.counters.reconnects}

    def latest_jpeg(self) -> bytes | None:
        if self._annotated is None:
            return None
        frame, boxes = self._annotated
        img = frame.copy()
        for box, text in boxes:
            x0, y0, x1, y1 = map(int, box)
            cv2.rectangle(img, (x0, y0), (x1, y1), (0, 200, 0), 2)
            cv2.putText(img, text, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1, cv2.LINE_AA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return buf.tobytes() if ok else None

    def process(self, pkt) -> list[dict[str, Any]]:
        labels = self.model.meta.labels
        t0 = time.perf_counter()
        dets = self.detector(pkt.image)
        t1 = time.perf_counter()
        tracks, expired = self.tracker.update(dets)
        self.sequence.forget(expired)
        crops = {t.id: crop_face(pkt.image, t.box, self.model.meta, t.keypoints, self.framing) for t in tracks}
        t2 = time.perf_counter()
        results = self.sequence.step(crops)
        t3 = time.perf_counter()
        lat = {"decode": pkt.decode_ms, "detect": (t1 - t0) * 1000, "track_crop": (t2 - t1) * 1000,
               "infer": (t3 - t2) * 1000}
        events = []
        for t in tracks:
            label, probs, _ = results[t.id]
            events.append({"time": round(pkt.time, 3), "frame": pkt.index, "track": t.id,
                           "box": [round(float(v), 1) for v in t.box], "label": labels[label],
                           "score": round(float(probs[label]), 4),
                           "probs": {lab: round(float(p), 4) for lab, p in zip(labels, probs)},
                           "latency_ms": {k: round(v, 3) for k, v in lat.items()}})
        for e in events:
            for out in self.outputs:
                out.emit(e)
        self.stats.sink_errors = sum(getattr(o, "errors", 0) for o in self.outputs)   # live in /metrics
        t4 = time.perf_counter()
        lat["sink"] = (t4 - t3) * 1000
        lat["total"] = (t4 - t0) * 1000 + pkt.decode_ms
        self.stats.record(lat, len(tracks))
        if self.cfg["http"]:
            self._annotated = (pkt.image, [(e["box"], f"#{e['track']} {e['label']} {e['score']:.2f}") for e in events])
        return events

    def run(self) -> int:
        while not self.stopping.is_set():
            pkt = self.capture.get(timeout=0.5)
            if pkt is None:
                if self.capture.finished:
                    break
                continue
            try:
                self.process(pkt)
            except BrokenPipeError:     # `edgefer run ... | head -1`: the reader is gone, so is our purpose
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit
                log.info("stdout closed by its reader; stopping")
                break
            if self.cfg["max_frames"] and self.stats.frames >= self.cfg["max_frames"]:
                break
        return 0

    def close(self) -> None:
        self.stopping.set()
        self.capture.stop()
        for out in self.outputs:
            out.close()
        self.stats.sink_errors = sum(getattr(o, "errors", 0) for o in self.outputs)


def build(cfg: dict[str, Any]) -> Daemon:
    model = load(resolve_model(str(cfg["model"])), threads=cfg["threads"])
    kind, arg = sources.parse(str(cfg["source"]))
    detector = detect.create(cfg["detector"], threshold=cfg["detect_threshold"])
    outputs = [sinks.create(s) for s in cfg["sink"]]
    seq = SequenceInference(model, {"alpha": cfg["smoothing_alpha"], "hold": cfg["smoothing_hold"]}, cfg["horizon"])
    capture = Capture(kind, arg, fps=cfg["fps"], loop=cfg["loop"])
    d = Daemon(cfg, model, capture, detector, Tracker(max_faces=cfg["max_faces"]), seq, outputs)
    d.outputs.append(d.broadcast)
    return d


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="edgefer: %(message)s")
    cfg = settings(args)
    daemon = build(cfg)
    server = None
    if cfg["http"]:
        from . import server as http_server
        server = http_server.start(daemon, cfg["http_host"], int(cfg["http_port"]), cfg["http_token"])
        log.info("HTTP on http://%s:%s/ (healthz, metrics, events)", cfg["http_host"], server.server_address[1])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stopping.set())
    m = daemon.model
    log.info("model %s (%s %s, %s%s), detector %s, source %s", m.path.name, m.meta.format, m.meta.precision,
             m.window.backend, ", streaming" if m.stream else ", windowed", type(daemon.detector).__name__, cfg["source"])
    daemon.capture.start()
    try:
        code = daemon.run()
    finally:
        daemon.close()
        if server is not None:
            server.shutdown()
    p = daemon.stats.percentiles()
    log.info("stopped: %d frames, %.1f fps, total p50 %.2f ms, dropped %d, corrupt %d, sink errors %d",
             daemon.stats.frames, daemon.stats.fps(), p.get("total", {}).get("p50", float("nan")),
             daemon.capture.counters.dropped, daemon.capture.counters.corrupt, daemon.stats.sink_errors)
    return code
