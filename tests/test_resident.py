"""The device-resident path of `edgefer train` (packs, batched augmentation, EMA, distillation,
pruning, int8-aware weights, the wall-clock schedule), run on CPU with a tiny model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import SMALL_EDGE

from edgefer.runtime import cli
from edgefer.train import checkpoint, distill, fake_quant, pack, schedules
from edgefer.train.config import from_recipe
from edgefer.train.device_augment import Augment, augment
from edgefer.train.prepare import prepare
from edgefer.train.trainer import train

SMALL_FLAGS = ["--set", f"widths={json.dumps(SMALL_EDGE['widths'])}", "--set", f"depths={json.dumps(SMALL_EDGE['depths'])}",
               "--set", "stem=8", "--set", "units=16"]


def _batch(seed: int = 0) -> torch.Tensor:
    return torch.rand(16, 1, 48, 48, generator=torch.Generator().manual_seed(seed))


def test_augment_with_no_change_is_the_identity():
    x = _batch()
    none = Augment(rotate=0, scale=(1, 1), shift=0, flip=False, contrast=0, brightness=0, erase_p=0)
    out = augment(x, none, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-5)


def test_augment_flip_mirrors_about_half_the_batch():
    x = _batch()
    flip = Augment(rotate=0, scale=(1, 1), shift=0, flip=True, contrast=0, brightness=0, erase_p=0)
    out = augment(x, flip, torch.Generator().manual_seed(1))
    same = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x)]
    mirrored = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 0 < sum(mirrored) < len(x)


def test_augment_is_seeded_and_changes_images():
    x = _batch()
    a, b = (augment(x, Augment(), torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(a, b)
    assert a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    assert (a - x).abs().mean() > 0.02


@pytest.fixture(scope="module")
def fer_pack(fixture_dir, tmp_path_factory) -> Path:
    data = fixture_dir("fer2013-folders", per_class=8)
    return pack.write_pack(f"fer2013:{data}", tmp_path_factory.mktemp("pack") / "fer.pack")


def _cfg(data, out, **over):
    base = dict(model="edge", model_kwargs=SMALL_EDGE, minutes=10, epochs=2, batch_size=8, lr=0.05, device="cpu",
                threads=1, progress=False, log_every=0)
    return from_recipe("resident", data=str(data), out=out, **{**base, **over})


def test_pack_holds_the_split_and_training_from_it_saves_as_it_goes(fixture_dir, fer_pack, tmp_path):
    spec = f"fer2013:{fixture_dir('fer2013-folders', per_class=8)}"
    p = pack.read_pack(fer_pack)
    _, decoded, plan, man = prepare(spec)
    assert p.manifest_sha256 == man["manifest_sha256"]
    assert (p.pixels == decoded.pixels).all() and list(p.val_idx) == plan.indices("val")

    summary = train(_cfg(fer_pack, tmp_path / "run", epochs=3))
    assert summary["epochs_run"] == 3 and len(summary["history"]) == 3 and summary["stop_reason"] == "epochs"
    model, meta = checkpoint.load(tmp_path / "run" / "best.pt")
    assert meta.provenance["manifest_sha256"] == man["manifest_sha256"] and meta.provenance["batches"] == "device"
    assert meta.metrics["val_accuracy"] == pytest.approx(summary["best_val_accuracy"])
    assert meta.metrics["weights"] == summary["best_weights"] in ("raw", "ema")
    assert max(max(h["val_acc_raw"], h["val_acc_ema"]) for h in summary["history"]) == pytest.approx(
        summary["best_val_accuracy"], abs=1e-6)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["params"] == sum(p.numel() for p in model.parameters())
    assert checkpoint.load_payload(tmp_path / "run" / "last.pt")["extra"]["train_state"]["epoch"] == 2
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0


def test_unreadable_pack_is_a_one_line_error_and_the_old_entry_point_forwards(tmp_path, capsys):
    bad = tmp_path / "x.pack"
    bad.write_bytes(b"not lzma")
    assert cli.main(["train", "--model", "edge", "--data", str(bad), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "not a readable data pack" in capsys.readouterr().err
    from edgefer.train import resident
    assert resident.main(["fit", str(bad), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "deprecated" in err and "not a readable data pack" in err


def test_distillation_is_zero_when_the_student_matches_the_targets():
    logits = torch.randn(4, 7)
    assert distill.distillation(logits, (logits / 2).softmax(1), 2.0).item() == pytest.approx(0, abs=1e-6)
    assert distill.distillation(logits, torch.full((4, 7), 1 / 7), 2.0).item() > 0.01


def test_soft_targets_average_the_teachers_on_their_own_normalisation():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(2, 1, 1, 4, 4)             # clips (B, T, 1, S, S)
    raw = x * 0.3 + 0.5                       # the batch as the student saw it: (raw - 0.5) / 0.3
    t = distill.soft_targets([(net, 0.5, 0.3), (net, 0.0, 1.0)], raw, 1.0)
    want = (net(x).softmax(1) + net(raw).softmax(1)) / 2
    assert torch.allclose(t, want, atol=1e-6)


def test_prune_then_distil_from_the_parent(fer_pack, tmp_path):
    train(_cfg(fer_pack, tmp_path / "parent"))
    parent = tmp_path / "parent" / "best.pt"
    s = train(_cfg(fer_pack, tmp_path / "pruned", init=parent, prune=0.5, teachers=[parent], kd_alpha=0.5))
    small, meta = checkpoint.load(tmp_path / "pruned" / "best.pt")
    big, _ = checkpoint.load(parent)
    assert getattr(small, "pruned", False) and meta.provenance["prune_ratio"] == 0.5
    assert meta.provenance["teachers"] == [str(parent)]
    assert s["params"] == sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in big.parameters())
    # a pruned checkpoint warm-starts again with its own shapes
    again = train(_cfg(fer_pack, tmp_path / "again", init=tmp_path / "pruned" / "best.pt", epochs=1))
    assert again["params"] == s["params"]


def test_init_of_another_configuration_is_a_one_line_error(fer_pack, tmp_path, capsys):
    train(_cfg(fer_pack, tmp_path / "parent", epochs=1))
    rc = cli.main(["train", "--model", "edge", "--data", str(fer_pack), "--out", str(tmp_path / "o"), "--device", "cpu",
                   "--recipe", "resident", "--init", str(tmp_path / "parent" / "best.pt")])  # default widths, not SMALL_EDGE
    err = capsys.readouterr().err
    assert rc == 2 and "differ in shape" in err and "Traceback" not in err


def test_cli_wires_the_resident_options(fer_pack, tmp_path, capsys):
    train(_cfg(fer_pack, tmp_path / "parent", epochs=1))
    parent = str(tmp_path / "parent" / "best.pt")
    rc = cli.main(["train", "--model", "edge", "--data", str(fer_pack), "--recipe", "resident", "--out", str(tmp_path / "cli"),
                   "--device", "cpu", "--epochs", "1", "--batch-size", "8", *SMALL_FLAGS, "--optimizer", "adamw",
                   "--init", parent, "--prune", "0.5", "--teacher", parent, "--teacher", parent,
                   "--kd-alpha", "0.4", "--kd-temperature", "3", "--ema", "0.9", "--weight-fake-quant", "mixed"])
    assert rc == 0, capsys.readouterr().err
    cfg = json.loads((tmp_path / "cli" / "metrics.json").read_text())["config"]
    assert cfg["prune"] == 0.5 and cfg["teachers"] == [parent, parent] and cfg["optimizer"] == "adamw"
    assert cfg["kd_alpha"] == 0.4 and cfg["kd_temperature"] == 3.0 and cfg["ema"] == 0.9
    assert cfg["batches"] == "device" and cfg["schedule"] == "cosine-budget" and cfg["minutes"] == 7.0  # the recipe's
    assert cfg["weight_fake_quant"] == "mixed" and cfg["lr"] == 0.1


def test_resume_of_a_wall_clock_run_continues_it_exactly(fer_pack, tmp_path, monkeypatch):
    """Interrupted after epoch 1 and resumed from last.pt, a cosine-budget run on device batches
    (generator, EMA, optimizer, schedule progress restored) ends with the weights of an
    uninterrupted run. The clock is frozen so the schedule depends on epochs alone."""
    monkeypatch.setattr(schedules.time, "time", lambda: 1000.0)

    def stop_after_first(epoch, acc):
        if epoch == 1:
            raise KeyboardInterrupt

    whole = train(_cfg(fer_pack, tmp_path / "whole", epochs=3, ema=0.9))
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(fer_pack, tmp_path / "cut", epochs=3, ema=0.9), on_epoch=stop_after_first)
    resumed = train(_cfg(fer_pack, tmp_path / "cut", epochs=3, ema=0.9, resume=tmp_path / "cut" / "last.pt"))
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert [h["val_acc_ema"] for h in resumed["history"]] == [h["val_acc_ema"] for h in whole["history"]]
    a, b = (checkpoint.load_payload(tmp_path / d / "last.pt")["state_dict"] for d in ("whole", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    from edgefer.runtime.errors import EdgeferError
    with pytest.raises(EdgeferError, match="pass --minutes 10"):
        train(_cfg(fer_pack, tmp_path / "cut", epochs=3, ema=0.9, minutes=5, resume=tmp_path / "cut" / "last.pt"))


def test_int8_aware_run_saves_baked_weights_and_keeps_training_through_the_rounding(fer_pack, tmp_path):
    s = train(_cfg(fer_pack, tmp_path / "q", epochs=2, weight_fake_quant="per-channel", lr=0.01))
    assert s["epochs_run"] == 2                                         # best.pt saved mid-run did not break training
    payload = checkpoint.load_payload(tmp_path / "q" / "best.pt")
    assert not any("parametrizations" in k for k in payload["state_dict"])
    model, _ = checkpoint.load(tmp_path / "q" / "best.pt")
    for c in (c for c in model.modules() if isinstance(c, (torch.nn.Conv2d, torch.nn.Linear))):
        w = c.weight.detach().flatten(1)
        steps = w / (w.abs().amax(1, keepdim=True) / 127)
        assert torch.allclose(steps, steps.round(), atol=1e-3)


def test_weight_fake_quant_trains_through_rounding_and_bakes_int8_grid_weights():
    from edgefer.train import models
    m = models.create("edge", 7, **SMALL_EDGE)
    fake_quant.add_weight_fake_quant(m)
    conv = next(c for c in m.modules() if isinstance(c, torch.nn.Conv2d))
    conv.parametrizations.weight.original.data.normal_()
    m(torch.randn(2, 1, 1, 48, 48)).sum().backward()
    assert conv.parametrizations.weight.original.grad.abs().sum() > 0      # straight-through gradient
    baked = fake_quant.baked_copy(m)
    m(torch.randn(2, 1, 1, 48, 48))                                        # the original still rounds
    assert torch.equal(baked.state_dict()["encoder.body.0.weight"], conv.weight.detach())
    fake_quant.remove_weight_fake_quant(m)
    assert "encoder.body.0.weight" in m.state_dict()
    for c in (c for c in m.modules() if isinstance(c, (torch.nn.Conv2d, torch.nn.Linear))):
        w = c.weight.detach().flatten(1)
        steps = w / (w.abs().amax(1, keepdim=True) / 127)
        assert torch.allclose(steps, steps.round(), atol=1e-3)            # every weight is an int8 step


def test_mixed_fake_quant_rounds_pointwise_convs_per_tensor_after_batchnorm_folding():
    from edgefer.train import models
    m = models.create("edge", 7, **SMALL_EDGE)
    for bn in (b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)):
        bn.weight.data.uniform_(0.5, 2.0)
        bn.running_var.uniform_(0.5, 2.0)
    fake_quant.add_weight_fake_quant(m, "mixed")
    fake_quant.remove_weight_fake_quant(m)
    mods = list(m.modules())
    checked = 0
    for conv, bn in zip(mods, mods[1:]):
        if isinstance(conv, torch.nn.Conv2d) and conv.groups == 1 and isinstance(bn, torch.nn.BatchNorm2d):
            folded = conv.weight.detach() * (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().view(-1, 1, 1, 1)
            steps = folded / (folded.abs().amax() / 127)
            assert torch.allclose(steps, steps.round(), atol=1e-3)      # one scale for the whole folded kernel
            checked += 1
    assert checked >= 2
