"""Uncropped check photos made from cropped faces: each face pasted, at a random size and
position, into a larger frame with a varied background.

FER2013 and CK+48 ship faces already cropped, so they cannot test what a user sees: the
model through the daemon's own detector and crop. Pasting each face back into a frame
gives photos that `edgefer evaluate --detect` scores end to end, and because the pasted
square is known, they also measure how the detector's box relates to the dataset's own
framing (`measure_framing`), which is how the pixel contract's margin is chosen.
The photos go to `OUT/test/<label>/<name>.png` (the `folder:` layout, one official split
`test`) with `OUT/boxes.csv` beside them; nothing is written into the project.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edgefer.runtime.errors import EdgeferError

BACKGROUNDS = ("gradient", "clutter", "texture")


@dataclass
class PasteConfig:
    spec: str                          # source dataset NAME:PATH of cropped faces
    split: str                         # its split (e.g. PublicTest; `all` for CK+)
    out: Path
    limit: int | None = None           # faces to paste (class-stratified subsample); None: all
    min_side: int = 56                 # pasted face side range, pixels
    max_side: int = 160
    frame: tuple[int, int] = (480, 360)  # width, height of each photo
    seed: int = 0


def _background(kind: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """BGR uint8 background: smooth gradient, blurred clutter of shapes, or low-frequency texture."""
    if kind == "gradient":
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        line = a[None] * (1 - t[:, None]) + b[None] * t[:, None]
        img = np.broadcast_to(line[None], (h, w, 3)) if len(t) == w else np.broadcast_to(line[:, None], (h, w, 3))
        img = img.astype(np.float32).copy()
    elif kind == "clutter":
        img = np.full((h, w, 3), rng.integers(0, 256, 3), np.float32)
        for _ in range(int(rng.integers(8, 25))):
            color = [int(c) for c in rng.integers(0, 256, 3)]
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            if rng.random() < 0.5:
                cv2.rectangle(img, (x, y), (x + int(rng.integers(10, w // 2)), y + int(rng.integers(10, h // 2))), color, -1)
            else:
                cv2.circle(img, (x, y), int(rng.integers(5, h // 4)), color, -1)
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 3)))
    else:
        small = rng.uniform(0, 255, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3)).astype(np.float32)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, rng.uniform(1, 8), img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def paste(face: np.ndarray, rng: np.random.Generator, cfg: PasteConfig) -> tuple[np.ndarray, tuple[int, int, int]]:
    """One gray face -> (BGR photo, (x, y, side) of the pasted square)."""
    w, h = cfg.frame
    side = int(rng.integers(cfg.min_side, cfg.max_side + 1))
    x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
    img = _background(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], w, h, rng)
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC if side > face.shape[0] else cv2.INTER_AREA)
    tint = rng.uniform(0.85, 1.1, 3)                    # a faint skin / light colour; gray stays close
    img[y:y + side, x:x + side] = np.clip(big[..., None] * tint[None, None], 0, 255).astype(np.uint8)
    return img, (x, y, side)


def write_uncropped(cfg: PasteConfig, progress: bool = True) -> dict:
    """Write the photos and boxes.csv; -> summary (counts per label)."""
    from .prepare import prepare

    ds, decoded, plan, _ = prepare(cfg.spec, size=48)
    idx = np.array(plan.indices(cfg.split))
    rng = np.random.default_rng(cfg.seed)
    if cfg.limit is not None and cfg.limit < len(idx):
        labels = np.array([ds.items[i].label for i in idx])
        share = {lab: max(1, round(cfg.limit * np.mean(labels == lab))) for lab in np.unique(labels)}
        idx = np.concatenate([rng.permutation(idx[labels == lab])[:n] for lab, n in share.items()])
    cfg.out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with open(cfg.out / "boxes.csv", "w", newline="") as fh:
        rows = csv.writer(fh)
        rows.writerow(["file", "label", "source", "x", "y", "side"])
        for i in tqdm(sorted(idx), desc="paste", unit="img", disable=not progress, leave=False):
            it = ds.items[i]
            img, (x, y, side) = paste(decoded.pixels[i], rng, cfg)
            name = f"test/{it.label}/{Path(it.key).stem}.png"
            (cfg.out / "test" / it.label).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(cfg.out / name), img)
            rows.writerow([name, it.label, it.key, x, y, side])
            counts[it.label] = counts.get(it.label, 0) + 1
    return {"out": str(cfg.out), "photos": int(sum(counts.values())), "per_label": counts, "source": cfg.spec,
            "split": cfg.split}


def read_boxes(folder: Path) -> dict[str, tuple[int, int, int]]:
    """boxes.csv -> file (relative to the set, `test/label/name.png`) -> pasted (x, y, side)."""
    path = folder / "boxes.csv"
    if not path.is_file():
        raise EdgeferError(folder, "has no boxes.csv", "make the set with `edgefer data uncropped`")
    with open(path, newline="") as fh:
        return {r["file"]: (int(r["x"]), int(r["y"]), int(r["side"])) for r in csv.DictReader(fh)}


def framing_of(box: np.ndarray, pasted: tuple[int, int, int]) -> tuple[float, float, float]:
    """How the dataset's crop (the pasted square) sits on the detector's box: the margin per
    side, and the centre's offset in box sides (x, y), that reproduce it."""
    x0, y0, x1, y1 = (float(v) for v in box)
    base = max(x1 - x0, y1 - y0)
    px, py, side = pasted
    margin = (side / base - 1) / 2
    return margin, (px + side / 2 - (x0 + x1) / 2) / base, (py + side / 2 - (y0 + y1) / 2) / base
