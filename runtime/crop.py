"""Detected face -> model input, through the pixel contract (preprocess.py) the model was trained with.

The daemon (`edgefer run`) and `edgefer evaluate --detect` both call `crop_face`, and choose
the face of a still photo with `main_face`, so an evaluation through the detector measures
exactly what the device would report.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .detect import Detection
from .metadata import ModelMetadata, Preprocessing
from .preprocess import face_pixels, normalize


def framing(meta: ModelMetadata, margin: float | None = None, align: bool | None = None) -> Preprocessing:
    """The model's contract, with an operator's explicit overrides (None keeps the model's value)."""
    pre = meta.preprocessing
    if margin is not None and margin != pre.margin:
        pre = dataclasses.replace(pre, margin=float(margin))
    if align is not None and align != pre.align:
        pre = dataclasses.replace(pre, align=bool(align))
    return pre


def crop_face(frame: np.ndarray, box: np.ndarray, meta: ModelMetadata, keypoints: np.ndarray | None = None,
              pre: Preprocessing | None = None) -> np.ndarray:
    """-> float32 (1, S, S), framed and normalised as the model's metadata (or `pre`) says."""
    pixels = face_pixels(frame, box, meta.input_size, pre or meta.preprocessing, keypoints)
    return normalize(pixels, meta.mean, meta.std)[None]


def main_face(detections: list[Detection]) -> Detection | None:
    """The subject of a still photo: the largest detected face (ties: the more confident)."""
    if not detections:
        return None
    return max(detections, key=lambda d: (float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1])), d.score))
