"""Compression: ONNX / TFLite artifacts agree with PyTorch, bad input fails cleanly, TensorRT checks."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from conftest import SMALL_EDGE, run_cli
from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.labels import LABELS
from edgefer.runtime.metadata import read_sidecar
from edgefer.train import checkpoint


def test_compress_writes_every_artifact_with_sidecars(small_artifacts):
    out, report, _ = small_artifacts
    for precision in ("fp32", "fp16", "int8"):
        for suffix in (".onnx", ".tflite"):
            window, stream = out / f"small.{precision}{suffix}", out / f"small.{precision}.stream{suffix}"
            assert window.is_file() and stream.is_file()
            meta = read_sidecar(window)
            assert meta.precision == precision and meta.graph == "window" and meta.companions == {"stream": stream.name}
            assert meta.provenance["source_checkpoint_sha256"] and meta.labels == list(LABELS[:7])
            assert read_sidecar(stream).state == [{"name": "h0", "shape": [1, 16], "fill": 0.0}]
    assert (out / "small.calib.cache").read_text().startswith("TRT-")
    assert not list(out.glob(".partial-*")), "the work folder must be gone"
    assert (out / "report.md").read_text().count("| `small.") >= 7


def test_fp32_artifacts_match_pytorch_and_int8_stays_close(small_artifacts):
    _, report, _ = small_artifacts
    rows = {(r["format"], r["precision"]): r for r in report["rows"]}
    for fmt in ("onnx", "tflite"):
        assert rows[(fmt, "fp32")]["max_abs_diff"] < 1e-4
        assert rows[(fmt, "fp32")]["stream_max_abs_diff"] < 1e-4
        assert rows[(fmt, "fp32")]["agreement"] == 1.0
        assert rows[(fmt, "int8")]["agreement"] >= 0.5      # a random small model: only sanity here
        assert rows[(fmt, "int8")]["latency_p50_ms"] > 0
    assert rows[("tflite", "int8")]["size_bytes"] < rows[("tflite", "fp32")]["size_bytes"]


def test_tflite_int8_has_integer_io(small_artifacts):
    from ai_edge_litert.interpreter import Interpreter
    out, _, _ = small_artifacts
    runner = Interpreter(model_path=str(out / "small.int8.tflite")).get_signature_runner()
    (detail,) = runner.get_input_details().values()
    assert detail["dtype"] == np.int8 and detail["quantization"][0] > 0


def test_tflite_names_are_stripped_and_signature_less_files_still_run(small_artifacts, tmp_path):
    """Shipped .tflite files carry no tensor names (signatures bind the inputs); a file with no
    signatures either, as older converters wrote, runs through the plain-tensor path identically."""
    from ai_edge_litert.tools import flatbuffer_utils as fb
    from edgefer.runtime.backends import litert
    out, _, _ = small_artifacts
    model = fb.read_model(out / "small.int8.tflite")
    assert model.signatureDefs and all(not t.name for sg in model.subgraphs for t in sg.tensors)
    model.signatureDefs = None
    fb.write_model(model, tmp_path / "nosig.tflite")
    x = np.random.default_rng(0).standard_normal((2, 1, 1, 48, 48)).astype(np.float32)
    with_sig = litert.open_graph(out / "small.int8.tflite", 1).run([x])[0]
    assert np.array_equal(litert.open_graph(tmp_path / "nosig.tflite", 1).run([x])[0], with_sig)


def test_evaluate_runs_artifacts_in_their_backend(small_artifacts, small_edge_checkpoint, tmp_path):
    out, _, data = small_artifacts
    results = {}
    for model in (small_edge_checkpoint, out / "small.fp32.onnx", out / "small.fp32.tflite", out / "small.int8.tflite"):
        res = run_cli("evaluate", model, "--data", f"fer2013:{data}", "--split", "PublicTest", "--json",
                      "--out", tmp_path / model.name)
        assert res.returncode == 0, res.stderr[-1500:]
        results[model.name] = json.loads(res.stdout)
    assert results["small.fp32.onnx"]["accuracy"] == results["small.pt"]["accuracy"]
    assert results["small.fp32.tflite"]["accuracy"] == results["small.pt"]["accuracy"]
    assert results["small.int8.tflite"]["format"] == "tflite" and results["small.int8.tflite"]["precision"] == "int8"


def test_streaming_artifact_equals_windowed_run(small_artifacts):
    """Each fp32 artifact's stream graph, stepped frame by frame with its state carried, ends
    where the ONNX window graph does on the whole clip: in ONNX Runtime and in LiteRT alike.
    The TFLite window graph has a fixed time axis, so it is checked against ONNX on a clip of
    exactly that length (its state handling through the stream graph above)."""
    from edgefer.runtime.model import load
    out, _, _ = small_artifacts
    clip = np.random.default_rng(1).normal(size=(1, 5, 1, 48, 48)).astype(np.float32)
    onnx, tflite = load(out / "small.fp32.onnx"), load(out / "small.fp32.tflite")
    assert onnx.window.input_shapes[0][1] is None                 # ONNX: any T
    windowed = onnx.logits(clip)
    for dm in (onnx, tflite):
        state = dm.init_state(1)
        for t in range(5):
            logits, state = dm.step(clip[:, t], state)
        np.testing.assert_allclose(logits, windowed, atol=1e-4, err_msg=dm.meta.format)
    t = tflite.window.input_shapes[0][1]
    assert isinstance(t, int) and 1 <= t <= 5
    np.testing.assert_allclose(tflite.logits(clip[:, :t]), onnx.logits(clip[:, :t]), atol=1e-4)


def test_foreign_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, bad)
    res = run_cli("compress", bad, "--no-eval", "--precision", "fp32", "--out", tmp_path / "o")
    assert res.returncode == 2 and "not an edgefer checkpoint" in res.stderr and "Traceback" not in res.stderr


def test_too_few_calibration_images_leaves_nothing(small_edge_checkpoint, fixture_dir, tmp_path):
    data = fixture_dir("fer2013-folders", per_class=8)
    out = tmp_path / "o"
    res = run_cli("compress", small_edge_checkpoint, "--precision", "int8", "--formats", "onnx", "--data", f"fer2013:{data}",
                  "--calibration", "8", "--out", out)
    assert res.returncode == 2 and "calibration images" in res.stderr
    assert not list(out.glob("*.onnx"))


def test_wrong_shape_calibration_array_is_refused(small_edge_checkpoint, tmp_path):
    arr = tmp_path / "faces.npy"
    np.save(arr, np.zeros((64, 32, 32), np.uint8))
    res = run_cli("compress", small_edge_checkpoint, "--precision", "int8", "--formats", "onnx", "--no-eval",
                  "--calibration-data", arr, "--out", tmp_path / "o")
    assert res.returncode == 2 and "(N, 48, 48)" in res.stderr


def test_unwritable_output_folder(small_edge_checkpoint, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run_cli("compress", small_edge_checkpoint, "--no-eval", "--precision", "fp32", "--out", blocker / "sub")
    assert res.returncode == 2 and "cannot be written" in res.stderr


def test_unknown_format_names_the_valid_ones(small_edge_checkpoint, tmp_path):
    res = run_cli("compress", small_edge_checkpoint, "--no-eval", "--formats", "onnx,coreml", "--out", tmp_path / "o")
    assert res.returncode == 2 and "coreml" in res.stderr and "tflite" in res.stderr


def test_pruning_method_errors_name_the_fix(small_edge_checkpoint, tmp_path):
    res = run_cli("compress", small_edge_checkpoint, "--no-eval", "--prune", "0.5", "--prune-method", "random", "--out", tmp_path / "o")
    assert res.returncode == 2 and "unknown pruning method 'random'" in res.stderr and "uniform, global" in res.stderr
    res = run_cli("compress", small_edge_checkpoint, "--no-eval", "--prune-method", "global", "--out", tmp_path / "o")
    assert res.returncode == 2 and "without --prune" in res.stderr and "--prune 0.5" in res.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


# ---- TensorRT: static op check here, real engines where TensorRT imports

def _graph(op: str, zero_point: int = 0, domain: str = ""):
    import onnx
    from onnx import TensorProto, helper
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
             helper.make_tensor("z", TensorProto.INT8, [], [zero_point])]
    if op == "QuantizeLinear":
        node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q")
        out_type = TensorProto.INT8
    else:
        node = helper.make_node(op, ["x"], ["y"], name="n", domain=domain)
        out_type = TensorProto.FLOAT
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", out_type, [1, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_tensorrt_op_check_passes_our_graphs_and_names_bad_ops(small_artifacts):
    from edgefer.compress.tensorrt_ops import check_file, check_model
    out, _, _ = small_artifacts
    for name in ("small.fp32.onnx", "small.fp32.stream.onnx"):
        assert check_file(out / name) == []
    assert check_model(_graph("Relu")) == []
    (problem,) = check_model(_graph("StringNormalizer"))
    assert "StringNormalizer" in problem and "TensorRT 10" in problem
    (problem,) = check_model(_graph("QuantizeLinear", zero_point=3))
    assert "zero point" in problem
    assert check_model(_graph("QuantizeLinear", zero_point=0)) == []
    assert "custom-domain" in check_model(_graph("Foo", domain="com.example"))[0]


def test_tensorrt_calibration_cache_format(tmp_path):
    from edgefer.compress.onnx_export import write_trt_cache
    from edgefer.runtime.backends.tensorrt_build import retarget_cache, trt_version_code
    path = write_trt_cache({"a": 12.7, "b": 0.5}, tmp_path / "c.cache")
    header, *lines = path.read_text().splitlines()
    assert header == "TRT-100300-EntropyCalibration2"
    name, hexval = lines[0].split(": ")
    assert name == "a" and struct.unpack(">f", bytes.fromhex(hexval))[0] == pytest.approx(0.1)
    assert retarget_cache(path.read_text(), "10.7.0").startswith(b"TRT-100700-")
    assert trt_version_code("8.6.1") == 80601


def test_tensorrt_engine_where_tensorrt_imports(small_artifacts, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT installs only with JetPack / NVIDIA's index, not on this machine")
    from edgefer.runtime.backends import open_graph
    from edgefer.runtime.backends.tensorrt_build import build_engine
    out, _, _ = small_artifacts
    engine = build_engine(out / "small.fp32.onnx", "fp16", cache_dir=tmp_path)
    x = np.random.default_rng(0).normal(size=(2, 1, 1, 48, 48)).astype(np.float32)
    ref = open_graph(out / "small.fp32.onnx").run([x])[0]
    np.testing.assert_allclose(open_graph(engine).run([x])[0], ref, atol=5e-2)


def test_tensorrt_is_reported_missing_with_the_reason():
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    from edgefer.runtime.backends.tensorrt import import_tensorrt
    with pytest.raises(EdgeferError, match="JetPack"):
        import_tensorrt()


# ---- INT8 settings and pruning

def test_reduce_range_only_on_x86_without_vnni():
    from edgefer.compress.onnx_export import needs_reduce_range
    assert needs_reduce_range({"avx2", "fma"}, "x86_64")
    assert not needs_reduce_range({"avx2", "avx512_vnni"}, "x86_64")
    assert not needs_reduce_range({"avx2", "avx_vnni"}, "x86_64")
    assert not needs_reduce_range(set(), "aarch64")


def test_pruning_shrinks_the_encoder_and_round_trips(small_edge_checkpoint, tmp_path):
    from edgefer.compress.prune import prune_encoder
    from edgefer.train.models.profile import mflops_per_frame, params
    model, meta = checkpoint.load(small_edge_checkpoint)
    before = (params(model), mflops_per_frame(model, 48))
    prune_encoder(model, 0.5, 48)
    after = (params(model), mflops_per_frame(model, 48))
    assert after[0] < before[0] and after[1] < 0.9 * before[1]
    x = torch.randn(2, 3, 1, 48, 48)
    path = checkpoint.save(tmp_path / "pruned.pt", model, "edge", SMALL_EDGE, meta)
    again, _ = checkpoint.load(path)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    with pytest.raises(EdgeferError, match="fraction"):
        prune_encoder(model, 1.5, 48)


def test_global_pruning_ranks_channels_across_groups(small_edge_checkpoint, tmp_path):
    """Uniform pruning halves every group alike; the global (LAMP) ranking takes different
    fractions from different groups, keeps the encoder's output width, and round-trips."""
    from edgefer.compress.prune import prune_encoder
    from edgefer.train.models.profile import params

    def widths(m):
        return [c.out_channels for c in m.encoder.modules() if isinstance(c, torch.nn.Conv2d) and c.groups == 1]

    original, meta = checkpoint.load(small_edge_checkpoint)
    kept = []
    for method in ("uniform", "global"):
        model, _ = checkpoint.load(small_edge_checkpoint)
        prune_encoder(model, 0.5, 48, round_to=1, method=method)
        assert params(model) < params(original) and widths(model)[-1] == widths(original)[-1]
        kept.append(sorted({round(a / b, 2) for a, b in zip(widths(model), widths(original)) if b != widths(original)[-1]}))
    assert kept[0] == [0.5]                       # every group alike
    assert len(kept[1]) > 1                       # groups pruned by different fractions
    path = checkpoint.save(tmp_path / "global.pt", model, "edge", SMALL_EDGE, meta)
    x = torch.randn(2, 3, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(checkpoint.load(path)[0](x), model(x))
    with pytest.raises(EdgeferError, match="unknown pruning method 'random'.*uniform, global"):
        prune_encoder(model, 0.5, 48, method="random")
    # channels go in multiples of 8: in groups of 8-16 channels the global ranking finds none to take
    with pytest.raises(EdgeferError, match="removed no channels"):
        prune_encoder(checkpoint.load(small_edge_checkpoint)[0], 0.5, 48, method="global")


def test_prune_then_fine_tune_then_export(small_edge_checkpoint, fixture_dir, tmp_path):
    data = fixture_dir("fer2013-folders", per_class=8)
    res = run_cli("compress", small_edge_checkpoint, "--prune", "0.5", "--finetune-epochs", "1",
                  "--precision", "fp32", "--formats", "onnx", "--data", f"fer2013:{data}", "--out", tmp_path / "o")
    assert res.returncode == 0, res.stderr[-1500:]
    rows = json.loads((tmp_path / "o" / "report.json").read_text())["rows"]
    original, pruned = rows[0], rows[1]
    assert pruned["format"] == "pytorch" and pruned["params"] < original["params"] and pruned["mflops"] < original["mflops"]
    onnx_row = [r for r in rows if r["format"] == "onnx"][0]
    assert onnx_row["params"] == pruned["params"] and onnx_row["max_abs_diff"] < 1e-4
    prov = read_sidecar(tmp_path / "o" / "small.pruned50.fp32.onnx").provenance
    assert prov["prune_ratio"] == 0.5 and prov["prune_method"] == "uniform"
    assert "of every group" in pruned["method"]["pruning"]


def test_a_checkpoint_pruned_elsewhere_exports_with_its_prune_record(small_edge_checkpoint, fixture_dir, tmp_path):
    """resident --prune writes pruned checkpoints; compress takes them as they are (no second pruning)."""
    from edgefer.compress.prune import prune_encoder
    model, meta = checkpoint.load(small_edge_checkpoint)
    prune_encoder(model, 0.5, 48)
    meta.provenance = {**meta.provenance, "prune_ratio": 0.5}
    src = checkpoint.save(tmp_path / "p50.pt", model, "edge", SMALL_EDGE, meta)
    data = fixture_dir("fer2013-folders", per_class=8)
    res = run_cli("compress", src, "--precision", "fp32", "--formats", "onnx", "--data", f"fer2013:{data}", "--out", tmp_path / "o")
    assert res.returncode == 0, res.stderr[-1500:]
    rows = json.loads((tmp_path / "o" / "report.json").read_text())["rows"]
    assert [r["params"] for r in rows] == [sum(p.numel() for p in model.parameters())] * 2
    prov = read_sidecar(tmp_path / "o" / "p50.fp32.onnx").provenance
    assert prov["pruned"] is True and prov["prune_ratio"] == 0.5
