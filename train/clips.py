"""Clips for sequence models: real sequences where the data has them, jittered views otherwise.

- CK+ sequences are real clips: frames of one `sequence`, in frame order (the 48x48 crops
  give 3 frames per sequence; the original release gives neutral to peak).
- A static image becomes a clip of T independently jittered views (augment.frame_jitter),
  the frame-to-frame noise a webcam adds to a still face.
Models accept any T >= 1, so clips of different sequences need not share a length.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .augment import frame_jitter
from .datasets import Dataset


def sequences(ds: Dataset, indices: list[int] | np.ndarray) -> list[list[int]]:
    """Group item indices into clips by `sequence`, frames in order; items without one are 1-frame clips."""
    groups: dict[str, list[int]] = defaultdict(list)
    singles = []
    for i in indices:
        it = ds.items[i]
        (groups[it.sequence].append(i) if it.sequence else singles.append([i]))
    ordered = [sorted(g, key=lambda i: ds.items[i].frame or 0) for _, g in sorted(groups.items())]
    return ordered + singles


def pad_or_trim(frames: list[int], length: int) -> list[int]:
    """Exactly `length` frames ending at the last (peak) frame; short clips repeat their first frame."""
    if len(frames) >= length:
        return frames[-length:]
    return [frames[0]] * (length - len(frames)) + frames


def jittered_clip(image: np.ndarray, length: int, seed: int) -> np.ndarray:
    """(T, H, W) uint8 views of one still image; view 0 is the image itself."""
    jitter = frame_jitter(seed)
    views = [image] + [jitter(image=image)["image"] for _ in range(length - 1)]
    return np.stack(views)
