"""The CLI as a user meets it: JSON on stdout, one-line errors, help that lists the registries."""
from __future__ import annotations

import json

from conftest import run_cli


def test_audit_json_has_the_documented_keys(fixture_dir):
    """`data audit --json` prints the audit itself: split counts, the cross-split duplicate report
    (exact and near) as the audit computes it, and the manifest hash."""
    from edgefer.train import datasets, images, splits
    from edgefer.train.audit import audit
    spec = f"fer2013:{fixture_dir('fer2013-folders')}"
    res = run_cli("data", "audit", spec, "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["splits"]["Training"]["total"] == 42
    assert r["splits"]["PrivateTest"]["classes"]["neutral"] == 2
    ds = datasets.load(spec)
    here = audit(ds, images.decode(ds, 48, progress=False), splits.plan_splits(ds))
    assert r["cross_split_duplicates"] == here["cross_split_duplicates"]
    assert r["cross_split_duplicates"]["exact"]["pairs"] == 0 < r["cross_split_duplicates"]["near"]["pairs"]
    assert len(r["manifest_sha256"]) == 64


def test_ckplus_audit_json(fixture_dir):
    res = run_cli("data", "audit", f"ckplus:{fixture_dir('ckplus48', per_class=12)}", "--json", "--no-near")
    r = json.loads(res.stdout)
    assert (r["subjects"], r["sequences"], r["fold_subject_overlap"]) == (12, 36, 0)
    assert set(r["splits"]) == {f"fold{k}" for k in range(10)}


def test_bad_input_is_one_line_without_traceback(tmp_path):
    res = run_cli("data", "audit", f"fer2013:{tmp_path / 'missing'}")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgefer: error:") and "missing" in lines[0]


def test_unknown_dataset_lists_registry(tmp_path):
    res = run_cli("data", "audit", f"kaggle:{tmp_path}")
    assert res.returncode == 2 and "ckplus" in res.stderr and "folder" in res.stderr


def test_help_teaches_with_examples():
    res = run_cli("data", "--help")
    assert res.returncode == 0 and "edgefer data audit fer2013:" in res.stdout
    top = run_cli("--help").stdout
    for cmd in ("data", "train", "evaluate", "search", "compress", "run", "bench"):
        assert cmd in top


def test_unknown_options_are_refused(tmp_path):
    res = run_cli("bench", "--no-such-option")
    assert res.returncode == 2 and "unrecognized arguments" in res.stderr


def test_manifest_and_fixture_commands(tmp_path):
    res = run_cli("data", "fixture", "rafdb", tmp_path / "raf", "--per-class", "3")
    assert res.returncode == 0, res.stderr
    res = run_cli("data", "manifest", f"rafdb:{tmp_path / 'raf'}", "--out", tmp_path / "m")
    assert res.returncode == 0, res.stderr
    written = list((tmp_path / "m").glob("rafdb-*.manifest.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["splits"]["test"]
