"""Any `<class>/<image>` dataset, e.g. the OAHEGA Kaggle set.

Options: `?classes=angry,happy,neutral,sad` keeps a subset (cnn4's 4-class protocol),
`?map=ahegao:happy,...` maps names we do not know. If the root holds `train/` and `test/`
(and optionally `val/`) they are the official splits; a root that is itself named `test/`
(`train/`, `val/`) is all that split; otherwise splits are stratified with a fixed seed.
"""
from __future__ import annotations

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.labels import LABELS, canonical

from .base import Dataset, DatasetSpec, class_folder_items, read_gray_file, register, require_dir

SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def parse_mapping(text: str) -> dict[str, str]:
    mapping = {}
    for pair in filter(None, text.split(",")):
        src, _, dst = pair.partition(":")
        if dst not in LABELS:
            raise EdgeferError(None, f"map target '{dst}' is not a label", f"use one of {list(LABELS)}")
        mapping[src] = dst
    return mapping


def parse_classes(text: str | None) -> set[str] | None:
    if not text:
        return None
    names = {canonical(c) or c for c in text.split(",") if c}
    bad = sorted(n for n in names if n not in LABELS)
    if bad:
        raise EdgeferError(None, f"unknown classes {bad}", f"use labels from {list(LABELS)}")
    return names


@register("folder", "any <class>/<image> folder (optionally train/ val/ test/); ?classes=a,b &map=src:dst")
def load_folder(spec: DatasetSpec) -> Dataset:
    root = spec.path
    require_dir(root, "a folder of class sub-folders")
    mapping = parse_mapping(spec.options.get("map", ""))
    classes = parse_classes(spec.options.get("classes"))
    split_dirs = {d.name: SPLIT_DIRS[d.name.lower()] for d in root.iterdir() if d.is_dir() and d.name.lower() in SPLIT_DIRS}
    items, skipped = [], []
    if split_dirs:
        for dirname, split in sorted(split_dirs.items()):
            found, skip = class_folder_items(root / dirname, mapping, classes, split=split, prefix=f"{dirname}/")
            items += found
            skipped += skip
        roles = {s: s for s in set(split_dirs.values())}
        scheme = "official"
    elif root.name.lower() in SPLIT_DIRS:
        # The folder is itself a split (e.g. `edgefer data uncropped`'s OUT/test): all of it is that split,
        # so `--split test` scores every image instead of a stratified tenth.
        split = SPLIT_DIRS[root.name.lower()]
        items, skipped = class_folder_items(root, mapping, classes, split=split)
        roles, scheme = {split: split}, "official"
    else:
        items, skipped = class_folder_items(root, mapping, classes)
        roles, scheme = {}, "stratified"
    return Dataset("folder", root, items, lambda it: read_gray_file(root / it.key), scheme, roles, skipped, mapping)
