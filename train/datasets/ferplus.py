"""FERPlus (Barsoum et al., 2016): ten crowd votes per FER2013 face, in the three forms users have.

1. Microsoft's generator layout (what `generate_training_data.py` writes): `FER2013Train/`,
   `FER2013Valid/`, `FER2013Test/`, each a `label.csv` (no header: image name, face box, then
   ten vote counts) beside the `fer*.png` it names.
2. The same `label.csv` files without their images (as the shared copy ships them): the faces
   come from FER2013's Kaggle folders, joined **by FERPlus image name** (each Kaggle file is
   `<Usage>_<FERPlus name>`), from `?fer2013=PATH` or a sibling `fer2013/` folder.
3. The CSV pair: `fer2013new.csv` (Usage, Image name, votes) beside the original
   `fer2013.csv`, joined row for row as Microsoft's generator does.

Votes are neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
A face's label follows FERPlus' own "majority" rule (its `ferplus.py`): single votes are
dropped as outliers, then the top count must exceed half of what is left; faces whose
majority is unknown or not-a-face, or that have none, are dropped and counted. Each kept
face also carries its emotion vote distribution (`Dataset.votes`, after the same outlier
removal), the soft target of Barsoum et al.'s cross-entropy training. Faces from form 2
remember FER2013's own label too (`Dataset.alt_labels`), so one model can be scored against both.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgefer.runtime.errors import EdgeferError

from .base import Dataset, DatasetSpec, Item, Skip, read_gray_file, register
from .fer2013 import ROLES, USAGES, load_pixel_csv, read_pixel_csv, row_key

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
MAPPING = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
           "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt"}
EMOTIONS = tuple(MAPPING.values())              # canonical labels of the first eight vote columns
LAYOUT = {"FER2013Train": "Training", "FER2013Valid": "PublicTest", "FER2013Test": "PrivateTest"}
KAGGLE_PREFIX = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}


def outliers_removed(votes: np.ndarray) -> np.ndarray:
    """FERPlus' outlier removal: an emotion with a single vote gets none."""
    return np.where(votes <= 1, 0.0, votes.astype(np.float64))


def majority(votes: np.ndarray) -> str | None:
    """The FERPlus 'majority' label of ten vote counts, or None (no strict majority after
    outlier removal, or the majority is unknown / not a face)."""
    v = outliers_removed(np.asarray(votes))
    total = v.sum()
    top = int(np.argmax(v))
    if total <= 0 or v[top] * 2 <= total:
        return None
    return MAPPING.get(VOTE_COLUMNS[top])


def emotion_distribution(votes: np.ndarray) -> np.ndarray:
    """The eight emotion shares (EMOTIONS order) after outlier removal: the soft target."""
    v = outliers_removed(np.asarray(votes))[:len(EMOTIONS)]
    return (v / v.sum()).astype(np.float32)


def parse_votes(cells: list[str], where: str) -> np.ndarray:
    """Ten vote counts, or a one-line error naming the file and row."""
    if len(cells) != len(VOTE_COLUMNS):
        raise EdgeferError(where, f"has {len(cells)} vote columns, not {len(VOTE_COLUMNS)} ({', '.join(VOTE_COLUMNS)})",
                           "use FERPlus' label.csv / fer2013new.csv unchanged")
    try:
        votes = np.array([float(c or 0) for c in cells])
    except ValueError:
        raise EdgeferError(where, f"vote counts are not numbers: {cells}", "use FERPlus' files unchanged") from None
    if (votes < 0).any():
        raise EdgeferError(where, f"negative vote count: {cells}", "use FERPlus' files unchanged")
    return votes


class _Builder:
    """Items, votes and skips of one load, with the majority rule and the drop reasons in one place."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.votes: dict[str, np.ndarray] = {}
        self.alt: dict[str, str] = {}
        self.skipped: list[Skip] = []

    def add(self, key: str, usage: str, votes: np.ndarray, where: str, alt_label: str | None = None) -> None:
        if votes.sum() <= 0:
            self.skipped.append(Skip(where, "all votes are zero"))
            return
        label = majority(votes)
        if label is None:
            self.skipped.append(Skip(where, "no emotion majority (unknown, not a face, or tie)"))
            return
        self.items.append(Item(key=key, label=label, split=usage))
        self.votes[key] = emotion_distribution(votes)
        if alt_label is not None:
            self.alt[key] = alt_label


def _kaggle_index(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(usage, FERPlus name) -> (file key under the FER2013 folder, FER2013 label)."""
    from .fer2013 import load_fer2013
    ds = load_fer2013(DatasetSpec("fer2013", path, {}, f"fer2013:{path}"))
    index = {}
    for it in ds.items:
        name = it.key.rsplit("/", 1)[1]
        usage, _, fer_name = name.partition("_")
        index[(usage, fer_name)] = (it.key, it.label)
    return index


