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
