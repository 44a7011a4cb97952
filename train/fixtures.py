"""Tiny synthetic datasets written in the real published layouts.

Tests and the quick start need data without shipping any: these are drawn cartoon faces
whose brows, eyes and mouth depend on the emotion (so a small model can learn them and a
test can tell a working pipeline from a broken one), saved in exactly the file formats the
loaders read. Identities vary by subject so subject-grouped splits are meaningful.
"""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from edgefer.runtime.labels import LABELS

from .datasets.ferplus import MAPPING, VOTE_COLUMNS

# brow tilt, mouth curve (+ smile), mouth open, eye open — at full intensity
EXPRESSION = {
    "angry": (0.9, -0.4, 0.2, 0.6), "disgust": (0.5, -0.8, 0.1, 0.4), "fear": (-0.7, -0.2, 0.7, 1.0),
    "happy": (0.0, 1.0, 0.3, 0.7), "sad": (-0.9, -0.9, 0.0, 0.5), "surprise": (-0.3, 0.0, 1.0, 1.0),
    "neutral": (0.0, 0.0, 0.0, 0.7), "contempt": (0.2, 0.5, 0.0, 0.6),
}

# format -> dataset registry name that reads it
FORMATS = {"fer2013-csv": "fer2013", "fer2013-folders": "fer2013", "ferplus": "ferplus", "ferplus-layout": "ferplus",
           "ferplus-labels": "ferplus", "rafdb": "rafdb",
           "ckplus48": "ckplus", "ckplus-original": "ckplus", "folder": "folder"}


