"""Every registered model: clip shapes, any T, streaming == windowed, and the papers' counts."""
from __future__ import annotations

import pytest
import torch

from edgefer.runtime.errors import EdgeferError
from edgefer.train import models
from edgefer.train.models.blocks import keras_param_count
from edgefer.train.models.profile import mflops_per_frame, params

HEAVY = {"vgg16-gru", "xception-gru", "densenet121-gru"}


def _small_size(name: str) -> int:
    return 48 if models.entry(name).input_size == 48 else 64


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
@pytest.mark.parametrize("t", [1, 3])
def test_clips_of_any_length_give_class_logits(name, t):
    torch.manual_seed(0)
    model = models.create(name, 7).eval()
    s = _small_size(name)
    out = model(torch.randn(2, t, 1, s, s))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(n for n, e in models.REGISTRY.items() if e.streaming))
def test_streaming_matches_the_windowed_run(name):
    torch.manual_seed(0)
    model = models.create(name, 5).eval()
    s = _small_size(name)
    clip = torch.randn(2, 4, 1, s, s)
    with torch.no_grad():
        windowed = model(clip)
        state = model.init_state(2, (1, s, s))
        for t in range(4):
            logits, state = model.step(clip[:, t], state)
    assert torch.allclose(logits, windowed, atol=1e-4), (logits - windowed).abs().max()
    assert model.streaming


def test_bidirectional_model_refuses_to_stream():
    model = models.create("resrnn-bilstm", 7).eval()
    assert not model.streaming and not models.entry("resrnn-bilstm").streaming
    state = model.init_state(1, (1, 64, 64))
    with pytest.raises(EdgeferError, match="sliding windows"):
        model.step(torch.zeros(1, 1, 64, 64), state)


@pytest.mark.parametrize("name,total,trainable", [("cnn1", 117_031, 116_871), ("cnnlstm2", 303_495, 302_663),
                                                  ("cnnlstm3", 457_863, 457_031)])
def test_paper_002_parameter_counts_match_its_tables(name, total, trainable):
    model = models.create(name, 7)
    assert keras_param_count(model) == total
    assert params(model) == trainable


def test_edge_model_fits_the_budget():
    model = models.create("edge", 7)
    assert params(model) <= 2_000_000
    assert mflops_per_frame(model, 48) <= 60.0


def test_resrnn_presets_follow_table_2():
    e = models.entry("resrnn-gru")
    assert e.presets["case-I"]["dtn_filters"] == 64 and e.presets["case-I"]["dtn_kernel"] == 4
    assert e.presets["case-II"]["dsn_filters"] == 128 and e.presets["case-II"]["units"] == 228
    big = models.create("resrnn-gru", 7, **models.constructor_kwargs("resrnn-gru", e.presets["case-II"]))
    assert big.temporal.rnns[0].hidden_size == 228


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(EdgeferError) as info:
        models.create("resnet9000", 7)
    assert "edge" in str(info.value) and "cnnlstm2" in str(info.value)
