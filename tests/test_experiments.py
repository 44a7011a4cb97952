"""The leaky protocols really leak, and the experiments compare like with like."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from edgefer.train import datasets, images, splits


def _ds(spec):
    ds = datasets.load(spec)
    images.decode(ds, 48, progress=False)
    return ds


def test_random_frame_folds_put_one_subject_on_both_sides(fixture_dir):
    ds = _ds(f"ckplus:{fixture_dir('ckplus48', per_class=12)}")
    leaky = splits.plan_splits(ds, protocol="random-frames")
    honest = splits.plan_splits(ds)
    def shared_subjects(plan):
        test, train = set(plan.indices("test", 0)), set(plan.indices("train", 0))
        return {ds.items[i].subject for i in test} & {ds.items[i].subject for i in train}
    assert shared_subjects(honest) == set()
    assert len(shared_subjects(leaky)) > 0


def test_oversampling_before_the_split_copies_training_images_into_test(fixture_dir, tmp_path):
    import shutil
    root = shutil.copytree(fixture_dir("fer2013-folders", per_class=30), tmp_path / "fer")
    for f in sorted((root / "train" / "happy").iterdir())[3:]:
        f.unlink()                               # happy is now rare: the oversampler must copy its images
    ds = _ds(f"fer2013:{root}")
    plan = splits.plan_splits(ds, protocol="oversample-then-split")
    pooled = plan.indices("train") + plan.indices("val") + plan.indices("test")
    counts = np.bincount([list(ds.labels).index(ds.items[i].label) for i in pooled])
    assert counts.min() == counts.max()          # the whole pool was balanced before splitting
    assert len(pooled) > len(set(pooled))        # ... by copying images
    leaked = set(plan.indices("test")) & set(plan.indices("train"))
    assert leaked and all(ds.items[i].label == "happy" for i in leaked)   # copies straddle the split


def test_experiment_command_writes_its_comparison(fixture_dir, tmp_path):
    """leakage-ckplus reports each protocol's k-fold mean test accuracy as its own cross-validation
    wrote it (subject folds vs random-frame folds, each the mean of its folds), and the gap
    between them in points (leaky minus honest)."""
    res = run_cli("experiment", "leakage-ckplus", "--model", "tiny", "--data", f"ckplus:{fixture_dir('ckplus48', per_class=12)}",
                  "--folds", "3", "--epochs", "1", "--out", tmp_path, "--threads", "1")
    assert res.returncode == 0, res.stderr
    r = json.loads((tmp_path / "experiment.json").read_text())
    honest = json.loads((tmp_path / "subject-folds" / "cv.json").read_text())
    leaky = json.loads((tmp_path / "random-frames" / "cv.json").read_text())
    assert (honest["protocol"], leaky["protocol"]) == ("dataset", "random-frames")
    for key, cv in (("subject_independent", honest), ("random_frames", leaky)):
        folds = [f["test_accuracy"] for f in cv["per_fold"]]
        assert len(folds) == 3 and r[key] == pytest.approx(np.mean(folds))
        assert r[f"{key}_std"] == pytest.approx(np.std(folds, ddof=1))
    assert r["gap_points"] == pytest.approx(100 * (r["random_frames"] - r["subject_independent"]))


def test_temporal_ablation_trains_both_heads_on_the_same_encoder(fixture_dir, tmp_path):
    """Both arms run k-fold at the same clip length and differ only in the temporal head (GRU vs
    per-frame mean); the figures reported are each arm's own mean test accuracy over its folds,
    and the gain is their difference in points."""
    res = run_cli("experiment", "temporal-ablation", "--model", "edge", "--data", f"ckplus:{fixture_dir('ckplus48', per_class=12)}",
                  "--folds", "3", "--epochs", "1", "--clip-length", "3", "--out", tmp_path, "--threads", "1")
    assert res.returncode == 0, res.stderr
    r = json.loads((tmp_path / "experiment.json").read_text())
    assert r["clip_length"] == 3 and r["scored"] == "test"
    for key, head in (("recurrent", "gru"), ("frame_mean", "mean")):    # each arm's own k-fold mean test accuracy
        cv = json.loads((tmp_path / head / "cv.json").read_text())
        assert cv["model_kwargs"]["temporal"] == head and cv["clip_length"] == 3
        assert r[key] == pytest.approx(np.mean([f["test_accuracy"] for f in cv["per_fold"]]))
    assert r["gain_points"] == pytest.approx(100 * (r["recurrent"] - r["frame_mean"]))
    from edgefer.train import checkpoint
    _, gru_meta = checkpoint.load(tmp_path / "gru" / "fold0" / "best.pt")
    mean_model, _ = checkpoint.load(tmp_path / "mean" / "fold0" / "best.pt")
    assert gru_meta.clip_length == 3 and type(mean_model.temporal).__name__ == "FrameMean"


def test_frame_mean_arm_warm_starts_from_a_gru_checkpoint(small_edge_checkpoint):
    """Both ablation arms must start from the same encoder: the mean model keeps the GRU model's names."""
    import torch
    from conftest import SMALL_EDGE
    from edgefer.train import checkpoint, models
    from edgefer.train.start import warm_start
    mean_model = models.create("edge", 7, **SMALL_EDGE, temporal="mean")
    src = checkpoint.load_payload(small_edge_checkpoint)["state_dict"]
    n = warm_start(mean_model, small_edge_checkpoint)
    enc = {k: v for k, v in mean_model.state_dict().items() if k.startswith("encoder.")}
    assert n >= len(enc) and all(torch.equal(v, src[k]) for k, v in enc.items())
    clip = torch.randn(2, 4, 1, 48, 48)
    mean_model.eval()
    per_frame = torch.stack([mean_model(clip[:, t:t + 1]) for t in range(4)], 1).mean(1)
    assert torch.allclose(mean_model(clip), per_frame, atol=1e-5)   # = per-frame logits averaged


