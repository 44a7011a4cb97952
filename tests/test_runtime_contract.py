"""The device side: imports without torch, and the metadata contract round-trips."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata, read_sidecar, write_sidecar
from edgefer.runtime.preprocess import prepare

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"


def test_runtime_never_imports_torch():
    modules = sorted("edgefer.runtime." + ".".join(p.relative_to(RUNTIME).with_suffix("").parts).removesuffix(".__init__")
                     for p in RUNTIME.rglob("*.py"))
    assert "edgefer.runtime.backends.litert" in modules
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sklearn', 'albumentations'))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"runtime pulled in {out}"


def test_cli_help_does_not_import_the_training_stack():
    code = ("import sys\nfrom edgefer.runtime import cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_metadata_sidecar_round_trip(tmp_path):
    meta = ModelMetadata("tiny", ["angry", "happy"], 48, 0.5, 0.25, clip_length=4, streaming=True,
                         provenance={"source_sha256": "ab" * 32})
    artifact = tmp_path / "model.onnx"
    write_sidecar(artifact, meta)
    assert read_sidecar(artifact) == meta


def test_metadata_rejects_unknown_labels_and_missing_fields(tmp_path):
    with pytest.raises(EdgeferError, match="unknown labels"):
        ModelMetadata("tiny", ["angry", "bored"], 48, 0.5, 0.25)
    with pytest.raises(EdgeferError, match="lacks"):
        ModelMetadata.from_dict({"architecture": "tiny", "labels": ["angry"]})
    with pytest.raises(EdgeferError, match="no metadata sidecar"):
        read_sidecar(tmp_path / "nothing.tflite")


def test_prepare_resizes_and_normalises_as_the_metadata_says():
    meta = ModelMetadata("tiny", ["angry"], 32, 0.5, 0.25)
    bgr = np.full((100, 80, 3), 255, np.uint8)
    x = prepare(bgr, meta)
    assert x.shape == (1, 32, 32) and x.dtype == np.float32
    assert np.allclose(x, (1.0 - 0.5) / 0.25)
