"""`edgefer evaluate` on a randomly initialised checkpoint: numbers, files and refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from edgefer.runtime.labels import LABELS
from edgefer.runtime.metadata import ModelMetadata
from edgefer.train import checkpoint, models
from edgefer.train.metrics import classification_report


@pytest.fixture
def tiny_checkpoint(tmp_path):
    def make(labels=LABELS[:7], name="tiny.pt"):
        torch.manual_seed(0)
        model = models.create("tiny", len(labels))
        meta = ModelMetadata("tiny", list(labels), 48, 0.5, 0.25)
        return checkpoint.save(tmp_path / name, model, "tiny", {}, meta)
    return make


def test_evaluate_writes_metrics_plots_and_summary(fixture_dir, tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint()
    out = tmp_path / "eval"
    res = run_cli("evaluate", ckpt, "--data", f"fer2013:{fixture_dir('fer2013-folders')}",
                  "--split", "PublicTest", "--json", "--out", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    cm = np.array(r["confusion_matrix"])
    assert r["n"] == 14 == cm.sum()
    assert r["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert sum(c["support"] for c in r["per_class"].values()) == 14
    assert len(r["manifest_sha256"]) == 64
    for name in ("metrics.json", "summary.md", "confusion.png", "roc.png"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "metrics.json").read_text())["manifest_sha256"] == r["manifest_sha256"]


def test_metrics_match_a_known_case():
    """Accuracy, precision, recall, confusion matrix and one-vs-rest ROC AUC (per class and their
    macro mean) equal a hand count on six faces. Each face's answer has its own confidence
    (scales 6, 5, 4, 2, 1, 3), so every class's scores are distinct: the predicted class's
    softmax share e^s/(e^s+2) rises with s and exceeds 1/3, the others' 1/(e^s+2) fall with s,
    and each AUC is a count of (positive, negative) pairs ranked the right way, with no ties
    (equal logits would tie only up to float rounding, which decides such AUCs arbitrarily)."""
    labels = ["angry", "happy", "sad"]
    y = np.array([0, 0, 1, 1, 2, 2])
    logits = np.eye(3)[[0, 1, 1, 1, 2, 0]] * np.array([6, 5, 4, 2, 1, 3])[:, None]
    r = classification_report(y, logits, labels)
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_class"]["happy"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["angry"]["recall"] == pytest.approx(0.5)
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # angry: face 0 (high) outranks all 4 negatives, face 1 (low at scale 5, the lowest) none -> 4/8;
    # happy: faces 2, 3 outrank every negative except face 1 (happy at scale 5) -> 6/8;
    # sad: face 4 (high) outranks all 4 negatives, face 5 (low at scale 3) those low at 6, 5, 4 -> 7/8
    auc = {lab: m["roc_auc"] for lab, m in r["per_class"].items()}
    assert auc == {"angry": pytest.approx(0.5), "happy": pytest.approx(0.75), "sad": pytest.approx(0.875)}
    assert r["roc_auc_ovr_macro"] == pytest.approx((0.5 + 0.75 + 0.875) / 3)


def test_evaluate_on_a_fold(fixture_dir, tiny_checkpoint, tmp_path):
    """`--split test --fold 3` scores exactly the faces of fold 3's test subjects: as many faces,
    of the same labels, as the subject-grouped split plan puts there (fold 3 holds angry, sad and
    surprise faces only, unlike fold 0 or the whole dataset)."""
    from collections import Counter

    from edgefer.train import datasets, splits
    spec = f"ckplus:{fixture_dir('ckplus48', per_class=12)}"
    ckpt = tiny_checkpoint(labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"))
    res = run_cli("evaluate", ckpt, "--data", spec, "--split", "test", "--fold", "3", "--json", "--out", tmp_path / "e",
                  cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    ds = datasets.load(spec)
    fold3 = Counter(ds.items[i].label for i in splits.plan_splits(ds).indices("test", 3))
    assert r["fold"] == 3 and r["n"] == sum(fold3.values())
    assert {lab: c["support"] for lab, c in r["per_class"].items() if c["support"]} == dict(fold3)
    assert np.array(r["confusion_matrix"]).sum(1).tolist() == [fold3[lab] for lab in r["labels"]]


def test_label_set_mismatch_is_refused(fixture_dir, tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint(labels=("angry", "happy", "sad", "neutral"))
    res = run_cli("evaluate", ckpt, "--data", f"fer2013:{fixture_dir('fer2013-folders')}", "--split", "PublicTest",
                  cwd=tmp_path)
    assert res.returncode == 2 and "does not predict" in res.stderr and "Traceback" not in res.stderr


def test_foreign_and_corrupt_checkpoints_are_refused(fixture_dir, tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    for path, cause in ((foreign, "not an edgefer checkpoint"), (corrupt, "not a readable PyTorch checkpoint")):
        res = run_cli("evaluate", path, "--data", f"fer2013:{fixture_dir('fer2013-folders')}", "--split", "PublicTest")
        assert res.returncode == 2 and cause in res.stderr and str(path) in res.stderr


def test_checkpoint_of_another_architecture_is_refused(tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint()
    payload = torch.load(ckpt, weights_only=True)
    payload["kwargs"] = {"width": 16}
    torch.save(payload, ckpt)
    from edgefer.runtime.errors import EdgeferError
    with pytest.raises(EdgeferError, match="do not fit architecture"):
        checkpoint.load(ckpt)


def test_drop_leaked_scores_only_images_without_a_training_copy(fixture_dir, tiny_checkpoint, tmp_path):
    import shutil

    import cv2
    root = shutil.copytree(fixture_dir("fer2013-folders"), tmp_path / "fer")
    planted = cv2.imread(str(sorted((root / "train" / "sad").iterdir())[0]), 0)
    cv2.imwrite(str(root / "test" / "sad" / "PublicTest_99999.png"), planted)
    ckpt = tiny_checkpoint()
    full = json.loads(run_cli("evaluate", ckpt, "--data", f"fer2013:{root}", "--split", "PublicTest", "--json",
                              "--out", tmp_path / "a").stdout)
    res = run_cli("evaluate", ckpt, "--data", f"fer2013:{root}", "--split", "PublicTest", "--json", "--drop-leaked",
                  "--out", tmp_path / "b")
    clean = json.loads(res.stdout)
    assert clean["dropped_leaked"] >= 1 and clean["n"] + clean["dropped_leaked"] == full["n"] == 15


def test_ignore_label_masks_the_model_choice(fixture_dir, tmp_path):
    """An 8-class model scored as 7-class: with --ignore-label contempt no face is ever
    predicted contempt, and faces it did call contempt move to another class."""
    torch.manual_seed(0)
    model = models.create("tiny", 8)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.bias[LABELS.index("contempt")] += 50.0                         # calls every face contempt
    ckpt = checkpoint.save(tmp_path / "tiny8.pt", model, "tiny", {}, ModelMetadata("tiny", list(LABELS[:8]), 48, 0.5, 0.25))
    data = f"fer2013:{fixture_dir('fer2013-folders')}"
    runs = {}
    for tag, extra in (("all", []), ("masked", ["--ignore-label", "contempt"])):
        res = run_cli("evaluate", ckpt, "--data", data, "--split", "Training", "--json", "--out", tmp_path / tag,
                      *extra, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        runs[tag] = json.loads(res.stdout)
    c = LABELS.index("contempt")
    assert np.array(runs["all"]["confusion_matrix"])[:, c].sum() == runs["all"]["n"] and runs["all"]["accuracy"] == 0
    assert np.array(runs["masked"]["confusion_matrix"])[:, c].sum() == 0
    assert runs["masked"]["ignored_labels"] == ["contempt"]
    bad = run_cli("evaluate", ckpt, "--data", data, "--split", "Training", "--ignore-label", "pride", cwd=tmp_path)
    assert bad.returncode == 2 and "not among the model's labels" in bad.stderr