def test_a_single_split_scored_on_publictest_is_labelled_validation(fixture_dir, tmp_path):
    """FER2013 as shipped in ../shared/data has no PrivateTest: the scored split (PublicTest) also
    selected the epoch, so the figure is a validation figure and its keys say so. The figure is
    best.pt's accuracy on every PublicTest face: what selected the epoch, and what running the
    checkpoint here on the PublicTest files (the runtime's pixel contract) counts; likewise its
    macro-F1. (After one epoch the tiny model may answer one class for every face; then a
    shuffled label order would go unseen here, but a wrong face set or figure would not.)"""
    import shutil

    import cv2
    import torch
    from sklearn.metrics import f1_score

    from edgefer.runtime.preprocess import prepare
    from edgefer.train import checkpoint
    from edgefer.train.config import TrainConfig
    from edgefer.train.experiments import _single_split
    root = shutil.copytree(fixture_dir("fer2013-folders"), tmp_path / "fer")
    for f in root.glob("*/*/PrivateTest_*"):
        f.unlink()
    r = _single_split(TrainConfig(model="tiny", data=f"fer2013:{root}", out=tmp_path / "run",
                                  epochs=1, threads=1, progress=False, log_every=0))
    assert r["scored"] == "val" and r["val_split"] == "PublicTest"
    assert not any(k.startswith("test") for k in r)
    files = sorted(root.glob("test/*/PublicTest_*.png"))
    model, meta = checkpoint.load(tmp_path / "run" / "best.pt")
    x = torch.from_numpy(np.stack([prepare(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), meta) for f in files]))
    with torch.no_grad():
        said = [meta.labels[i] for i in model.eval()(x[:, None]).argmax(1).tolist()]   # (N, T=1, 1, 48, 48)
    truth = [f.parent.name for f in files]
    assert r["n_val"] == len(files) == 14
    assert r["val_accuracy"] == pytest.approx(np.mean(np.array(said) == truth)) == r["selection_val_accuracy"]
    assert r["val_macro_f1"] == pytest.approx(f1_score(truth, said, average="macro"))
