"""`edgefer run`: capture -> detect -> track -> crop -> sequence inference -> sinks, until
the source ends or SIGTERM / SIGINT, then a clean shutdown that flushes every sink.

Settings come from --config (TOML) with command-line options on top. No frame or crop is
written anywhere; the HTTP page serves the latest annotated frame from memory only.
"""
from __future__ import annotations

import argparse
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

from . import config, detect, notify, sinks, sources
from .capture import Capture
from .config import FIELDS, RunConfig
from .crop import crop_face, framing
from .errors import EdgeferError
from .metrics import Stats
from .model import DeployedModel, load
from .sequence import SequenceInference
from .track import Tracker

log = logging.getLogger("edgefer")

# Exit codes (README "Run on the device"; the systemd unit's RestartPreventExitStatus): restarting
# cannot fix a start-up error, and can fix a lost source.
EXIT_OK, EXIT_BUG, EXIT_START, EXIT_SOURCE_LOST = 0, 1, 2, 3


def shipped_dir() -> Path:
    """The package folder holding the shipped `default` exports (runtime/default/, package data)."""
    from .artifacts import SHIPPED_DIR
    return SHIPPED_DIR


def resolve_model(spec: str, onnx: bool = False) -> Path:
    """`default` or a shipped name (default.int8.onnx) -> the shipped artifact this install runs
    best (an ONNX one when `onnx`); a folder -> its best artifact; a file -> itself."""
    from .artifacts import resolve
    return resolve(spec, onnx)


def settings(args: argparse.Namespace) -> RunConfig:
    """The command line -> a checked RunConfig (the file's values, then the flags given)."""
    given = {k: getattr(args, k) for k in FIELDS if getattr(args, k, None) is not None}
    return config.resolve(getattr(args, "config", None), given)


@dataclass
class Daemon:
    cfg: RunConfig
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
    _warned_faceless: bool = False     # one no-face warning per drought

    @property
    def framing(self):
        """The model's pixel contract; `margin` / `align` settings override it only when given."""
        return framing(self.model.meta, self.cfg.margin, self.cfg.align)

    def sink_states(self) -> dict[str, str]:
        """Each sink's own state ("ok", or "failing" / "buffering" while it cannot deliver)."""
        return {getattr(o, "name", type(o).__name__): getattr(o, "state", "ok") for o in self.outputs
                if o is not self.broadcast}

    def sink_errors(self) -> int:
        return sum(getattr(o, "errors", 0) for o in self.outputs)

    def health(self) -> dict[str, Any]:
        """ok: the source delivers and every sink writes; degraded: either is failing or
        reconnecting (HTTP 503, so a probe sees it); the fields say which."""
        c, states = self.capture, self.sink_states()
        ok = c.state == "running" and all(v == "ok" for v in states.values())
        return {"status": "ok" if ok else "degraded", "source": c.state, "error": c.error, "sinks": states,
                "frames": self.stats.frames, "fps": round(self.stats.fps(), 2), "dropped": c.counters.dropped,
                "corrupt": c.counters.corrupt, "reconnects": c.counters.reconnects, "sink_errors": self.sink_errors()}

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
        t4 = time.perf_counter()
        lat["sink"] = (t4 - t3) * 1000
        lat["total"] = (t4 - t0) * 1000 + pkt.decode_ms
        self.stats.record(lat, len(tracks))
        if self.cfg.http:
            self._annotated = (pkt.image, [(e["box"], f"#{e['track']} {e['label']} {e['score']:.2f}") for e in events])
        return events

    def run(self, watchdog: notify.Watchdog | None = None) -> int:
        """Process frames until the source ends, a stop is asked, or the source is lost for
        good; -> the exit code. The watchdog is fed only while both loops make progress."""
        if not self.capture.wait_open(self.stopping):
            return EXIT_OK                      # stopped while the source was still opening
        notify.ready(f"running: {self.cfg.source}")
        while not self.stopping.is_set():
            if watchdog is not None and self.capture.progressing(2 * watchdog.interval):
                watchdog.feed()                 # this loop turns, and so does the capture's
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
            self.warn_if_faceless()
            if self.cfg.max_frames and self.stats.frames >= self.cfg.max_frames:
                break
        if self.capture.state == "failed" and not self.stopping.is_set():
            log.error("source failed for good: %s", self.capture.error)
            return EXIT_SOURCE_LOST if self.capture.gave_up else EXIT_BUG
        return EXIT_OK

    def warn_if_faceless(self) -> None:
        """Once per drought: a live camera with no face for `no_face_warning` s is either an empty
        room or a detector that cannot see these faces; say which setting to try."""
        quiet = self.stats.since_face()
        if quiet < self.cfg.no_face_warning:
            self._warned_faceless = False
        elif self.capture.kind.live and not self._warned_faceless:
            self._warned_faceless = True
            log.warning("no face seen for %.0f s with detector %s; if people are in view, they may be too far for it: "
                        "try --detector blazeface-full (see `edgefer bench --detectors`)", quiet,
                        getattr(self.detector, "name", "?"))

    def close(self) -> None:
        self.stopping.set()
        self.capture.stop()
        for out in self.outputs:
            out.close()


