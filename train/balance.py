"""Class balancing from the papers, through imbalanced-learn, on indices of the training split.

Both samplers act on a list of training indices and never see validation or test items:
oversampling before the split is exactly the leak that inflates published FER numbers.
"""
from __future__ import annotations

import numpy as np

from edgefer.runtime.errors import EdgeferError

METHODS = ("none", "oversample", "downsample")


def balance(indices: list[int] | np.ndarray, labels: list[str] | np.ndarray, method: str, seed: int) -> np.ndarray:
    """Training indices resampled so every class has as many as the largest (oversample)
    or the smallest (downsample) class; `labels[k]` is the label of `indices[k]`."""
    indices = np.asarray(indices)
    if method == "none":
        return indices
    from imblearn.under_sampling import RandomUnderSampler
    from imblearn.over_sampling import RandomOverSampler

    samplers = {"oversample": RandomOverSampler, "downsample": RandomUnderSampler}
    if method not in samplers:
        raise EdgeferError(None, f"unknown balancing '{method}'", f"use one of {METHODS}")
    resampled, _ = samplers[method](random_state=seed).fit_resample(indices.reshape(-1, 1), np.asarray(labels))
    return resampled.ravel()
