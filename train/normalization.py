"""Normalisation statistics, from the training split only.

Computing mean/std on all data would leak test statistics into preprocessing; the
numbers land in the model's metadata so the device normalises identically.
"""
from __future__ import annotations

import numpy as np


def fit(pixels_u8: np.ndarray) -> tuple[float, float]:
    """(mean, std) of pixel/255 over a stack of training images."""
    x = pixels_u8.astype(np.float64) / 255.0
    return float(x.mean()), float(max(x.std(), 1e-6))