def engine_model(onnx: Path, precision: str) -> Path:
    """`tensorrt = "fp16"`: the ONNX model -> its TensorRT engine, built at the first start on
    the Jetson (minutes) and cached under systemd's CacheDirectory (or beside the model)."""
    if onnx.suffix != ".onnx":
        raise EdgeferError(onnx, "tensorrt builds engines from an ONNX model", "pass --model X.onnx (or default)")
    from .backends.tensorrt_build import engine_for
    cache = Path(os.environ.get("CACHE_DIRECTORY", "").split(":")[0] or onnx.parent / "engines")
    log.info("TensorRT %s engine for %s (built once, cached in %s)", precision, onnx.name, cache)
    notify.notify("EXTEND_TIMEOUT_USEC=1200000000\nSTATUS=building the TensorRT engine (first start only)")
    return engine_for(onnx, precision, cache)


def build(cfg: RunConfig) -> Daemon:
    path = resolve_model(cfg.model, onnx=cfg.tensorrt is not None)
    if cfg.tensorrt:
        path = engine_model(path, cfg.tensorrt)
    model = load(path, threads=cfg.threads)
    kind, arg = sources.parse(cfg.source)
    detector = detect.create(cfg.detector, threshold=cfg.detect_threshold)
    outputs = [sinks.create(s) for s in cfg.sink]
    seq = SequenceInference(model, {"alpha": cfg.smoothing_alpha, "hold": cfg.smoothing_hold}, cfg.horizon)
    capture = Capture(kind, arg, fps=cfg.fps, loop=cfg.loop, give_up=cfg.give_up)
    d = Daemon(cfg, model, capture, detector, Tracker(max_faces=cfg.max_faces), seq, outputs)
    d.outputs.append(d.broadcast)
    return d


def quiet_opencv() -> None:
    """No OpenCV warning per reconnect try. `cv2.utils.logging` exists from OpenCV 4.12;
    older wheels (the ones pip picks beside NumPy 1.x) have only cv2.setLogLevel (2 = ERROR)."""
    cv_log = getattr(getattr(cv2, "utils", None), "logging", None)
    if cv_log is not None:
        cv_log.setLogLevel(cv_log.LOG_LEVEL_ERROR)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(2)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="edgefer: %(message)s")
    quiet_opencv()
    cfg = settings(args)
    daemon = build(cfg)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stopping.set())
    server = None
    if cfg.http:
        from . import server as http_server
        server = http_server.start(daemon, cfg)
        log.info("HTTP on http://%s:%s/ (healthz, metrics, events)", cfg.http_host, server.server_address[1])
    m = daemon.model
    log.info("model %s (%s %s, %s%s), detector %s, source %s", m.path.name, m.meta.format, m.meta.precision,
             m.window.backend, ", streaming" if m.stream else ", windowed", getattr(daemon.detector, "name", type(daemon.detector).__name__), cfg.source)
    daemon.capture.start()
    try:
        code = daemon.run(notify.Watchdog.from_env())
    finally:
        notify.stopping()
        daemon.close()
        if server is not None:
            server.shutdown()
    p = daemon.stats.percentiles()
    log.info("stopped: %d frames, %.1f fps, total p50 %.2f ms, dropped %d, corrupt %d, sink errors %d, exit %d",
             daemon.stats.frames, daemon.stats.fps(), p.get("total", {}).get("p50", float("nan")),
             daemon.capture.counters.dropped, daemon.capture.counters.corrupt, daemon.sink_errors(), code)
    return code
