"""Training for the camera: camera-like augmentation families, crowd-vote targets, and a run
on FERPlus votes (issue 15). Tiny model, CPU."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import SMALL_EDGE

from edgefer.runtime.errors import EdgeferError
from edgefer.train import camera_augment, checkpoint, pack
from edgefer.train.camera_ablation import corrupted, markdown, rows
from edgefer.train.config import CAMERA_FAMILIES, TrainConfig, camera_families, from_recipe
from edgefer.train.sources import training_targets
from edgefer.train.trainer import train


def _faces(n: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth face-like images (a bright ellipse on a darker ground) with some texture."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 48), torch.linspace(-1, 1, 48), indexing="ij")
    base = (0.3 + 0.5 * ((xx / 0.7) ** 2 + (yy / 0.9) ** 2 < 1).float())
    return (base + 0.1 * torch.rand(n, 1, 48, 48, generator=g)).clamp(0, 1)


def test_family_registry_matches_the_cli_choices():
    assert set(camera_augment.FAMILIES) == set(CAMERA_FAMILIES)
    assert set(camera_augment.ORDER) == set(CAMERA_FAMILIES) - {"framing"}


@pytest.mark.parametrize("text, expected", [
    ("all", CAMERA_FAMILIES), ("none", ()), ("blur,noise", ("blur", "noise")),
    ("all-jpeg", tuple(f for f in CAMERA_FAMILIES if f != "jpeg")),
])
def test_camera_option_parses(text, expected):
    assert camera_families(text) == expected


def test_unknown_family_is_a_one_line_error():
    with pytest.raises(EdgeferError, match="not one of"):
        TrainConfig(model="edge", data="x", camera="all-fog")


@pytest.mark.parametrize("family", [f for f in CAMERA_FAMILIES if f != "framing"])
def test_each_family_is_seeded_in_range_and_does_its_job(family):
    x = _faces()
    fn = camera_augment.FAMILIES[family]
    a = fn(x, torch.Generator().manual_seed(3), p=1.0)
    b = fn(x, torch.Generator().manual_seed(3), p=1.0)
    assert torch.equal(a, b) and a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    assert (a - x).abs().mean() > 0.005                                   # it changed every image
    assert torch.equal(fn(x, torch.Generator().manual_seed(3), p=0.0), x)  # p=0 is the identity
    hf = lambda t: (t[..., 1:, :] - t[..., :-1, :]).abs().mean()  # noqa: E731  high-frequency energy
    if family in ("blur", "lowres"):
        assert hf(a) < hf(x)                                              # detail lost
    if family == "noise":
        assert hf(a) > hf(x)
    if family == "light":
        assert (a.mean((1, 2, 3)) - x.mean((1, 2, 3))).abs().mean() > 0.03  # exposure moved


def test_jpeg_family_matches_libjpeg():
    import cv2
    x = _faces(4)
    out = camera_augment.jpeg(x, torch.Generator().manual_seed(0), p=1.0)
    img = (x[0, 0].numpy() * 255).round().astype(np.uint8)
    errors = [np.abs(cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1], 0).astype(int)
                     - (out[0, 0].numpy() * 255).round().astype(int)).max() for q in range(10, 71)]
    assert min(errors) <= 1                                               # some quality in 10..70 made it


def test_framing_corruption_moves_the_face_but_keeps_it_upright():
    px = (_faces(8).numpy()[:, 0] * 255).astype(np.uint8)
    bad = corrupted(px, "framing")
    assert bad.shape == px.shape and np.abs(bad.astype(int) - px).mean() > 3
    assert np.array_equal(corrupted(px, "framing"), bad)                  # one seeded draw


def _vote_data(n: int = 6):
    votes = np.tile(np.array([[0.6, 0.4, 0.0]], np.float32), (n, 1))
    return pack.SplitData(np.zeros((n, 48, 48), np.uint8), np.zeros(n, np.int64), np.arange(n), np.arange(n),
                          ["angry", "happy", "neutral"], "x", "", "Training", "PublicTest", votes=votes,
                          alt_y=np.array([2, 1, -1, 0, 0, 0]))


def test_targets_are_vote_shares_with_the_other_label_set_mixed_in():
    d = _vote_data()
    t = training_targets(d, TrainConfig(model="edge", data="x", alt_label_weight=0.5))
    assert t.shape == (6, 3) and np.allclose(t.sum(1), 1)
    assert np.allclose(t[0], [0.3, 0.2, 0.5])                  # half votes, half FER2013's "neutral"
    assert np.allclose(t[2], [0.6, 0.4, 0.0])                  # no other label: votes alone
    assert np.array_equal(training_targets(d, TrainConfig(model="edge", data="x", vote_targets=False)), d.y)


@pytest.fixture(scope="module")
def ferplus_pack(fixture_dir, tmp_path_factory):
    data = fixture_dir("ferplus-labels", per_class=8)
    return pack.write_pack(f"ferplus:{data}", tmp_path_factory.mktemp("fp") / "ferplus.pack")


def test_pack_keeps_votes_and_fer2013_labels(ferplus_pack):
    """A FERPlus pack keeps each face's vote shares (summing to 1, topped by its majority label)
    and FER2013's own label for it, in the pack's label order (the fixture's votes agree with
    FER2013's labels on every face, so that label is the majority one)."""
    d = pack.read_pack(ferplus_pack)
    assert d.votes is not None and d.votes.shape == (len(d.y), len(d.labels)) and np.allclose(d.votes.sum(1), 1)
    assert (d.votes.argmax(1) == d.y).all()                    # the majority label is the top vote share
    assert d.alt_y is not None and np.array_equal(d.alt_y, d.y)


def test_training_on_votes_with_camera_augmentation_scores_both_label_sets(ferplus_pack, tmp_path):
    """A vote-target run scores every epoch on both label sets and selects on their mean; best.pt
    holds the selected epoch's weights and records both of its scores, each what running best.pt
    on the pack's PublicTest faces gives against FERPlus' labels and against FER2013's."""
    from edgefer.runtime.preprocess import normalize
    cfg = from_recipe("resident", model="edge", model_kwargs=SMALL_EDGE, data=str(ferplus_pack), out=tmp_path / "r",
                      minutes=10, epochs=2, batch_size=8, lr=0.05, device="cpu", threads=1, progress=False,
                      log_every=0, alt_label_weight=0.3)
    assert cfg.camera == "all"                                  # the edge recipe trains for the camera
    summary = train(cfg)
    h = summary["history"][-1]
    assert "val_acc_alt" in h and h["val_select"] == pytest.approx((h["val_acc"] + h["val_acc_alt"]) / 2)
    best = summary["history"][summary["best_epoch"] - 1]
    assert summary["best_val_accuracy"] == pytest.approx(best["val_select"])
    model, meta = checkpoint.load(tmp_path / "r" / "best.pt")
    d = pack.read_pack(ferplus_pack)
    assert list(meta.labels) == d.labels
    x = torch.from_numpy(normalize(d.pixels[d.val_idx], meta.mean, meta.std))[:, None, None]   # (N, T=1, 1, 48, 48)
    with torch.no_grad():
        said = model.eval()(x).argmax(1).numpy()
    alt, has = d.alt_y[d.val_idx], d.alt_y[d.val_idx] >= 0
    assert meta.metrics["val_accuracy"] == pytest.approx(np.mean(said == d.y[d.val_idx])) == best["val_acc"]
    assert meta.metrics["val_accuracy_alt_labels"] == pytest.approx(np.mean(said[has] == alt[has]))
    assert meta.metrics["val_accuracy_alt_labels"] == best["val_acc_alt"]


def test_ablation_rows_and_table():
    names = [r[0] for r in rows()]
    assert names[:2] == ["none", "all"] and len(names) == 3 + len(CAMERA_FAMILIES)
    s = {"val": 0.8, "val_alt_labels": 0.7, "val_corrupted_mean": 0.6, "val_corrupted": {f: 0.5 for f in CAMERA_FAMILIES},
         "cross": {"ckplus:x/ckplus48?exclude=contempt": 0.9}, "photos": {"folder:runs/uncropped/fer-public": 0.4}}
    md = markdown({"cross": ["ckplus:x/ckplus48?exclude=contempt"], "photos": ["folder:runs/uncropped/fer-public"],
                   "rows": [{"row": "all", "scores": s}]})
    assert "| all | 80.00 | 70.00 | 60.00 |" in md and "ckplus48" in md and "photos fer-public" in md
    json.dumps(s)


def test_label_mix_probe_trades_one_label_set_for_the_other(ferplus_pack, small_edge_checkpoint, tmp_path, monkeypatch):
    """The probe behind the shipped target mix: W=1 trains on FER2013's labels alone, so its
    FER2013 accuracy is at least W=0's (fixture labels agree, so both are learnable). Each row's
    accuracies are a recount of its fitted head's answers on the pack's PublicTest faces, against
    FERPlus' majority label and FER2013's own label, over every PublicTest face."""
    from edgefer.train import label_mix_probe
    heads, feats = [], []
    fit, features = label_mix_probe.fit_head, label_mix_probe.features
    # keep what the probe computes (each fitted head; the features of train, then PublicTest) to recount
    monkeypatch.setattr(label_mix_probe, "fit_head", lambda *a, **k: heads.append(fit(*a, **k)) or heads[-1])
    monkeypatch.setattr(label_mix_probe, "features", lambda *a, **k: feats.append(features(*a, **k)) or feats[-1])
    out = tmp_path / "mix.json"
    assert label_mix_probe.main([str(ferplus_pack), "--init", str(small_edge_checkpoint), "--weights", "0,1",
                                 "--out", str(out)]) == 0
    r = json.loads(out.read_text())["rows"]
    assert [row["alt_label_weight"] for row in r] == [0.0, 1.0]
    d = pack.read_pack(ferplus_pack)
    y, alt = d.y[d.val_idx], d.alt_y[d.val_idx]
    assert len(heads) == 2 and len(feats) == 2 and len(feats[1]) == len(d.val_idx)   # train features, then PublicTest's
    for row, head in zip(r, heads):
        with torch.no_grad():
            said = head(feats[1]).argmax(1).numpy()
        assert row["n"] == len(d.val_idx)
        assert row["ferplus_acc"] == pytest.approx(np.mean(said == y))
        assert row["fer2013_acc"] == pytest.approx(np.mean(said[alt >= 0] == alt[alt >= 0]))
    assert r[1]["fer2013_acc"] >= r[0]["fer2013_acc"] - 1e-9


def test_prior_adjustment_is_chosen_on_the_selection_sets_and_baked_into_the_head(ferplus_pack, fixture_dir, tmp_path):
    """tau = 0 is the model unchanged; the written checkpoint's head bias moved by exactly
    -tau * log(prior) for the tau with the best mean selection accuracy."""
    from edgefer.runtime.metadata import ModelMetadata
    from edgefer.train import models, prior_adjust
    d = pack.read_pack(ferplus_pack)
    torch.manual_seed(0)
    model = models.create("edge", len(d.labels), **SMALL_EDGE)
    ckpt = checkpoint.save(tmp_path / "m.pt", model, "edge", SMALL_EDGE, ModelMetadata("edge", d.labels, 48, 0.5, 0.25))
    spec = f"ferplus:{fixture_dir('ferplus-labels', per_class=8)}"
    out = tmp_path / "adj.pt"
    assert prior_adjust.main([str(ckpt), "--prior", str(ferplus_pack), "--select", f"{spec}@PublicTest",
                              "--select", f"{spec}@Training", "--taus", "0,0.5,1", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".adjust.json").read_text())
    best = max(report["rows"], key=lambda r: r["mean"])
    assert report["chosen_tau"] == best["tau"]
    prior = np.array(list(report["prior"].values()))
    assert prior.min() >= 0.02 * 0.99 and prior.sum() == pytest.approx(1, abs=1e-3)
    before = checkpoint.load(ckpt)[0].head.bias.detach().numpy()
    after, meta = checkpoint.load(out)
    assert np.allclose(after.head.bias.detach().numpy(), before - best["tau"] * np.log(prior), atol=1e-3)
    assert meta.provenance["logit_adjustment"]["tau"] == best["tau"]


def test_warm_start_into_another_label_set_keeps_the_shared_labels_rows(small_edge_checkpoint, tmp_path):
    """FER2013 (7) -> FERPlus (8): the seven shared labels keep their trained head rows,
    in the new order; only contempt starts fresh."""
    from edgefer.runtime.labels import LABELS
    from edgefer.train.start import initial_model
    src = checkpoint.load_payload(small_edge_checkpoint)["state_dict"]
    labels = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]
    cfg = TrainConfig(model="edge", data="x", init=small_edge_checkpoint)
    model = initial_model(cfg, SMALL_EDGE, labels, 48)
    for dst, lab in enumerate(labels[:7]):
        assert torch.equal(model.head.weight[dst], src["head.weight"][LABELS.index(lab)])
        assert torch.equal(model.head.bias[dst], src["head.bias"][LABELS.index(lab)])
    assert not any(torch.equal(model.head.weight[7], src["head.weight"][i]) for i in range(7))
