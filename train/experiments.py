"""`edgefer experiment NAME`: the controlled comparisons behind the README's claims.

Each trains the same model under two protocols and reports the gap, so the effect is
the protocol's and nothing else's:
- leakage-ckplus: CK+ k-fold with frames split at random vs folds grouped by subject.
- leakage-oversampling: paper 002's order (oversample the whole dataset, then split at
  random) vs oversampling the training split only and testing on the official split.
- temporal-ablation: the edge encoder with its GRU vs per-frame logit averaging, on real
  CK+ sequences (k-fold) or jittered clips of still images.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Callable

from edgefer.runtime.errors import EdgeferError

from .commands import is_kfold
from .crossval import cross_validate, score_test
from .trainer import TrainConfig, train


def _single_split(cfg: TrainConfig, test_clip_length: int | None = None) -> dict:
    s = train(cfg)
    test = score_test(cfg, cfg.out / "best.pt", clip_length=test_clip_length or cfg.clip_length)
    return {"protocol": cfg.protocol, "balance": cfg.balance, "val_accuracy": s["best_val_accuracy"],
            "test_split": test["split"], "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
            "n_test": test["n"]}


def leakage_ckplus(cfg: TrainConfig) -> dict:
    if not is_kfold(cfg.data):
        raise EdgeferError(cfg.data, "leakage-ckplus needs a subject-grouped dataset", "use --data ckplus:PATH")
    honest = cross_validate(replace(cfg, out=cfg.out / "subject-folds"))
    leaky = cross_validate(replace(cfg, out=cfg.out / "random-frames", protocol="random-frames"))
    return {"subject_independent": honest["test_accuracy_mean"], "subject_independent_std": honest["test_accuracy_std"],
            "random_frames": leaky["test_accuracy_mean"], "random_frames_std": leaky["test_accuracy_std"],
            "gap_points": 100 * (leaky["test_accuracy_mean"] - honest["test_accuracy_mean"])}


def leakage_oversampling(cfg: TrainConfig) -> dict:
    honest = _single_split(replace(cfg, out=cfg.out / "oversample-train-only", balance="oversample"))
    leaky = _single_split(replace(cfg, out=cfg.out / "oversample-then-split", protocol="oversample-then-split",
                                  balance="none"))
    return {"train_only": honest, "before_split": leaky,
            "gap_points": 100 * (leaky["test_accuracy"] - honest["test_accuracy"])}


def temporal_ablation(cfg: TrainConfig) -> dict:
    if cfg.model != "edge":
        raise EdgeferError(None, "temporal-ablation compares the edge encoder's heads", "use --model edge")
    t = max(cfg.clip_length, 2)
    run = cross_validate if is_kfold(cfg.data) else _single_split
    out = {}
    for head in ("gru", "mean"):
        r = run(replace(cfg, out=cfg.out / head, clip_length=t, model_kwargs={**cfg.model_kwargs, "temporal": head}))
        out[head] = r.get("test_accuracy_mean", r.get("test_accuracy"))
    return {"clip_length": t, "recurrent": out["gru"], "frame_mean": out["mean"],
            "gain_points": 100 * (out["gru"] - out["mean"])}


EXPERIMENTS: dict[str, Callable[[TrainConfig], dict]] = {
    "leakage-ckplus": leakage_ckplus,
    "leakage-oversampling": leakage_oversampling,
    "temporal-ablation": temporal_ablation,
}


def run_experiment(name: str, cfg: TrainConfig) -> dict:
    if name not in EXPERIMENTS:
        raise EdgeferError(None, f"unknown experiment '{name}'", f"use one of {sorted(EXPERIMENTS)}")
    result = {"experiment": name, "model": cfg.model, "data": cfg.data, "epochs": cfg.epochs, **EXPERIMENTS[name](cfg)}
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "experiment.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
