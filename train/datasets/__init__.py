"""Dataset registry: `load("fer2013:../shared/data/fer2013")` -> Dataset.

A spec is `NAME:PATH[?key=value&...]`; NAME is a row of REGISTRY (one module per format).
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from edgefer.runtime.errors import EdgeferError

from . import ckplus, fer2013, ferplus, folder, rafdb  # noqa: F401  (they register themselves)
from .base import REGISTRY, Dataset, DatasetSpec, Item, Skip

__all__ = ["REGISTRY", "Dataset", "DatasetSpec", "Item", "Skip", "load", "parse_spec"]


def parse_spec(text: str) -> DatasetSpec:
    name, sep, rest = text.partition(":")
    if not sep or name not in REGISTRY:
        raise EdgeferError(text, f"unknown dataset '{name}'" if sep else "not a dataset spec",
                           f"write NAME:PATH with NAME one of {sorted(REGISTRY)}")
    path, _, query = rest.partition("?")
    if not path:
        raise EdgeferError(text, "no path after the dataset name", f"write {name}:PATH")
    return DatasetSpec(name, Path(path).expanduser(), dict(parse_qsl(query)), text)


def load(text: str) -> Dataset:
    spec = parse_spec(text)
    ds = REGISTRY[spec.name][0](spec)
    if not ds.items:
        raise EdgeferError(spec.path, "holds no labelled images", "check the path and the ?classes= option")
    return ds
