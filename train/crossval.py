"""Subject-independent k-fold cross-validation: train on each fold, score its held-out test fold."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from . import checkpoint
from .batches import eval_batches
from .commands import prepare
from .metrics import classification_report
from .trainer import TrainConfig, pick_device, train


def test_fold(cfg: TrainConfig, fold: int) -> dict:
    """Score a fold's best checkpoint on its test fold (never seen in training or selection)."""
    model, meta = checkpoint.load(cfg.out / f"fold{fold}" / "best.pt")
    device = pick_device(cfg.device)
    model.to(device)
    ds, decoded, plan, _ = prepare(cfg.data, size=meta.input_size, seed=cfg.seed, folds=cfg.folds)
    idx = np.array(plan.indices("test", fold))
    y = np.array([meta.labels.index(ds.items[i].label) for i in idx])
    import torch
    with torch.no_grad():
        logits = np.concatenate([model(x.to(device)).float().cpu().numpy()
                                 for _, x in eval_batches(decoded.pixels, idx, meta.mean, meta.std, 256)])
    return classification_report(y, logits, list(meta.labels))


def cross_validate(cfg: TrainConfig) -> dict:
    results = []
    for fold in range(cfg.folds):
        print(f"=== fold {fold + 1}/{cfg.folds}", flush=True)
        fold_cfg = replace(cfg, fold=fold, out=cfg.out / f"fold{fold}")
        summary = train(fold_cfg)
        test = test_fold(cfg, fold)
        results.append({"fold": fold, "best_epoch": summary["best_epoch"], "val_accuracy": summary["best_val_accuracy"],
                        "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"], "n": test["n"],
                        "manifest_sha256": summary["manifest_sha256"]})
        print(f"fold {fold}: test accuracy {test['accuracy']:.4f} (n={test['n']})", flush=True)
    acc = np.array([r["test_accuracy"] for r in results])
    f1 = np.array([r["test_macro_f1"] for r in results])
    report = {"model": cfg.model, "data": cfg.data, "folds": cfg.folds, "scheme": "subject-independent (grouped by subject)",
              "test_accuracy_mean": float(acc.mean()), "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
              "test_macro_f1_mean": float(f1.mean()), "per_fold": results}
    (cfg.out / "cv.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{cfg.folds}-fold CV: accuracy {acc.mean():.4f} ± {report['test_accuracy_std']:.4f}, "
          f"macro-F1 {f1.mean():.4f} -> {cfg.out / 'cv.json'}")
    return report
