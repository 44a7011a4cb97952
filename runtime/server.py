"""The daemon's HTTP face (standard library ThreadingHTTPServer: nothing more to install on a Pi).

GET /healthz   200 {"status": "ok"} while the source delivers; 503 while it reconnects or has ended
GET /metrics   Prometheus text (fps, per-stage latency p50/p95, drops, faces, source state)
GET /events    live events as Server-Sent Events
GET /frame.jpg the latest annotated frame (kept in memory only)
GET /          the live page: annotated video, per-face emotion bars and 60 s timeline,
               fps, source and health state, counters, raw events behind a toggle

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

# The live page: self-contained (no external resources: the daemon may be offline). It builds
# its DOM with textContent only and reads its token from its own address, so nothing a request
# sends is echoed. Per face: emotion, probability bars, a 60 s timeline; health polled each second.
PAGE = r"""<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>edgefer live</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#111;color:#eee}
header{display:flex;flex-wrap:wrap;gap:.4em 1.2em;align-items:center;padding:.5em 1em;background:#1c1c1c}
header b{font-size:1.2em}.kv span{color:#9bd}.kv .ok{color:#6d6}.kv .bad{color:#f66}
main{display:flex;flex-wrap:wrap;gap:1em;padding:1em}
#v{max-width:min(640px,100%);border:1px solid #444;align-self:flex-start}
#faces{display:flex;flex-direction:column;gap:.6em;min-width:300px}
.face{background:#1c1c1c;border:1px solid #333;padding:.5em;transition:opacity 1s}
.face.gone{opacity:.35}.face h3{margin:0 0 .3em;font-size:1.1em}
.row{display:grid;grid-template-columns:5.5em 180px 3em;align-items:center;font-size:12px}
.bar{height:10px;background:#2a2a2a}.bar i{display:block;height:100%}
.row.top{font-weight:bold}canvas{display:block;margin-top:.4em;background:#000}
#raw{display:none;height:14em;overflow:auto;background:#000;margin:0 1em 1em;padding:.5em;font-size:12px}
#rawt:checked~#raw{display:block}label.t{margin:0 1em}
</style>
<header><b>edgefer</b>
<span class="kv">health <span id="health">?</span></span>
<span class="kv">source <span id="source">?</span></span>
<span class="kv">fps <span id="fps">?</span></span>
<span class="kv">frames <span id="frames">0</span></span>
<span class="kv">dropped <span id="dropped">0</span></span>
<span class="kv">corrupt <span id="corrupt">0</span></span>
<span class="kv">reconnects <span id="reconnects">0</span></span>
<span class="kv">sink errors <span id="sink_errors">0</span></span>
<span class="kv">events <span id="nev">0</span></span></header>
<main><img id="v" alt="latest annotated frame"><div id="faces"></div></main>
<input type="checkbox" id="rawt"><label class="t" for="rawt">raw events</label><pre id="raw"></pre>
<script>
"use strict";
const $ = id => document.getElementById(id);
const t = new URLSearchParams(location.search).get('token'), q = t ? '?token=' + encodeURIComponent(t) : '';
const C = {angry:'#e53935',disgust:'#7cb342',fear:'#8e24aa',happy:'#fdd835',sad:'#1e88e5',surprise:'#fb8c00',neutral:'#9e9e9e',contempt:'#8d6e63'};
const col = l => C[l] || '#ccc', SPAN = 60, W = 264, H = 64;
const faces = new Map(); let nev = 0, lastT = 0, lastRecv = 0;
const img = $('v');
function nextFrame(ms) { setTimeout(() => { img.src = 'frame.jpg' + (q ? q + '&' : '?') + 't=' + Date.now(); }, ms); }
img.onload = () => nextFrame(150); img.onerror = () => nextFrame(1000); nextFrame(0);
function el(tag, cls, parent, text) {
  const e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; if (parent) parent.appendChild(e); return e;
}
function face(id) {
  let f = faces.get(id);
  if (!f) {
    const box = el('div', 'face', $('faces')), next = [...faces].filter(([k]) => k > id).sort((a, b) => a[0] - b[0])[0];
    box.dataset.track = id; if (next) $('faces').insertBefore(box, next[1].box);   // in track order
    const h = el('h3', '', box), bars = el('div', 'bars', box), cv = el('canvas', '', box);
    cv.width = W; cv.height = H;
    f = {box, h, bars, cv, rows: Object.create(null), hist: [], ev: null, seen: 0, dirty: true};
    faces.set(id, f);
  }
  return f;
}
function onEvent(e) {
  const tr = Number(e.track); if (!Number.isFinite(tr)) return;
  const f = face(tr); f.ev = e; f.seen = performance.now(); f.dirty = true;
  f.hist.push({t: +e.time, p: e.probs || {}, l: e.label});
  lastT = Math.max(lastT, +e.time); lastRecv = performance.now(); nev++;
}
function drawBars(f) {
  const e = f.ev, ps = e.probs || {}, pct = v => (100 * Math.max(0, Math.min(1, +v || 0))).toFixed(1) + '%';
  f.h.textContent = '#' + e.track + ' ' + e.label + ' ' + Math.round(100 * (+e.score || 0)) + '%';
  f.h.style.color = col(e.label);
  for (const l of Object.keys(ps)) {
    let r = f.rows[l];
    if (!r) {
      const row = el('div', 'row', f.bars); el('span', '', row, l);
      const bar = el('div', 'bar', row), i = el('i', '', bar); i.style.background = col(l);
      r = f.rows[l] = {row, i, v: el('span', '', row)}; row.dataset.label = l;
    }
    r.i.style.width = pct(ps[l]); r.v.textContent = pct(ps[l]).replace('.0%', '%');
    r.row.classList.toggle('top', l === e.label);
  }
}
function drawTimeline(f, now) {
  const g = f.cv.getContext('2d'), x = tt => W - (now - tt) / SPAN * W;
  f.hist = f.hist.filter(p => p.t > now - SPAN);
  g.clearRect(0, 0, W, H); g.fillStyle = '#222';
  for (let s = 10; s < SPAN; s += 10) g.fillRect(x(now - s), 0, 1, H - 8);
  const labels = new Set(); f.hist.forEach(p => Object.keys(p.p).forEach(l => labels.add(l)));
  for (const l of labels) {
    g.strokeStyle = col(l); g.lineWidth = 1.5; g.beginPath();
    f.hist.forEach((p, k) => { const y = (H - 10) * (1 - (+p.p[l] || 0)) + 1; k ? g.lineTo(x(p.t), y) : g.moveTo(x(p.t), y); });
    g.stroke();
  }
  f.hist.forEach((p, k) => { const n = f.hist[k + 1]; g.fillStyle = col(p.l);
    g.fillRect(x(p.t), H - 6, Math.max(1, (n ? x(n.t) : x(p.t) + 2) - x(p.t)), 6); });
  g.fillStyle = '#888'; g.font = '10px sans-serif'; g.fillText('-60 s', 2, 10); g.fillText('now', W - 20, 10);
}
setInterval(() => {
  const pn = performance.now(), now = lastT + (pn - lastRecv) / 1000;
  for (const [id, f] of faces) {
    const age = (pn - f.seen) / 1000;
    if (age > 10) { f.box.remove(); faces.delete(id); continue; }
    f.box.classList.toggle('gone', age > 2);
    if (f.dirty) { drawBars(f); f.dirty = false; }
    drawTimeline(f, now);
  }
  $('nev').textContent = nev;
}, 250);
const raw = $('raw'), rawt = $('rawt'), lines = [];
const es = new EventSource('events' + q);
es.onmessage = m => {
  let e; try { e = JSON.parse(m.data); } catch (_) { return; }
  onEvent(e);
  if (rawt.checked) { lines.unshift(m.data); lines.length = Math.min(lines.length, 100); raw.textContent = lines.join('\n'); }
};
function setHealth(h, up) {
  $('health').textContent = up ? h.status || '?' : 'unreachable';
  $('health').className = up && h.status === 'ok' ? 'ok' : 'bad';
  $('source').textContent = up ? (h.source || '?') + (h.error ? ' (' + h.error + ')' : '') : '?';
  for (const k of ['fps', 'frames', 'dropped', 'corrupt', 'reconnects', 'sink_errors']) if (up && k in h) $(k).textContent = h[k];
}
async function poll() {
  try { const r = await fetch('healthz' + q, {cache: 'no-store'}); setHealth(await r.json(), true); }  // 503 = degraded, still JSON
  catch (_) { setHealth({}, false); }
  setTimeout(poll, 1000);
}
poll();
</script></html>"""


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
