"""The real data in ../shared/data: official counts, duplicates, CK+ subjects (skipped when absent)."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli, shared

pytestmark = pytest.mark.shared_data

FER_TRAIN = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "sad": 4830, "surprise": 3171, "neutral": 4965}
FER_PUBLIC = {"angry": 467, "disgust": 56, "fear": 496, "happy": 895, "sad": 653, "surprise": 415, "neutral": 607}


def test_fer2013_audit_matches_the_official_counts():
    root = shared("fer2013")
    res = run_cli("data", "audit", f"fer2013:{root}", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["splits"]["Training"]["total"] == 28709 and r["splits"]["Training"]["classes"] == FER_TRAIN
    assert r["splits"]["PublicTest"]["total"] == 3589 and r["splits"]["PublicTest"]["classes"] == FER_PUBLIC
    assert "PrivateTest" not in r["splits"]     # held back for independent evaluation
    exact = r["cross_split_duplicates"]["exact"]
    # FER2013 is known to repeat faces across its splits; the audit must see them
    assert exact["pairs"] > 0 and set(exact["by_split_pair"]) == {"Training|PublicTest"}
    assert r["cross_split_duplicates"]["near"]["pairs"] > 0
    assert r["skipped"]["count"] == 0


def test_ckplus_audit_subjects_sequences_and_no_fold_overlap():
    root = shared("ckplus48")
    res = run_cli("data", "audit", f"ckplus:{root}", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["total"] == 981 and r["subjects"] == 118 and r["sequences"] == 327
    assert r["fold_subject_overlap"] == 0 and r["folds"] == 10
    assert sum(s["total"] for s in r["splits"].values()) == 981
