"""The framing study: where the detector's box sits on a dataset's own crops, and what each
candidate framing does to accuracy through the daemon's detector and crop.

    python -m edgefer.train.framing runs/uncropped/fer-public --model default --margins 0.1,0.15,0.2,0.25,0.3

The folder is a set made by `edgefer data uncropped` (photos + boxes.csv). Detection runs
once per photo (the daemon's detector and settings); every candidate framing then crops
the same detections with the pixel contract's `face_pixels`, so the rows differ only in
framing. The geometry (median margin and centre offset that reproduce the dataset's crop
from the detector's box) is what the contract's default framing is set from.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata
from edgefer.runtime.preprocess import face_pixels

from . import datasets, default_model, splits
from .detect_eval import detect_faces
from .evaluate import Predictor, targets
from .uncropped import framing_of, read_boxes


def _model(name: str) -> tuple[ModelMetadata, Callable[[np.ndarray], np.ndarray]]:
    """Our model (its metadata) or a benchmark peer such as `fer` (its input size and labels, our
    default contract for the framing) -> (metadata, uint8 faces -> logits)."""
    from edgefer.benchmarks import peers
    if name in peers.PEERS:
        peer = peers.create(name)
        graph = peer.graph(1)
        meta = ModelMetadata(name, list(peer.labels), peer.size, 0.0, 1.0)
        return meta, lambda px: np.concatenate([graph.run([peer.prepare(px[i:i + 1])])[0] for i in range(len(px))])
    predict = Predictor(default_model.resolve(name), 256)
    return predict.meta, lambda px: predict(px, np.arange(len(px)))


def study(folder: Path, model: str, margins: list[float], offsets: list[float], detector: str = "auto") -> dict:
    meta, predict = _model(model)
    ds = datasets.load(f"folder:{folder}")
    idx = splits.plan_splits(ds).indices("test")
    pasted = read_boxes(folder)
    found_dets: list = []
    _, found, counts = detect_faces(ds, idx, meta, detector, progress=sys.stderr.isatty(), boxes_out=found_dets)
    found_dets = [(i, d, frame) for i, d, frame in found_dets if d is not None]
    geo = np.array([framing_of(d.box, pasted[ds.items[i].key]) for i, d, _ in found_dets])
    y = targets([ds.items[i].label for i in idx], meta, str(folder))
    pos = {i: n for n, i in enumerate(idx)}
    rows = []
    for off in offsets:
        for m in margins:
            pre = dataclasses.replace(meta.preprocessing, margin=m, offset_y=off)
            px = np.stack([face_pixels(frame, d.box, meta.input_size, pre, d.keypoints) for _, d, frame in found_dets])
            pred = predict(px).argmax(1)
            yy = np.array([y[pos[i]] for i, _, _ in found_dets])
            correct = int((pred == yy).sum())
            rows.append({"margin": m, "offset_y": off, "accuracy_end_to_end": correct / len(idx),
                         "accuracy_detected": correct / max(1, len(yy))})
    side = np.array([pasted[ds.items[i].key][2] for i in idx])
    hit = found.astype(bool)
    bins = ((0, 80), (80, 120), (120, 10_000))
    return {
        "folder": str(folder), "model": model, "photos": len(idx), "detection": counts,
        "found_by_face_side": {f"{lo}-{hi if hi < 10_000 else ''}px": round(float(hit[(side >= lo) & (side < hi)].mean()), 4)
                               for lo, hi in bins if ((side >= lo) & (side < hi)).any()},
        "geometry": {k: {"median": round(float(np.median(geo[:, j])), 4),
                         "iqr": [round(float(np.percentile(geo[:, j], 25)), 4), round(float(np.percentile(geo[:, j], 75)), 4)]}
                     for j, k in enumerate(("margin", "offset_x", "offset_y"))} if len(geo) else None,
        "contract": dataclasses.asdict(meta.preprocessing),
        "candidates": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgefer.train.framing", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="a set written by `edgefer data uncropped`")
    p.add_argument("--model", default="default", help="default, a checkpoint or artifact, or a benchmark peer (fer)")
    p.add_argument("--margins", default="0.1,0.15,0.2,0.25,0.3,0.4", help="comma-separated candidate margins")
    p.add_argument("--offsets", default="0", help="comma-separated candidate vertical offsets (box sides)")
    p.add_argument("--detector", default="auto")
    p.add_argument("--out", type=Path, help="write the JSON here too")
    a = p.parse_args(argv)
    try:
        r = study(a.folder, a.model, [float(v) for v in a.margins.split(",")], [float(v) for v in a.offsets.split(",")],
                  a.detector)
    except EdgeferError as exc:
        print(f"edgefer: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(r, indent=2)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
