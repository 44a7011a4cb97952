"""The decoded, split dataset a training run reads, from the image folders or from a pack.

A *pack* (`edgefer data pack SPEC OUT`) is that split in one lzma-compressed file: the same
pixels and split-manifest hash as the dataset folders give, for machines (a lent GPU) that
have no copy of the image folders. `load` returns the same `SplitData` either way.
"""
from __future__ import annotations

import io
import json
import lzma
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import Preprocessing

from .prepare import is_pack, prepare


@dataclass
class SplitData:
    pixels: np.ndarray           # (N, S, S) uint8, every item of the dataset
    y: np.ndarray                # (N,) int64, index into labels
    train_idx: np.ndarray        # items that train
    val_idx: np.ndarray          # items that select (best epoch, raw vs EMA weights)
    labels: list[str]
    spec: str                    # the dataset spec it came from
    manifest_sha256: str
    train_split: str             # split names, for the checkpoint's provenance
    val_split: str
    items: list | None = None    # dataset items (sequence, frame: real clips); a pack has none
    preprocessing: Preprocessing = field(default_factory=Preprocessing)   # the contract its pixels follow
    votes: np.ndarray | None = None     # (N, len(labels)) float32 crowd-vote shares (FERPlus), the soft targets
    alt_y: np.ndarray | None = None     # (N,) int64 another label set's index into labels (FERPlus faces:
                                        # FER2013's label), -1 where none; None without one

    @property
    def size(self) -> int:
        return int(self.pixels.shape[-1])

    @property
    def name(self) -> str:
        return self.spec.split(":", 1)[0]


def from_dataset(spec: str, size: int = 48, seed: int = 0, folds: int = 10, protocol: str = "dataset",
                 fold: int | None = None) -> SplitData:
    """Decode and split a dataset folder: on k-fold datasets `fold` is the test fold, fold+1 selects."""
    ds, decoded, plan, man = prepare(spec, size=size, seed=seed, folds=folds, protocol=protocol)
    # framing does not change a pre-cropped image's pixels; it is what the model's metadata tells the daemon
    pre = Preprocessing(*ds.framing) if ds.framing else Preprocessing()
    labels = list(ds.labels)
    y = np.array([labels.index(it.label) for it in ds.items], np.int64)
    return SplitData(decoded.pixels, y, np.array(plan.indices("train", fold)), np.array(plan.indices("val", fold)),
                     labels, spec, man["manifest_sha256"], plan.roles.get("train", "folds"),
                     plan.roles.get("val", f"fold{fold}+1"), list(ds.items), pre, *vote_arrays(ds, labels))


def vote_arrays(ds, labels: list[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The dataset's vote shares over `labels` and its other label set as indices (None, None without them)."""
    votes = alt = None
    if ds.votes is not None:
        votes = np.zeros((len(ds.items), len(labels)), np.float32)
        cols = [labels.index(lab) if lab in labels else -1 for lab in ds.vote_labels]
        for n, it in enumerate(ds.items):
            for share, c in zip(ds.votes[it.key], cols):
                if c >= 0:
                    votes[n, c] += share
        votes /= np.maximum(votes.sum(1, keepdims=True), 1e-9)
    if ds.alt_labels is not None:
        alt = np.array([labels.index(ds.alt_labels[it.key]) if ds.alt_labels.get(it.key) in labels else -1
                        for it in ds.items], np.int64)
    return votes, alt


def write_pack(spec: str, out: Path, size: int = 48, seed: int = 0) -> Path:
    """Decode and split `spec` exactly as `edgefer train` does, and store the result."""
    from . import datasets
    if datasets.load(spec).split_scheme == "group-kfold":
        raise EdgeferError(spec, "is a k-fold dataset; a pack holds one train/val split",
                           "train k-fold datasets (CK+) from their folder")
    d = from_dataset(spec, size=size, seed=seed)
    meta = {"labels": d.labels, "spec": spec, "manifest_sha256": d.manifest_sha256,
            "train_split": d.train_split, "val_split": d.val_split, "preprocessing": asdict(d.preprocessing)}
    buf = io.BytesIO()
    extra = {k: v for k, v in (("votes", d.votes), ("alt_y", d.alt_y)) if v is not None}
    np.savez(buf, pixels=d.pixels, y=d.y, train_idx=d.train_idx, val_idx=d.val_idx,
             meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    return out


def read_pack(path: Path) -> SplitData:
    try:
        z = np.load(io.BytesIO(lzma.decompress(path.read_bytes())))
    except (OSError, lzma.LZMAError, ValueError) as exc:
        raise EdgeferError(path, f"is not a readable data pack ({exc})", "write one with edgefer data pack SPEC OUT") from None
    meta = json.loads(z["meta"].tobytes())
    pre = Preprocessing.from_dict(meta["preprocessing"], path) if "preprocessing" in meta else Preprocessing()
    return SplitData(z["pixels"], z["y"], z["train_idx"], z["val_idx"], meta["labels"], meta["spec"],
                     meta["manifest_sha256"], meta["train_split"], meta["val_split"], preprocessing=pre,
                     votes=z["votes"] if "votes" in z else None, alt_y=z["alt_y"] if "alt_y" in z else None)


def load(spec: str, size: int | None, seed: int = 0, folds: int = 10, protocol: str = "dataset",
         fold: int | None = None, model_size: int = 48) -> SplitData:
    """A pack file (its own size; `size` must agree if given) or a dataset spec decoded at
    `size`, else at the model's own input size."""
    if not is_pack(spec):
        return from_dataset(spec, size=size or model_size, seed=seed, folds=folds, protocol=protocol, fold=fold)
    if fold is not None or protocol != "dataset":
        raise EdgeferError(spec, "a pack holds the dataset's own train/val split only",
                           "pass the dataset spec for folds or other protocols")
    d = read_pack(Path(spec))
    if size and size != d.size:
        raise EdgeferError(spec, f"holds {d.size}x{d.size} faces, not {size}x{size}",
                           f"drop --size, or write a pack with edgefer data pack SPEC OUT --size {size}")
    return d
