"""The live page in a real browser (issue 18, item 4): the real daemon on a real video (or the
demo source) serves its page to headless Chromium, driven over the Chrome DevTools protocol;
per tracked face a label, probability bars that sum to 100 % and a timeline render and update,
and fps and health are shown. Skips where no Chromium is installed (Debian: apt-get install chromium).

EDGEFER_LIVE_PAGE_SCREENSHOT=docs/img/live-page.jpg also saves the screenshot for the docs
(after 30 s, so the timelines have history)."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import SHARED

websocket = pytest.importorskip("websocket", reason="websocket-client is in the dev extra: pip install -e '.[dev]'")

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VIDEO = SHARED / "video" / "head-pose-face-detection-female-and-male.gif"


def browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    pytest.skip(f"no headless browser: none of {', '.join(BROWSERS)} on PATH (Debian: apt-get install chromium)")


def wait_for(what: str, check, timeout: float, every: float = 0.2):
    """Poll `check()` until it returns something truthy, at most `timeout` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := check():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)          # its own session: the browser's helpers go too
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(params=[None, "s3cret"], ids=["no-token", "token"])
def daemon(request, tmp_path):
    """The real daemon with --http on a free port (and with a token: the page must pass it on to
    frame.jpg, /events and /healthz) -> the page's URL."""
    token = ["--http-token", request.param] if request.param else []
    # The docs screenshot is taken on the demo (the package's own public-domain photo): no frame of
    # the third-party sample videos goes into the repository.
    real = VIDEO.exists() and not os.environ.get("EDGEFER_LIVE_PAGE_SCREENSHOT")
    source = ["--source", f"video:{VIDEO}", "--loop", "--detector", "blazeface"] if real else ["--source", "demo"]
    log = tmp_path / "daemon.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "edgefer.runtime.cli", "run", *source, "--fps", "15",
                                 "--http", "--http-port", "0", *token], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"}, start_new_session=True)
    try:
        def port():
            assert proc.poll() is None, log.read_text()[-2000:]
            m = re.search(r"HTTP on http://127\.0\.0\.1:(\d+)/", log.read_text())
            return m and int(m.group(1))
        url = f"http://127.0.0.1:{wait_for('the daemon to serve HTTP', port, 120)}/"
        yield url + (f"?token={request.param}" if request.param else "")
    finally:
        stop(proc)


class DevTools:
    """The few Chrome DevTools protocol calls this test needs, over one page's websocket."""

    def __init__(self, ws_url: str):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.n = 0

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        for _ in range(10000):                          # skip protocol events until our answer
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg["result"]
        raise AssertionError(f"{method}: no answer")

    def eval(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise AssertionError(f"page script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def close(self):
        self.ws.close()


@pytest.fixture
def chromium(tmp_path):
    """Headless Chromium with the DevTools protocol on a free loopback port -> function(url) -> DevTools."""
    exe = browser()
    profile = tmp_path / "profile"
    proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                             f"--user-data-dir={profile}", "--window-size=1100,680", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    tools: list[DevTools] = []
    try:
        active = profile / "DevToolsActivePort"

        def port():
            assert proc.poll() is None, f"{exe} exited with {proc.returncode}"
            text = active.read_text() if active.exists() else ""
            return text.splitlines()[0] if "\n" in text else None
        cdp = f"http://127.0.0.1:{wait_for('Chromium DevTools', port, 60)}"

        def open_page(url: str) -> DevTools:
            with urllib.request.urlopen(f"{cdp}/json/list", timeout=10) as r:
                page = next(t for t in json.load(r) if t["type"] == "page")
            tools.append(DevTools(page["webSocketDebuggerUrl"]))
            tools[-1].call("Page.enable")
            tools[-1].call("Page.navigate", url=url)

            def loaded():
                try:                                    # the old document may go away mid-call
                    return tools[-1].eval("location.href.startsWith('http') && !!document.getElementById('fps')")
                except AssertionError:
                    return False
            wait_for("the page to load", loaded, 30)
            return tools[-1]
        yield open_page
    finally:
        for t in tools:
            t.close()
        stop(proc)


SAMPLE = """(() => {
  const pixels = c => {                                   // a hash of the timeline canvas' pixels
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let h = 0; for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) | 0;
    return h;
  };
  const faces = [...document.querySelectorAll('.face')].map(f => ({
    track: f.dataset.track, title: f.querySelector('h3').textContent, gone: f.classList.contains('gone'),
    bars: [...f.querySelectorAll('.row')].map(r => [r.dataset.label, parseFloat(r.querySelector('.bar i').style.width)]),
    timeline: pixels(f.querySelector('canvas'))}));
  const txt = id => document.getElementById(id).textContent;
  const img = document.getElementById('v');
  return JSON.stringify({faces, fps: txt('fps'), health: txt('health'), source: txt('source'), frames: txt('frames'),
                         events: txt('nev'), dropped: txt('dropped'), image: [img.naturalWidth, img.naturalHeight]});
})()"""


def test_live_page_renders_tracks_bars_and_health(daemon, chromium, tmp_path):
    page = chromium(daemon)

    def sample() -> dict:
        return json.loads(page.eval(SAMPLE))

    first = wait_for("a face with bars on the page",
                     lambda: (s := sample())["faces"] and s["faces"][0]["bars"] and s["fps"] != "?" and s, 90, 0.5)
    for f in first["faces"]:
        label = f["title"].split()[1]
        assert re.fullmatch(r"#\d+ [a-z]+ \d+%", f["title"]), f["title"]
        assert label in dict(f["bars"]), f                               # the reported label has a bar
        assert abs(sum(w for _, w in f["bars"]) - 100) < 1.5, f["bars"]  # widths are the probabilities
        assert len(f["bars"]) >= 2
    assert first["health"] in ("ok", "degraded") and first["source"].split()[0] in ("running", "reconnecting",
                                                                                    "starting", "stopped", "failed")
    assert float(first["fps"]) >= 0 and int(first["frames"]) > 0 and first["dropped"].isdigit()
    assert wait_for("the annotated frame", lambda: sample()["image"][0] > 0, 30)

    time.sleep(3)
    second = wait_for("faces still tracked", lambda: (s := sample())["faces"] and s, 30)
    assert int(second["events"]) > int(first["events"])                 # the event stream flows
    assert int(second["frames"]) > int(first["frames"])                 # /healthz is polled
    assert float(second["fps"]) > 0 and second["health"] == "ok"
    before = {f["track"]: f for f in first["faces"]}
    both = [f for f in second["faces"] if f["track"] in before]
    assert both, "no track lasted 3 s"
    assert any(f["timeline"] != before[f["track"]]["timeline"] for f in both)   # timelines move

    # raw events sit behind a toggle and are the daemon's JSON
    assert page.eval("getComputedStyle(document.getElementById('raw')).display") == "none"
    page.eval("document.getElementById('rawt').click()")
    raw = wait_for("raw events", lambda: page.eval("document.getElementById('raw').textContent"), 10)
    assert {"track", "label", "probs"} <= set(json.loads(raw.splitlines()[0]))
    page.eval("document.getElementById('rawt').click()")

    target = os.environ.get("EDGEFER_LIVE_PAGE_SCREENSHOT")
    if target and "token" not in daemon:
        time.sleep(30)
    shot = base64.b64decode(page.call("Page.captureScreenshot", format="jpeg", quality=82)["data"])
    assert shot[:3] == b"\xff\xd8\xff"                      # a JPEG: the page rendered to pixels
    (tmp_path / "live-page.jpg").write_bytes(shot)
    if target and "token" not in daemon:
        Path(target).write_bytes(shot)
