"""The leaky protocols really leak, and the experiments compare like with like."""
from __future__ import annotations

import json

import numpy as np

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
    res = run_cli("experiment", "leakage-ckplus", "--model", "tiny", "--data", f"ckplus:{fixture_dir('ckplus48', per_class=12)}",
                  "--folds", "3", "--epochs", "1", "--out", tmp_path, "--threads", "1")
    assert res.returncode == 0, res.stderr
    r = json.loads((tmp_path / "experiment.json").read_text())
    assert {"subject_independent", "random_frames", "gap_points"} <= set(r)
    assert json.loads((tmp_path / "random-frames" / "cv.json").read_text())["protocol"] == "random-frames"


def test_temporal_ablation_trains_both_heads_on_the_same_encoder(fixture_dir, tmp_path):
    res = run_cli("experiment", "temporal-ablation", "--model", "edge", "--data", f"ckplus:{fixture_dir('ckplus48', per_class=12)}",
                  "--folds", "3", "--epochs", "1", "--clip-length", "3", "--out", tmp_path, "--threads", "1")
    assert res.returncode == 0, res.stderr
    r = json.loads((tmp_path / "experiment.json").read_text())
    assert r["clip_length"] == 3 and {"recurrent", "frame_mean", "gain_points"} <= set(r)
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
    selected the epoch, so the figure is a validation figure and its keys say so."""
    import shutil
    from edgefer.train.config import TrainConfig
    from edgefer.train.experiments import _single_split
    root = shutil.copytree(fixture_dir("fer2013-folders"), tmp_path / "fer")
    for f in root.glob("*/*/PrivateTest_*"):
        f.unlink()
    r = _single_split(TrainConfig(model="tiny", data=f"fer2013:{root}", out=tmp_path / "run",
                                  epochs=1, threads=1, progress=False, log_every=0))
    assert r["scored"] == "val" and r["val_split"] == "PublicTest" and 0 <= r["val_accuracy"] <= 1
    assert not any(k.startswith("test") for k in r)
