"""Dataset preparation: load, decode and split, in the order every command needs.

Its own module so the commands, the trainer, cross-validation and evaluation all import it
from here, and none of them from `commands` (which imports them).
"""
from __future__ import annotations

import sys

from edgefer.runtime.metadata import Preprocessing

from . import datasets, images, splits


def prepare(spec: str, size: int = 48, seed: int = 0, folds: int = 10, protocol: str = "dataset",
            pre: Preprocessing | None = None):
    """Load, decode and split a dataset: the order every command needs (decoding drops unreadable files).

    `pre` is the pixel contract the images are prepared with (a model's metadata; default:
    the contract new models are trained with). Keep this parameter: evaluation passes the
    model's contract through it."""
    ds = datasets.load(spec)
    decoded = images.decode(ds, size, progress=sys.stderr.isatty(), pre=pre)
    plan = splits.plan_splits(ds, seed, folds, protocol)
    man = splits.manifest(ds, plan, decoded.hashes, spec)
    _warn_skipped(ds)
    return ds, decoded, plan, man


def _warn_skipped(ds: datasets.Dataset) -> None:
    if ds.skipped:
        reasons = sorted({s.reason for s in ds.skipped})
        print(f"edgefer: note: {len(ds.skipped)} file(s) skipped ({'; '.join(reasons)}); "
              f"e.g. {ds.skipped[0].path}", file=sys.stderr)


def is_pack(spec: str) -> bool:
    """`--data` names a data pack (`edgefer data pack`) rather than a dataset spec."""
    return spec.endswith(".pack")


def is_kfold(spec: str) -> bool:
    """Whether the dataset's own scheme is k-fold (CK+), where `train` means cross-validation."""
    return not is_pack(spec) and datasets.load(spec).split_scheme == "group-kfold"
