"""What every dataset loader returns, and the registry loaders join.

A loader only indexes files and labels; pixels are read lazily (`Dataset.read`), because
some releases (CK+ originals) are gigabytes of full frames. Decoding and caching for
training lives in train/images.py.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.labels import canonical, ordered


@dataclass(frozen=True)
class Item:
    """One labelled image. `key` is unique and relative to the dataset root (stable across machines)."""

    key: str
    label: str                    # canonical label (runtime/labels.py)
    split: str = ""               # official split name, "" when the dataset has none
    subject: str | None = None    # person id, for subject-independent splits
    sequence: str | None = None   # clip id: frames of one sequence share it
    frame: int | None = None      # position in the sequence


@dataclass(frozen=True)
class Skip:
    """A file that was not used, and why: reported, never silently dropped."""

    path: str
    reason: str


@dataclass
class Dataset:
    name: str                      # registry name
    root: Path
    items: list[Item]
    read: Callable[[Item], np.ndarray]    # -> uint8 gray HxW
    split_scheme: str              # "official" | "stratified" | "group-kfold"
    roles: dict[str, str]          # train/val/test -> split name (fold datasets: filled per fold)
    skipped: list[Skip] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)  # source label -> canonical, documented
    paper_size: int = 100          # input side the papers resize this dataset to (CK+: 48)
    # How this dataset's crops sit on BlazeFace's box: (margin per side, centre offset_y in box
    # sides), measured with `python -m edgefer.train.framing` (docs/results.md). A model trained
    # on it records this framing so the daemon cuts faces the same way. None: FER2013's.
    framing: tuple[float, float] | None = None
    # Crowd votes (FERPlus): item key -> share of each of `vote_labels` (sums to 1), the soft
    # training target; None where a dataset has one label per image.
    votes: dict[str, np.ndarray] | None = None
    vote_labels: tuple[str, ...] = ()
    # Another label set for the same images (FERPlus faces: FER2013's own label), to score a
    # model against both; None where there is none.
    alt_labels: dict[str, str] | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return ordered({it.label for it in self.items})

    def class_counts(self, indices: list[int] | None = None) -> dict[str, int]:
        idx = range(len(self.items)) if indices is None else indices
        counts = Counter(self.items[i].label for i in idx)
        return {lab: counts.get(lab, 0) for lab in self.labels}


@dataclass(frozen=True)
class DatasetSpec:
    """`name:path?key=value&...` as given on the command line."""

    name: str
    path: Path
    options: dict[str, str]
    text: str


Loader = Callable[[DatasetSpec], Dataset]
REGISTRY: dict[str, tuple[Loader, str]] = {}


def register(name: str, help: str) -> Callable[[Loader], Loader]:
    """Add a loader: the CLI's choices and the tests' parametrisation come from here."""
    def deco(fn: Loader) -> Loader:
        REGISTRY[name] = (fn, help)
        return fn
    return deco


def read_color_file(path: Path) -> np.ndarray:
    """Decode any image file OpenCV reads to 8-bit BGR, as the daemon's folder source does
    (`IMREAD_COLOR`: EXIF orientation applied), with a one-line error otherwise."""
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise EdgeferError(path, "not a readable image", "delete or replace the file")
    return image


def read_gray_file(path: Path) -> np.ndarray:
    """Decode to uint8 gray through the device's own conversion (BGR decode, then the pixel
    contract's `to_gray`), not libjpeg's IMREAD_GRAYSCALE, whose gray differs for colour JPEGs."""
    from edgefer.runtime.preprocess import to_gray

    return to_gray(read_color_file(path))


def map_label(raw: str, mapping: dict[str, str], where: Path | str) -> str:
    """Source label -> canonical, or a clear error naming the label and how to map it."""
    if raw in mapping:
        return mapping[raw]
    lab = canonical(raw)
    if lab is None:
        raise EdgeferError(where, f"unknown label '{raw}'",
                           "map it with ?map=SRC:DST,... or pick classes with ?classes=a,b,...")
    return lab


def require_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise EdgeferError(path, "does not exist", f"point to {what}")
    if not path.is_dir():
        raise EdgeferError(path, "is not a folder", f"point to {what}")


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


def class_folder_items(root: Path, mapping: dict[str, str], classes: set[str] | None,
                       split: str = "", prefix: str = "") -> tuple[list[Item], list[Skip]]:
    """Index `root/<class>/<image>`: one item per image file; other files are recorded as skipped."""
    require_dir(root, "a folder with one sub-folder per class")
    items: list[Item] = []
    skipped: list[Skip] = []
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        raise EdgeferError(root, "has no class sub-folders", "lay images out as <class>/<image>")
    for cdir in class_dirs:
        label = mapping.get(cdir.name) or canonical(cdir.name)
        if classes is not None and label not in classes:
            skipped.append(Skip(str(cdir), "class not selected"))
            continue
        label = map_label(cdir.name, mapping, cdir)
        with os.scandir(cdir) as entries:
            files = sorted((e.name, e.is_file()) for e in entries)
        images = [name for name, is_file in files if is_file and Path(name).suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise EdgeferError(cdir, "empty class folder (no images)",
                               "add images or remove the folder")
        if len(images) < len(files):
            chosen = set(images)
            skipped += [Skip(str(cdir / name), "not an image file") for name, _ in files if name not in chosen]
        key_base = f"{prefix}{cdir.name}/"
        items += [Item(key=key_base + name, label=label, split=split) for name in images]
    return items, skipped


def counts_line(ds: Dataset) -> str:
    by_split = Counter(it.split or "all" for it in ds.items)
    return ", ".join(f"{k}={v}" for k, v in sorted(by_split.items()))
