"""Handlers behind `edgefer data | evaluate | train | search | experiment`: parse, call the library, print."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgefer.runtime.errors import EdgeferError

from . import datasets, images, splits

if TYPE_CHECKING:
    from .trainer import TrainConfig


def prepare(spec: str, size: int = 48, seed: int = 0, folds: int = 10, protocol: str = "dataset"):
    """Load, decode and split a dataset: the order every command needs (decoding drops unreadable files)."""
    ds = datasets.load(spec)
    decoded = images.decode(ds, size, progress=sys.stderr.isatty())
    plan = splits.plan_splits(ds, seed, folds, protocol)
    man = splits.manifest(ds, plan, decoded.hashes, spec)
    _warn_skipped(ds)
    return ds, decoded, plan, man


def _warn_skipped(ds: datasets.Dataset) -> None:
    if ds.skipped:
        reasons = sorted({s.reason for s in ds.skipped})
        print(f"edgefer: note: {len(ds.skipped)} file(s) skipped ({'; '.join(reasons)}); "
              f"e.g. {ds.skipped[0].path}", file=sys.stderr)


def data(args: argparse.Namespace) -> int:
    if args.action == "fixture":
        from .fixtures import FORMATS, write_fixture
        if args.format not in FORMATS:
            raise EdgeferError(None, f"unknown fixture format '{args.format}'", f"use one of {sorted(FORMATS)}")
        out = write_fixture(args.format, Path(args.out), per_class=args.per_class, seed=args.seed)
        print(f"wrote {args.format} fixture to {out}  (try: edgefer data audit {FORMATS[args.format]}:{out})")
        return 0
    ds, decoded, plan, man = prepare(args.dataset, seed=args.seed, folds=args.folds)
    if args.action == "manifest":
        path = splits.write_manifest(man, Path(args.out))
        print(f"{path}  manifest_sha256={man['manifest_sha256']}")
        return 0
    from .audit import audit
    report = audit(ds, decoded, plan, near=not args.no_near)
    report["manifest_sha256"] = man["manifest_sha256"]
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(format_audit(report))
    return 0


def format_audit(r: dict) -> str:
    labels = r["labels"]
    width = max(len(n) for n in r["splits"]) + 2
    lines = [f"{r['dataset']} at {r['root']}: {r['total']} images, scheme {r['scheme']}, "
             f"manifest {r['manifest_sha256'][:12]}", "",
             "split".ljust(width) + "total".rjust(7) + "".join(lab[:8].rjust(9) for lab in labels)]
    for name, s in r["splits"].items():
        lines.append(name.ljust(width) + str(s["total"]).rjust(7) + "".join(str(s["classes"][lab]).rjust(9) for lab in labels))
    dup = r["cross_split_duplicates"]
    lines += ["", f"cross-split exact duplicates: {dup['exact']['pairs']} pairs "
                  f"({dup['exact']['label_conflicts']} with different labels) {dup['exact']['by_split_pair']}"]
    if "near" in dup:
        lines.append(f"cross-split near duplicates:  {dup['near']['pairs']} pairs {dup['near']['by_split_pair']} "
                     f"(pHash <= {dup['near']['phash_radius']} bits and pixel correlation >= {dup['near']['min_correlation']})")
    lines.append(f"constant (blank) images: {r['constant_images']}; within-split exact copies: {r['within_split_exact_duplicates']}")
    if "subjects" in r:
        lines.append(f"subjects: {r['subjects']}, sequences: {r['sequences']}, "
                     f"subjects in more than one fold: {r['fold_subject_overlap']}")
    lines.append(f"skipped files: {r['skipped']['count']} {r['skipped']['reasons'] or ''}")
    return "\n".join(lines)


def evaluate(args: argparse.Namespace) -> int:
    from .evaluate import run_evaluation
    return run_evaluation(args)


def _parse_set(pairs: list[str]) -> dict:
    """--set key=value pairs; values are JSON when they parse as JSON (numbers, lists), else strings."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise EdgeferError(None, f"--set {pair!r} is not key=value", "write e.g. --set units=228")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def list_models() -> str:
    from . import models
    from .models.profile import mflops_per_frame, params

    rows = [f"{'model':16s} {'input':>5s} {'stream':>6s} {'params':>11s} {'MFLOPs':>8s}  description"]
    for name, e in sorted(models.REGISTRY.items()):
        m = models.create(name, 7)
        rows.append(f"{name:16s} {e.input_size:5d} {'yes' if e.streaming else 'no':>6s} {params(m):11,d} "
                    f"{mflops_per_frame(m, e.input_size):8.1f}  {e.help}"
                    + (f" [presets: {', '.join(e.presets)}]" if e.presets else ""))
    return "\n".join(rows)


