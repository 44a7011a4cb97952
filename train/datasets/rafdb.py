"""RAF-DB basic emotions (Li et al., 2017): aligned 100x100 colour faces.

`EmoLabel/list_patition_label.txt` (sic) lists `train_00001.jpg 5`; labels 1..7 are
surprise, fear, disgust, happiness, sadness, anger, neutral; images live in
`Image/aligned/train_00001_aligned.jpg`. Official train/test; validation is carved from
train (stratified, seeded) because RAF-DB has none.
"""
from __future__ import annotations

from edgefer.runtime.errors import EdgeferError

from .base import Dataset, DatasetSpec, Item, Skip, read_gray_file, register, require_dir

CODES = {"1": "surprise", "2": "fear", "3": "disgust", "4": "happy", "5": "sad", "6": "angry", "7": "neutral"}


@register("rafdb", "RAF-DB basic: root with EmoLabel/list_patition_label.txt and Image/aligned/")
def load_rafdb(spec: DatasetSpec) -> Dataset:
    root = spec.path
    require_dir(root, "the RAF-DB basic folder (holding EmoLabel/ and Image/)")
    labels_file = root / "EmoLabel" / "list_patition_label.txt"
    image_dir = root / "Image" / "aligned"
    if not labels_file.is_file():
        raise EdgeferError(labels_file, "does not exist: not a RAF-DB basic folder",
                           "point to the folder holding EmoLabel/ and Image/aligned/")
    items, skipped = [], []
    for n, line in enumerate(labels_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise EdgeferError(f"{labels_file}:{n}", f"expected 'NAME LABEL', got '{line.strip()}'")
        name, code = parts
        if code not in CODES:
            raise EdgeferError(f"{labels_file}:{n}", f"unknown label '{code}'", "RAF-DB basic labels are 1..7")
        key = f"Image/aligned/{name.rsplit('.', 1)[0]}_aligned.jpg"
        if not (root / key).is_file():
            skipped.append(Skip(str(root / key), "listed in the label file but missing"))
            continue
        items.append(Item(key=key, label=CODES[code], split=name.split("_", 1)[0]))
    if not items:
        raise EdgeferError(image_dir, "no listed image exists", "unpack Image/aligned/ beside EmoLabel/")
    return Dataset("rafdb", root, items, lambda it: read_gray_file(root / it.key), "official",
                   {"train": "train", "test": "test"}, skipped, mapping=dict(CODES))
