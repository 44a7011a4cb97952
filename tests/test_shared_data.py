"""The real data in ../shared/data: official counts, duplicates, CK+ subjects (skipped when absent).

FER2013 here is the raw pixels (the earlier copy was histogram-equalised) without the 173 rows
FERPlus marked as not a face and 4 ambiguous Training names; PrivateTest is held back.
Counts audited 2026-11-30 and cross-checked with `find DIR/<class> -name '*.png' | wc -l`.
"""
from __future__ import annotations

import json

import pytest

from conftest import run_cli, shared

pytestmark = pytest.mark.shared_data

FER_TRAIN = {"angry": 3969, "disgust": 435, "fear": 4079, "happy": 7186, "sad": 4795, "surprise": 3161, "neutral": 4932}
FER_PUBLIC = {"angry": 466, "disgust": 56, "fear": 496, "happy": 891, "sad": 652, "surprise": 414, "neutral": 604}
CK_CLASSES = {"angry": 135, "disgust": 177, "fear": 75, "happy": 207, "sad": 84, "surprise": 249, "contempt": 54}


def test_fer2013_audit_matches_the_shipped_counts():
    root = shared("fer2013")
    res = run_cli("data", "audit", f"fer2013:{root}", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["splits"]["Training"]["total"] == 28557 and r["splits"]["Training"]["classes"] == FER_TRAIN
    assert r["splits"]["PublicTest"]["total"] == 3579 and r["splits"]["PublicTest"]["classes"] == FER_PUBLIC
    assert "PrivateTest" not in r["splits"]     # held back for independent evaluation
    exact = r["cross_split_duplicates"]["exact"]
    # FER2013 repeats faces across its splits; the audit must see them (the data README's 360 pairs)
    assert exact["pairs"] == 360 and set(exact["by_split_pair"]) == {"Training|PublicTest"}
    assert r["cross_split_duplicates"]["near"]["pairs"] > 0
    assert r["constant_images"] == 0           # the blank faces were among the rows FERPlus dropped
    assert r["skipped"]["count"] == 0


def test_ckplus_audit_subjects_sequences_and_no_fold_overlap():
    root = shared("ckplus48")
    res = run_cli("data", "audit", f"ckplus:{root}", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["total"] == 981 and r["subjects"] == 118 and r["sequences"] == 327
    assert r["fold_subject_overlap"] == 0 and r["folds"] == 10
    assert sum(s["total"] for s in r["splits"].values()) == 981
    assert {lab: sum(s["classes"][lab] for s in r["splits"].values()) for lab in CK_CLASSES} == CK_CLASSES


def test_ckplus_without_contempt_is_927_faces_with_54_reported():
    from edgefer.train import datasets
    ds = datasets.load(f"ckplus:{shared('ckplus48')}?exclude=contempt")
    assert len(ds.items) == 981 - CK_CLASSES["contempt"] == 927
    assert [s.reason for s in ds.skipped] == ["label 'contempt' excluded by ?exclude="] * 54


def test_ferplus_labels_join_fer2013_faces_by_name():
    """The shared FERPlus copy is label.csv files only: the loader joins them to FER2013's faces by
    image name, keeps FERPlus' majority faces, and reports the one label row with no face."""
    from collections import Counter

    from edgefer.train import datasets

    shared("fer2013")
    ds = datasets.load(f"ferplus:{shared('ferplus')}")
    splits = Counter(it.split for it in ds.items)
    assert splits == {"Training": 25044, "PublicTest": 3191}
    missing = [s for s in ds.skipped if "not among FER2013" in s.reason]
    assert len(missing) == 1 and "fer0006953.png" in missing[0].reason
    assert len(ds.labels) == 8 and "contempt" in ds.labels
    # FERPlus and FER2013 agree on about two thirds of the faces (the label noise FERPlus fixes)
    agree = sum(ds.alt_labels[it.key] == it.label for it in ds.items) / len(ds.items)
    assert 0.6 < agree < 0.75
