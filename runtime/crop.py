"""Face box -> model input: square crop with margin, optional eye alignment, then exactly the
preprocessing the model's metadata prescribes (shared with training via preprocess.py).

One affine warp does crop, rotation and resize at once, straight to the model's input
size, so a 1080p frame costs the same as a 270p one here.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .metadata import ModelMetadata
from .preprocess import normalize, to_gray


def square_box(box: np.ndarray, margin: float) -> tuple[float, float, float]:
    """-> centre x, centre y, side of the square around the box, grown by `margin` per side."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    return (x0 + x1) / 2, (y0 + y1) / 2, side


def crop_face(frame: np.ndarray, box: np.ndarray, meta: ModelMetadata, margin: float = 0.15,
              keypoints: np.ndarray | None = None, align: bool = True) -> np.ndarray:
    """-> float32 (1, S, S), normalised. With eye keypoints (BlazeFace), the face is rotated upright."""
    cx, cy, side = square_box(box, margin)
    angle = 0.0
    if align and keypoints is not None:
        (rx, ry), (lx, ly) = keypoints[0], keypoints[1]      # right eye, left eye (image left to right: right first)
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
    s = meta.input_size
    m = cv2.getRotationMatrix2D((cx, cy), angle, s / max(side, 1.0))
    m[:, 2] += (s / 2 - cx, s / 2 - cy)
    gray = to_gray(frame)
    patch = cv2.warpAffine(gray, m, (s, s), flags=cv2.INTER_AREA if side > s else cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    return normalize(patch, meta.mean, meta.std)[None]