def face(label: str, rng: np.random.Generator, size: int = 48, intensity: float = 1.0,
         identity: int = 0, color: bool = False) -> np.ndarray:
    """One drawn face, uint8 gray (or BGR), with jitter in pose, lighting and identity."""
    brow, curve, open_, eye = (v * intensity for v in EXPRESSION[label])
    eye = 0.7 + (eye - 0.7) * intensity if intensity < 1 else eye
    s = size / 48.0
    id_rng = np.random.default_rng(identity)
    skin, width = int(id_rng.integers(120, 200)), 15 + id_rng.integers(-2, 3)
    img = np.full((size, size), int(rng.integers(20, 90)), np.uint8)
    c = (size / 2 + rng.normal(0, 1) * s, size / 2 + rng.normal(0, 1) * s)
    pt = lambda x, y: (int(round(c[0] + x * s)), int(round(c[1] + y * s)))
    cv2.ellipse(img, pt(0, 0), (int(width * s), int(19 * s)), 0, 0, 360, skin, -1)
    for side in (-1, 1):
        cv2.ellipse(img, pt(side * 6, -4), (int(3 * s), max(1, int(3 * s * eye))), 0, 0, 360, 30, -1)
        cv2.line(img, pt(side * 9, -10 + side * brow * 0 - brow * 2), pt(side * 3, -10 + brow * 2), 40, max(1, int(s)))
    mouth_w, mouth_y = 7, 9
    if open_ > 0.25:
        cv2.ellipse(img, pt(0, mouth_y), (int(mouth_w * s), max(1, int(5 * s * open_))), 0, 0, 360, 25, -1)
    pts = np.array([pt(x, mouth_y - curve * 4 * (1 - (x / mouth_w) ** 2)) for x in np.linspace(-mouth_w, mouth_w, 9)])
    cv2.polylines(img, [pts.astype(np.int32)], False, 35, max(1, int(s)))
    img = np.clip(img.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if color else img


def _fer_rows(per_class: int, rng: np.random.Generator) -> list[tuple[int, np.ndarray, str]]:
    rows = []
    for usage, n in (("Training", per_class), ("PublicTest", max(2, per_class // 3)), ("PrivateTest", max(2, per_class // 3))):
        for code, label in enumerate(LABELS[:7]):
            rows += [(code, face(label, rng, identity=int(rng.integers(1000))), usage) for _ in range(n)]
    return rows


def _write_fer_csv(path: Path, rows: list[tuple[int, np.ndarray, str]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for code, img, usage in rows:
            w.writerow([code, " ".join(map(str, img.ravel())), usage])


_VOTE_OF = {ours: VOTE_COLUMNS.index(theirs) for theirs, ours in MAPPING.items()}   # our label -> vote column


def _votes(n: int, code: int) -> list[int]:
    """FERPlus-style votes for fixture row n of FER2013 class `code`: mostly a clear majority with
    a second opinion and a single-vote outlier; every 17th row unknown, tied or all zero (dropped)."""
    votes = [0] * 10
    if n % 17 == 5:
        votes[8] = 10                                  # unknown: dropped
    elif n % 17 == 9:
        votes[0], votes[1] = 5, 5                      # no strict majority: dropped
    elif n % 17 == 11:
        pass                                           # all zero: dropped
    else:
        votes[_VOTE_OF[LABELS[code]]] = 7
        votes[0 if code != 6 else 1] += 2
        votes[7] += 1                                  # a single vote: an outlier FERPlus removes
    return votes


def write_fixture(fmt: str, out: Path, per_class: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "fer2013-csv":
        _write_fer_csv(out / "fer2013.csv", _fer_rows(per_class, rng))
        return out / "fer2013.csv"
    if fmt == "fer2013-folders":
        for n, (code, img, usage) in enumerate(_fer_rows(per_class, rng)):
            folder = out / ("train" if usage == "Training" else "test") / LABELS[code]
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{usage}_fer{n:07d}.png"), img)   # lossless raw pixels, FERPlus' image name
        return out
    if fmt == "ferplus":
        rows = _fer_rows(per_class, rng)
        _write_fer_csv(out / "fer2013.csv", rows)
        with open(out / "fer2013new.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["Usage", "Image name"] + list(VOTE_COLUMNS))
            for n, (code, _, usage) in enumerate(rows):
                name = "" if n % 17 == 13 else f"fer{n:07d}.png"  # FERPlus removed it
                w.writerow([usage, name] + _votes(n, code))
        return out
    if fmt in ("ferplus-layout", "ferplus-labels"):
        # Microsoft's generator layout: FER2013{Train,Valid,Test}/label.csv (no header) beside fer*.png;
        # -labels: the same label.csv files alone, faces in a sibling Kaggle-layout fer2013/ folder
        rows = _fer_rows(per_class, rng)
        root = out / "ferplus" if fmt == "ferplus-labels" else out
        folders = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
        writers = {}
        for usage, folder in folders.items():
            (root / folder).mkdir(parents=True, exist_ok=True)
            fh = open(root / folder / "label.csv", "w", newline="")
            writers[usage] = (fh, csv.writer(fh))
        for n, (code, img, usage) in enumerate(rows):
            name = f"fer{n:07d}.png"
            if n % 17 != 13:                           # a label row whose image is missing: counted, not fatal
                if fmt == "ferplus-layout":
                    cv2.imwrite(str(root / folders[usage] / name), img)
                else:
                    d = out / "fer2013" / ("train" if usage == "Training" else "test") / LABELS[code]
                    d.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(d / f"{usage}_{name}"), img)
            writers[usage][1].writerow([name, "(0, 0, 48, 48)"] + _votes(n, code))
        for fh, _ in writers.values():
            fh.close()
        return root
    if fmt == "rafdb":
        (out / "EmoLabel").mkdir(exist_ok=True)
        (out / "Image" / "aligned").mkdir(parents=True, exist_ok=True)
        codes = {"surprise": 1, "fear": 2, "disgust": 3, "happy": 4, "sad": 5, "angry": 6, "neutral": 7}
        lines = []
        for split, n in (("train", per_class), ("test", max(2, per_class // 3))):
            for label, code in codes.items():
                for _ in range(n):
                    name = f"{split}_{len(lines) + 1:05d}"
                    cv2.imwrite(str(out / "Image" / "aligned" / f"{name}_aligned.jpg"),
                                face(label, rng, 100, identity=int(rng.integers(1000)), color=True))
                    lines.append(f"{name}.jpg {code}")
        (out / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
        return out
    if fmt in ("ckplus48", "ckplus-original"):
        folder_names = {"angry": "anger", "contempt": "contempt", "disgust": "disgust", "fear": "fear",
                        "happy": "happy", "sad": "sadness", "surprise": "surprise"}
        codes = {"angry": 1, "contempt": 2, "disgust": 3, "fear": 4, "happy": 5, "sad": 6, "surprise": 7}
        subjects = max(10, per_class)
        for s in range(subjects):
            subject = f"S{10 + s:03d}"
            for q, label in enumerate(rng.choice(list(codes), size=3, replace=False)):
                seq, length = f"{q + 1:03d}", int(rng.integers(8, 14))
                for f in range(1, length + 1):
                    name = f"{subject}_{seq}_{f:08d}.png"
                    if fmt == "ckplus48" and f > length - 3:
                        d = out / folder_names[label]
                        d.mkdir(exist_ok=True)
                        cv2.imwrite(str(d / name), face(label, rng, 48, f / length, identity=s))
                    elif fmt == "ckplus-original":
                        d = out / "cohn-kanade-images" / subject / seq
                        d.mkdir(parents=True, exist_ok=True)
                        cv2.imwrite(str(d / name), face(label, rng, 120, (f - 1) / (length - 1), identity=s))
                if fmt == "ckplus-original":
                    e = out / "Emotion" / subject / seq
                    e.mkdir(parents=True, exist_ok=True)
                    (e / f"{subject}_{seq}_{length:08d}_emotion.txt").write_text(f"   {codes[label]:.7e}\n")
        return out
    if fmt == "folder":
        for folder_name, label in (("Ahegao", "happy"), ("Angry", "angry"), ("Happy", "happy"),
                                   ("Neutral", "neutral"), ("Sad", "sad"), ("Surprise", "surprise")):
            d = out / folder_name
            d.mkdir(exist_ok=True)
            for n in range(per_class):
                cv2.imwrite(str(d / f"{folder_name.lower()}_{n}.png"),
                            face(label, rng, 64, identity=int(rng.integers(1000)), color=True))
        return out
    raise ValueError(f"unknown fixture format {fmt}")
