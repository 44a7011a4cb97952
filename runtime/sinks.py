"""Event sinks, one row each: JSON lines (stdout or file), HTTP (health, metrics, live events,
a page with the annotated video), MQTT. A sink that fails (full disk, broker gone) is
counted and retried; it never stops inference.
"""
from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import EdgeferError


@dataclass
class JsonLines:
    path: str = "-"                    # "-" = stdout
    errors: int = 0

    def __post_init__(self):
        self._fh = sys.stdout if self.path == "-" else None

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":")) + "\n"
        try:
            if self._fh is None:
                self._fh = open(self.path, "a", buffering=1)
            self._fh.write(line)
        except OSError:               # disk full, file removed, pipe closed: count, keep running, retry next time
            self.errors += 1
            if self._fh is not sys.stdout and self._fh is not None:
                try:
                    self._fh.close()
                except OSError:
                    pass
                self._fh = None

    def close(self) -> None:
        try:
            if self._fh is not None:
                self._fh.flush()
                if self._fh is not sys.stdout:
                    self._fh.close()
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
