"""`edgefer experiment NAME`: the controlled comparisons behind the README's claims.

Each trains the same model under two protocols and reports the gap, so the effect is
the protocol's and nothing else's:
- leakage-ckplus: CK+ k-fold with frames split at random vs folds grouped by subject.
- leakage-oversampling: paper 002's order (oversample the whole dataset, then split at
  random) vs oversampling the training split only and testing on the official split.
- temporal-ablation: the edge encoder with its GRU vs per-frame logit averaging, on real
  CK+ sequences (k-fold) or jittered clips of still images.
A figure is labelled by the split it comes from: k-fold test folds are `test_*`; on FER2013
the scored split is PublicTest, which also selected the epoch (PrivateTest is held back), so
it is `val_*` there, and the README reports it as validation accuracy.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Callable

from edgefer.runtime.errors import EdgeferError

from .config import TrainConfig
from .crossval import cross_validate, score_test
from .prepare import is_kfold
from .trainer import train


def _single_split(cfg: TrainConfig, test_clip_length: int | None = None) -> dict:
    """Train, then score the held-out split: `test_*` keys where the protocol has a test split,
    `val_*` where it has none and the scored split is the selection split (FER2013's PublicTest)."""
    s = train(cfg)
    r = score_test(cfg, cfg.out / "best.pt", clip_length=test_clip_length or cfg.clip_length)
    role = r["role"]
    return {"protocol": cfg.protocol, "balance": cfg.balance, "selection_val_accuracy": s["best_val_accuracy"],
            "scored": role, f"{role}_split": r["split"], f"{role}_accuracy": r["accuracy"],
            f"{role}_macro_f1": r["macro_f1"], f"n_{role}": r["n"]}


def _accuracy(r: dict) -> float:
    """The headline figure of a run: k-fold mean test accuracy, or the single split's scored accuracy."""
    return r["test_accuracy_mean"] if "test_accuracy_mean" in r else r[f"{r['scored']}_accuracy"]


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
            "compared": f"{leaky['scored']} split of the leaky protocol vs {honest['scored']} split of the honest one",
            "gap_points": 100 * (_accuracy(leaky) - _accuracy(honest))}


def temporal_ablation(cfg: TrainConfig) -> dict:
    if cfg.model != "edge":
        raise EdgeferError(None, "temporal-ablation compares the edge encoder's heads", "use --model edge")
    t = max(cfg.clip_length, 2)
    run = cross_validate if is_kfold(cfg.data) else _single_split
    out, scored = {}, "test"
    for head in ("gru", "mean"):
        r = run(replace(cfg, out=cfg.out / head, clip_length=t, model_kwargs={**cfg.model_kwargs, "temporal": head}))
        out[head], scored = _accuracy(r), r.get("scored", "test")
    return {"clip_length": t, "scored": scored, "recurrent": out["gru"], "frame_mean": out["mean"],
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
