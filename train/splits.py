"""Train / validation / test assignment and the manifests that pin it.

Three schemes, chosen by the dataset: `official` (the release's own splits; a validation
split is carved from train, stratified, when the release has none), `stratified`
(80/10/10 with a fixed seed), and `group-kfold` (CK+: k subject-independent folds, so no
person is ever on both sides). A manifest lists every image of every split with a content
hash; its own hash names it in every metrics file.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefer.runtime.errors import EdgeferError

from .datasets import Dataset

DEFAULT_SEED = 0
DEFAULT_FOLDS = 10
VAL_FRACTION = 0.1
ALL = "all"                 # the split name meaning every item of the dataset


@dataclass
class SplitPlan:
    """Split name -> item indices, plus which split plays which role."""

    scheme: str
    seed: int
    splits: dict[str, list[int]]
    roles: dict[str, str]            # train/val/test -> split name (fold datasets: see fold_roles)
    folds: int = 0

    def indices(self, role_or_split: str, fold: int | None = None) -> list[int]:
        """Indices of a role (train/val/test), of a split by name, or `all`: every item once
        (for scoring a model on a dataset it was not trained on, e.g. CK+ zero-shot)."""
        if role_or_split == ALL:
            return sorted({i for idx in self.splits.values() for i in idx})
        if self.folds:
            if fold is None and role_or_split in ("train", "val", "test"):
                raise EdgeferError(None, f"'{role_or_split}' of a {self.folds}-fold dataset needs a fold",
                                   f"pass --fold 0..{self.folds - 1}, or name a split: {sorted(self.splits)}")
            if fold is not None and role_or_split in ("train", "val", "test"):
                names = fold_roles(fold, self.folds)[role_or_split]
                return sorted(i for n in names for i in self.splits[n])
        name = self.roles.get(role_or_split, role_or_split)
        if name not in self.splits:
            raise EdgeferError(None, f"no split named '{role_or_split}'",
                               f"use one of {sorted(self.splits)}, a role {sorted(self.roles)} or {ALL}")
        return self.splits[name]


def fold_roles(fold: int, folds: int) -> dict[str, list[str]]:
    """Fold k is the test fold, fold k+1 selects the model, the other k-2 train it."""
    if not 0 <= fold < folds:
        raise EdgeferError(None, f"fold {fold} out of range", f"use 0..{folds - 1}")
    val = (fold + 1) % folds
    return {"test": [f"fold{fold}"], "val": [f"fold{val}"],
            "train": [f"fold{k}" for k in range(folds) if k not in (fold, val)]}


def _labels(ds: Dataset, idx: list[int] | np.ndarray) -> np.ndarray:
    return np.array([ds.items[i].label for i in idx])


def _carve(ds: Dataset, idx: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    from sklearn.model_selection import train_test_split

    labels = _labels(ds, idx)
    counts = {lab: int((labels == lab).sum()) for lab in set(labels)}
    n_carved = int(np.ceil(fraction * len(idx)))
    feasible = min(counts.values()) >= 2 and len(counts) <= n_carved <= len(idx) - len(counts)
    keep, carved = train_test_split(np.array(idx), test_size=n_carved, random_state=seed,
                                    stratify=labels if feasible else None)
    return sorted(keep.tolist()), sorted(carved.tolist())


def plan_splits(ds: Dataset, seed: int = DEFAULT_SEED, folds: int = DEFAULT_FOLDS, protocol: str = "dataset") -> SplitPlan:
    """The dataset's own leak-free scheme, or (protocol=...) one of the leaky LEAKY_PROTOCOLS
    that published papers used, kept only to measure how much they inflate accuracy."""
    if protocol != "dataset":
        if protocol not in LEAKY_PROTOCOLS:
            raise EdgeferError(None, f"unknown split protocol '{protocol}'", f"use dataset or one of {sorted(LEAKY_PROTOCOLS)}")
        return LEAKY_PROTOCOLS[protocol](ds, seed, folds)
    if ds.split_scheme == "official":
        splits: dict[str, list[int]] = {}
        for i, it in enumerate(ds.items):
            splits.setdefault(it.split, []).append(i)
        roles = dict(ds.roles)
        if "val" not in roles and roles.get("train") in splits:
            splits[roles["train"]], splits["val"] = _carve(ds, splits[roles["train"]], VAL_FRACTION, seed)
            roles["val"] = "val"
        return SplitPlan("official", seed, splits, roles)
    if ds.split_scheme == "stratified":
        everything = list(range(len(ds.items)))
        rest, test = _carve(ds, everything, 0.1, seed)
        train, val = _carve(ds, rest, 1 / 9, seed)
        return SplitPlan("stratified", seed, {"train": train, "val": val, "test": test},
                         {"train": "train", "val": "val", "test": "test"})
    if ds.split_scheme == "group-kfold":
        return _group_kfold(ds, seed, folds)
    raise EdgeferError(ds.root, f"unknown split scheme {ds.split_scheme}")


def _group_kfold(ds: Dataset, seed: int, folds: int) -> SplitPlan:
    from sklearn.model_selection import StratifiedGroupKFold

    groups = [it.subject for it in ds.items]
    if None in groups:
        raise EdgeferError(ds.root, "some images have no subject id", "subject-independent folds need every subject")
    n_subjects = len(set(groups))
    if n_subjects < folds:
        raise EdgeferError(ds.root, f"only {n_subjects} subjects for {folds} folds", f"use --folds {n_subjects} or fewer")
    labels = _labels(ds, range(len(ds.items)))
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():   # rare classes (CK+ contempt) cannot fill every fold: expected
        warnings.filterwarnings("ignore", message="The least populated class")
        splits = {f"fold{k}": sorted(test.tolist())
                  for k, (_, test) in enumerate(cv.split(np.zeros(len(labels)), labels, groups))}
    return SplitPlan("group-kfold", seed, splits, {}, folds)


def _random_frames(ds: Dataset, seed: int, folds: int) -> SplitPlan:
    """k folds over images, ignoring who is in them: frames of one person (one sequence) land on both sides."""
    from sklearn.model_selection import StratifiedKFold

    labels = _labels(ds, range(len(ds.items)))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():   # rare classes cannot fill every fold: expected
        warnings.filterwarnings("ignore", message="The least populated class")
        splits = {f"fold{k}": sorted(t.tolist()) for k, (_, t) in enumerate(cv.split(np.zeros(len(labels)), labels))}
    return SplitPlan("random-frames (leaky)", seed, splits, {}, folds)


def _oversample_then_split(ds: Dataset, seed: int, folds: int) -> SplitPlan:
    """Paper 002's order: random oversampling of the whole dataset, then a random 80/10/10 split.
    Copies of one image end up in train and test; the split lists indices with repeats."""
    from imblearn.over_sampling import RandomOverSampler

    everything = np.arange(len(ds.items))
    pooled, labels = RandomOverSampler(random_state=seed).fit_resample(everything.reshape(-1, 1), _labels(ds, everything))
    order = np.random.default_rng(seed).permutation(len(pooled))
    pooled = pooled.ravel()[order]
    n_test = n_val = len(pooled) // 10
    return SplitPlan("oversample-then-split (leaky)", seed,
                     {"test": pooled[:n_test].tolist(), "val": pooled[n_test:n_test + n_val].tolist(),
                      "train": pooled[n_test + n_val:].tolist()}, {"train": "train", "val": "val", "test": "test"})


LEAKY_PROTOCOLS = {"random-frames": _random_frames, "oversample-then-split": _oversample_then_split}


def manifest(ds: Dataset, plan: SplitPlan, hashes: list[str], spec: str) -> dict:
    """The record of who is in which split, by content hash; independent of where the data lives."""
    body = {
        "dataset": ds.name,
        "scheme": plan.scheme,
        "seed": plan.seed,
        "folds": plan.folds,
        "roles": plan.roles,
        "labels": list(ds.labels),
        "splits": {name: [{"key": ds.items[i].key, "label": ds.items[i].label, "sha256": hashes[i],
                           **({"subject": ds.items[i].subject} if ds.items[i].subject else {})}
                          for i in idx]
                   for name, idx in sorted(plan.splits.items())},
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {"manifest_sha256": digest, "spec": spec, **body}


def write_manifest(man: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{man['dataset']}-{man['manifest_sha256'][:12]}.manifest.json"
    path.write_text(json.dumps(man, indent=1, sort_keys=True) + "\n")
    return path
