"""Capture in its own thread with a latest-frame policy.

Live inference should always work on the newest frame: a bounded buffer keeps the last
few, and when inference lags the oldest is dropped (and counted) instead of building
latency. Files and folders without --fps have no clock to fall behind: every frame is
processed in order (the reader waits for room instead of dropping).
Live sources that drop are reopened with exponential backoff while `state` says so, which
is what /healthz reports.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .sources import SourceKind, SourceLost

log = logging.getLogger("edgefer")


@dataclass
class Counters:
    captured: int = 0
    dropped: int = 0                   # overwritten before inference took them
    corrupt: int = 0                   # empty, wrongly shaped or unreadable frames
    reconnects: int = 0


@dataclass
class Packet:
    index: int
    time: float
    image: np.ndarray
    decode_ms: float = 0.0             # time the reader took to deliver this frame (decode / copy)


@dataclass
class Capture:
    kind: SourceKind
    arg: str
    buffer: int = 2
    fps: float | None = None           # pace file sources (and cap live ones) to this rate
    loop: bool = False                 # restart finite sources at their end
    backoff: tuple[float, float] = (0.5, 8.0)
    counters: Counters = field(default_factory=Counters)
    state: str = "starting"            # starting | running | reconnecting | ended | stopped | failed
    error: str | None = None

    def __post_init__(self):
        self._frames: deque[Packet] = deque(maxlen=self.buffer)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self.block = not self.kind.live and self.fps is None

    def start(self) -> "Capture":
        try:                                       # first open in the caller: bad specs fail at start, clearly
            self._reader = self.kind.open(self.arg)
        except SourceLost as exc:                  # a live device that is not there yet: keep trying
            self._reader, self.state, self.error = None, "reconnecting", str(exc)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)
        if self.state not in ("ended", "failed"):
            self.state = "stopped"

    def get(self, timeout: float = 1.0) -> Packet | None:
        """The newest frame not yet taken (older ones are dropped), or None on timeout / end."""
        with self._cond:
            if not self._frames:
                self._cond.wait_for(lambda: self._frames or self.finished, timeout)
            if not self._frames:
                return None
            if self.block:
                self._cond.notify_all()
                return self._frames.popleft()
            newest = self._frames.pop()
            self.counters.dropped += len(self._frames)
            self._frames.clear()
            return newest

    @property
    def finished(self) -> bool:
        return self.state in ("ended", "stopped", "failed") or self._stop.is_set()

    def _push(self, image: np.ndarray, decode_ms: float) -> None:
        with self._cond:
            if self.block:
                self._cond.wait_for(lambda: len(self._frames) < self._frames.maxlen or self._stop.is_set())
                if self._stop.is_set():
                    return                     # shutting down: the frame was never wanted, not dropped
            if len(self._frames) == self._frames.maxlen:
                self.counters.dropped += 1
            self._frames.append(Packet(self.counters.captured, time.time(), image, decode_ms))
            self.counters.captured += 1
            self._cond.notify()

    def _run(self) -> None:
        delay = self.backoff[0]
        period = 1.0 / self.fps if self.fps else 0.0
        next_t = time.perf_counter()
        if self._reader is not None:
            self.state = "running"
        while not self._stop.is_set():
            try:
                if self._reader is None:
                    raise SourceLost(self.error or "source not open")
                t = time.perf_counter()
                frame = self._reader()
                decode_ms = (time.perf_counter() - t) * 1000
                if frame is None:                          # finite source ended
                    if self.loop:
                        self._reader = self.kind.open(self.arg)
                        continue
                    self.state = "ended"
                    break
                if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0 or frame.dtype != np.uint8:
                    self.counters.corrupt += 1
                    continue
                self._push(frame, decode_ms)
                delay = self.backoff[0]
                if period:
                    next_t += period
                    time.sleep(max(0.0, next_t - time.perf_counter()))
            except SourceLost as exc:
                self.state, self.error = "reconnecting", str(exc)
                log.warning("source lost (%s); retrying in %.1f s", exc, delay)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self.backoff[1])
                try:
                    self._reader = None
                    self._reader = self.kind.open(self.arg)
                    self.counters.reconnects += 1
                    self.state, self.error = "running", None
                except SourceLost as again:
                    self.error = str(again)
            except Exception as exc:                       # a bug or a library error: report, do not spin
                self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
                break
        with self._cond:
            self._cond.notify_all()
