"""`edgefer bench`: models x formats x backends (+ peers) -> accuracy, latency, size, memory;
streaming cost against window length; the daemon end to end; table, CSV, JSON, Pareto plot.

Each row runs in a fresh process, so its peak RSS is its own and one backend's thread pool
or arena cannot slow the next. Settings, machine profile and git commit go into the JSON.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edgefer.runtime.errors import EdgeferError

from . import outputs
from .peers import cost as peer_cost
from .rows import FORMAT_OF, Subject, discover
from .timing import QUICK, Settings, peak_rss_mb, rss_mb, single_stream, throughput


def macro_f1(y: np.ndarray, pred: np.ndarray, n: int) -> float:
    """Mean over classes present in y of 2TP / (2TP + FP + FN); the same definition as sklearn's."""
    f1 = []
    for c in np.unique(y):
        tp = np.sum((pred == c) & (y == c))
        fp, fn = np.sum((pred == c) & (y != c)), np.sum((pred != c) & (y == c))
        f1.append(2 * tp / max(2 * tp + fp + fn, 1))
    return float(np.mean(f1))


def run_row(subject: Subject, faces: np.ndarray | None, labels: list[str] | None, settings: Settings) -> dict[str, Any]:
    """One row, in its own process: accuracy on the faces, then timings."""
    predict, prepare, model_labels = subject.open(settings.threads)
    row: dict[str, Any] = {**asdict(subject), "size_bytes": _size(subject)}
    if faces is not None:
        x = prepare(faces)
        logits = np.concatenate([predict(x[i:i + 64]) for i in range(0, len(x), 64)])
        # map the subject's label order onto the dataset's: score only shared labels
        idx = [model_labels.index(lab) for lab in labels]
        row["_pred"] = logits[:, idx].argmax(1)
    one = prepare(np.full((1, 48, 48), 128, np.uint8) if faces is None else faces[:1])
    eight = np.concatenate([one] * settings.batch_throughput)
    row.update(single_stream(lambda: predict(one), settings))
    row["throughput_b8"] = throughput(lambda: predict(eight), settings.batch_throughput, settings)
    row["rss_mb"] = rss_mb()
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def _size(s: Subject) -> int:
    p = Path(s.path) if not s.peer else None
    if p is None:
        from .peers import create
        return create(s.path).path.stat().st_size
    size = p.stat().st_size
    if s.format != "pytorch":
        from edgefer.runtime.metadata import read_sidecar
        stream = read_sidecar(p).companions.get("stream")
        if stream:
            size += (p.parent / stream).stat().st_size
    return size


def load_faces(spec: str, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    from edgefer.train.commands import prepare
    ds, decoded, plan, man = prepare(spec, size=48)
    idx = np.array(plan.indices(split))
    if limit:
        idx = idx[np.random.default_rng(0).permutation(len(idx))[:limit]]
    labels = sorted({ds.items[i].label for i in idx}, key=lambda lab: ds.labels.index(lab))
    y = np.array([labels.index(ds.items[i].label) for i in idx])
    return decoded.pixels[idx], y, labels, man["manifest_sha256"]


def bench(args: argparse.Namespace) -> int:
    if args.merge:
        return outputs.merge([Path(p) for p in args.merge], Path(args.out or "runs/bench/merged"))
    settings = QUICK if args.quick else Settings(threads=args.threads)
    settings = Settings(**{**settings.to_dict(), "threads": args.threads})
    out = Path(args.out or "runs/bench/latest")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeferError(out, f"cannot create the output folder ({exc.strerror})", "choose another --out") from None
    formats = {f.strip() for f in args.formats.split(",") if f.strip()} | {"pytorch"} if args.formats else set(FORMAT_OF.values())
    bad = formats - set(FORMAT_OF.values())
    if bad:
        raise EdgeferError(None, f"unknown format(s) {sorted(bad)}", f"use {sorted(set(FORMAT_OF.values()))}")
    result: dict[str, Any] = {"settings": settings.to_dict(), "profile": outputs.machine_profile(settings.threads),
                              "data": args.data, "split": args.split, "rows": [], "streaming": None, "e2e": None}
    if args.models or args.peers:
        subjects = [s for m in (args.models or "").split(",") if m for s in discover(m, formats)]
        subjects += [Subject(p if p != "fer" else "fer", p, "tflite" if p == "fer" else FORMAT_OF.get(Path(p).suffix, "?"),
                             "peer", peer=True, info=peer_cost(p)) for p in (args.peers or "").split(",") if p]
        if not subjects:
            raise EdgeferError(args.models, "no models to benchmark in those formats", "check --models and --formats")
        faces = y = labels = None
        if args.data:
            faces, y, labels, result["manifest_sha256"] = load_faces(args.data, args.split, 200 if args.quick else None)
        ctx = mp.get_context("spawn")
        for s in tqdm(subjects, desc="bench", disable=not sys.stderr.isatty()):
            with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                try:
                    row = pool.submit(run_row, s, faces, labels, settings).result()
                except EdgeferError as exc:
                    print(f"edgefer: note: skipped {s.name} {s.format} {s.precision}: {exc.cause}", file=sys.stderr)
                    continue
            pred = row.pop("_pred", None)
            if pred is not None:
                row["accuracy"], row["macro_f1"] = float((pred == y).mean()), macro_f1(y, pred, len(labels))
            result["rows"].append(row)
    if args.streaming:
        from .streaming import streaming_cost
        result["streaming"] = streaming_cost(args.streaming, settings)
    if args.e2e:
        from .e2e import end_to_end
        result["e2e"] = end_to_end(args.e2e, args.e2e_model, 100 if args.quick else args.e2e_frames, settings.threads)
    outputs.write(out, result)
    print(outputs.summary(result, out))
    return 0
