"""`edgefer search`: the papers' grid runs every point, TPE records and can prune trials."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import run_cli
from edgefer.train.search import grid_space, knobs


def test_search_spaces_come_from_the_models():
    assert grid_space("cnn4")["filters"] == [32, 64]
    assert grid_space("resrnn-gru") == {"preset": ["case-I", "case-II"]}
    assert {"units", "dsn_filters", "dtn_kernel", "lr", "weight_decay", "batch_size"} <= set(knobs("resrnn-lstm"))
    assert "units" not in knobs("cnn1")


def test_grid_search_runs_every_point_and_records_it(fixture_dir, tmp_path):
    """The grid runs each preset once, records every trial in trials.csv, and the best it
    reports is the recorded trial with the highest validation accuracy, with that trial's
    preset and its checkpoint (selecting on validation, as the search promises)."""
    res = run_cli("search", "--model", "resrnn-gru", "--method", "grid", "--epochs", "1", "--size", "32",
                  "--data", f"fer2013:{fixture_dir('fer2013-folders')}", "--out", tmp_path, "--threads", "1")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(tmp_path / "trials.csv")))
    assert sorted(r["preset"] for r in rows) == ["case-I", "case-II"]
    result = json.loads((tmp_path / "search.json").read_text())
    best, by_number = result["best"], {int(r["number"]): r for r in rows}
    assert result["completed"] == 2 and best["val_accuracy"] == max(float(r["val_accuracy"]) for r in rows)
    assert float(by_number[best["number"]]["val_accuracy"]) == best["val_accuracy"]
    assert best["params"]["preset"] == by_number[best["number"]]["preset"]
    assert best["checkpoint"].endswith(f"trial{best['number']:03d}/best.pt") and Path(best["checkpoint"]).is_file()
    assert (tmp_path / "study.db").exists()


def test_tpe_search(fixture_dir, tmp_path):
    res = run_cli("search", "--model", "tiny", "--method", "tpe", "--trials", "3", "--epochs", "1",
                  "--data", f"fer2013:{fixture_dir('fer2013-folders')}", "--out", tmp_path, "--threads", "1")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(tmp_path / "trials.csv")))
    assert len(rows) == 3 and all(0.0 < float(r["lr"]) < 0.01 for r in rows)
