"""Accelerator-resident training (train/resident.py), run on CPU with a tiny model."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import SMALL_EDGE

from edgefer.train import checkpoint, resident
from edgefer.train.commands import prepare


def _batch(seed: int = 0) -> torch.Tensor:
    return torch.rand(16, 1, 48, 48, generator=torch.Generator().manual_seed(seed))


def test_augment_with_no_change_is_the_identity():
    x = _batch()
    none = resident.Augment(rotate=0, scale=(1, 1), shift=0, flip=False, contrast=0, brightness=0, erase_p=0)
    out = resident.augment(x, none, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-5)


def test_augment_flip_mirrors_about_half_the_batch():
    x = _batch()
    flip = resident.Augment(rotate=0, scale=(1, 1), shift=0, flip=True, contrast=0, brightness=0, erase_p=0)
    out = resident.augment(x, flip, torch.Generator().manual_seed(1))
    same = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x)]
    mirrored = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 0 < sum(mirrored) < len(x)


def test_augment_is_seeded_and_changes_images():
    x = _batch()
    a, b = (resident.augment(x, resident.Augment(), torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(a, b)
    assert a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    assert (a - x).abs().mean() > 0.02


def test_pack_then_fit_writes_a_loadable_checkpoint(fixture_dir, tmp_path):
    data = fixture_dir("fer2013-folders", per_class=8)
    spec = f"fer2013:{data}"
    pack = resident.read_pack(resident.write_pack(spec, tmp_path / "fer.pack"))
    _, decoded, plan, man = prepare(spec)
    assert pack.manifest_sha256 == man["manifest_sha256"]
    assert (pack.pixels == decoded.pixels).all() and list(pack.val_idx) == plan.indices("val")

    cfg = resident.ResidentConfig(tmp_path / "fer.pack", tmp_path / "run", model_kwargs=SMALL_EDGE, minutes=10,
                                  max_epochs=3, batch_size=8, lr=0.05, device="cpu", log_every=1)
    summary = resident.fit(cfg, log=lambda m: None)
    assert summary["epochs_run"] == 3 and len(summary["history"]) == 3
    model, meta = checkpoint.load(tmp_path / "run" / "best.pt")
    assert meta.provenance["manifest_sha256"] == man["manifest_sha256"] and meta.provenance["recipe"] == "resident"
    assert meta.metrics["val_accuracy"] == pytest.approx(summary["best_val_accuracy"])
    assert max(max(h["val_acc_raw"], h["val_acc_ema"]) for h in summary["history"]) == pytest.approx(
        summary["best_val_accuracy"], abs=1e-6)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["params"] == sum(p.numel() for p in model.parameters())


def test_unreadable_pack_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "x.pack"
    bad.write_bytes(b"not lzma")
    assert resident.main(["fit", str(bad), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "not a readable data pack" in capsys.readouterr().err


def _pack(fixture_dir, tmp_path):
    data = fixture_dir("fer2013-folders", per_class=8)
    return resident.write_pack(f"fer2013:{data}", tmp_path / "fer.pack")


def _cfg(pack, out, **over):
    base = dict(model_kwargs=SMALL_EDGE, minutes=10, max_epochs=2, batch_size=8, lr=0.05, device="cpu", log_every=1)
    return resident.ResidentConfig(pack, out, **{**base, **over})


def test_distillation_is_zero_when_the_student_matches_the_targets():
    logits = torch.randn(4, 7)
    assert resident._distillation(logits, (logits / 2).softmax(1), 2.0).item() == pytest.approx(0, abs=1e-6)
    assert resident._distillation(logits, torch.full((4, 7), 1 / 7), 2.0).item() > 0.01


def test_soft_targets_average_the_teachers_on_their_own_normalisation():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(2, 1, 4, 4)
    raw = x * 0.3 + 0.5                       # the batch as the student saw it: (raw - 0.5) / 0.3
    t = resident._soft_targets([(net, 0.5, 0.3), (net, 0.0, 1.0)], raw, 1.0)
    want = (net(x[:, None]).softmax(1) + net(raw[:, None]).softmax(1)) / 2
    assert torch.allclose(t, want, atol=1e-6)


def test_prune_then_distil_from_the_parent(fixture_dir, tmp_path):
    pack = _pack(fixture_dir, tmp_path)
    resident.fit(_cfg(pack, tmp_path / "parent"), log=lambda m: None)
    parent = tmp_path / "parent" / "best.pt"
    s = resident.fit(_cfg(pack, tmp_path / "pruned", init=parent, prune=0.5, teachers=[parent], kd_alpha=0.5),
                     log=lambda m: None)
    small, meta = checkpoint.load(tmp_path / "pruned" / "best.pt")
    big, _ = checkpoint.load(parent)
    assert getattr(small, "pruned", False) and meta.provenance["prune_ratio"] == 0.5
    assert meta.provenance["teachers"] == [str(parent)]
    assert s["params"] == sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in big.parameters())
    # a pruned checkpoint warm-starts again with its own shapes
    again = resident.fit(_cfg(pack, tmp_path / "again", init=tmp_path / "pruned" / "best.pt", max_epochs=1),
                         log=lambda m: None)
    assert again["params"] == s["params"]


def test_init_of_another_architecture_is_a_one_line_error(fixture_dir, tmp_path, capsys):
    pack = _pack(fixture_dir, tmp_path)
    resident.fit(_cfg(pack, tmp_path / "parent", max_epochs=1), log=lambda m: None)
    rc = resident.main(["fit", str(pack), "--out", str(tmp_path / "o"), "--device", "cpu",
                        "--init", str(tmp_path / "parent" / "best.pt")])     # default edge widths, not SMALL_EDGE
    assert rc == 2 and "checkpoint, not 'edge'" in capsys.readouterr().err


def test_cli_wires_prune_and_teachers(fixture_dir, tmp_path, capsys):
    pack = _pack(fixture_dir, tmp_path)
    resident.fit(_cfg(pack, tmp_path / "parent", max_epochs=1), log=lambda m: None)
    parent = str(tmp_path / "parent" / "best.pt")
    rc = resident.main(["fit", str(pack), "--out", str(tmp_path / "cli"), "--device", "cpu", "--max-epochs", "1",
                        "--batch-size", "8", "--set", f"widths={json.dumps(SMALL_EDGE['widths'])}",
                        "--set", f"depths={json.dumps(SMALL_EDGE['depths'])}", "--set", "stem=8", "--set", "units=16",
                        "--init", parent, "--prune", "0.5", "--teacher", parent, "--teacher", parent,
                        "--kd-alpha", "0.4", "--kd-temperature", "3"])
    assert rc == 0, capsys.readouterr().err
    cfg = json.loads((tmp_path / "cli" / "metrics.json").read_text())["config"]
    assert cfg["prune"] == 0.5 and cfg["teachers"] == [parent, parent]
    assert cfg["kd_alpha"] == 0.4 and cfg["kd_temperature"] == 3.0


def test_weight_fake_quant_trains_through_rounding_and_bakes_int8_grid_weights():
    from edgefer.train import models
    m = models.create("edge", 7, **SMALL_EDGE)
    resident.add_weight_fake_quant(m)
    conv = next(c for c in m.modules() if isinstance(c, torch.nn.Conv2d))
    conv.parametrizations.weight.original.data.normal_()
    m(torch.randn(2, 1, 1, 48, 48)).sum().backward()
    assert conv.parametrizations.weight.original.grad.abs().sum() > 0      # straight-through gradient
    resident.remove_weight_fake_quant(m)
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
    resident.add_weight_fake_quant(m, "mixed")
    resident.remove_weight_fake_quant(m)
    mods = list(m.modules())
    checked = 0
    for conv, bn in zip(mods, mods[1:]):
        if isinstance(conv, torch.nn.Conv2d) and conv.groups == 1 and isinstance(bn, torch.nn.BatchNorm2d):
            folded = conv.weight.detach() * (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().view(-1, 1, 1, 1)
            steps = folded / (folded.abs().amax() / 127)
            assert torch.allclose(steps, steps.round(), atol=1e-3)      # one scale for the whole folded kernel
            checked += 1
    assert checked >= 2
