"""`edgefer bench`: models x formats x backends (+ peers) -> accuracy, latency, size, memory;
streaming cost against window length; the daemon end to end; table, CSV, JSON, Pareto plot.

Accuracy is scored on `--data --split` and on split `all` of each `--cross` dataset (a dataset
the models were not trained on, e.g. CK+ for a FER2013 model), by the same per-row code.

Each row runs in a fresh process, so its peak RSS is its own and one backend's thread pool
or arena cannot slow the next. Settings, machine profile and git commit go into the JSON.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edgefer.runtime.errors import EdgeferError

from . import outputs
from .formats import FORMAT_OF
from .rows import Subject, discover, peer_subject
from .timing import QUICK, Settings, peak_rss_mb, rss_mb, single_stream, throughput


def macro_f1(y: np.ndarray, pred: np.ndarray, n: int) -> float:
    """Mean over classes present in y of 2TP / (2TP + FP + FN); the same definition as sklearn's."""
    f1 = []
    for c in np.unique(y):
        tp = np.sum((pred == c) & (y == c))
        fp, fn = np.sum((pred == c) & (y != c)), np.sum((pred != c) & (y == c))
        f1.append(2 * tp / max(2 * tp + fp + fn, 1))
    return float(np.mean(f1))


@dataclass
class FaceSet:
    """Faces every row is scored on: the main `--data --split` (key "main") or a `--cross` dataset."""

    key: str                  # "main", or the column's name: the dataset's registry name
    spec: str
    split: str
    faces: np.ndarray         # (N, 48, 48) uint8
    y: np.ndarray             # index into labels
    labels: list[str]
    manifest_sha256: str

    def describe(self) -> dict[str, Any]:
        return {"key": self.key, "data": self.spec, "split": self.split, "n": len(self.y), "labels": self.labels,
                "manifest_sha256": self.manifest_sha256}


def load_faces(spec: str, split: str, limit: int | None, key: str = "main") -> FaceSet:
    from edgefer.train.prepare import prepare
    ds, decoded, plan, man = prepare(spec, size=48)
    idx = np.array(plan.indices(split))
    if limit:
        idx = idx[np.random.default_rng(0).permutation(len(idx))[:limit]]
    labels = sorted({ds.items[i].label for i in idx}, key=lambda lab: ds.labels.index(lab))
    y = np.array([labels.index(ds.items[i].label) for i in idx])
    return FaceSet(key, spec, split, decoded.pixels[idx], y, labels, man["manifest_sha256"])


def cross_sets(specs: list[str], limit: int | None) -> list[FaceSet]:
    """`--cross SPEC[@SPLIT]` (repeatable): split `all` of each (or the one named), keyed by
    dataset name (ckplus, ckplus-2, ...)."""
    from edgefer.train.datasets import parse_spec, split_suffix
    out: list[FaceSet] = []
    for text in specs:
        spec, split = split_suffix(text)
        name = parse_spec(spec).name
        same = sum(fs.key == name or fs.key.startswith(name + "-") for fs in out)
        key = f"{name}-{same + 1}" if same else name
        out.append(load_faces(spec, split, limit, key))
    return out


