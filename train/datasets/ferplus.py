"""FERPlus (Barsoum et al., 2016): ten crowd votes per FER2013 image, joined by row.

`fer2013new.csv` has one row per fer2013.csv row: Usage, Image name, then vote counts for
neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF. We use
the authors' "majority" scheme: the top emotion must hold more than half of all votes;
images whose majority is unknown / not-a-face, or with no majority, are dropped and
counted (reported as skipped with the reason).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgefer.runtime.errors import EdgeferError

from .base import Dataset, DatasetSpec, Item, Skip, register
from .fer2013 import ROLES, USAGES, load_pixel_csv, read_pixel_csv, row_key

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
MAPPING = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
           "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt"}


def majority(votes: np.ndarray) -> str | None:
    """The FERPlus 'majority' label, or None (no strict majority, unknown, or not a face)."""
    total = votes.sum()
    top = int(np.argmax(votes))
    if total <= 0 or votes[top] * 2 <= total:
        return None
    return MAPPING.get(VOTE_COLUMNS[top])


@register("ferplus", "FERPlus: folder with fer2013new.csv and fer2013.csv (or ?fer2013=PATH); 8-class majority votes")
def load_ferplus(spec: DatasetSpec) -> Dataset:
    root = spec.path if spec.path.is_dir() else spec.path.parent
    votes_csv = spec.path if spec.path.is_file() else root / "fer2013new.csv"
    pixels_csv = Path(spec.options.get("fer2013", root / "fer2013.csv"))
    if not votes_csv.is_file():
        raise EdgeferError(votes_csv, "does not exist", "point to the folder holding fer2013new.csv")
    rows, _ = read_pixel_csv(votes_csv, ("Usage", "Image name") + VOTE_COLUMNS)
    pixels, _, usages, skipped = load_pixel_csv(pixels_csv)
    if len(rows) != len(pixels):
        raise EdgeferError(votes_csv, f"has {len(rows)} rows but {pixels_csv.name} has {len(pixels)}",
                           "use the fer2013new.csv that matches this fer2013.csv row for row")
    items: list[Item] = []
    bad_pixels = {s.path.rsplit(":", 1)[1] for s in skipped}
    for i, row in enumerate(rows):
        key = row_key(i)
        if key in bad_pixels:
            continue
        if not row["Image name"].strip():
            skipped.append(Skip(f"{votes_csv}:{key}", "no image name (FERPlus removed it)"))
            continue
        try:
            votes = np.array([float(row[c] or 0) for c in VOTE_COLUMNS])
        except ValueError:
            skipped.append(Skip(f"{votes_csv}:{key}", "vote counts are not numbers"))
            continue
        label = majority(votes)
        if label is None:
            skipped.append(Skip(f"{votes_csv}:{key}", "no emotion majority (unknown, not a face, or tie)"))
            continue
        usage = row["Usage"].strip() or usages[i]
        if usage not in USAGES:
            raise EdgeferError(f"{votes_csv}:{key}", f"unknown Usage '{usage}'", f"use one of {USAGES}")
        items.append(Item(key=key, label=label, split=usage))
    return Dataset("ferplus", root, items, lambda it: pixels[int(it.key[3:])], "official",
                   dict(ROLES), skipped, mapping=dict(MAPPING))
