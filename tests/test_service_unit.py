"""The systemd unit and the sd_notify side of the daemon (issue 16, item 9): the unit stays
sandboxed (systemd-analyze exposure <= 3.0) yet keeps what the daemon needs, and
runtime/notify.py speaks the protocol systemd's Type=notify / WatchdogSec= rely on.
Real AF_UNIX datagram sockets; no sleeps (the watchdog is driven with explicit times)."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from edgefer.runtime import notify

UNIT = Path(__file__).resolve().parents[1] / "runtime" / "service" / "edgefer.service"
MAX_EXPOSURE = 3.0


def unit_settings(path: Path = UNIT) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value in file order. Systemd units repeat keys (DeviceAllow=,
    SystemCallFilter=), so configparser cannot read them; an empty assignment resets the list."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"not a unit line: {raw!r}"
        key, value = (part.strip() for part in line.split("=", 1))
        values = current.setdefault(key, [])
        if value:
            values.append(value)
        else:
            values.clear()
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return unit_settings()["Service"]


def words(values: list[str]) -> list[str]:
    return [w for v in values for w in v.split()]


# ---- the unit

def test_unit_exposure_is_at_most_three():
    """Protects the sandbox as a whole: `systemd-analyze security` scores the unit file itself
    (--offline, no running systemd needed); a dropped or weakened setting raises the score."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed here")
    version = re.match(r"systemd (\d+)", subprocess.run([exe, "--version"], capture_output=True, text=True).stdout)
    if version is None or int(version.group(1)) < 250:
        pytest.skip("systemd-analyze security --offline needs systemd >= 250")
    res = subprocess.run([exe, "security", "--offline=true", "--no-pager", str(UNIT)],
                         capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for edgefer\.service: (\d+(?:\.\d+)?)", res.stdout)
    assert found, res.stdout[-2000:] + res.stderr[-2000:]
    flagged = "\n".join(line for line in res.stdout.splitlines() if line.startswith("✗"))
    assert float(found.group(1)) <= MAX_EXPOSURE, f"exposure {found.group(1)} > {MAX_EXPOSURE}:\n{flagged}"


def test_unit_is_notify_with_a_watchdog(service):
    """Protects supervision: systemd waits for READY=1, kills a daemon that stops feeding the
    watchdog, and only messages from the main process count."""
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    (watchdog,) = service["WatchdogSec"]
    assert re.fullmatch(r"\d+s?", watchdog) and 0 < int(watchdog.rstrip("s")) <= 120


def test_unit_restart_policy_matches_the_exit_codes(service):
    """Protects the exit-code contract: failures restart, a start-up error (exit 2: bad config,
    model or source spec) does not loop forever. Tied to the daemon's own constant."""
    from edgefer.runtime import daemon
    assert service["Restart"] == ["on-failure"]
    assert str(daemon.EXIT_START) in words(service["RestartPreventExitStatus"])
    assert str(daemon.EXIT_SOURCE_LOST) not in words(service["RestartPreventExitStatus"])


def test_unit_keeps_what_the_daemon_needs(service):
    """Protects function under the sandbox: the command line, the camera devices (by driver
    group: a /dev directory in DeviceAllow= matches nothing), the writable state folder, the
    sockets it uses, and EPERM (not SIGKILL) for a filtered call (OpenBLAS calls mbind at import)."""
    assert service["ExecStart"] == ["/opt/edgefer/.venv/bin/edgefer run --config /etc/edgefer/edgefer.toml"]
    devices = [v.split()[0] for v in service["DeviceAllow"]]
    assert {"char-video4linux", "char-media", "char-dma_heap"} <= set(devices)
    assert all(not d.startswith("/dev/") or Path(d).name != "dma_heap" for d in devices)
    assert service["DevicePolicy"] == ["closed"]
    assert "/var/lib/edgefer" in words(service["ReadWritePaths"])
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(words(service["RestrictAddressFamilies"]))
    assert service["SystemCallErrorNumber"] == ["EPERM"]
    assert service.get("CapabilityBoundingSet", []) == []
    assert service.get("ProcSubset", ["all"]) == ["all"], "ProcSubset=pid hides /proc/cpuinfo from XNNPACK / onnxruntime"


# ---- sd_notify

@pytest.fixture
def receiver(tmp_path, monkeypatch):
    """A datagram socket standing in for systemd's, NOTIFY_SOCKET pointing at it."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(2)
    return False


def test_notify_sends_one_datagram_to_the_socket(receiver):
    """Protects the wire format systemd reads: the message as is, one datagram."""
    assert notify.notify("READY=1") is True
    assert receiver.recv(4096) == b"READY=1"


def test_notify_reaches_an_abstract_socket(monkeypatch):
    """Protects '@name' addresses (systemd may use abstract sockets): '@' becomes a NUL byte."""
    name = f"edgefer-test-{os.getpid()}-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.notify("STATUS=abstract") is True
        assert sock.recv(4096) == b"STATUS=abstract"


def test_notify_outside_systemd_is_a_quiet_no_op(monkeypatch, tmp_path):
    """Protects running from a terminal or a container: no NOTIFY_SOCKET -> False; a socket that
    is gone -> False, never an exception into the daemon's loop."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing"))
    assert notify.notify("READY=1") is False


def test_ready_and_stopping_messages(receiver):
    """Protects the start / stop handshake: READY=1 with a one-line STATUS (a newline in the
    status text cannot smuggle in another assignment), and STOPPING=1."""
    assert notify.ready("running: webcam:0\nWATCHDOG=trigger") is True
    assert receiver.recv(4096) == b"READY=1\nSTATUS=running: webcam:0 WATCHDOG=trigger"
    assert notify.stopping() is True
    assert receiver.recv(4096) == b"STOPPING=1"


def test_watchdog_feeds_at_half_the_timeout(receiver, monkeypatch):
    """Protects the watchdog: interval = WATCHDOG_USEC / 2, WATCHDOG=1 sent at once, then not
    again before the interval has passed, then again (explicit times, no sleeping)."""
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    dog = notify.Watchdog.from_env()
    assert dog.enabled and dog.interval == pytest.approx(0.1)
    assert dog.feed(now=100.0) is True
    assert receiver.recv(4096) == b"WATCHDOG=1"
    assert dog.feed(now=100.05) is False
    assert nothing_waiting(receiver)
    assert dog.feed(now=100.1) is True
    assert receiver.recv(4096) == b"WATCHDOG=1"


def test_watchdog_of_another_process_or_none_is_disabled(receiver, monkeypatch):
    """Protects children that inherit the environment: a WATCHDOG_PID of another process, or no
    WATCHDOG_USEC, means no pings at all."""
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    dog = notify.Watchdog.from_env()
    assert not dog.enabled and dog.feed(now=100.0) is False
    monkeypatch.delenv("WATCHDOG_USEC")
    monkeypatch.delenv("WATCHDOG_PID")
    assert not notify.Watchdog.from_env().enabled
    assert nothing_waiting(receiver)


def test_watchdog_retries_a_ping_that_was_not_sent(tmp_path, monkeypatch):
    """Protects against a silent gap: a ping that could not be sent is not counted, so the next
    call (same time) sends it instead of waiting a whole interval."""
    path = tmp_path / "late"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    dog = notify.Watchdog.from_env({"WATCHDOG_USEC": "200000"})
    assert dog.feed(now=5.0) is False                     # nobody listening yet
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        assert dog.feed(now=5.0) is True
        assert sock.recv(4096) == b"WATCHDOG=1"
