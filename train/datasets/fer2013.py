"""FER2013 (Goodfellow et al., 2013) in its two published shapes.

- The pixel CSV (`emotion,pixels,Usage`), rows of 2304 space-separated gray values, codes
  0..6 = angry, disgust, fear, happy, sad, surprise, neutral; Usage is Training, PublicTest
  or PrivateTest.
- Kaggle's image folders `train/<class>/` and `test/<class>/`; test files named
  `PublicTest_*` / `PrivateTest_*` are split by that prefix (the official protocol: select
  on PublicTest, report on PrivateTest).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.labels import LABELS

from .base import Dataset, DatasetSpec, Item, Skip, class_folder_items, read_gray_file, register

CODES = {str(i): LABELS[i] for i in range(7)}           # FER2013's emotion integer -> our label
USAGES = ("Training", "PublicTest", "PrivateTest")
ROLES = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


def row_key(i: int) -> str:
    """Item key of CSV data row i (0-based): FERPlus joins on the same row numbers."""
    return f"row{i:05d}"


def read_pixel_csv(path: Path, required: tuple[str, ...]) -> tuple[list[dict[str, str]], list[str]]:
    """Rows of a FER-style CSV with its header checked; header names are whitespace-stripped
    because Kaggle's `icml_face_data.csv` spells them ` Usage` and ` pixels`."""
    if not path.is_file():
        raise EdgeferError(path, "does not exist", "point to the fer2013.csv file or the image-folder root")
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise EdgeferError(path, f"wrong CSV header {header[:6]}: missing {missing}",
                                   f"expected columns {list(required)}")
            rows = [dict(zip(header, row)) for row in reader]
    except UnicodeDecodeError:
        raise EdgeferError(path, "is not a text CSV file", "point to the fer2013.csv file") from None
    return rows, header


def load_pixel_csv(path: Path) -> tuple[np.ndarray, list[str], list[str], list[Skip]]:
    """(pixels N x 48 x 48 uint8, emotion codes, usages, skipped rows) of a fer2013.csv."""
    rows, _ = read_pixel_csv(path, ("emotion", "pixels", "Usage"))
    pixels = np.zeros((len(rows), 48, 48), np.uint8)
    skipped: list[Skip] = []
    for i, row in enumerate(rows):
        try:
            values = np.array(row["pixels"].split(), dtype=np.int64)
        except ValueError:
            values = np.array([])
        if values.size != 48 * 48 or values.min(initial=0) < 0 or values.max(initial=0) > 255:
            skipped.append(Skip(f"{path}:{row_key(i)}", f"pixels are not 2304 values in 0..255 ({values.size})"))
            continue
        pixels[i] = values.reshape(48, 48)
    return pixels, [r["emotion"].strip() for r in rows], [r["Usage"].strip() for r in rows], skipped


def _from_csv(spec: DatasetSpec) -> Dataset:
    pixels, codes, usages, skipped = load_pixel_csv(spec.path)
    bad = {s.path for s in skipped}
    items = []
    for i, (code, usage) in enumerate(zip(codes, usages)):
        key = row_key(i)
        if f"{spec.path}:{key}" in bad:
            continue
        if code not in CODES:
            raise EdgeferError(f"{spec.path}:{key}", f"unknown label '{code}'", "FER2013 codes are 0..6")
        if usage not in USAGES:
            raise EdgeferError(f"{spec.path}:{key}", f"unknown Usage '{usage}'", f"use one of {USAGES}")
        items.append(Item(key=key, label=CODES[code], split=usage))
    return Dataset("fer2013", spec.path, items, lambda it: pixels[int(it.key[3:])], "official",
                   dict(ROLES), skipped, mapping=dict(CODES))


def _test_split(name: str) -> str:
    for usage in ("PublicTest", "PrivateTest"):
        if name.startswith(usage + "_"):
            return usage
    return "test"


def _from_folders(spec: DatasetSpec) -> Dataset:
    root = spec.path
    if not (root / "train").is_dir():
        raise EdgeferError(root, "has no train/ folder: not a FER2013 image-folder dataset",
                           "point to the folder holding train/ and test/, or to fer2013.csv")
    items, skipped = class_folder_items(root / "train", {}, None, split="Training", prefix="train/")
    if (root / "test").is_dir():
        test, skip_test = class_folder_items(root / "test", {}, None, prefix="test/")
        items += [Item(it.key, it.label, _test_split(it.key.rsplit("/", 1)[1])) for it in test]
        skipped += skip_test
    roles = {role: split for role, split in ROLES.items() if any(it.split == split for it in items)}
    if "test" in {it.split for it in items}:
        roles["test"] = "test"   # un-prefixed test folder: held out whole, validation carved from Training
    return Dataset("fer2013", root, items, lambda it: read_gray_file(root / it.key), "official",
                   roles, skipped, mapping={c: c for c in LABELS[:7]})


@register("fer2013", "FER2013: the pixel CSV (emotion,pixels,Usage) or Kaggle's train/ test/ class folders")
def load_fer2013(spec: DatasetSpec) -> Dataset:
    if spec.path.is_file() or spec.path.suffix.lower() == ".csv":
        return _from_csv(spec)
    if not spec.path.exists():
        raise EdgeferError(spec.path, "does not exist", "point to fer2013.csv or the folder holding train/ and test/")
    return _from_folders(spec)
