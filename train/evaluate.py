"""`edgefer evaluate`: a model on one split -> metrics.json, summary.md, confusion and ROC plots.

Images are prepared by the runtime's own preprocessing (resize to the model's input size,
normalise with the statistics stored in its metadata), so the number here is the number
the device gets from the same model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata, file_sha256
from edgefer.runtime.preprocess import normalize

from . import checkpoint, default_model, splits
from .batches import eval_batches, infer
from .commands import prepare
from .metrics import classification_report, plot_confusion, plot_roc


def targets(labels_of_items: list[str], meta: ModelMetadata, where: str) -> np.ndarray:
    unknown = sorted(set(labels_of_items) - set(meta.labels))
    if unknown:
        raise EdgeferError(where, f"dataset has labels {unknown} the model does not predict ({meta.labels})",
                           "evaluate on a dataset with the model's label set, or pick classes with ?classes=")
    index = {lab: i for i, lab in enumerate(meta.labels)}
    return np.array([index[lab] for lab in labels_of_items], np.int64)


class Predictor:
    """Checkpoints run in PyTorch; exported artifacts (.onnx, .tflite, .engine) run in the backend
    the device uses, prepared from the same pixels, so the two numbers are comparable."""

    def __init__(self, path: Path, batch_size: int):
        self.batch_size = batch_size
        if path.suffix == ".pt" or not path.suffix:
            self.model, self.meta = checkpoint.load(path)
            self.deployed = None
        else:
            from edgefer.runtime import model as deployed
            self.deployed = deployed.load(path, streaming=False)
            self.meta = self.deployed.meta

    def __call__(self, pixels: np.ndarray, idx: np.ndarray) -> np.ndarray:
        if self.deployed is None:
            return infer(self.model, eval_batches(pixels, idx, self.meta.mean, self.meta.std, self.batch_size),
                         torch.device("cpu"))
        clips = normalize(pixels[idx], self.meta.mean, self.meta.std)[:, None, None]
        t = self.deployed.window.input_shapes[0][1]
        if t and t > 1:                         # a windowed graph of fixed T (TFLite): a still image is T equal frames
            clips = np.repeat(clips, t, axis=1)
        return self.deployed.logits(clips, self.batch_size)


def run_evaluation(args: argparse.Namespace) -> int:
    model_path = default_model.resolve(args.model)
    predict = Predictor(model_path, args.batch_size)
    meta = predict.meta
    ds, decoded, plan, man = prepare(args.data, size=meta.input_size, seed=args.seed, folds=args.folds)
    idx = plan.indices(args.split, args.fold)
    dropped = 0
    if args.drop_leaked:
        from .audit import leaked
        train_idx = plan.indices("train", args.fold)
        bad = leaked(decoded, plan, idx, train_idx)
        idx, dropped = [i for i in idx if i not in bad], len(bad)
    y = targets([ds.items[i].label for i in idx], meta, args.data)
    logits = predict(decoded.pixels, np.array(idx, np.int64))
    report = classification_report(y, logits, list(meta.labels))
    split_name = args.split if args.fold is None else f"{args.split}-fold{args.fold}"
    out = Path(args.out or f"runs/eval/{args.model if args.model == 'default' else model_path.stem}-{ds.name}-{split_name}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        man_path = splits.write_manifest(man, Path("runs/manifests"))
    except OSError as exc:
        raise EdgeferError(out, f"cannot write results ({exc.strerror})", "choose another --out") from None
    result = {
        "model": str(model_path), "model_sha256": file_sha256(model_path), "architecture": meta.architecture,
        "format": meta.format, "precision": meta.precision,
        "dataset": args.data, "split": args.split, "fold": args.fold,
        "manifest_sha256": man["manifest_sha256"], "manifest": str(man_path),
        "skipped_files": len(ds.skipped), "dropped_leaked": dropped if args.drop_leaked else None, **report,
    }
    title = f"{meta.architecture} on {ds.name} {split_name}"
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_confusion(report, out / "confusion.png", title)
    plot_roc(y, logits, list(meta.labels), out / "roc.png", title)
    (out / "summary.md").write_text(summary_markdown(result, title))
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(f"{title}: accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}, "
              f"ROC AUC {report['roc_auc_ovr_macro'] or float('nan'):.4f} (n={report['n']}) -> {out}")
    return 0


def summary_markdown(r: dict, title: str) -> str:
    fold = "" if r["fold"] is None else f" fold {r['fold']}"
    leak = "" if r.get("dropped_leaked") is None else f" ({r['dropped_leaked']} images with a copy in training dropped)"
    rows = "\n".join(f"| {lab} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
                     f"{'' if m['roc_auc'] is None else format(m['roc_auc'], '.3f')} | {m['support']} |"
                     for lab, m in r["per_class"].items())
    return (f"# {title}\n\n"
            f"- model: `{r['model']}` (sha256 {r['model_sha256'][:12]})\n"
            f"- data: `{r['dataset']}`, split `{r['split']}`{fold}, n={r['n']}, "
            f"manifest {r['manifest_sha256'][:12]}{leak}\n"
            f"- accuracy **{r['accuracy']:.4f}**, macro-F1 **{r['macro_f1']:.4f}**, "
            f"macro P {r['macro_precision']:.4f} / R {r['macro_recall']:.4f}, ROC AUC (ovr, macro) "
            f"{'n/a' if r['roc_auc_ovr_macro'] is None else format(r['roc_auc_ovr_macro'], '.4f')}\n\n"
            "| class | precision | recall | F1 | ROC AUC | support |\n|---|---|---|---|---|---|\n"
            f"{rows}\n\n![confusion](confusion.png) ![roc](roc.png)\n")
