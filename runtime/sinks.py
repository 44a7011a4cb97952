"""Event sinks, one row each: JSON lines (stdout or file), HTTP (health, metrics, live events,
a page with the annotated video), MQTT. A sink that fails (full disk, broker gone) is
counted and retried; it never stops inference.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import EdgeferError

log = logging.getLogger("edgefer")


@dataclass
class JsonLines:
    """Events as JSON lines on stdout or appended to a file.

    A file is opened when the sink is made (an unwritable path is a one-line error at start,
    not a silent run) and written a whole line per `os.write`: if a write fails or lands
    short (disk full), the file is truncated back to its last complete line, so earlier
    lines stay valid and the next event never glues onto a fragment. Failures are counted at
    once (`errors`, read live by /metrics and /healthz) and logged once per burst."""

    path: str = "-"                    # "-" = stdout
    errors: int = 0

    def __post_init__(self):
        self._fd: int | None = None
        self._good = 0                 # bytes of complete lines in the file
        self._failing = False
        if self.path != "-":
            self._open()

    def _open(self) -> None:
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._good = os.fstat(self._fd).st_size
        except OSError as exc:
            raise EdgeferError(self.path, f"cannot write events ({exc.strerror})",
                               "pick a writable file, e.g. --sink jsonl:events.jsonl") from None

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":")) + "\n"
        try:
            if self.path == "-":
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                data = line.encode()
                written = os.write(self._fd, data)
                if written != len(data):
                    raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
                self._good += written
        except OSError as exc:         # disk full, file removed, pipe closed: count, keep running, retry next time
            self.errors += 1
            if self._fd is not None:
                try:
                    os.ftruncate(self._fd, self._good)     # back to the last complete line
                except OSError:
                    pass
            if not self._failing:
                log.warning("event sink %s failing (%s); counting dropped events", self.path, exc.strerror or exc)
            self._failing = True
            if exc.errno == errno.EPIPE:
                raise
            return
        if self._failing:
            log.warning("event sink %s writing again after %d dropped events", self.path, self.errors)
            self._failing = False

    def close(self) -> None:
        try:
            if self.path == "-":
                sys.stdout.flush()
            elif self._fd is not None:
                os.close(self._fd)
                self._fd = None
        except OSError:
            self.errors += 1


@dataclass
class Mqtt:
    url: str                           # mqtt://host[:port]/topic
    errors: int = 0

    def __post_init__(self):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise EdgeferError(None, "paho-mqtt is not installed", "pip install paho-mqtt") from None
        from urllib.parse import urlparse
        u = urlparse(self.url)
        self.topic = u.path.lstrip("/") or "edgefer/events"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.connect_async(u.hostname or "127.0.0.1", u.port or 1883)
        self.client.loop_start()

    def emit(self, event: dict[str, Any]) -> None:
        try:
            self.client.publish(self.topic, json.dumps(event), qos=0)
        except Exception:
            self.errors += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Broadcast:
    """Fan-out of events to live HTTP listeners (SSE), each with a small bounded queue."""
    listeners: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self):
        import queue
        q: queue.Queue = queue.Queue(maxsize=100)
        with self.lock:
            self.listeners.append(q)
        return q

    def unsubscribe(self, q) -> None:
        with self.lock:
            if q in self.listeners:
                self.listeners.remove(q)

    def emit(self, event: dict[str, Any]) -> None:
        with self.lock:
            for q in self.listeners:
                if q.full():
                    try:
                        q.get_nowait()
                    except Exception:
                        pass
                q.put_nowait(event)

    def close(self) -> None:
        self.emit({"type": "shutdown"})


SINKS: dict[str, Callable[[str], Any]] = {
    "jsonl": lambda arg: JsonLines(arg or "-"),
    "mqtt": lambda arg: Mqtt(arg),
}


def create(spec: str):
    """'jsonl' | 'jsonl:PATH' | 'mqtt:mqtt://host/topic'."""
    kind, _, arg = spec.partition(":")
    if kind not in SINKS:
        raise EdgeferError(None, f"unknown sink '{kind}'", f"use one of {sorted(SINKS)} (HTTP is --http)")
    if kind == "jsonl" and arg not in ("", "-"):
        parent = Path(arg).parent
        if not parent.is_dir():
            raise EdgeferError(arg, "folder of the event file does not exist", "create it or pick another path")
    return SINKS[kind](arg)
