"""Calibration and check images: real faces, class-balanced, prepared exactly as the device does.

Static INT8 needs activation ranges from data the model will see; a few hundred training
images with every class represented is the usual recipe (ORT, LiteRT and TensorRT all
calibrate on what we pass here). Evaluation images come from the split named on the
command line and are never used for calibration.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata
from edgefer.runtime.preprocess import normalize

MIN_CALIBRATION = 32


@dataclass
class ImageSet:
    x: np.ndarray                      # (N, 1, S, S) float32, normalised with the model's statistics
    y: np.ndarray | None               # label ids in the model's label order, when known
    source: str


def balanced_indices(labels: list[str], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels))
    per = max(1, n // len(classes))
    arr = np.array(labels)
    picked = [rng.choice(np.flatnonzero(arr == c), min(per, int((arr == c).sum())), replace=False) for c in classes]
    return np.sort(np.concatenate(picked))


def from_dataset(spec: str, meta: ModelMetadata, split: str, n: int | None, seed: int = 0) -> ImageSet:
    """n images (class-balanced) of a split, or all of it when n is None."""
    from edgefer.train.prepare import prepare
    ds, decoded, plan, _ = prepare(spec, size=meta.input_size, seed=seed)
    idx = np.array(plan.indices(split))
    labels = [ds.items[i].label for i in idx]
    unknown = sorted(set(labels) - set(meta.labels))
    if unknown:
        raise EdgeferError(spec, f"has labels {unknown} the model does not predict", "use a dataset with the model's labels")
    if n is not None:
        idx = idx[balanced_indices(labels, n, seed)]
    y = np.array([meta.labels.index(ds.items[i].label) for i in idx], np.int64)
    return ImageSet(normalize(decoded.pixels[idx], meta.mean, meta.std)[:, None], y, f"{spec} {split} (n={len(idx)})")


def from_npy(path: Path, meta: ModelMetadata) -> ImageSet:
    """A user's own uint8 face crops, (N, S, S) at the model's input size."""
    try:
        arr = np.load(path)
    except (OSError, ValueError) as exc:
        raise EdgeferError(path, f"not a readable .npy array ({exc})", "save uint8 face crops with numpy.save") from None
    s = meta.input_size
    if arr.ndim != 3 or arr.shape[1:] != (s, s):
        raise EdgeferError(path, f"calibration array has shape {arr.shape}; the model needs (N, {s}, {s}) grayscale crops",
                           f"resize the crops to {s}x{s} grayscale")
    return ImageSet(normalize(arr.astype(np.uint8), meta.mean, meta.std)[:, None], None, f"{path} (n={len(arr)})")


def check_size(images: ImageSet, minimum: int = MIN_CALIBRATION) -> ImageSet:
    if len(images.x) < minimum:
        raise EdgeferError(images.source, f"only {len(images.x)} calibration images; INT8 ranges need at least {minimum}",
                           "pass more with --calibration N or a larger --calibration-data")
    return images
