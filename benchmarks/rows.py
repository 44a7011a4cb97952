"""What a benchmark row runs: our checkpoints and artifacts, and peers, behind one interface.

`Subject.open(threads)` returns (predict(batch) -> logits, input maker); every subject gets
the same uint8 faces and prepares them its own way (ours from the sidecar, peers from their
declaration), so accuracy and latency compare like with like.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import read_sidecar
from edgefer.runtime.preprocess import normalize, resize_square

from .formats import FORMAT_OF
from .peers import create as create_peer



@dataclass
class Subject:
    name: str                          # model name as shown in the table
    path: str
    format: str                        # pytorch | onnx | tflite | tensorrt
    precision: str
    peer: bool = False
    info: dict[str, Any] = field(default_factory=dict)   # params, mflops, labels
    claimed_accuracy: float | None = None              # a peer's published figure, shown beside the measured one
    claim_source: str | None = None

    def open(self, threads: int) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray], list[str]]:
        """-> predict(prepared batch) -> logits, prepare(uint8 faces (N, H, W)) -> batch, label order."""
        if self.peer:
            peer = create_peer(self.path)
            g = peer.graph(threads)
            return (lambda x: g.run([x])[0]), peer.prepare, peer.labels
        if self.format == "pytorch":
            import torch

            from edgefer.train import checkpoint
            torch.set_num_threads(threads)
            model, meta = checkpoint.load(Path(self.path))

            def predict(x):
                with torch.no_grad():
                    return model(torch.from_numpy(x)).numpy()
        else:
            from edgefer.runtime.model import load
            dm = load(Path(self.path), threads=threads, streaming=False)
            meta = dm.meta
            t = dm.window.input_shapes[0][1] if dm.window.input_shapes[0][1] else 1

            def predict(x):
                return dm.logits(np.repeat(x, t, axis=1) if t > 1 else x, batch_size=len(x))

        def prepare(gray):
            g = np.stack([resize_square(f, meta.input_size) for f in gray])
            return normalize(g, meta.mean, meta.std)[:, None, None]
        return predict, prepare, list(meta.labels)


def _artifact_subject(path: Path, name: str) -> Subject:
    meta = read_sidecar(path)
    return Subject(name, str(path), meta.format, meta.precision,
                   info={"params": meta.metrics.get("params"), "mflops": meta.metrics.get("mflops_per_frame"),
                         "pruned": bool(meta.provenance.get("pruned"))})


def discover(spec: str, formats: set[str]) -> list[Subject]:
    """`default` | checkpoint.pt | artifact | folder of artifacts -> subjects (windowed graphs only)."""
    if spec == "default":
        from edgefer.runtime.daemon import shipped_dir
        folder, name = shipped_dir(), "default"
    else:
        p = Path(spec)
        if not p.exists():
            raise EdgeferError(p, "does not exist", "pass default, a checkpoint, an artifact or a folder of artifacts")
        folder, name = (p, p.name) if p.is_dir() else (None, p.stem.split(".")[0])
        if folder is None:
            return [_one(p, name)] if FORMAT_OF.get(p.suffix) in formats else []
    found = []
    for f in sorted(folder.iterdir()):
        fmt = FORMAT_OF.get(f.suffix)
        if fmt is None or fmt not in formats or ".stream." in f.name:
            continue
        if fmt != "pytorch" and not f.with_name(f.name + ".json").is_file():
            continue
        found.append(_one(f, name))
    return found


def _one(path: Path, name: str) -> Subject:
    if path.suffix == ".pt":
        from edgefer.train import checkpoint
        from edgefer.train.models.profile import mflops_per_frame, params
        model, meta = checkpoint.load(path)
        return Subject(name, str(path), "pytorch", "fp32",
                       info={"params": params(model), "mflops": mflops_per_frame(model, meta.input_size),
                             "pruned": bool(getattr(model, "pruned", False))})
    return _artifact_subject(path, name)


def peer_subject(spec: str) -> list[Subject]:
    """A peer's bench row, with its format and precision as declared, its params and MFLOPs counted
    from its graph and the accuracy it claims; none (and a note with the fix) when it cannot be opened."""
    from .graph_cost import graph_cost
    try:
        peer = create_peer(spec)
    except EdgeferError as exc:
        print(f"edgefer: note: skipped peer {spec}: {exc}", file=sys.stderr)
        return []
    return [Subject(spec, spec, peer.format, peer.precision, peer=True, info=graph_cost(peer.path) or {},
                    claimed_accuracy=peer.claimed_accuracy, claim_source=peer.claim_source)]
