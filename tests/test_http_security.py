"""The daemon's HTTP face against a hostile browser (issue 16, item 1 and the token half of 6):
nothing a request sends comes back in a page, a foreign Host cannot reach a loopback daemon
(DNS rebinding), and any token text is a clean 401, never a traceback. Real server, 127.0.0.1."""
from __future__ import annotations

import http.client
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from edgefer.runtime import server, sinks
from edgefer.runtime.config import RunConfig

PAYLOAD = '"></script><script>alert(1)</script>'


@pytest.fixture
def serve():
    started = []

    def make(token=None, **limits):
        daemon = SimpleNamespace(health=lambda: {"status": "ok"}, broadcast=sinks.Broadcast(), stopping=threading.Event())
        srv = server.start(daemon, RunConfig(http_host="127.0.0.1", http_port=0, http_token=token, **limits))
        started.append(srv)
        return srv.server_address[1]
    yield make
    for srv in started:
        srv.shutdown()
        srv.server_close()


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def test_page_echoes_nothing_from_the_request(serve):
    port = serve("s3cret")
    from urllib.parse import quote
    status, body = get(port, "/?token=" + quote("s3cret" + PAYLOAD))
    assert status == 401                                       # wrong token: refused, nothing echoed
    status, body = get(port, "/?token=s3cret&x=" + quote(PAYLOAD))
    assert status == 200 and b"alert(1)" not in body and b"s3cret" not in body
    assert body == server.PAGE.encode()                        # the page is static
    open_port = serve()                                        # loopback, no token: the default settings
    status, body = get(open_port, "/?token=" + quote(PAYLOAD))
    assert status == 200 and b"alert(1)" not in body


def test_foreign_host_cannot_reach_a_loopback_daemon(serve):
    port = serve()
    assert get(port, "/healthz", {"Host": "attacker.example:80"})[0] == 421
    assert get(port, "/healthz", {"Host": f"127.0.0.1:{port}"})[0] == 200
    assert get(port, "/healthz", {"Host": f"localhost:{port}"})[0] == 200
    assert get(port, "/healthz", {"Host": f"[::1]:{port}"})[0] == 200


@pytest.mark.parametrize("given", ["Bearer s3crét", "Bearer \u2603", "Bearer ", "Basic abc"])
def test_any_token_text_is_a_clean_401(serve, given):
    port = serve("s3cret")
    status, body = get(port, "/healthz", {"Authorization": given.encode("utf-8").decode("latin-1")})
    assert status == 401 and b"token required" in body
    assert get(port, "/healthz", {"Authorization": "Bearer s3cret"})[0] == 200


@pytest.mark.parametrize("header, name", [("127.0.0.1:8080", "127.0.0.1"), ("[::1]:80", "::1"), ("LocalHost", "localhost"),
                                          ("::1", "::1"), ("evil.example", "evil.example")])
def test_host_name(header, name):
    assert server.host_name(header) == name


def open_idle(port: int, n: int) -> list[socket.socket]:
    """n TCP connections that never send a request (what an exhausting client does)."""
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        conns.append(s)
    return conns


def test_idle_connections_are_capped_and_time_out(serve):
    """Protects item 6: 300 idle connections once held 308 threads for good. Now the server
    never runs more than the cap's threads, refuses the rest at once (503, closed), closes
    the idle ones after the timeout, and answers again afterwards."""
    port = serve(http_max_connections=8, http_timeout=1.0)
    before = threading.active_count()
    t0 = time.monotonic()
    conns = open_idle(port, 300)
    refused, peak = 0, 0
    try:
        for s in conns:                            # every connection ends: refused now, or idle-closed
            s.settimeout(5)
            data = b""
            while chunk := s.recv(200):
                data += chunk
            refused += data.startswith(b"HTTP/1.0 503")
            peak = max(peak, threading.active_count() - before)
        assert time.monotonic() - t0 < 15
        assert peak <= 8 + 1
        assert refused >= 250                      # most never got a thread
        assert get(port, "/healthz")[0] == 200     # and the daemon serves again
    finally:
        for s in conns:
            s.close()


def test_event_streams_are_capped(serve):
    """Protects item 6: each /events client costs the inference loop; beyond the cap a client
    gets 503 instead of a stream, and a slot frees when a client leaves."""
    port = serve(http_max_streams=2)
    held = []
    for _ in range(2):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/events", headers={"Host": "127.0.0.1"})
        assert conn.getresponse().status == 200
        held.append(conn)
    assert get(port, "/events")[0] == 503
    held.pop().close()
    deadline = time.monotonic() + 5               # the stream thread notices the close at its next write
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/events")
        r = conn.getresponse()
        conn.close()
        if r.status == 200:
            break
        time.sleep(0.2)
    assert r.status == 200
    for c in held:
        c.close()
