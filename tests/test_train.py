"""`edgefer train` end to end on generated data: it learns, checkpoints, resumes, cross-validates;
the CLI's recipes and defaults, and the registries behind its choices."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli
from edgefer.train import checkpoint
from edgefer.train.config import TrainConfig
from edgefer.train.trainer import train


@pytest.fixture(scope="module")
def trained(fixture_dir, tmp_path_factory):
    data = f"fer2013:{fixture_dir('fer2013-folders', per_class=30)}"
    out = tmp_path_factory.mktemp("run")
    summary = train(TrainConfig(model="cnn1", data=data, out=out, epochs=8, augment=False, threads=1, progress=False))
    return data, out, summary


def test_training_learns_and_writes_its_outputs(trained):
    _, out, summary = trained
    assert summary["best_val_accuracy"] > 0.3           # chance is 1/7; cartoon faces are learnable
    for name in ("best.pt", "last.pt", "metrics.json", "curves.png"):
        assert (out / name).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["manifest_sha256"]) == 64 and metrics["val_split"] == "PublicTest"
    assert metrics["params"] == 116_871 and len(metrics["history"]) == metrics["epochs_run"]


def test_checkpoint_carries_metadata_and_evaluate_reproduces_validation(trained, tmp_path):
    data, out, summary = trained
    model, meta = checkpoint.load(out / "best.pt")
    assert meta.architecture == "cnn1" and meta.input_size == 48 and len(meta.labels) == 7
    assert 0 < meta.mean < 1 and meta.provenance["manifest_sha256"] == summary["manifest_sha256"]
    res = run_cli("evaluate", out / "best.pt", "--data", data, "--split", "PublicTest", "--json", "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["accuracy"] == pytest.approx(summary["best_val_accuracy"])


def test_resume_continues_where_it_stopped(fixture_dir, tmp_path):
    data = f"fer2013:{fixture_dir('fer2013-folders')}"
    first = train(TrainConfig(model="tiny", data=data, out=tmp_path, epochs=3, threads=1, progress=False,
                              minutes=1e-6))                # "interrupted" after its first epoch
    assert first["epochs_run"] == 1 and first["stop_reason"] == "time-budget"
    again = train(TrainConfig(model="tiny", data=data, out=tmp_path, epochs=3, threads=1, progress=False,
                              resume=tmp_path / "last.pt"))
    assert [h["epoch"] for h in again["history"]] == [1, 2, 3]
    from edgefer.runtime.errors import EdgeferError
    with pytest.raises(EdgeferError, match="pass --epochs 3"):
        train(TrainConfig(model="tiny", data=data, out=tmp_path, epochs=5, threads=1, progress=False,
                          resume=tmp_path / "last.pt"))


def test_divergence_stops_with_a_clear_error(fixture_dir, tmp_path):
    res = run_cli("train", "--model", "tiny", "--data", f"fer2013:{fixture_dir('fer2013-folders')}", "--epochs", "2",
                  "--lr", "1e30", "--out", tmp_path, "--threads", "1")
    assert res.returncode == 2 and "NaN" in res.stderr and "Traceback" not in res.stderr


def test_subject_independent_cross_validation(fixture_dir, tmp_path):
    """`--folds 3`: each fold's model is scored on that fold's test faces (as many as the subject-
    grouped plan puts there; together every face once), each fold's accuracy is a count of right
    answers over them, and the reported mean and spread are those of the per-fold figures."""
    import numpy as np

    from edgefer.train import datasets, splits
    spec = f"ckplus:{fixture_dir('ckplus48', per_class=12)}"
    res = run_cli("train", "--model", "tiny", "--data", spec,
                  "--folds", "3", "--epochs", "1", "--out", tmp_path, "--threads", "1", "--clip-length", "2")
    assert res.returncode == 0, res.stderr
    cv = json.loads((tmp_path / "cv.json").read_text())
    folds = cv["per_fold"]
    plan = splits.plan_splits(datasets.load(spec), folds=3)
    assert [(f["fold"], f["n"]) for f in folds] == [(k, len(plan.indices("test", k))) for k in range(3)]
    assert sum(f["n"] for f in folds) == 108                  # every image scored exactly once, by its own fold
    for f in folds:
        right = f["test_accuracy"] * f["n"]
        assert right == pytest.approx(round(right)), f        # a whole number of faces answered right
    acc = [f["test_accuracy"] for f in folds]
    assert cv["test_accuracy_mean"] == pytest.approx(np.mean(acc))
    assert cv["test_accuracy_std"] == pytest.approx(np.std(acc, ddof=1))
    assert cv["test_macro_f1_mean"] == pytest.approx(np.mean([f["test_macro_f1"] for f in folds]))


def test_unknown_model_and_preset(fixture_dir, tmp_path):
    data = f"fer2013:{fixture_dir('fer2013-folders')}"
    res = run_cli("train", "--model", "resnet9000", "--data", data)
    assert res.returncode == 2 and "edge" in res.stderr
    res = run_cli("train", "--model", "edge", "--preset", "case-III", "--data", data, "--out", tmp_path)
    assert res.returncode == 2 and "no preset" in res.stderr


def test_warm_start_copies_matching_weights_across_label_sets(trained, fixture_dir, tmp_path):
    import torch
    from edgefer.train.start import warm_start
    from edgefer.train import models
    _, out, _ = trained
    ck = models.create("cnn1", 5)                        # CK+-like label count: the last layer differs
    n = warm_start(ck, out / "best.pt")
    src, _ = checkpoint.load(out / "best.pt")
    assert n > 0 and torch.equal(ck.encoder.features[0][0].weight, src.encoder.features[0][0].weight)
    assert ck.encoder.classifier[-1].weight.shape[0] == 5


def test_promote_strips_training_state_and_writes_metadata(trained, tmp_path):
    from edgefer.runtime.metadata import read_sidecar
    from edgefer.train.default_model import promote, resolve
    _, out, _ = trained
    target = promote(out / "last.pt", target=tmp_path / "default.pt")
    assert "train_state" not in checkpoint.load_payload(target)["extra"]
    assert target.stat().st_size < (out / "last.pt").stat().st_size
    meta = read_sidecar(target)
    assert meta.architecture == "cnn1" and len(meta.provenance["source_checkpoint_sha256"]) == 64
    assert resolve("some/path.pt").name == "path.pt"


def test_warm_start_refuses_other_settings_beyond_the_label_head(small_edge_checkpoint):
    from edgefer.runtime.errors import EdgeferError
    from edgefer.train import models
    from edgefer.train.start import warm_start
    with pytest.raises(EdgeferError, match="differ in shape"):
        warm_start(models.create("edge", 7), small_edge_checkpoint)       # default widths, not SMALL_EDGE


def test_averaged_weights_on_clip_batches(fixture_dir, tmp_path):
    """EMA with the CPU clip path: both weights are scored each epoch, the better one is saved."""
    data = f"fer2013:{fixture_dir('fer2013-folders')}"
    s = train(TrainConfig(model="tiny", data=data, out=tmp_path, epochs=2, ema=0.5, clip_length=2, threads=1,
                          progress=False))
    for h in s["history"]:                               # the epoch's figure is its better weights' score
        assert h["val_acc"] == h[f"val_acc_{h['weights']}"] == max(h["val_acc_raw"], h["val_acc_ema"]), h
    _, meta = checkpoint.load(tmp_path / "best.pt")
    assert meta.metrics["weights"] == s["best_weights"] and meta.clip_length == 2
    assert s["best_val_accuracy"] == max(max(h["val_acc_raw"], h["val_acc_ema"]) for h in s["history"])


def _cli_config(*argv):
    from edgefer.runtime.cli import build_parser
    from edgefer.train.commands import _train_config
    return _train_config(build_parser().parse_args(["train", "--model", "edge", "--data", "x.pack", *argv]), "runs/x")


def test_cli_defaults_are_the_dataclass_and_a_recipe_yields_to_explicit_options():
    assert _cli_config() == TrainConfig(model="edge", data="x.pack", out=_cli_config().out, progress=_cli_config().progress)
    cfg = _cli_config("--recipe", "resident", "--lr", "0.01", "--epochs", "5", "--max-minutes", "3")
    assert (cfg.batches, cfg.schedule, cfg.optimizer, cfg.ema, cfg.batch_size) == ("device", "cosine-budget", "sgd", 0.999, 128)
    assert (cfg.lr, cfg.epochs, cfg.minutes, cfg.patience) == (0.01, 5, 3.0, None)
    assert _cli_config("--patience", "0", "--schedule", "cosine-budget", "--epochs", "0").patience is None


def test_choices_are_the_registries():
    from edgefer.compress.prune import PRUNE_METHODS
    from edgefer.train import balance, fake_quant, optim, schedules, sources
    from edgefer.train.config import CHOICES
    assert set(CHOICES["batches"]) == set(sources.BATCH_SOURCES)
    assert set(CHOICES["schedule"]) == set(schedules.SCHEDULES)
    assert set(CHOICES["optimizer"]) == set(optim.OPTIMIZERS)
    assert set(CHOICES["balance"]) == set(balance.METHODS)
    assert set(CHOICES["prune_method"]) == set(PRUNE_METHODS)
    assert set(CHOICES["weight_fake_quant"]) == set(fake_quant.SCHEMES)
    from edgefer.runtime.errors import EdgeferError
    with pytest.raises(EdgeferError, match="batches 'gpu' is not one of"):
        TrainConfig(model="edge", data="x", batches="gpu")