def run_row(subject: Subject, sets: list[FaceSet], settings: Settings) -> dict[str, Any]:
    """One row, in its own process: accuracy on each face set (the main split first), then timings."""
    predict, prepare, model_labels = subject.open(settings.threads)
    row: dict[str, Any] = {**asdict(subject), "size_bytes": _size(subject), "_pred": {}, "_note": {}}
    for fs in sets:
        missing = [lab for lab in fs.labels if lab not in model_labels]
        if missing:     # the model cannot name these faces: an empty cell with the reason, not a crash
            row["_note"][fs.key] = f"labels {missing} are not among the model's {model_labels}"
            continue
        x = prepare(fs.faces)
        logits = np.concatenate([predict(x[i:i + 64]) for i in range(0, len(x), 64)])
        # argmax over every label the model predicts, as `edgefer evaluate` and the daemon do; a
        # label the dataset does not have (neutral on CK+) is a wrong answer (-1), not skipped
        to_set = np.array([fs.labels.index(lab) if lab in fs.labels else -1 for lab in model_labels])
        row["_pred"][fs.key] = to_set[logits.argmax(1)]
    faces = sets[0].faces if sets else np.full((1, 48, 48), 128, np.uint8)
    one = prepare(faces[:1])
    eight = np.concatenate([one] * settings.batch_throughput)
    row.update(single_stream(lambda: predict(one), settings))
    row["throughput_b8"] = throughput(lambda: predict(eight), settings.batch_throughput, settings)
    row["rss_mb"] = rss_mb()
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def _score(row: dict[str, Any], sets: list[FaceSet]) -> None:
    """Accuracy and macro-F1 from a row's predictions: the main set's as top-level columns,
    the cross sets' under row["cross"][key] (None with a note when the row could not score it)."""
    preds, notes = row.pop("_pred"), row.pop("_note")
    row["cross"] = {}
    for fs in sets:
        pred = preds.get(fs.key)
        acc, f1 = (None, None) if pred is None else (float((pred == fs.y).mean()), macro_f1(fs.y, pred, len(fs.labels)))
        if fs.key == "main":
            row["accuracy"], row["macro_f1"] = acc, f1
            if fs.key in notes:
                row["note"] = notes[fs.key]
        else:
            row["cross"][fs.key] = {"accuracy": acc, "macro_f1": f1, "n": len(fs.y),
                                    **({"note": notes[fs.key]} if fs.key in notes else {})}
        if fs.key in notes:
            print(f"edgefer: note: {row['name']} {row['format']} {row['precision']} not scored on {fs.spec}: "
                  f"{notes[fs.key]}", file=sys.stderr)


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
    cross = list(getattr(args, "cross", None) or [])     # declared in runtime/cli.py's bench arguments
    if cross and not (args.models or args.peers):
        raise EdgeferError(None, "--cross scores the rows of --models / --peers, and none were given",
                           "add --models default (and/or --peers fer)")
    result: dict[str, Any] = {"settings": settings.to_dict(), "profile": outputs.machine_profile(settings.threads),
                              "data": args.data, "split": args.split, "cross": [], "rows": [], "streaming": None,
                              "e2e": None}
    if args.models or args.peers:
        subjects = [s for m in (args.models or "").split(",") if m for s in discover(m, formats)]
        subjects += [s for p in (args.peers or "").split(",") if p for s in peer_subject(p)]
        if not subjects:
            raise EdgeferError(args.models, "no models to benchmark in those formats" + (", and no peer opened" if args.peers else ""),
                               "check --models and --formats" + (", and the notes above" if args.peers else ""))
        limit = 200 if args.quick else None
        sets = [load_faces(args.data, args.split, limit)] if args.data else []
        if sets:
            result["manifest_sha256"] = sets[0].manifest_sha256
        sets += cross_sets(cross, limit)
        result["cross"] = [fs.describe() for fs in sets if fs.key != "main"]
        ctx = mp.get_context("spawn")
        for s in tqdm(subjects, desc="bench", disable=not sys.stderr.isatty()):
            with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                try:
                    row = pool.submit(run_row, s, sets, settings).result()
                except EdgeferError as exc:
                    print(f"edgefer: note: skipped {s.name} {s.format} {s.precision}: {exc}", file=sys.stderr)
                    continue
            _score(row, sets)
            result["rows"].append(row)
    if args.streaming:
        from .streaming import streaming_cost
        result["streaming"] = streaming_cost(args.streaming, settings)
    if getattr(args, "detectors", None):
        from . import detectors as dets
        from edgefer.runtime.detect import DETECTORS
        names = ["auto", *DETECTORS] if args.detectors == "all" else [n.strip() for n in args.detectors.split(",") if n.strip()]
        folder = Path(args.e2e or "../shared/data/video")
        if not folder.is_dir():
            raise EdgeferError(folder, "is not the folder of annotated videos", "pass --e2e ../shared/data/video")
        result["detectors"] = dets.detector_bench(names, folder, Path(args.annotations or dets.ANNOTATIONS),
                                                  args.e2e_model, 50 if args.quick else 300, settings.threads)
        print(dets.write(out, result["detectors"]))
        print(f"table: {out / 'detectors.md'}  plot: {out / 'detectors.png'}")
    elif args.e2e:
        from .e2e import end_to_end
        result["e2e"] = end_to_end(args.e2e, args.e2e_model, 100 if args.quick else args.e2e_frames, settings.threads)
    outputs.write(out, result)
    print(outputs.summary(result, out))
    return 0
