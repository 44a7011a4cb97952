"""The CLI as a user meets it: JSON on stdout, one-line errors, help that lists the registries."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


def test_popcount_without_numpy_2(monkeypatch):
    """train/audit's Hamming distance works on NumPy 1.x (no np.bitwise_count): same counts."""
    import numpy as np
    from edgefer.train import audit
    x = np.random.default_rng(0).integers(0, 2**63, size=(5, 7), dtype=np.uint64) | np.uint64(2**63)
    expected = np.array([[bin(int(v)).count("1") for v in row] for row in x])
    assert (audit.popcount(x) == expected).all()
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert (audit.popcount(x) == expected).all() and audit.popcount(x).shape == x.shape


DEVICE_ONLY = ("torch", "sklearn", "matplotlib", "albumentations", "imagehash", "imblearn", "optuna",
               "onnx", "onnxscript", "torch_pruning", "litert_torch", "ai_edge_quantizer")


@pytest.mark.parametrize("argv,extra", [
    (["data", "audit", "folder:X"], "edgefer[train]"),
    (["evaluate", "default.int8.tflite", "--data", "folder:X"], "edgefer[train]"),
    (["train", "--list"], "edgefer[train]"),
    (["compress", "default"], "edgefer[train,compress]"),
])
def test_device_only_install_names_the_extra(argv, extra, tmp_path):
    """With the workstation extras unimportable (a device-only install), each such command
    ends in one line naming the extra it needs, never a ModuleNotFoundError traceback."""
    import cv2
    import numpy as np
    for c in ("happy", "sad"):
        (tmp_path / "X" / "test" / c).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(tmp_path / "X" / "test" / c / f"{i}.png"), np.full((48, 48), 50 * i + 20, np.uint8))
    code = (f"import sys\nfor m in {DEVICE_ONLY!r}: sys.modules[m] = None\n"
            f"from edgefer.runtime.cli import main\nsys.exit(main({argv!r}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-1500:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and extra in lines[0] and "device install" in lines[0], res.stderr


def test_evaluate_split_defaults_like_bench():
    from edgefer.runtime.cli import build_parser
    ev = build_parser().parse_args(["evaluate", "default", "--data", "folder:X"])
    bench = build_parser().parse_args(["bench"])
    assert ev.split == bench.split == "PublicTest"


def test_a_folder_named_test_is_the_test_split(tmp_path):
    """`--data folder:OUT/test --split test` scores every image (the folder is the split), as
    `--data folder:OUT --split test` does; not a stratified tenth of it."""
    import cv2
    import numpy as np
    from edgefer.train import splits
    from edgefer.train.datasets import load
    for c in ("happy", "sad"):
        (tmp_path / "test" / c).mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(tmp_path / "test" / c / f"{i}.png"), np.full((48, 48), 40 * i, np.uint8))
    for spec in (f"folder:{tmp_path}", f"folder:{tmp_path / 'test'}"):
        plan = splits.plan_splits(load(spec))
        assert len(plan.indices("test")) == 10 and sorted(plan.splits) == ["test"], spec
