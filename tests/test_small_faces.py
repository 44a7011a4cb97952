"""Small (distant) faces: a face under the model's input size is enlarged smoothly by the pixel
contract, the same on the training side and in the daemon's crop, and `edgefer evaluate
--face-size N` scores faces shrunk to N px and brought back through that very path."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli
from edgefer.runtime.metadata import ModelMetadata, Preprocessing
from edgefer.runtime.preprocess import face_pixels, image_pixels

WHOLE = Preprocessing(margin=0.0, offset_y=0.0, align=False)


def _face(side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.uniform(0, 255, (6, 6)).astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 12, (side, side))
    cv2.ellipse(img, (side // 2, side // 2 + 1), (side // 3, side * 3 // 8), 0, 0, 360, 200, 1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _blocky(img: np.ndarray) -> float:
    """Share of the 2x2 blocks (at even offsets) whose four pixels are equal."""
    b = img.reshape(img.shape[0] // 2, 2, img.shape[1] // 2, 2).astype(int)
    return float((b.max((1, 3)) == b.min((1, 3))).mean())


def test_a_24px_face_is_enlarged_bicubically_not_in_blocks():
    small = _face(24)
    out = face_pixels(small, np.array([0, 0, 24, 24]), 48, WHOLE)
    np.testing.assert_array_equal(out, cv2.resize(small, (48, 48), interpolation=cv2.INTER_CUBIC))
    blocks = cv2.resize(small, (48, 48), interpolation=cv2.INTER_AREA)     # what INTER_AREA enlarging gives
    assert _blocky(blocks) == 1.0 and _blocky(out) < 0.05
    # every 2x upsampled pixel is new information between the source pixels, not a copy of one
    assert (out[1::2, 1::2] != out[::2, ::2]).mean() > 0.9


def test_shrinking_is_still_true_area_averaging():
    big = _face(96, seed=1)
    out = face_pixels(big, np.array([0, 0, 96, 96]), 48, WHOLE)
    np.testing.assert_array_equal(out, cv2.resize(big, (48, 48), interpolation=cv2.INTER_AREA))


def test_a_small_face_in_a_frame_reaches_the_model_as_training_prepares_it():
    """The daemon's crop of a face whose framed square is 24 px in a camera frame equals
    `image_pixels` of that 24-px face (the training / `evaluate --face-size` side): both enlarge
    it the same way."""
    from edgefer.runtime.crop import crop_face
    from edgefer.runtime.preprocess import normalize
    meta = ModelMetadata("tiny", ["angry"], 48, 0.5, 0.25)
    pre = meta.preprocessing
    small = _face(24, seed=2)
    frame = np.full((240, 320, 3), 90, np.uint8)
    x, y = 101, 67
    frame[y:y + 24, x:x + 24] = small[..., None]
    base = 24 / (1 + 2 * pre.margin)
    cx, cy = x + 12, y + 12 - pre.offset_y * base
    box = np.array([cx - base / 2, cy - base / 2, cx + base / 2, cy + base / 2])
    level_eyes = np.array([[x + 5, y + 10], [x + 15, y + 10]] + [[x, y]] * 4, np.float32)
    device = crop_face(frame, box, meta, keypoints=level_eyes)[0]
    training = normalize(image_pixels(small, 48, pre), meta.mean, meta.std)
    np.testing.assert_array_equal(device, training)


class _Spy:
    """A model that records the pixels it is given; its logits are a fixed projection of them."""

    def __init__(self, path: Path, labels: list[str]):
        self.path, self.record, self.seen = path, {}, []
        self.meta = ModelMetadata("spy", labels, 48, 0.5, 0.25)
        self.w = np.random.default_rng(0).normal(size=(48 * 48, len(labels)))

    def __call__(self, pixels: np.ndarray, idx: np.ndarray) -> np.ndarray:
        x = pixels[idx]
        self.seen.append(x.copy())
        return (x.reshape(len(x), -1).astype(np.float64) / 255 - 0.5) @ self.w


@pytest.mark.parametrize("side", [24, 32])
def test_face_size_feeds_the_model_shrunk_faces_brought_back_by_the_contract(side, fixture_dir, tmp_path, monkeypatch):
    """With face_size=N every face the model sees is the stored face area-averaged to N px and
    enlarged bicubically (computed here with cv2 directly); without it, the stored face. The
    record names the face size."""
    from edgefer.runtime.labels import LABELS
    from edgefer.train import datasets, evaluate, splits
    from edgefer.train.evaluate import EvalConfig, run_evaluation
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spy.bin").write_bytes(b"spy")
    spy = _Spy(tmp_path / "spy.bin", list(LABELS[:7]))
    monkeypatch.setattr(evaluate, "open_model", lambda model, batch_size: (spy, "spy"))
    spec = f"fer2013:{fixture_dir('fer2013-folders')}"
    full = run_evaluation(EvalConfig("spy", spec, "PublicTest", out=tmp_path / "full", progress=False))
    far = run_evaluation(EvalConfig("spy", spec, "PublicTest", out=tmp_path / "far", progress=False, face_size=side))

    ds = datasets.load(spec)
    faces = [cv2.imread(str(ds.root / ds.items[i].key), cv2.IMREAD_GRAYSCALE)
             for i in splits.plan_splits(ds).indices("PublicTest")]
    assert len(faces) == full["n"] == far["n"] == len(spy.seen[1]) > 0
    stored = np.stack(faces)
    expect = np.stack([cv2.resize(cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA), (48, 48),
                                  interpolation=cv2.INTER_CUBIC) for f in faces])
    key = lambda arr: sorted(face.tobytes() for face in arr)  # noqa: E731  order-free comparison
    assert key(spy.seen[0]) == key(stored)
    assert key(spy.seen[1]) == key(expect) != key(stored)
    assert full["face_size"] is None and far["face_size"] == side
    assert far["confusion_matrix"] != full["confusion_matrix"] or far["roc_auc_ovr_macro"] != full["roc_auc_ovr_macro"]
    assert f"faces at {side} px" in (tmp_path / "far" / "summary.md").read_text()


def test_face_size_on_the_command_line(fixture_dir, small_edge_checkpoint, tmp_path):
    data = f"fer2013:{fixture_dir('fer2013-folders')}"
    res = run_cli("evaluate", small_edge_checkpoint, "--data", data, "--split", "PublicTest", "--face-size", "24",
                  "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["face_size"] == 24 and r["out"].endswith("-face24")
    assert json.loads((tmp_path / r["out"] / "metrics.json").read_text())["face_size"] == 24
    for bad, why in ((["--face-size", "2"], "not a face size"),
                     (["--face-size", "24", "--detect"], "photos set the face size")):
        res = run_cli("evaluate", small_edge_checkpoint, "--data", data, "--split", "PublicTest", *bad, cwd=tmp_path)
        assert res.returncode == 2 and why in res.stderr and "Traceback" not in res.stderr
