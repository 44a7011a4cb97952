"""The pixel contract: a face reaches the model as the same array through training's input path
and through the daemon's detector-box crop, for every shipped artifact's metadata; the
framing comes from the metadata; `evaluate --detect` runs the daemon's path and counts what
it cannot score."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT, run_cli
from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata, Preprocessing, read_sidecar
from edgefer.runtime.preprocess import face_pixels, image_pixels, normalize

SHIPPED = sorted([*(ROOT / "train" / "default").glob("*.json"), *(ROOT / "runtime" / "default").glob("*.json")])  # checkpoint; exports


def _shipped_metas() -> list[tuple[str, ModelMetadata]]:
    out = []
    for sidecar in SHIPPED:
        if sidecar.name.endswith(".pt.json"):
            out.append((sidecar.name, ModelMetadata.from_dict(json.loads(sidecar.read_text()), sidecar)))
        else:
            out.append((sidecar.name, read_sidecar(sidecar.with_name(sidecar.name[:-5]))))
    return out


def _face(seed: int = 0) -> np.ndarray:
    """A 48x48 face-like gray image with structure at every scale (what FER2013 files hold)."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.uniform(0, 255, (6, 6)).astype(np.float32), (48, 48), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 12, (48, 48))
    cv2.ellipse(img, (24, 26), (14, 18), 0, 0, 360, 200, 2)
    return np.clip(img, 0, 255).astype(np.uint8)


def _box_for(x: float, y: float, side: float, pre: Preprocessing) -> np.ndarray:
    """The detector box whose framing under `pre` is exactly the square (x, y, side)."""
    base = side / (1 + 2 * pre.margin)
    cx, cy = x + side / 2, y + side / 2 - pre.offset_y * base
    return np.array([cx - base / 2, cy - base / 2, cx + base / 2, cy + base / 2], np.float64)


def test_every_artifact_ships_the_contract():
    assert len(SHIPPED) >= 5, "the shipped default and its exports carry sidecars"
    for name, meta in _shipped_metas():
        assert meta.schema == 2 and isinstance(meta.preprocessing, Preprocessing), name


@pytest.mark.parametrize("name,meta", _shipped_metas(), ids=[n for n, _ in _shipped_metas()])
@pytest.mark.parametrize("scale", [1, 3])
def test_training_input_equals_the_daemons_crop(name, meta, scale, tmp_path):
    """Training reads the face file (the dataset loader's decode) and prepares it with
    `image_pixels`; the daemon sees the same face, `scale` times larger, in a colour camera
    frame and crops it from a detector box through `crop_face`. The arrays must be equal."""
    from edgefer.runtime.crop import crop_face
    from edgefer.train.datasets.base import read_gray_file

    face = _face()
    path = tmp_path / "Training_fer0000001.png"
    cv2.imwrite(str(path), face)
    training = normalize(image_pixels(read_gray_file(path), meta.input_size, meta.preprocessing), meta.mean, meta.std)

    big = cv2.resize(face, (48 * scale, 48 * scale), interpolation=cv2.INTER_NEAREST)
    frame = np.full((360, 480, 3), 90, np.uint8)
    x, y = 131, 57
    frame[y:y + big.shape[0], x:x + big.shape[1]] = big[..., None]
    box = _box_for(x, y, big.shape[0], meta.preprocessing)
    level_eyes = np.array([[x + 10, y + 20], [x + 30, y + 20]] + [[x, y]] * 4, np.float32)
    device = crop_face(frame, box, meta, keypoints=level_eyes)[0]
    assert device.shape == training.shape == (meta.input_size, meta.input_size)
    np.testing.assert_array_equal(device, training)


def test_histogram_step_is_applied_on_both_paths():
    face = _face(1)
    pre = Preprocessing(margin=0.0, offset_y=0.0, histogram="equalize")
    frame = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
    via_box = face_pixels(frame, np.array([0, 0, 48, 48]), 48, pre)
    np.testing.assert_array_equal(via_box, cv2.equalizeHist(face))
    np.testing.assert_array_equal(image_pixels(face, 48, pre), cv2.equalizeHist(face))


def test_large_faces_are_shrunk_by_area_averaging_not_sampled():
    """A 4x face shrunk to 48 px must equal the block average (INTER_AREA), not a bilinear sample
    of every 4th pixel, which aliases fine texture (the old warp did that)."""
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, (192, 192), np.uint8)
    out = face_pixels(big, np.array([0, 0, 192, 192]), 48, Preprocessing(margin=0.0, offset_y=0.0, align=False))
    blocks = big.reshape(48, 4, 48, 4).astype(np.float64).mean((1, 3))
    assert np.abs(out.astype(np.float64) - blocks).max() <= 1


def test_framing_is_read_from_the_metadata_and_overridable():
    from edgefer.runtime.crop import framing
    meta = ModelMetadata("tiny", ["angry"], 48, 0.5, 0.25, preprocessing=Preprocessing(margin=0.2, offset_y=-0.05))
    assert framing(meta) == meta.preprocessing
    assert framing(meta, margin=0.3).margin == 0.3 and framing(meta, margin=0.3).offset_y == -0.05


