"""Dataset registry: `load("fer2013:../shared/data/fer2013")` -> Dataset.

A spec is `NAME:PATH[?key=value&...]`; NAME is a row of REGISTRY (one module per format).
Options every dataset takes, applied here after its loader: `?exclude=LABEL[,LABEL]` drops
items with those labels (each recorded in `ds.skipped`), then `?subset=N` samples.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.labels import canonical

from . import ckplus, fer2013, ferplus, folder, rafdb  # noqa: F401  (they register themselves)
from .base import REGISTRY, Dataset, DatasetSpec, Item, Skip

__all__ = ["REGISTRY", "Dataset", "DatasetSpec", "Item", "Skip", "load", "parse_spec", "split_suffix"]


def parse_spec(text: str) -> DatasetSpec:
    name, sep, rest = text.partition(":")
    if not sep or name not in REGISTRY:
        raise EdgeferError(text, f"unknown dataset '{name}'" if sep else "not a dataset spec",
                           f"write NAME:PATH with NAME one of {sorted(REGISTRY)}")
    path, _, query = rest.partition("?")
    if not path:
        raise EdgeferError(text, "no path after the dataset name", f"write {name}:PATH")
    return DatasetSpec(name, Path(path).expanduser(), dict(parse_qsl(query)), text)


def split_suffix(text: str, default: str | None = "all") -> tuple[str, str | None]:
    """`SPEC@SPLIT` -> (SPEC, SPLIT); without one (or an @ inside a path) -> (SPEC, default)."""
    spec, sep, split = text.rpartition("@")
    return (spec, split) if sep and split.isalnum() else (text, default)


def load(text: str) -> Dataset:
    spec = parse_spec(text)
    ds = REGISTRY[spec.name][0](spec)
    if not ds.items:
        raise EdgeferError(spec.path, "holds no labelled images", "check the path and the ?classes= option")
    if "exclude" in spec.options:
        exclude(ds, spec.options["exclude"], text)
    if "subset" in spec.options:
        ds.items[:] = subset(ds.items, spec.options["subset"], text)
    return ds


def exclude(ds: Dataset, names: str, where: str) -> None:
    """`?exclude=contempt`: drop items with these labels, each recorded in `ds.skipped` (so
    every command counts and reports them), e.g. to score a 7-class model on CK+."""
    present = ds.labels
    drop = set()
    for name in filter(None, (n.strip() for n in names.split(","))):
        label = canonical(name)
        if label not in present:
            raise EdgeferError(where, f"exclude={name!r} is not a label of this dataset",
                               f"use some of {list(present)}")
        drop.add(label)
    if not drop:
        raise EdgeferError(where, "exclude= names no label", f"write ?exclude=LABEL[,LABEL] with labels from {list(present)}")
    if drop == set(present):
        raise EdgeferError(where, f"exclude={names!r} drops every label", "keep at least one")
    ds.skipped += [Skip(str(ds.root / it.key), f"label '{it.label}' excluded by ?exclude=")
                   for it in ds.items if it.label in drop]
    ds.items[:] = [it for it in ds.items if it.label not in drop]


def subset(items: list[Item], size: str, where: str) -> list[Item]:
    """`?subset=N`: a seeded random N items, each split and class keeping its share, sequences
    kept whole — for smoke runs and for experiments that need many epochs on little data."""
    import numpy as np

    if not size.isdigit() or int(size) <= 0:
        raise EdgeferError(where, f"subset={size!r} is not a positive count", "write ?subset=5000")
    groups: dict[tuple, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault((it.split, it.label, it.sequence or i), []).append(i)
    keys = list(groups)
    fraction = min(1.0, int(size) / len(items))
    rng = np.random.default_rng(0)
    by_stratum: dict[tuple, list[tuple]] = {}
    for k in keys:
        by_stratum.setdefault(k[:2], []).append(k)
    chosen = []
    for members in by_stratum.values():
        n = max(1, round(fraction * len(members)))
        chosen += [members[j] for j in rng.choice(len(members), n, replace=False)]
    return [items[i] for i in sorted(i for k in chosen for i in groups[k])]
