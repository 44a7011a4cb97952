"""The embedded `default` model: the best small checkpoint, shipped inside the package.

Every command that takes a model accepts `default`, so a fresh install works offline
with no training and no download. Promoting a checkpoint strips its training state,
checks the size limit and writes the metadata beside it for people and tools to read.
The checkpoint stays here (training side); its exports, which the device runs, live with the
runtime (edgefer/runtime/default/, `edgefer.runtime.artifacts.SHIPPED_DIR`): `edgefer compress
default --out` that folder writes them.
"""
from __future__ import annotations

from pathlib import Path

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import file_sha256, write_sidecar

from . import checkpoint

DEFAULT_DIR = Path(__file__).resolve().parent / "default"
DEFAULT_PATH = DEFAULT_DIR / "default.pt"
MAX_BYTES = 5 * 1024 * 1024


def resolve(model: str) -> Path:
    """`default` -> the shipped checkpoint; anything else is a path."""
    if model != "default":
        return Path(model)
    if not DEFAULT_PATH.is_file():
        raise EdgeferError(DEFAULT_PATH, "no default model is shipped in this install",
                           "train one (edgefer train --model edge ...) and promote it with edgefer train --promote RUN/best.pt")
    return DEFAULT_PATH


def promote(source: Path, target: Path = DEFAULT_PATH, metrics: dict | None = None) -> Path:
    payload = checkpoint.load_payload(source)
    model, meta = checkpoint.load(source)
    meta.provenance = {**meta.provenance, "source_checkpoint_sha256": file_sha256(source)}
    if metrics:
        meta.metrics = {**meta.metrics, **metrics}
    target.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(target, model, payload["architecture"], payload["kwargs"], meta)
    size = target.stat().st_size
    if size > MAX_BYTES:
        target.unlink()
        raise EdgeferError(source, f"is {size / 2**20:.1f} MB; the default model must be at most 5 MB",
                           "promote a smaller model (edge)")
    write_sidecar(target, meta)
    return target