def test_a_sidecar_without_the_contract_names_the_field_and_the_fix(tmp_path):
    meta = ModelMetadata("tiny", ["angry"], 48, 0.5, 0.25).to_dict()
    del meta["preprocessing"]
    with pytest.raises(EdgeferError, match=r"lacks preprocessing.*edgefer compress"):
        ModelMetadata.from_dict(meta, "x.onnx.json")
    partial = ModelMetadata("tiny", ["angry"], 48, 0.5, 0.25).to_dict()
    del partial["preprocessing"]["offset_y"]
    with pytest.raises(EdgeferError, match=r"lacks preprocessing\.offset_y.*re-export"):
        ModelMetadata.from_dict(partial, "x.onnx.json")
    with pytest.raises(EdgeferError, match="histogram 'sharpen'"):
        Preprocessing(histogram="sharpen")


def test_evaluate_detect_counts_photos_without_a_face_and_unreadable_files(tmp_path, small_edge_checkpoint):
    """Uncropped photos through the daemon's detector and crop: the demo photo's face is scored,
    a blank photo and a corrupt file are errors, counted and reported."""
    from edgefer.runtime.sources import demo_image
    root = tmp_path / "photos" / "test"
    (root / "happy").mkdir(parents=True)
    (root / "sad").mkdir()
    cv2.imwrite(str(root / "happy" / "astronaut.png"), demo_image())
    cv2.imwrite(str(root / "sad" / "wall.png"), np.full((240, 320, 3), 128, np.uint8))
    (root / "sad" / "broken.png").write_bytes(b"\x89PNG not really")
    res = run_cli("evaluate", small_edge_checkpoint, "--detect", "--data", f"folder:{tmp_path / 'photos'}",
                  "--split", "test", "--json", "--out", tmp_path / "eval", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    det = r["detect"]
    assert (det["photos"], det["found"], det["no_face"], det["unreadable"]) == (3, 1, 1, 1)
    assert r["n"] == 3 and r["labels"][-1] == "(no face)"
    cm = np.array(r["confusion_matrix"])
    happy, sad = r["labels"].index("happy"), r["labels"].index("sad")
    assert cm[sad, -1] == cm[:, -1].sum() == 2       # both failures (the sad photos) are predictions of "(no face)"
    assert cm[happy].sum() == 1 and cm[happy, -1] == 0   # the astronaut's face got one of the model's labels
    assert r["detected_only"]["n"] == 1 and r["detected_only"]["accuracy"] == cm[happy, happy]
    assert r["accuracy"] == pytest.approx(np.trace(cm) / 3) == r["detected_only"]["accuracy"] / 3   # failures count
    assert "without a face" in (tmp_path / "eval" / "summary.md").read_text()


def test_uncropped_photos_hold_each_face_where_boxes_csv_says(fixture_dir, tmp_path):
    import csv
    from edgefer.train.uncropped import PasteConfig, read_boxes, write_uncropped
    src = fixture_dir("fer2013-folders", per_class=4)
    r = write_uncropped(PasteConfig(f"fer2013:{src}", "PublicTest", tmp_path / "u", min_side=48, max_side=48),
                        progress=False)
    boxes = read_boxes(tmp_path / "u")
    assert r["photos"] == len(boxes) > 0
    with open(tmp_path / "u" / "boxes.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    x, y, side = boxes[row["file"]]
    photo = cv2.imread(str(tmp_path / "u" / row["file"]))
    face = cv2.imread(str(src / row["source"]), cv2.IMREAD_GRAYSCALE)
    assert photo.shape == (360, 480, 3) and side == 48 and row["file"].startswith("test/")
    pasted = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)[y:y + side, x:x + side].astype(float)
    assert np.corrcoef(pasted.ravel(), face.astype(float).ravel())[0, 1] > 0.98   # a faint tint only


def test_a_model_records_the_framing_of_the_crops_it_was_trained_on(fixture_dir):
    """FER2013-trained models get FER2013's framing, CK+-trained ones CK+48's (measured), packs keep it."""
    from edgefer.runtime.metadata import Preprocessing
    from edgefer.train import pack
    from edgefer.train.datasets.ckplus import CROP_FRAMING
    fer = pack.from_dataset(f"fer2013:{fixture_dir('fer2013-folders')}")
    ck = pack.from_dataset(f"ckplus:{fixture_dir('ckplus48')}", fold=0)
    assert fer.preprocessing == Preprocessing()
    assert (ck.preprocessing.margin, ck.preprocessing.offset_y) == CROP_FRAMING != (fer.preprocessing.margin,
                                                                                    fer.preprocessing.offset_y)


def test_a_pack_keeps_the_contract(fixture_dir, tmp_path):
    from edgefer.train import pack
    path = pack.write_pack(f"fer2013:{fixture_dir('fer2013-folders')}", tmp_path / "f.pack")
    assert pack.read_pack(path).preprocessing == pack.from_dataset(f"fer2013:{fixture_dir('fer2013-folders')}").preprocessing
