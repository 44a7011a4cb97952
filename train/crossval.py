"""Scoring on held-out test data, and subject-independent k-fold cross-validation."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import checkpoint
from .batches import ClipSampler, infer
from .config import TrainConfig
from .metrics import classification_report
from .prepare import prepare
from .start import pick_device
from .trainer import train


def score_test(cfg: TrainConfig, ckpt: Path, fold: int | None = None, clip_length: int = 1) -> dict:
    """A checkpoint on its test split (never seen in training or selection), on un-augmented clips:
    T = 1 single frames, or T frames ending at each test item (real sequences, else jittered views).
    Where the protocol has no test split (FER2013 here: PrivateTest is held back) it scores the
    validation split, which also selected the epoch: `role` says which ("test" or "val")."""
    model, meta = checkpoint.load(ckpt)
    device = pick_device(cfg.device)
    model.to(device)
    ds, decoded, plan, _ = prepare(cfg.data, size=meta.input_size, seed=cfg.seed, folds=cfg.folds, protocol=cfg.protocol)
    # FER2013 here has no PrivateTest: its protocol reports PublicTest, the validation split
    role = "test" if plan.folds or "test" in plan.roles else "val"
    idx = np.array(plan.indices(role, fold))
    y = np.array([meta.labels.index(ds.items[i].label) for i in idx])
    sampler = ClipSampler(ds.items, decoded.pixels, meta.mean, meta.std, clip_length, augment=False, seed=cfg.seed)
    logits = infer(model, (sampler.batch(idx[s:s + 256]) for s in range(0, len(idx), 256)), device)
    return {"role": role, "split": plan.roles.get(role, f"fold{fold}"), **classification_report(y, logits, list(meta.labels))}


def cross_validate(cfg: TrainConfig, test_clip_length: int | None = None) -> dict:
    results = []
    for fold in range(cfg.folds):
        print(f"=== fold {fold + 1}/{cfg.folds}", flush=True)
        fold_cfg = replace(cfg, fold=fold, out=cfg.out / f"fold{fold}")
        summary = train(fold_cfg)
        test = score_test(cfg, fold_cfg.out / "best.pt", fold, test_clip_length or cfg.clip_length)
        results.append({"fold": fold, "best_epoch": summary["best_epoch"], "val_accuracy": summary["best_val_accuracy"],
                        "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"], "n": test["n"],
                        "manifest_sha256": summary["manifest_sha256"]})
        print(f"fold {fold}: test accuracy {test['accuracy']:.4f} (n={test['n']})", flush=True)
    acc = np.array([r["test_accuracy"] for r in results])
    f1 = np.array([r["test_macro_f1"] for r in results])
    report = {"model": cfg.model, "data": cfg.data, "folds": cfg.folds, "protocol": cfg.protocol,
              "clip_length": cfg.clip_length, "model_kwargs": cfg.model_kwargs,
              "test_accuracy_mean": float(acc.mean()), "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
              "test_macro_f1_mean": float(f1.mean()), "per_fold": results}
    (cfg.out / "cv.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{cfg.folds}-fold CV ({cfg.protocol}): accuracy {acc.mean():.4f} ± {report['test_accuracy_std']:.4f}, "
          f"macro-F1 {f1.mean():.4f} -> {cfg.out / 'cv.json'}")
    return report
