"""CK+ (Lucey et al., 2010) in its two circulating shapes; both give subject ids.

- 48x48 crops: `<class>/S010_004_00000017.png` = subject S010, sequence 004, frame 17; the
  last 3 frames of each labelled sequence.
- The original release: `cohn-kanade-images/S005/001/S005_001_00000001.png` frames with
  `Emotion/S005/001/S005_001_00000011_emotion.txt` holding the code (1 anger, 2 contempt,
  3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise). Each labelled sequence runs from
  neutral to peak; `?frames=peakN` keeps its last N frames (default: all, for clips).

CK+ has no official split: folds are subject-independent (grouped by the S### prefix).
"""
from __future__ import annotations

import re
from pathlib import Path

from edgefer.runtime.errors import EdgeferError

from .base import Dataset, DatasetSpec, Item, Skip, class_folder_items, read_gray_file, register, require_dir

CROP_NAME = re.compile(r"^(S\d{3})_(\d{3})_(\d{8})\.png$")
CODES = {1: "angry", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sad", 7: "surprise"}
# CK+48's crops vs BlazeFace's box: median of 701 detected pasted faces (docs/results.md)
CROP_FRAMING = (0.09, -0.13)
FOLDER_MAPPING = {"anger": "angry", "contempt": "contempt", "disgust": "disgust", "fear": "fear",
                  "happy": "happy", "sadness": "sad", "surprise": "surprise"}


def _crops(spec: DatasetSpec) -> Dataset:
    root = spec.path
    found, skipped = class_folder_items(root, FOLDER_MAPPING, None)
    items = []
    for it in found:
        m = CROP_NAME.match(it.key.rsplit("/", 1)[1])
        if not m:
            skipped.append(Skip(str(root / it.key), "name is not SXXX_YYY_ZZZZZZZZ.png (no subject id)"))
            continue
        subject, seq, frame = m.groups()
        items.append(Item(it.key, it.label, subject=subject, sequence=f"{subject}_{seq}", frame=int(frame)))
    return Dataset("ckplus", root, items, lambda it: read_gray_file(root / it.key), "group-kfold",
                   {}, skipped, mapping=dict(FOLDER_MAPPING), paper_size=48, framing=CROP_FRAMING)


def _emotion_code(path: Path) -> int:
    try:
        return int(float(path.read_text().split()[0]))
    except (ValueError, IndexError, OSError):
        raise EdgeferError(path, "is not a CK+ emotion file (one number 1..7)", "restore it from the release") from None


def _original(spec: DatasetSpec) -> Dataset:
    root = spec.path
    images, emotions = root / "cohn-kanade-images", root / "Emotion"
    require_dir(emotions, "the CK+ release root (holding cohn-kanade-images/ and Emotion/)")
    keep = spec.options.get("frames", "all")
    if keep != "all" and not re.fullmatch(r"peak\d+", keep):
        raise EdgeferError(spec.text, f"unknown frames option '{keep}'", "use ?frames=all or ?frames=peakN")
    items, skipped = [], []
    for label_file in sorted(emotions.glob("S*/*/*_emotion.txt")):
        subject, seq = label_file.parent.parent.name, label_file.parent.name
        code = _emotion_code(label_file)
        if code not in CODES:
            raise EdgeferError(label_file, f"unknown label '{code}'", "CK+ emotion codes are 1..7")
        frames = sorted((images / subject / seq).glob("*.png"))
        if not frames:
            skipped.append(Skip(str(images / subject / seq), "labelled sequence has no frames"))
            continue
        if keep != "all":
            frames = frames[-int(keep[4:]):]
        for f in frames:
            items.append(Item(str(f.relative_to(root)), CODES[code], subject=subject,
                              sequence=f"{subject}_{seq}", frame=int(f.stem.rsplit("_", 1)[1])))
    if not items:
        raise EdgeferError(emotions, "no labelled sequence found", "check the Emotion/ and cohn-kanade-images/ folders")
    return Dataset("ckplus", root, items, lambda it: read_gray_file(root / it.key), "group-kfold",
                   {}, skipped, mapping={str(k): v for k, v in CODES.items()}, paper_size=48)


@register("ckplus", "CK+: 48x48 class-folder crops (SXXX_YYY_ZZZZZZZZ.png) or the original release; subject-grouped folds")
def load_ckplus(spec: DatasetSpec) -> Dataset:
    require_dir(spec.path, "the CK+ crops folder or the CK+ release root")
    if (spec.path / "cohn-kanade-images").is_dir():
        return _original(spec)
    return _crops(spec)
