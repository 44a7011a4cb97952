"""Face crop -> model input, defined once for training, export checks and the device.

Training calls the same function the daemon calls, so a model never sees pixels prepared
differently from how it was trained.
"""
from __future__ import annotations

import cv2
import numpy as np

from .metadata import ModelMetadata


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grayscale from gray, BGR or BGRA input."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


def resize_square(gray: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size; INTER_AREA when shrinking avoids aliasing, LINEAR when growing."""
    if gray.shape[0] == size and gray.shape[1] == size:
        return gray
    interp = cv2.INTER_AREA if gray.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interp)


def normalize(gray_u8: np.ndarray, mean: float, std: float) -> np.ndarray:
    """uint8 pixels (any shape) -> float32 zero-mean unit-variance values."""
    return ((gray_u8.astype(np.float32) / 255.0) - np.float32(mean)) / np.float32(std)


def prepare(image: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """One face image -> float32 (1, S, S) as the model's metadata prescribes."""
    gray = resize_square(to_gray(image), meta.input_size)
    return normalize(gray, meta.mean, meta.std)[None]
