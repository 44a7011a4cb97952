"""The daemon's HTTP face (standard library ThreadingHTTPServer: nothing more to install on a Pi).

GET /healthz   200 {"status": "ok"} while the source delivers; 503 while it reconnects or has ended
GET /metrics   Prometheus text (fps, per-stage latency p50/p95, drops, faces, source state)
GET /events    live events as Server-Sent Events
GET /frame.jpg the latest annotated frame (kept in memory only)
GET /          a small page showing the annotated video and the event stream

Binds 127.0.0.1 by default. Any other address needs a token; requests then carry
`Authorization: Bearer TOKEN` (or `?token=TOKEN` for the browser page).

Nothing a request sends is echoed into a response: the page is static and its script reads
the token from its own address. Without a token (loopback only), a request whose `Host` is
not a loopback name is refused (421): a web page the user visits cannot reach the daemon by
pointing a DNS name at 127.0.0.1 (DNS rebinding).

Limits, so no client can exhaust the daemon: at most `http_max_connections` connections
are served at once (more get 503 and are closed), an idle or stalled connection is closed
after `http_timeout` seconds, and at most `http_max_streams` clients follow /events. Events
are encoded once by the broadcaster and each stream thread only writes bytes, so listeners
cost the inference loop one queue put each (measured in docs/device.md).
"""
from __future__ import annotations

import hmac
import json
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from .errors import EdgeferError

PAGE = """<!doctype html><meta charset="utf-8"><title>edgefer</title>
<style>body{font:14px system-ui;margin:1em;background:#111;color:#eee}img{max-width:100%;border:1px solid #444}
pre{height:12em;overflow:auto;background:#000;padding:.5em}</style>
<h1>edgefer</h1><img id="v" alt="latest frame"><pre id="e"></pre>
<script>
const t = new URLSearchParams(location.search).get('token'), q = t ? '?token=' + encodeURIComponent(t) : '';
document.getElementById('v').src = 'frame.jpg' + q;
setInterval(() => { document.getElementById('v').src = 'frame.jpg' + (q ? q + '&' : '?') + 't=' + Date.now(); }, 200);
const es = new EventSource('events' + q), pre = document.getElementById('e');
es.onmessage = m => { pre.textContent = m.data + "\\n" + pre.textContent.slice(0, 4000); };
</script>"""


STREAM_BATCH_S = 0.1                   # /events latency added to save the inference loop wake-ups
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def host_name(header: str) -> str:
    """`Host` header -> its name without port or IPv6 brackets, lower-case."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def same_secret(given: str, token: str) -> bool:
    """Constant-time comparison of any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape"))


class LimitedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a cap on connections served at once: one over the cap is
    answered 503 and closed at once, instead of holding a thread for as long as it likes."""

    daemon_threads = True
    request_queue_size = 128           # listen backlog: a burst is answered (or refused) at once, not SYN-retried

    def __init__(self, address, handler, max_connections: int):
        self.slots = threading.BoundedSemaphore(max_connections)
        self.refused = 0
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def make_handler(daemon, token: str | None, idle_timeout: float = 10.0, max_streams: int = 4):
    streams = threading.BoundedSemaphore(max_streams) if max_streams else None

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgefer"
        # StreamRequestHandler applies this to the socket: an idle client, or one that stops
        # reading its event stream, is dropped after `timeout` s instead of holding a thread.
        timeout = idle_timeout

        def log_message(self, *args):       # quiet: the daemon logs what matters
            pass

        def _authorised(self, query: dict) -> bool:
            if token is None:
                return True
            given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip() or query.get("token", [""])[0]
            return same_secret(given, token)

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlparse(self.path)
            query = parse_qs(url.query)
            if token is None and host_name(self.headers.get("Host", "")) not in LOOPBACK:
                return self._send(HTTPStatus.MISDIRECTED_REQUEST, b'{"error":"unknown Host"}', "application/json")
            if not self._authorised(query):
                return self._send(HTTPStatus.UNAUTHORIZED, b'{"error":"token required"}', "application/json")
            if url.path == "/healthz":
                h = daemon.health()
                return self._send(200 if h["status"] == "ok" else 503, json.dumps(h).encode(), "application/json")
            if url.path == "/metrics":
                text = daemon.stats.prometheus(daemon.capture, daemon.sink_errors(), daemon.sink_states())
                text += ("# HELP edgefer_http_refused_total connections refused at the connection cap\n"
                         f"# TYPE edgefer_http_refused_total counter\nedgefer_http_refused_total {self.server.refused}\n")
                return self._send(200, text.encode(), "text/plain; version=0.0.4")
            if url.path == "/frame.jpg":
                jpg = daemon.latest_jpeg()
                return self._send(200, jpg, "image/jpeg") if jpg else self._send(404, b"no frame yet", "text/plain")
            if url.path == "/":
                return self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            if url.path == "/events":
                return self._events()
            return self._send(404, b"not found", "text/plain")

        def _events(self):
            if streams is None or not streams.acquire(blocking=False):
                return self._send(HTTPStatus.SERVICE_UNAVAILABLE, b'{"error":"too many event streams"}',
                                  "application/json")
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                q = daemon.broadcast.subscribe()
                try:
                    while not daemon.stopping.is_set():
                        try:
                            data = q.get(timeout=1.0)
                        except Exception:
                            self.wfile.write(b": keep-alive\n\n")
                            self.wfile.flush()
                            continue
                        if data is None:                  # the daemon is shutting down
                            break
                        # Coalesce: wake at most every STREAM_BATCH_S and send what queued meanwhile
                        # in one write. Per-event wake-ups of many stream threads took the GIL from
                        # the inference loop (50 clients: 0.53x the frame rate).
                        time.sleep(STREAM_BATCH_S)
                        batch = [data]
                        while not q.empty():
                            batch.append(q.get_nowait())
                        self.wfile.write(b"".join(b for b in batch if b is not None))
                        self.wfile.flush()
                        if None in batch:
                            break
                finally:
                    daemon.broadcast.unsubscribe(q)
            except OSError:                               # client gone, or stalled past the timeout
                pass
            finally:
                streams.release()

    return Handler


def check_bind(host: str, token: str | None) -> None:
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise EdgeferError(None, f"--http-host {host} would expose the camera's events beyond this machine",
                           "also pass --http-token SECRET (clients send 'Authorization: Bearer SECRET')")


def start(daemon, cfg) -> LimitedServer:
    """Serve `daemon` as `cfg` (a RunConfig) says, in a background thread."""
    host, port, token = cfg.http_host, int(cfg.http_port), cfg.http_token
    check_bind(host, token)
    handler = make_handler(daemon, token, cfg.http_timeout, cfg.http_max_streams)
    try:
        server = LimitedServer((host, port), handler, cfg.http_max_connections)
    except OSError as exc:
        raise EdgeferError(f"{host}:{port}", f"cannot listen ({exc.strerror})", "pick another --http-port") from None
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
