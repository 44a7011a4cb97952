"""Photos -> model pixels through the daemon's own detector, face choice and crop.

Kept apart from evaluate.py because it is the one place the training side runs the device
path on purpose: `detect.create` with the daemon's settings, `main_face`, and the pixel
contract's `face_pixels` with the model's framing (or an explicit `--margin`), reading each
photo as the daemon's folder source does (8-bit BGR).
"""
from __future__ import annotations

import cv2
import numpy as np
from tqdm import tqdm

from edgefer.runtime import detect
from edgefer.runtime.crop import framing, main_face
from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata
from edgefer.runtime.preprocess import face_pixels

from .datasets import Dataset
from .datasets.base import read_color_file


def read_photo(ds: Dataset, i: int) -> np.ndarray:
    """The photo as the daemon would see it: a file decoded to BGR, or (CSV datasets) gray made BGR."""
    it = ds.items[i]
    path = ds.root / it.key
    if path.is_file():
        return read_color_file(path)
    return cv2.cvtColor(ds.read(it), cv2.COLOR_GRAY2BGR)


def detect_faces(ds: Dataset, idx: list[int], meta: ModelMetadata, detector_name: str = "auto",
                 threshold: float = 0.5, margin: float | None = None, progress: bool = True,
                 boxes_out: list | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """-> uint8 pixels (found, S, S) of each photo's main face, a found mask over `idx`, and counts.

    The defaults are the daemon's (`edgefer run`: detector auto, threshold 0.5, the model's
    framing). `boxes_out`, when given, receives (item index, Detection | None, photo | None) per photo."""
    detector = detect.create(detector_name, threshold=threshold)
    pre = framing(meta, margin)
    size = meta.input_size
    pixels, found = [], np.zeros(len(idx), bool)
    counts = {"photos": len(idx), "found": 0, "no_face": 0, "unreadable": 0, "several_faces": 0}
    examples: dict[str, list[str]] = {"no_face": [], "unreadable": []}
    for n, i in enumerate(tqdm(idx, desc="detect + crop", unit="photo", disable=not progress,
                               mininterval=1.0, leave=False)):
        try:
            frame = read_photo(ds, i)
        except EdgeferError:
            counts["unreadable"] += 1
            examples["unreadable"].append(ds.items[i].key)
            if boxes_out is not None:
                boxes_out.append((i, None, None))
            continue
        dets = detector(frame)
        face = main_face(dets)
        if boxes_out is not None:
            boxes_out.append((i, face, frame if face is not None else None))
        if face is None:
            counts["no_face"] += 1
            examples["no_face"].append(ds.items[i].key)
            continue
        counts["several_faces"] += len(dets) > 1
        pixels.append(face_pixels(frame, face.box, size, pre, face.keypoints))
        found[n] = True
    counts["found"] = int(found.sum())
    stats = {**counts, "detector": type(detector).__name__, "detector_setting": detector_name,
             "threshold": threshold, "margin": pre.margin, "offset_y": pre.offset_y, "align": pre.align,
             "examples": {k: v[:5] for k, v in examples.items()}}
    arr = np.stack(pixels) if pixels else np.zeros((0, size, size), np.uint8)
    return arr, found, stats
