"""Capture in its own thread with a latest-frame policy.

Live inference should always work on the newest frame: a bounded buffer keeps the last
few, and when inference lags the oldest is dropped (and counted) instead of building
latency. Files and folders without --fps have no clock to fall behind: every frame is
processed in order (the reader waits for room instead of dropping).
Live sources that drop are reopened with exponential backoff while `state` says so, which
is what /healthz reports; the old reader is closed before each new open.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .errors import EdgeferError
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
    """The capture thread. Its first open decides start-up (`wait_open`: a source that cannot be
    opened is an error, not an endless retry); a source lost after that is reopened with capped
    backoff until `give_up` seconds have passed without a frame, then the capture fails for
    good (`gave_up`), which the daemon turns into a non-zero exit for systemd to act on."""

    kind: SourceKind
    arg: str
    buffer: int = 2
    fps: float | None = None           # pace file sources (and cap live ones) to this rate
    loop: bool = False                 # restart finite sources at their end
    backoff: tuple[float, float] = (0.5, 8.0)
    give_up: float | None = None       # seconds lost before failing for good; None: never for live, at once for files
    counters: Counters = field(default_factory=Counters)
    state: str = "starting"            # starting | running | reconnecting | ended | stopped | failed
    error: str | None = None
    opened: bool = False               # the first open succeeded
    gave_up: bool = False              # failed because the source stayed lost past `give_up`
    beat: float = field(default_factory=time.monotonic)   # last loop progress (the watchdog reads it)

    def __post_init__(self):
        self._frames: deque[Packet] = deque(maxlen=self.buffer)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._reader = None
        self._open_error: Exception | None = None
        self.block = not self.kind.live and self.fps is None
        if self.give_up is None:
            self.give_up = math.inf if self.kind.live else 0.0

    def start(self) -> "Capture":
        """Open and read in the capture thread: a stalled open (a network camera that accepts
        and says nothing) never holds the caller, so SIGTERM is answered at once."""
        self._thread.start()
        return self

    def wait_open(self, stop: threading.Event | None = None) -> bool:
        """Wait for the first open: True once it succeeded, False if `stop` was set first;
        a source that cannot be opened raises the one-line EdgeferError of the start-up."""
        with self._cond:
            while self.state == "starting" and not (stop is not None and stop.is_set()):
                self._cond.wait(0.1)
        if self.opened:
            return True
        if self._open_error is not None:
            exc = self._open_error
            if isinstance(exc, EdgeferError):
                raise exc
            raise EdgeferError(f"{self.kind.name}:{self.arg}" if self.arg else self.kind.name,
                               f"cannot be opened ({exc})", "check the device, URL or path; `edgefer run --help` "
                               "lists the source kinds") from None
        return False

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=2)           # a read stuck in a driver: the thread is a daemon, leave it
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

    def progressing(self, within: float) -> bool:
        """The capture loop turned in the last `within` seconds (a read stuck in a driver has
        not): only then may the daemon feed systemd's watchdog. An ended source counts as
        progressing (the daemon is finishing, not stuck)."""
        return self.finished or time.monotonic() - self.beat < within

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

    def _set(self, state: str, error: str | None = None) -> None:
        with self._cond:
            self.state, self.error = state, error
            self._cond.notify_all()

    def _release(self) -> None:
        """Close the current reader before anything opens the source again (a Pi camera or a
        V4L2 node still held by the old reader would refuse the new open)."""
        reader, self._reader = self._reader, None
        close = getattr(reader, "close", None)
        if close is not None:
            close()

    def _open(self) -> None:
        self._release()
        self._reader = self.kind.open(self.arg)

    def _run(self) -> None:
        try:
            self._open()
        except Exception as exc:               # EdgeferError (bad path), SourceLost (no camera), library errors
            self._open_error = exc
            self._set("failed", str(exc))
            return
        self.opened = True
        if self._stop.is_set():                # SIGTERM arrived while the open was stalled
            self._release()
            return
        self._set("running")
        try:
            self._loop()
        finally:
            self._release()
            with self._cond:
                self._cond.notify_all()

    def _loop(self) -> None:
        delay = self.backoff[0]
        period = 1.0 / self.fps if self.fps else 0.0
        next_t = time.perf_counter()
        lost_since: float | None = None
        while not self._stop.is_set():
            self.beat = time.monotonic()
            try:
                if self._reader is None:
                    raise SourceLost(self.error or "source not open")
                t = time.perf_counter()
                frame = self._reader()
                decode_ms = (time.perf_counter() - t) * 1000
                if frame is None:                          # finite source ended
                    self.counters.corrupt += getattr(self._reader, "shortfall", 0)
                    if self.loop:
                        self._open()
                        continue
                    self._set("ended")
                    return
                if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0 or frame.dtype != np.uint8:
                    self.counters.corrupt += 1
                    continue
                self._push(frame, decode_ms)
                delay, lost_since = self.backoff[0], None
                if period:                                 # pace; after a stall restart the clock, never burst
                    now = time.perf_counter()
                    next_t = max(next_t + period, now - period)
                    time.sleep(max(0.0, next_t - now))
            except (SourceLost, EdgeferError) as exc:      # EdgeferError: reopening a file that is gone
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                    log.warning("source lost (%s); reconnecting with backoff up to %.0f s", exc, self.backoff[1])
                lost_for = now - lost_since
                if lost_for >= self.give_up:
                    self.gave_up = True
                    self._set("failed", f"{exc} (gave up after {lost_for:.0f} s)" if self.give_up else str(exc))
                    return
                self._set("reconnecting", str(exc))
                self._release()
                if self._stop.wait(min(delay, self.give_up - lost_for)):
                    return
                delay = min(delay * 2, self.backoff[1])
                try:
                    self._open()
                except (SourceLost, EdgeferError) as again:
                    self.error = str(again)
                    continue
                self.counters.reconnects += 1
                log.info("source back after %.1f s", time.monotonic() - lost_since)
                self._set("running")
                next_t = time.perf_counter()
            except Exception as exc:                       # a bug or a library error: report, do not spin
                log.exception("capture failed")
                self._set("failed", f"{type(exc).__name__}: {exc}")
                return