def _from_layout(root: Path, spec: DatasetSpec) -> Dataset:
    folders = [root / d for d in LAYOUT if (root / d).is_dir()]
    for folder in folders:
        if not (folder / "label.csv").is_file():
            raise EdgeferError(folder, "has no label.csv",
                               "copy FERPlus' label.csv for this split into it (FERPlus' data/ folder)")
    has_images = any(next(f.glob("fer*.png"), None) is not None for f in folders)
    index, kaggle = None, None
    if not has_images:
        kaggle = Path(spec.options.get("fer2013", root.parent / "fer2013"))
        if not (kaggle / "train").is_dir():
            raise EdgeferError(root, "holds FERPlus' label.csv files but no face images",
                               "write the images beside them (../shared/tools/ferplus-layout.py DIR), "
                               "or pass ?fer2013=PATH to FER2013's Kaggle train/ test/ folders")
        index = _kaggle_index(kaggle)
    b = _Builder()
    paths: dict[str, Path] = {}
    for folder in folders:
        usage = LAYOUT[folder.name]
        csv_path = folder / "label.csv"
        with open(csv_path, newline="") as fh:
            for n, row in enumerate(csv.reader(fh), 1):
                where = f"{csv_path}:{n}"
                if not row or not row[0].strip():
                    raise EdgeferError(where, "row has no image name", "use FERPlus' label.csv unchanged")
                name, votes = row[0].strip(), parse_votes(row[2:], where)
                if index is not None:
                    hit = index.get((usage, name))
                    if hit is None:
                        b.skipped.append(Skip(where, f"names {name}, which is not among FER2013's {usage} faces"))
                        continue
                    paths[f"{folder.name}/{name}"] = kaggle / hit[0]
                    b.add(f"{folder.name}/{name}", usage, votes, where, alt_label=hit[1])
                else:
                    if not (folder / name).is_file():
                        b.skipped.append(Skip(where, f"names {name}, which is not in {folder}"))
                        continue
                    paths[f"{folder.name}/{name}"] = folder / name
                    b.add(f"{folder.name}/{name}", usage, votes, where)
    roles = {role: split for role, split in ROLES.items() if any(it.split == split for it in b.items)}
    return Dataset("ferplus", root, b.items, lambda it: read_gray_file(paths[it.key]), "official", roles,
                   b.skipped, mapping=dict(MAPPING), votes=b.votes, vote_labels=EMOTIONS, alt_labels=b.alt or None)


def _from_csv_pair(root: Path, votes_csv: Path, spec: DatasetSpec) -> Dataset:
    pixels_csv = Path(spec.options.get("fer2013", root / "fer2013.csv"))
    rows, _ = read_pixel_csv(votes_csv, ("Usage", "Image name") + VOTE_COLUMNS)
    if not pixels_csv.is_file():
        raise EdgeferError(pixels_csv, "does not exist: fer2013new.csv holds votes only",
                           "put the original fer2013.csv beside it or pass ?fer2013=PATH")
    pixels, codes, usages, skipped = load_pixel_csv(pixels_csv)
    if len(rows) != len(pixels):
        raise EdgeferError(votes_csv, f"has {len(rows)} rows but {pixels_csv.name} has {len(pixels)}",
                           "use the fer2013new.csv that matches this fer2013.csv row for row")
    from .fer2013 import CODES
    b = _Builder()
    b.skipped = skipped
    bad_pixels = {s.path.rsplit(":", 1)[1] for s in skipped}
    for i, row in enumerate(rows):
        key, where = row_key(i), f"{votes_csv}:{i + 2}"
        if key in bad_pixels:
            continue
        if not row["Image name"].strip():
            b.skipped.append(Skip(where, "no image name (FERPlus removed it)"))
            continue
        usage = row["Usage"].strip() or usages[i]
        if usage not in USAGES:
            raise EdgeferError(where, f"unknown Usage '{usage}'", f"use one of {USAGES}")
        b.add(key, usage, parse_votes([row[c] for c in VOTE_COLUMNS], where), where, alt_label=CODES.get(codes[i]))
    return Dataset("ferplus", root, b.items, lambda it: pixels[int(it.key[3:])], "official",
                   dict(ROLES), b.skipped, mapping=dict(MAPPING), votes=b.votes, vote_labels=EMOTIONS,
                   alt_labels=b.alt or None)


@register("ferplus", "FERPlus votes: Microsoft's FER2013Train/ FER2013Valid/ layout (label.csv, with its "
                     "images or joined to FER2013's folders by name), or fer2013new.csv + fer2013.csv")
def load_ferplus(spec: DatasetSpec) -> Dataset:
    path = spec.path
    if not path.exists():
        raise EdgeferError(path, "does not exist", "point to the FERPlus folder (FER2013Train/ ...) or fer2013new.csv")
    if path.is_file():
        return _from_csv_pair(path.parent, path, spec)
    if any((path / d).is_dir() for d in LAYOUT):
        return _from_layout(path, spec)
    if (path / "fer2013new.csv").is_file():
        return _from_csv_pair(path, path / "fer2013new.csv", spec)
    raise EdgeferError(path, "holds neither FER2013Train/ (Microsoft's layout) nor fer2013new.csv",
                       "point to FERPlus' data folder, or write it with ../shared/tools/ferplus-layout.py DIR")
