"""Handlers behind `edgefer data | evaluate | train | search | experiment`: parse, call the library, print."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgefer.runtime.errors import EdgeferError

from . import splits
from .prepare import is_kfold, is_pack, prepare

if TYPE_CHECKING:
    from .config import TrainConfig


def data(args: argparse.Namespace) -> int:
    if args.action == "uncropped":
        from .uncropped import PasteConfig, write_uncropped
        r = write_uncropped(PasteConfig(args.dataset, args.split, Path(args.out), args.limit, args.min_side,
                                        args.max_side, seed=args.seed), progress=sys.stderr.isatty())
        print(f"wrote {r['photos']} photos to {r['out']}  (try: edgefer evaluate default --detect "
              f"--data folder:{r['out']} --split test)")
        return 0
    if args.action == "pack":
        from .pack import write_pack
        out = Path(args.out)
        if not is_pack(str(out)):
            raise EdgeferError(out, "a data pack's name ends in .pack", f"write it as {out.with_suffix('.pack')}")
        write_pack(args.dataset, out, size=args.size, seed=args.seed)
        print(f"{out}  ({out.stat().st_size / 2**20:.1f} MB; try: edgefer train --model edge --data {out} --recipe resident)")
        return 0
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
    from .evaluate import EvalConfig, print_result, run_evaluation
    cfg = EvalConfig(model=args.model, data=args.data, split=args.split, fold=args.fold, drop_leaked=args.drop_leaked,
                     detect=args.detect, detector=args.detector, detect_threshold=args.detect_threshold,
                     margin=args.margin, out=Path(args.out) if args.out else None, batch_size=args.batch_size,
                     seed=args.seed, folds=args.folds, progress=sys.stderr.isatty(), ignore_labels=tuple(args.ignore_label),
                     face_size=args.face_size)
    if not args.detect and (args.margin is not None or args.detector != "auto"):
        raise EdgeferError(None, "--margin and --detector apply to --detect only", "add --detect, or drop them")
    print_result(run_evaluation(cfg), args.json)
    return 0


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


# flags that map one-to-one onto TrainConfig fields (None: not given, the recipe's default stands)
_OPTIONS = ("preset", "size", "fold", "folds", "seed", "batches", "batch_size", "clip_length", "balance", "optimizer",
            "lr", "weight_decay", "label_smoothing", "schedule", "epochs", "minutes", "warmup", "ema", "patience",
            "prune", "prune_method", "kd_alpha", "kd_temperature", "weight_fake_quant", "device", "threads", "log_every",
            "camera", "vote_targets", "alt_label_weight", "sync_bn")


def _train_config(args: argparse.Namespace, default_out: str) -> TrainConfig:
    """The run's config: TrainConfig defaults < --recipe's < the flags given."""
    from . import models
    from .config import from_recipe

    if not args.model or not args.data:
        raise EdgeferError(None, "--model and --data are required", "see `edgefer train --list` and `--help`")
    models.entry(args.model)
    given = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k, None) is not None}
    for key in ("epochs", "patience"):                  # 0 = no cap / never
        if given.get(key) == 0:
            given[key] = None
    paths = {k: Path(getattr(args, k)) for k in ("init", "resume") if getattr(args, k, None)}
    return from_recipe(args.recipe, model=args.model, data=args.data, out=Path(args.out or default_out),
                       model_kwargs=_parse_set(args.set), augment=not args.no_augment,
                       teachers=[Path(t) for t in args.teachers], progress=sys.stderr.isatty(), **paths, **given)


def _run_name(args: argparse.Namespace) -> str:
    data = args.data or ""
    return f"{args.model}-{Path(data).stem if is_pack(data) else data.split(':', 1)[0]}" + (f"-{args.preset}" if args.preset else "")


def search_cmd(args: argparse.Namespace) -> int:
    from .search import search

    cfg = _train_config(args, f"runs/search/{_run_name(args)}-{args.method}")
    if cfg.fold is None and is_kfold(cfg.data):
        cfg.fold = 0     # select on fold 0's validation fold; CV then scores the chosen setting on all folds
    r = search(cfg, args.method, args.trials, cfg.out, storage=args.storage, study_name=args.study)
    print(f"{r['completed']} trials completed, {r['pruned']} pruned; best validation accuracy "
          f"{r['best']['val_accuracy']:.4f} with {r['best']['params']} -> {cfg.out / 'search.json'}"
          + (f"; {r['queued']} grid points still queued (run more workers, or again)" if r["queued"] else ""))
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
        from edgefer.runtime.artifacts import SHIPPED_DIR
        print(f"promoted {args.promote} -> {path} ({path.stat().st_size / 1024:.0f} KB); `default` now loads it\n"
              f"ship its device exports (the runtime's, in {SHIPPED_DIR}) with:\n"
              f"  edgefer compress default --precision int8 --formats onnx,tflite --out {SHIPPED_DIR}")
        return 0
    from . import distributed
    from .crossval import cross_validate
    from .trainer import train

    cfg = _train_config(args, f"runs/{_run_name(args)}")
    if args.nproc is not None and args.nproc < 1:
        raise EdgeferError(None, f"--nproc {args.nproc} is not a process count", "pass --nproc 2 (or more)")
    if args.nproc and distributed.from_env().world > 1:
        raise EdgeferError(None, "--nproc under torchrun would start processes from every process",
                           "drop --nproc (torchrun's --nproc-per-node sets the count), or run edgefer train --nproc alone")
    ranks = distributed.Ranks(0, args.nproc) if args.nproc else distributed.from_env()
    if args.fold is None and is_kfold(args.data):
        if ranks.world > 1:
            raise EdgeferError(None, "cross-validation trains its folds one after another in one process",
                               "train one fold per run: --fold K with --nproc, or drop --nproc")
        cross_validate(cfg)
    elif ranks.world > 1 and args.nproc:
        from .launch import launch
        from .start import resolve_hparams
        distributed.check_batch(resolve_hparams(cfg)[0].batch_size, ranks)   # before N processes load the data
        return launch(args.nproc, args.argv)
    else:
        s = train(cfg)
        if not ranks.main:
            return 0
        if s["stop_reason"] == "nan":
            raise EdgeferError(cfg.out, f"training diverged (loss NaN) in epoch {s['epochs_run'] + 1}",
                               "lower --lr; the last good checkpoint is last.pt" if s["epochs_run"] else "lower --lr")
        weights = f" ({s['best_weights']} weights)" if cfg.ema else ""
        print(f"best validation accuracy {s['best_val_accuracy']:.4f}{weights} at epoch {s['best_epoch']} "
              f"({s['stop_reason']}, {s['minutes']:.1f} min) -> {cfg.out / 'best.pt'}")
    return 0