def _train_config(args: argparse.Namespace, default_out: str) -> TrainConfig:
    from . import models
    from .trainer import TrainConfig

    if not args.model or not args.data:
        raise EdgeferError(None, "--model and --data are required", "see `edgefer train --list` and `--help`")
    models.entry(args.model)
    return TrainConfig(model=args.model, data=args.data, out=Path(args.out or default_out), preset=args.preset,
                       model_kwargs=_parse_set(args.set), size=args.size, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                       label_smoothing=args.label_smoothing, warmup=args.warmup, balance=args.balance,
                       augment=not args.no_augment, clip_length=args.clip_length, patience=args.patience,
                       max_minutes=args.max_minutes, fold=args.fold, folds=args.folds, seed=args.seed,
                       device=args.device, threads=args.threads, progress=sys.stderr.isatty(),
                       resume=Path(args.resume) if getattr(args, "resume", None) else None,
                       init=Path(args.init) if getattr(args, "init", None) else None)


def _run_name(args: argparse.Namespace) -> str:
    return f"{args.model}-{(args.data or '').split(':', 1)[0]}" + (f"-{args.preset}" if args.preset else "")


def search_cmd(args: argparse.Namespace) -> int:
    from .search import search

    cfg = _train_config(args, f"runs/search/{_run_name(args)}-{args.method}")
    if cfg.fold is None and is_kfold(cfg.data):
        cfg.fold = 0     # select on fold 0's validation fold; CV then scores the chosen setting on all folds
    r = search(cfg, args.method, args.trials, cfg.out)
    print(f"{r['completed']} trials completed, {r['pruned']} pruned; best validation accuracy "
          f"{r['best']['val_accuracy']:.4f} with {r['best']['params']} -> {cfg.out / 'search.json'}")
    return 0


def experiment_cmd(args: argparse.Namespace) -> int:
    from .experiments import run_experiment

    cfg = _train_config(args, f"runs/experiments/{args.name}-{_run_name(args)}")
    result = run_experiment(args.name, cfg)
    print(json.dumps(result, indent=2))
    return 0


def train_cmd(args: argparse.Namespace) -> int:
    if args.list:
        print(list_models())
        return 0
    if args.promote:
        from .default_model import promote
        path = promote(Path(args.promote))
        print(f"promoted {args.promote} -> {path} ({path.stat().st_size / 1024:.0f} KB); `default` now loads it")
        return 0
    from .crossval import cross_validate
    from .trainer import train

    cfg = _train_config(args, f"runs/{_run_name(args)}")
    if args.fold is None and is_kfold(args.data):
        cross_validate(cfg)
    else:
        s = train(cfg)
        if s["stop_reason"] == "nan":
            raise EdgeferError(cfg.out, f"training diverged (loss NaN) in epoch {s['epochs_run'] + 1}",
                               "lower --lr; the last good checkpoint is last.pt" if s["epochs_run"] else "lower --lr")
        print(f"best validation accuracy {s['best_val_accuracy']:.4f} at epoch {s['best_epoch']} "
              f"({s['stop_reason']}, {s['minutes']:.1f} min) -> {cfg.out / 'best.pt'}")
    return 0


def is_kfold(spec: str) -> bool:
    """Whether the dataset's own scheme is k-fold (CK+), where `train` means cross-validation."""
    return datasets.load(spec).split_scheme == "group-kfold"
