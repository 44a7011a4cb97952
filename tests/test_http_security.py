"""The daemon's HTTP face against a hostile browser (issue 16, item 1 and the token half of 6):
nothing a request sends comes back in a page, a foreign Host cannot reach a loopback daemon
(DNS rebinding), and any token text is a clean 401, never a traceback. Real server, 127.0.0.1."""
from __future__ import annotations

import http.client
from types import SimpleNamespace

import pytest

from edgefer.runtime import server

PAYLOAD = '"></script><script>alert(1)</script>'


@pytest.fixture
def serve():
    started = []

    def make(token=None):
        daemon = SimpleNamespace(health=lambda: {"status": "ok"})
        srv = server.start(daemon, "127.0.0.1", 0, token)
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
