"""systemd's sd_notify protocol in the standard library only (no libsystemd, no new dependency).

Under `Type=notify` systemd waits for READY=1 before it calls the service started, and with
`WatchdogSec=` it kills and restarts a service that stops sending WATCHDOG=1: a daemon whose
capture read hangs in a driver, or whose inference loop deadlocks, is restarted instead of
sitting alive and useless. So the daemon feeds the watchdog only while its loops make
progress, never from a timer thread of its own.

Outside systemd (a terminal, the tests, a container) NOTIFY_SOCKET is unset and every call
here is a no-op that returns False. Nothing here raises on socket errors: losing one
notification must never stop the daemon.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass


def _address(target: str) -> str | None:
    """$NOTIFY_SOCKET -> an AF_UNIX address: a path, or '@name' for an abstract socket (sent as
    a leading NUL byte). Other forms (vsock:...) are not supported here -> None."""
    if target.startswith("@"):
        return "\0" + target[1:]
    if target.startswith("/"):
        return target
    return None


def notify(message: str) -> bool:
    """Send one sd_notify datagram ("READY=1", "WATCHDOG=1", "STATUS=...", newline-separated)
    to $NOTIFY_SOCKET -> whether it was sent. False, doing nothing, when the variable is unset.
    The send does not block (a full socket drops the message): the daemon's loops must never
    wait on systemd."""
    address = _address(os.environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(message.encode("utf-8"), address)
    except OSError:
        return False
    return True


def ready(status: str) -> bool:
    """Tell systemd that start-up is done (capture is running) and show `status` in
    `systemctl status`. Until this arrives systemd holds the unit in 'activating', and units
    ordered after it wait."""
    return notify(f"READY=1\nSTATUS={' '.join(status.splitlines())}")


def stopping() -> bool:
    """Tell systemd the daemon is shutting down on purpose, so a slow flush of the sinks is
    not mistaken for a hang."""
    return notify("STOPPING=1")


@dataclass
class Watchdog:
    """systemd's watchdog as the environment describes it. systemd sets WATCHDOG_USEC (the
    timeout) and WATCHDOG_PID (the process it expects pings from) when the unit has
    `WatchdogSec=`; we ping at half the timeout, so one late loop turn does not cost a restart.

    interval: seconds between pings (0: disabled: no watchdog, or it belongs to another pid).
    last: time.monotonic() of the last ping sent, None before the first.
    """

    interval: float = 0.0
    last: float | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Watchdog:
        """Read WATCHDOG_USEC / WATCHDOG_PID (os.environ by default). A WATCHDOG_PID of another
        process (a child that inherited the environment) disables it, as sd_watchdog_enabled()
        does: only the process systemd watches may feed it."""
        env = os.environ if environ is None else environ
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
            pid = int(env["WATCHDOG_PID"]) if env.get("WATCHDOG_PID") else os.getpid()
        except ValueError:
            return cls()
        if usec <= 0 or pid != os.getpid():
            return cls()
        return cls(interval=usec / 2 / 1_000_000)

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def feed(self, now: float | None = None) -> bool:
        """Send WATCHDOG=1 if at least `interval` seconds passed since the last ping ->
        whether it sent. Call it from the loops that must keep making progress, as often as
        they turn: it rate-limits itself. A failed send is retried at the next call."""
        if not self.enabled:
            return False
        now = time.monotonic() if now is None else now
        if self.last is not None and now < self.last + self.interval:
            return False
        if not notify("WATCHDOG=1"):
            return False
        self.last = now
        return True
