"""Shared fixtures: tiny datasets in every real format, the real data when present, a CLI runner."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Decoded-image cache in a temp folder: tests never read or write the user's ~/.cache."""
    os.environ["EDGEFER_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    import edgefer.train.images as images
    images.CACHE_DIR = Path(os.environ["EDGEFER_CACHE"])


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory):
    """Function (format, per_class=6, seed=0) -> path of a generated dataset, made once per session."""
    from edgefer.train.fixtures import write_fixture

    made: dict[tuple, Path] = {}

    def make(fmt: str, per_class: int = 6, seed: int = 0) -> Path:
        key = (fmt, per_class, seed)
        if key not in made:
            made[key] = write_fixture(fmt, tmp_path_factory.mktemp(fmt), per_class=per_class, seed=seed)
        return made[key]
    return make


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not present at {path} (../shared/data is provided beside the repo in CI)")
    return path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed CLI as a user runs it: a separate process, real exit code and streams.
    It runs in a scratch folder so default outputs (runs/...) never land in the repository."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "edgefer.runtime.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or tempfile.mkdtemp(prefix="edgefer-cli-"),
                          env=env, timeout=600)


SMALL_EDGE = {"widths": [8, 16, 16, 32], "depths": [1, 1, 1, 1], "stem": 8, "units": 16}


@pytest.fixture(scope="session")
def small_edge_checkpoint(tmp_path_factory):
    """A small `edge` (depthwise residual CNN + GRU) with trained-looking BatchNorm statistics."""
    import torch

    from edgefer.runtime.labels import LABELS
    from edgefer.runtime.metadata import ModelMetadata
    from edgefer.train import checkpoint, models
    torch.manual_seed(0)
    model = models.create("edge", 7, **SMALL_EDGE)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 1, 48, 48))
    meta = ModelMetadata("edge", list(LABELS[:7]), 48, 0.5, 0.25, streaming=True)
    return checkpoint.save(tmp_path_factory.mktemp("ckpt") / "small.pt", model.eval(), "edge", SMALL_EDGE, meta)


@pytest.fixture(scope="session")
def small_artifacts(small_edge_checkpoint, fixture_dir, tmp_path_factory):
    """`edgefer compress` of the small model, every format and precision: (folder, report, data folder)."""
    import json
    data = fixture_dir("fer2013-folders", per_class=8)
    out = tmp_path_factory.mktemp("artifacts")
    res = run_cli("compress", small_edge_checkpoint, "--precision", "fp16,int8", "--formats", "onnx,tflite,tensorrt",
                  "--data", f"fer2013:{data}", "--calibration", "42", "--out", out)
    assert res.returncode == 0, res.stderr[-2000:]
    return out, json.loads((out / "report.json").read_text()), data
