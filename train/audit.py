"""Leakage audit: counts per split and class, duplicates across splits, subject overlap.

Exact duplicates share a pixel hash. Near duplicates are found in two steps: perceptual
hashes (imagehash's pHash) within a Hamming radius pick candidates cheaply across all
pairs of splits, then a pixel correlation on the 48x48 images confirms them, so that two
different dark, centred faces with similar hashes are not counted.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations

import numpy as np

from .datasets import Dataset
from .images import Decoded
from .splits import SplitPlan

PHASH_RADIUS = 6          # candidate radius in bits (of 64)
MIN_CORRELATION = 0.95    # pixel correlation that confirms a near duplicate


def phashes(pixels: np.ndarray) -> np.ndarray:
    """64-bit pHash of each image as uint64."""
    import imagehash
    from PIL import Image

    out = np.zeros(len(pixels), np.uint64)
    for i, img in enumerate(pixels):
        bits = imagehash.phash(Image.fromarray(img)).hash.flatten()
        out[i] = np.packbits(bits).view(">u8")[0]
    return out


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits per element of a uint64 array: np.bitwise_count on NumPy 2, a byte table on
    NumPy 1.x (1.24+, what Raspberry Pi OS and JetPack ship), same answer."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], np.uint8)
    x = np.ascontiguousarray(x, np.uint64)
    return table[x.view(np.uint8)].reshape(*x.shape, 8).sum(-1, dtype=np.uint8)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float32).ravel() - a.mean()
    b = b.astype(np.float32).ravel() - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else float(np.array_equal(a, b))


def _near_pairs(idx_a: list[int], idx_b: list[int], ph: np.ndarray, pixels: np.ndarray,
                hashes: list[str]) -> list[tuple[int, int]]:
    pairs = []
    hb = ph[idx_b]
    for start in range(0, len(idx_a), 256):
        chunk = np.array(idx_a[start:start + 256])
        dist = popcount(ph[chunk][:, None] ^ hb[None, :])
        for r, c in zip(*np.nonzero(dist <= PHASH_RADIUS)):
            i, j = int(chunk[r]), idx_b[c]
            if hashes[i] != hashes[j] and _correlation(pixels[i], pixels[j]) >= MIN_CORRELATION:
                pairs.append((i, j))
    return pairs


def _summarise(pairs: list[tuple[int, int, str]], ds: Dataset) -> dict:
    by_pair = Counter(name for _, _, name in pairs)
    later = {j for _, j, _ in pairs}
    return {
        "pairs": len(pairs),
        "images": len(later),          # images of the later split with a copy in an earlier one
        "label_conflicts": sum(ds.items[i].label != ds.items[j].label for i, j, _ in pairs),
        "by_split_pair": dict(sorted(by_pair.items())),
        "examples": [[ds.items[i].key, ds.items[j].key] for i, j, _ in pairs[:10]],
    }


def audit(ds: Dataset, decoded: Decoded, plan: SplitPlan, near: bool = True) -> dict:
    hashes, pixels = decoded.hashes, decoded.pixels
    role_order = [plan.roles[r] for r in ("train", "val", "test") if r in plan.roles]
    names = sorted(plan.splits, key=lambda n: (role_order.index(n) if n in role_order else len(role_order), n))
    report: dict = {
        "dataset": ds.name,
        "root": str(ds.root),
        "scheme": plan.scheme,
        "seed": plan.seed,
        "roles": plan.roles,
        "labels": list(ds.labels),
        "label_mapping": ds.mapping,
        "total": len(ds.items),
        "splits": {n: {"total": len(plan.splits[n]), "classes": ds.class_counts(plan.splits[n])} for n in names},
        "skipped": {"count": len(ds.skipped), "reasons": dict(Counter(s.reason for s in ds.skipped)),
                    "examples": [s.path for s in ds.skipped[:10]]},
    }
    split_of = {i: n for n in names for i in plan.splits[n]}
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        by_hash[h].append(i)
    exact = [(i, j, f"{split_of[i]}|{split_of[j]}") for group in by_hash.values()
             for i, j in combinations(sorted(group, key=lambda k: (names.index(split_of[k]), k)), 2)
             if split_of[i] != split_of[j]]
    report["cross_split_duplicates"] = {"exact": _summarise(exact, ds)}
    report["within_split_exact_duplicates"] = {
        n: sum(len(g) - 1 for g in (
            [i for i in grp if split_of[i] == n] for grp in by_hash.values()) if len(g) > 1) for n in names}
    flat = pixels.reshape(len(pixels), -1)
    report["constant_images"] = int((flat.min(1) == flat.max(1)).sum())
    if near:
        ph = phashes(pixels)
        near_pairs = []
        for a, b in combinations(names, 2):
            near_pairs += [(i, j, f"{a}|{b}") for i, j in _near_pairs(plan.splits[a], plan.splits[b], ph, pixels, hashes)]
        report["cross_split_duplicates"]["near"] = {
            **_summarise(near_pairs, ds), "phash_radius": PHASH_RADIUS, "min_correlation": MIN_CORRELATION}
    if any(it.subject for it in ds.items):
        report.update(_subjects(ds, plan, split_of))
    return report


def _subjects(ds: Dataset, plan: SplitPlan, split_of: dict[int, str]) -> dict:
    splits_of_subject: dict[str, set[str]] = defaultdict(set)
    for i, it in enumerate(ds.items):
        splits_of_subject[it.subject].add(split_of[i])
    return {
        "subjects": len(splits_of_subject),
        "sequences": len({it.sequence for it in ds.items}),
        "folds": plan.folds,
        "fold_subject_overlap": sum(len(s) > 1 for s in splits_of_subject.values()),
    }


def leaked(decoded: Decoded, plan: SplitPlan, eval_idx: list[int], train_idx: list[int]) -> set[int]:
    """Items of `eval_idx` with an exact or near copy among `train_idx`: what a leak-aware score drops."""
    train_hashes = {decoded.hashes[i] for i in train_idx}
    out = {i for i in eval_idx if decoded.hashes[i] in train_hashes}
    ph = phashes(decoded.pixels)
    out |= {i for i, _ in _near_pairs(eval_idx, train_idx, ph, decoded.pixels, decoded.hashes)}
    return out
