"""Decode a dataset once: resized uint8 pixels plus a content hash per image, cached.

FER2013 is 32k small files: decoding takes seconds, but training, evaluation and audits
ask for it again and again, so the result is cached under ~/.cache/edgefer keyed by the
files' names, sizes and modification times. Unreadable images are dropped from the
dataset and recorded as skipped (reported by every command), never silently.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import Preprocessing
from edgefer.runtime.preprocess import ENLARGE, image_pixels

from .datasets import Dataset, Skip

CACHE_DIR = Path(os.environ.get("EDGEFER_CACHE", Path.home() / ".cache" / "edgefer"))


@dataclass
class Decoded:
    pixels: np.ndarray        # (N, size, size) uint8, aligned with ds.items
    hashes: list[str]         # sha256 of each image's native pixels (format-independent content hash)


def pixel_hash(gray: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(gray).tobytes() + str(gray.shape).encode()).hexdigest()


def _fingerprint(ds: Dataset, size: int, pre: Preprocessing) -> str:
    h = hashlib.sha256(f"{ds.name}|{ds.root.resolve()}|{size}|{pre.gray}|{pre.resize}|enlarge{ENLARGE}|"
                       f"{pre.histogram}|v2".encode())
    for it in ds.items:
        path = ds.root / it.key
        st = path.stat() if path.exists() else ds.root.stat()   # CSV rows: the CSV's own stat
        h.update(f"{it.key}|{it.label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def decode(ds: Dataset, size: int = 48, cache: bool = True, progress: bool = True,
           pre: Preprocessing | None = None) -> Decoded:
    """Pixels and hashes for every item; drops unreadable items from `ds` (recorded in ds.skipped).

    Each image is the face (pre-cropped datasets), prepared by the pixel contract's
    `image_pixels`: the very function the device's crop shares its steps with."""
    pre = pre or Preprocessing()
    key = _fingerprint(ds, size, pre)
    path = CACHE_DIR / f"{ds.name}-{key}.npz"
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                keep = z["keep"]
                for i in np.flatnonzero(~keep):
                    ds.skipped.append(Skip(str(ds.root / ds.items[i].key), str(z["reasons"][i])))
                ds.items[:] = [it for it, k in zip(ds.items, keep) if k]
                return Decoded(z["pixels"], z["hashes"].tolist())
        except (OSError, KeyError, ValueError):
            pass   # a damaged cache file is rebuilt below
    pixels = np.zeros((len(ds.items), size, size), np.uint8)
    hashes, keep, reasons = [""] * len(ds.items), np.ones(len(ds.items), bool), [""] * len(ds.items)
    for i, it in enumerate(tqdm(ds.items, desc=f"decode {ds.name}", unit="img", disable=not progress,
                                mininterval=1.0, leave=False)):
        try:
            gray = ds.read(it)
        except EdgeferError as exc:
            keep[i], reasons[i] = False, exc.cause
            continue
        hashes[i] = pixel_hash(gray)
        pixels[i] = image_pixels(gray, size, pre)
    if cache:
        try:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, pixels=pixels, hashes=np.array(hashes), keep=keep, reasons=np.array(reasons))
            tmp.replace(path)
        except OSError:
            pass   # caching is an optimisation: a read-only home must not stop the job
    for i in np.flatnonzero(~keep):
        ds.skipped.append(Skip(str(ds.root / ds.items[i].key), reasons[i]))
    ds.items[:] = [it for it, k in zip(ds.items, keep) if k]
    return Decoded(pixels[keep], [h for h, k in zip(hashes, keep) if k])
