"""Splits are leak-free by construction, deterministic, and pinned by manifest hashes."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgefer.runtime.errors import EdgeferError
from edgefer.train import datasets, images, splits


def _plan(spec: str, **kw):
    ds = datasets.load(spec)
    dec = images.decode(ds, 48, progress=False)
    return ds, dec, splits.plan_splits(ds, **kw)


def test_group_kfold_never_splits_a_subject(fixture_dir):
    ds, _, plan = _plan(f"ckplus:{fixture_dir('ckplus48', per_class=12)}")
    assert plan.scheme == "group-kfold" and len(plan.splits) == 10
    seen = {}
    for name, idx in plan.splits.items():
        for i in idx:
            assert seen.setdefault(ds.items[i].subject, name) == name
    assert sorted(i for idx in plan.splits.values() for i in idx) == list(range(len(ds.items)))


def test_fold_roles_are_disjoint_and_cover_everything(fixture_dir):
    ds, _, plan = _plan(f"ckplus:{fixture_dir('ckplus48', per_class=12)}")
    for fold in (0, 9):
        parts = [set(plan.indices(r, fold)) for r in ("train", "val", "test")]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert set.union(*parts) == set(range(len(ds.items)))
    with pytest.raises(EdgeferError, match="needs a fold"):
        plan.indices("train")


def test_official_splits_carve_validation_from_train_only(fixture_dir):
    ds, _, plan = _plan(f"rafdb:{fixture_dir('rafdb', per_class=12)}")
    assert plan.roles == {"train": "train", "test": "test", "val": "val"}
    assert all(ds.items[i].split == "train" for i in plan.splits["val"])
    assert not set(plan.splits["val"]) & set(plan.splits["train"])
    assert all(ds.items[i].split == "test" for i in plan.indices("test"))


def test_stratified_split_is_seeded(fixture_dir):
    spec = f"folder:{fixture_dir('folder', per_class=20)}?map=Ahegao:happy"
    a = _plan(spec, seed=1)[2].splits
    b = _plan(spec, seed=1)[2].splits
    c = _plan(spec, seed=2)[2].splits
    assert a == b and a != c
    assert sorted(sum(a.values(), [])) == list(range(sum(len(v) for v in a.values())))


def test_manifest_hash_is_location_independent_and_content_sensitive(fixture_dir, tmp_path):
    src = fixture_dir("fer2013-folders")
    copy = shutil.copytree(src, tmp_path / "elsewhere")

    def man(path):
        ds, dec, plan = _plan(f"fer2013:{path}")
        return splits.manifest(ds, plan, dec.hashes, f"fer2013:{path}")
    h1, h2 = man(src)["manifest_sha256"], man(copy)["manifest_sha256"]
    assert h1 == h2
    victim = next((copy / "test" / "sad").iterdir())
    import cv2
    img = cv2.imread(str(victim), 0)
    cv2.imwrite(str(victim), 255 - img)
    assert man(copy)["manifest_sha256"] != h1


def test_manifest_lists_every_image_with_its_hash(fixture_dir, tmp_path):
    ds, dec, plan = _plan(f"fer2013:{fixture_dir('fer2013-folders')}")
    m = splits.manifest(ds, plan, dec.hashes, "spec")
    path = splits.write_manifest(m, tmp_path)
    assert m["manifest_sha256"][:12] in path.name
    entries = [e for split in m["splits"].values() for e in split]
    assert len(entries) == len(ds.items) and all(len(e["sha256"]) == 64 for e in entries)
    assert np.unique([e["key"] for e in entries]).size == len(entries)


def test_split_all_is_every_item_once(fixture_dir):
    for spec in (f"ckplus:{fixture_dir('ckplus48', per_class=12)}?exclude=contempt",
                 f"fer2013:{fixture_dir('fer2013-folders')}", f"folder:{fixture_dir('folder', per_class=20)}?map=Ahegao:happy"):
        ds, _, plan = _plan(spec)
        assert plan.indices("all") == list(range(len(ds.items)))
        assert plan.indices("all", fold=3) == list(range(len(ds.items)))    # a fold does not narrow `all`
    ds, _, plan = _plan(f"ckplus:{fixture_dir('ckplus48', per_class=12)}", protocol="oversample-then-split")
    assert plan.indices("all") == list(range(len(ds.items)))                 # repeats counted once
    with pytest.raises(EdgeferError, match="or all"):
        plan.indices("everything")
