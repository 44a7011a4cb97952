"""The audit finds the leaks we plant: exact and near duplicates across splits, shared subjects."""
from __future__ import annotations

import shutil

import cv2
import numpy as np

from edgefer.train import datasets, images, splits
from edgefer.train.audit import audit


def _audit(spec: str, near: bool = True) -> dict:
    ds = datasets.load(spec)
    dec = images.decode(ds, 48, progress=False)
    return audit(ds, dec, splits.plan_splits(ds), near=near)


def test_clean_fixture_has_no_cross_split_exact_duplicates(fixture_dir):
    r = _audit(f"fer2013:{fixture_dir('fer2013-folders')}")
    assert r["cross_split_duplicates"]["exact"]["pairs"] == 0
    assert r["splits"]["Training"]["total"] == 42 and r["splits"]["PublicTest"]["classes"]["happy"] == 2


def test_planted_exact_and_near_duplicates_are_found(fixture_dir, tmp_path):
    root = shutil.copytree(fixture_dir("fer2013-folders"), tmp_path / "fer")
    train_img = sorted((root / "train" / "happy").iterdir())[0]
    img = cv2.imread(str(train_img), 0)
    # an exact copy in PublicTest (PNG keeps pixels identical) with a different label: the worst kind
    cv2.imwrite(str(root / "test" / "sad" / "PublicTest_90001.png"), img)
    # a near copy in PrivateTest: brightness +6 and a little noise
    rng = np.random.default_rng(0)
    near = np.clip(img.astype(int) + 6 + rng.integers(-2, 3, img.shape), 0, 255).astype(np.uint8)
    cv2.imwrite(str(root / "test" / "happy" / "PrivateTest_90002.png"), near)
    r = _audit(f"fer2013:{root}")
    exact = r["cross_split_duplicates"]["exact"]
    assert exact["pairs"] == 1 and exact["label_conflicts"] == 1
    assert exact["by_split_pair"] == {"Training|PublicTest": 1}
    near_r = r["cross_split_duplicates"]["near"]
    assert near_r["by_split_pair"].get("Training|PrivateTest", 0) >= 1
    assert any("PrivateTest_90002.png" in pair[1] for pair in near_r["examples"])


def test_ckplus_audit_reports_subjects_sequences_and_zero_overlap(fixture_dir):
    r = _audit(f"ckplus:{fixture_dir('ckplus48', per_class=12)}", near=False)
    assert r["subjects"] == 12 and r["sequences"] == 36 and r["fold_subject_overlap"] == 0
    assert r["total"] == 108


def test_frame_level_split_would_share_subjects(fixture_dir):
    """The audit's overlap count is real: a frame-level random split of CK+ shares subjects."""
    ds = datasets.load(f"ckplus:{fixture_dir('ckplus48', per_class=12)}")
    dec = images.decode(ds, 48, progress=False)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ds.items))
    plan = splits.SplitPlan("random-frames", 0, {f"fold{k}": sorted(order[k::10].tolist()) for k in range(10)}, {}, 10)
    r = audit(ds, dec, plan, near=False)
    assert r["fold_subject_overlap"] > 0
