"""A deployable model: metadata + its window graph + (for unidirectional models) its stream graph.

This is what the daemon, `edgefer evaluate` and the benchmarks run. It reads everything
from the sidecar (`<artifact>.json`): input size and normalisation for the caller's
preprocessing, label order, and the state layout of the streaming graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import Graph, open_graph
from .errors import EdgeferError
from .metadata import ModelMetadata, read_sidecar

State = list[np.ndarray]


@dataclass
class DeployedModel:
    path: Path
    meta: ModelMetadata
    window: Graph
    stream: Graph | None
    state_spec: list[dict]             # the stream graph's state inputs: name, shape (no batch axis), fill

    def logits(self, clips: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """clips (N, T, 1, S, S) float32 prepared as the metadata says -> logits (N, classes)."""
        step = 1 if self.window.fixed_batch == 1 else min(batch_size, self.window.max_batch or batch_size)
        out = [self.window.run([clips[i:i + step]])[0] for i in range(0, len(clips), step)]
        return np.concatenate(out) if out else np.zeros((0, len(self.meta.labels)), np.float32)

    def init_state(self, batch: int = 1) -> State:
        if self.stream is None:
            raise EdgeferError(self.path, "this model has no streaming graph (bidirectional or exported without it)",
                               "run it on sliding windows with logits()")
        return [np.full((batch, *s["shape"]), s["fill"], np.float32) for s in self.state_spec]

    def step(self, frames: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One new frame per row (B, 1, S, S) and the carried state -> logits and the new state."""
        if self.stream is None:
            self.init_state()            # raises the explanatory error
        step = self.stream.max_batch or len(frames)
        if len(frames) <= step:
            out = self.stream.run([frames, *state])
            return out[0], out[1:]
        parts = [self.stream.run([frames[i:i + step], *(s[i:i + step] for s in state)])
                 for i in range(0, len(frames), step)]           # rows are independent faces
        outs = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
        return outs[0], outs[1:]


def load(path: Path, threads: int | None = None, streaming: bool = True, check: bool = True) -> DeployedModel:
    if not path.is_file():
        raise EdgeferError(path, "does not exist", "pass an artifact written by `edgefer compress`, or --model default")
    meta = read_sidecar(path)
    if meta.graph != "window":
        raise EdgeferError(path, "is a streaming graph; load the windowed artifact beside it",
                           f"pass the file named by its sidecar instead (e.g. {path.name.replace('.stream', '')})")
    stream, spec = None, []
    if streaming and "stream" in meta.companions:
        stream_path = path.with_name(meta.companions["stream"])
        if not stream_path.is_file():      # a model is one unit: window + stream graph, each with its sidecar
            raise EdgeferError(path, f"its stream graph {stream_path.name} is missing (expected {stream_path})",
                               "copy the whole folder `edgefer compress` wrote (model, .stream graph, both .json sidecars)")
        spec = read_sidecar(stream_path).state
        stream = open_graph(stream_path, threads)
    model = DeployedModel(path, meta, open_graph(path, threads), stream, spec)
    if check:
        self_check(model)
    return model


def self_check(model: DeployedModel) -> None:
    """One blank frame through every graph, at load: a model whose shapes disagree with its
    metadata fails here with one line, not with a traceback at the first face hours later."""
    m = model.meta
    n, s = len(m.labels), m.input_size
    t = model.window.input_shapes[0][1] if len(model.window.input_shapes[0]) > 1 else None
    clip = np.zeros((1, t if isinstance(t, int) and t > 0 else 1, 1, s, s), np.float32)
    try:
        out = model.logits(clip)
        if model.stream is not None:
            out_s, _ = model.step(clip[:, 0], model.init_state(1))
    except Exception as exc:            # any backend's shape / type error, in its own words
        raise EdgeferError(model.path, f"does not run on the {s}x{s} input its metadata declares "
                                       f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
                           "re-export the model with `edgefer compress` so graph and sidecar agree") from None
    shapes = [out.shape] + ([out_s.shape] if model.stream is not None else [])
    if any(sh != (1, n) for sh in shapes):
        raise EdgeferError(model.path, f"outputs {shapes[0][1:] if shapes[0] != (1, n) else shapes[-1][1:]} scores "
                                       f"but its metadata names {n} labels",
                           "re-export the model with `edgefer compress` so graph and sidecar agree")
