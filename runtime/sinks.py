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

    @property
    def name(self) -> str:
        return f"jsonl:{self.path}"

    @property
    def state(self) -> str:
        """"failing" from a failed write until the next one succeeds (/healthz, /metrics)."""
        return "failing" if self._failing else "ok"

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
    """Events as JSON messages on an MQTT topic: `mqtt:mqtt://host[:port]/topic[?qos=1&buffer=1000&keepalive=30]`.

    The broker may be absent at start or restart at any time; neither blocks or stops the
    daemon. The connection is made in paho's own thread (connect_async + loop_start) and
    retried with a backoff of 1 s doubling to 30 s; the first failure is one warning, the
    return one info line with how many events were buffered and dropped meanwhile.

    Every event goes through one bounded, in-order queue (`buffer` events, default 1000):
    emit() only appends to it (never waits on the network), one sender thread hands its head
    to paho while connected. While the broker is away the queue fills; when full, the oldest
    event is pushed out and counted in `errors` at once. On (re)connect the queue is sent in
    order before anything emitted later. With QoS 1/2, at most `INFLIGHT` sent events wait
    for the broker's acknowledgement; events sent but unacknowledged when the connection
    drops are resent by paho after reconnect, and the queue waits until they are
    acknowledged, so the first arrival of each event stays in emit order. (The sender never
    holds the sink's lock while calling paho: paho runs on_publish under its own message
    lock, so holding ours across publish() would deadlock.)

    What is guaranteed, QoS 1 (the default: at-least-once across broker restarts and lost
    connections): every event is acknowledged by a broker, or counted in `errors` (pushed
    out of a full queue, refused by paho, or still held when close() gives up). An event can
    arrive twice (resent after a lost acknowledgement). The sink cannot see past the broker:
    a broker without persistence that crashes after acknowledging an event but before
    delivering it loses it uncounted (measured in tests/test_mqtt_sink.py, SIGKILL mid-stream:
    none lost by the sink; the dead broker took up to a few acknowledged events in about 1 run
    of 30; a clean restart lost none), and a subscriber only gets what is published while it
    is subscribed. QoS 0 is fire-and-forget: events written to a connection that turns out
    to be dead are lost uncounted. QoS 2 adds two round trips per event and drops duplicates
    only while the broker keeps the session (not across a restart without persistence).

    Read live by /metrics and /healthz: `errors` (events lost), `disconnects` (broker
    losses), `buffered` (events held now: queued plus sent-but-unacknowledged) and `state`:
    "ok" while connected, "buffering" while the broker is away, "failing" when the queue
    has overflowed since the last connect (or, connected, until it has drained)."""

    url: str                           # mqtt://host[:port]/topic[?qos=..&buffer=..&keepalive=..]
    errors: int = 0                    # events lost (dropped from a full buffer, rejected, undelivered at close)
    disconnects: int = 0               # broker connections lost

    INFLIGHT = 20                      # QoS 1/2 events sent and awaiting the broker's ack, at most
    SETTINGS = {"qos": (1, 0, 2), "buffer": (1000, 1, 1_000_000), "keepalive": (30, 5, 65535)}   # default, min, max

    def __post_init__(self):
        from collections import deque
        from urllib.parse import parse_qsl, urlsplit
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise EdgeferError(None, "paho-mqtt is not installed", "pip install 'paho-mqtt>=2.0'") from None
        self._mqtt = mqtt
        spec = f"mqtt:{self.url}"
        example = "e.g. --sink mqtt:mqtt://localhost:1883/edgefer/events?qos=1&buffer=1000"
        u = urlsplit(self.url)
        if u.scheme != "mqtt" or u.fragment:
            raise EdgeferError(spec, "the MQTT sink needs an mqtt://host[:port]/topic URL (no TLS, no '#')", example)
        try:
            port = u.port or 1883
        except ValueError:
            raise EdgeferError(spec, f"bad MQTT port '{u.netloc.rpartition(':')[2]}'", "a port is 1..65535") from None
        self.host = u.hostname or "127.0.0.1"
        self.port = port
        self.topic = u.path.lstrip("/") or "edgefer/events"
        if "+" in self.topic:
            raise EdgeferError(spec, f"MQTT topic '{self.topic}' has a wildcard '+'", "publish to a plain topic")
        values = {}
        for key, text in parse_qsl(u.query, keep_blank_values=True):
            if key not in self.SETTINGS:
                raise EdgeferError(spec, f"unknown MQTT setting {key}={text}", f"use {', '.join(self.SETTINGS)}")
            default, lo, hi = self.SETTINGS[key]
            try:
                value = int(text)
            except ValueError:
                value = None
            if value is None or not lo <= value <= hi:
                allowed = "0, 1 or 2" if key == "qos" else f"an integer {lo}..{hi}"
                raise EdgeferError(spec, f"bad MQTT setting {key}={text or '(empty)'}",
                                   f"{key} is {allowed} (default {default})")
            values[key] = value
        self.qos, self.buffer, self.keepalive = (values.get(k, default) for k, (default, _, _) in self.SETTINGS.items())

        self._cond = threading.Condition()   # the one lock: queue, counters, connection state
        self._queue: deque[str] = deque()
        self._unacked = 0                  # QoS 1/2 events handed to paho, not yet acknowledged
        self._connected = False
        self._resync = False               # reconnected with unacked events: paho resends them first
        self._overflowed = False
        self._closing = False
        self._away = False                 # a loss is being reported (one warning per burst)
        self._errors_at_loss = 0

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        if self.qos:
            client.on_publish = self._on_publish
        client.max_inflight_messages_set(self.INFLIGHT)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client = client
        client.connect_async(self.host, self.port, keepalive=self.keepalive)
        client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="edgefer-mqtt", daemon=True)
        self._sender.start()

    # -- read live by the daemon --------------------------------------------------------

    @property
    def state(self) -> str:
        with self._cond:
            return "failing" if self._overflowed else "ok" if self._connected else "buffering"

    @property
    def buffered(self) -> int:
        with self._cond:
            return len(self._queue) + self._unacked

    # -- inference thread ------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        payload = json.dumps(event, separators=(",", ":"))
        with self._cond:
            if len(self._queue) >= self.buffer:
                self._queue.popleft()      # the oldest goes: counted at once, logged per burst
                self._drop(1)
            self._queue.append(payload)
            self._cond.notify_all()

    def _drop(self, n: int) -> None:       # under the lock
        self.errors += n
        if not self._overflowed:
            log.warning("MQTT sink %s:%d: buffer of %d events full; dropping the oldest (counted in sink errors)",
                        self.host, self.port, self.buffer)
        self._overflowed = True

    # -- sender thread: the only caller of publish() ---------------------------------------

    def _ready(self) -> bool:              # under the lock
        if self._closing and not self._connected:
            return True
        return self._connected and bool(self._queue) and (
            self._unacked == 0 if self._resync else self._unacked < self.INFLIGHT)

    def _send_loop(self) -> None:
        mqtt = self._mqtt
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._ready() or (self._closing and not self._queue))
                if self._closing and (not self._connected or not self._queue):
                    return
                payload = self._queue.popleft()
                if self.qos:
                    self._unacked += 1
            try:                           # outside the lock, see the docstring
                rc = self.client.publish(self.topic, payload, qos=self.qos).rc
            except Exception as exc:       # paho refused it (e.g. too large): lost, counted
                rc, err = None, exc
            else:
                err = None
            if rc == mqtt.MQTT_ERR_SUCCESS or (self.qos and rc == mqtt.MQTT_ERR_NO_CONN):
                continue                   # sent, or (QoS 1/2) kept by paho and sent on reconnect
            with self._cond:
                if self.qos:
                    self._unacked -= 1
                if rc == mqtt.MQTT_ERR_NO_CONN and len(self._queue) < self.buffer:
                    self._queue.appendleft(payload)      # QoS 0, connection just went: back in front,
                    self._cond.wait(0.05)                # and no spinning until on_disconnect says so
                else:
                    self.errors += 1
                    log.warning("MQTT sink %s:%d: publish failed (%s); event dropped", self.host, self.port,
                                err or mqtt.error_string(rc))

    # -- paho's network thread ---------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        with self._cond:
            if reason.is_failure:
                if not self._away:
                    log.warning("MQTT broker %s:%d refused the connection (%s); retrying every 1-30 s",
                                self.host, self.port, reason)
                    self._away, self._errors_at_loss = True, self.errors
                return
            self._connected = True
            self._resync = self._unacked > 0
            if self._away:
                log.info("MQTT broker %s:%d connected again; %d events buffered, %d dropped meanwhile",
                         self.host, self.port, len(self._queue) + self._unacked, self.errors - self._errors_at_loss)
            else:
                log.info("MQTT sink connected to %s:%d, topic %s, qos %d", self.host, self.port, self.topic, self.qos)
            self._away = False
            self._overflowed = False
            self._cond.notify_all()

    def _on_connect_fail(self, client, userdata) -> None:
        with self._cond:
            if not self._away and not self._closing:
                log.warning("MQTT broker %s:%d not reachable; buffering up to %d events, retrying every 1-30 s",
                            self.host, self.port, self.buffer)
                self._away, self._errors_at_loss = True, self.errors

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            self._cond.notify_all()
            if not was or self._closing:
                return
            self.disconnects += 1
            if not self._away:
                log.warning("MQTT broker %s:%d lost (%s); buffering up to %d events, reconnecting every 1-30 s",
                            self.host, self.port, reason, self.buffer)
                self._away, self._errors_at_loss = True, self.errors

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        with self._cond:               # called under paho's message lock: take ours only briefly
            self._unacked = max(0, self._unacked - 1)
            if self._unacked == 0:
                self._resync = False
            if not self._queue and self._unacked == 0 and self._connected:
                self._overflowed = False
            self._cond.notify_all()

    def close(self, timeout: float = 2.0) -> None:
        """Send what can be sent within `timeout` seconds if connected, then stop; never hangs.
        Events still held after that are counted in `errors`."""
        import time
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._connected and (self._queue or self._unacked) and time.monotonic() < deadline:
                self._cond.wait(max(0.0, min(0.1, deadline - time.monotonic())))
            self._closing = True
            self._cond.notify_all()
        self._sender.join(max(0.1, deadline - time.monotonic()))
        with self._cond:
            lost = len(self._queue) + self._unacked
            self._queue.clear()
            self._unacked = 0
            self.errors += lost
        if lost:
            log.warning("MQTT sink %s:%d: %d events not delivered at close (counted in sink errors)",
                        self.host, self.port, lost)
        try:
            self.client.disconnect()
        except Exception:
            pass
        stopper = threading.Thread(target=self.client.loop_stop, daemon=True)   # bounded: a connect in
        stopper.start()                                                       # progress may take seconds
        stopper.join(3.0)


@dataclass
class Broadcast:
    """Fan-out of events to live HTTP listeners (SSE), each with a small bounded queue.

    Each event is encoded once, here, as its SSE bytes; a listener that falls behind loses
    its oldest events (never blocks the inference loop). None in a queue means shutdown."""
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

    def _put(self, item: bytes | None) -> None:
        with self.lock:
            for q in self.listeners:
                if q.full():
                    try:
                        q.get_nowait()
                    except Exception:
                        pass
                q.put_nowait(item)

    def emit(self, event: dict[str, Any]) -> None:
        if self.listeners:                 # no listener: no encoding cost at all
            self._put(f"data: {json.dumps(event, separators=(',', ':'))}\n\n".encode())

    def close(self) -> None:
        self._put(None)


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
