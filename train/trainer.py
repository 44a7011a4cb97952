"""`edgefer train`: one model, one dataset, one split -> checkpoints, curves, metrics.

Reads top to bottom: config (defaults with a comment each) -> data (decode, split,
normalisation fitted on the training split, balancing of training indices only) ->
model -> epoch loop (augmented clips, Adam + cosine schedule, AMP on CUDA) -> best/last
checkpoints, early stopping on validation accuracy, curves PNG and metrics JSON naming
the split manifest. Validation is PublicTest for FER2013 (the official model-selection
split); test splits are only ever touched by `edgefer evaluate` and CV's final scoring.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata

from . import checkpoint, models, normalization
from .balance import balance
from .batches import ClipSampler, eval_batches, infer
from .commands import prepare
from .metrics import classification_report
from .models.profile import mflops_per_frame, params


@dataclass
class TrainConfig:
    model: str                                   # registry name
    data: str                                    # dataset spec NAME:PATH
    out: Path = Path("runs/train")               # run folder
    preset: str | None = None                    # named hyper-parameter set of the model (e.g. case-I)
    model_kwargs: dict[str, Any] = field(default_factory=dict)   # constructor overrides
    size: int | None = None                      # input side; default: the model's paper size
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3                             # Adam, the papers' rate
    weight_decay: float = 1e-4                   # L2, as the resrnn papers use
    label_smoothing: float = 0.0
    warmup: float = 0.1                          # fraction of the one-cycle schedule spent warming up
    balance: str = "none"                        # none | oversample | downsample (training split only)
    augment: bool = True                         # the papers' augmentation, training only
    clip_length: int = 1                         # T of training clips
    patience: int = 8                            # early stopping: epochs without a better val accuracy
    max_minutes: float | None = None             # wall-clock budget; stops after the epoch that exceeds it
    protocol: str = "dataset"                    # split protocol: the dataset's own, or a leaky one (experiments only)
    fold: int | None = None                      # k-fold datasets: which fold is the test fold
    folds: int = 10
    seed: int = 0
    device: str = "auto"                         # auto | cpu | cuda
    threads: int | None = None                   # CPU threads for torch
    resume: Path | None = None                   # a last.pt to continue from
    init: Path | None = None                     # warm start: weights of matching shape from another checkpoint
    transform: Callable[[nn.Module], nn.Module] | None = None  # applied after --init, e.g. channel pruning
    progress: bool = True                        # progress bar per epoch
    log_epochs: bool = True                      # one summary line per epoch on stdout


def resolve_hparams(cfg: TrainConfig) -> dict[str, Any]:
    """Model defaults < preset < explicit --set overrides; presets may also set batch size / lr."""
    entry = models.entry(cfg.model)
    if cfg.preset and cfg.preset != "paper" and cfg.preset not in entry.presets:
        raise EdgeferError(None, f"model '{cfg.model}' has no preset '{cfg.preset}'",
                           f"use one of {['paper', *entry.presets]}")
    merged = {**(entry.presets.get(cfg.preset, {}) if cfg.preset else {}), **cfg.model_kwargs}
    if "batch_size" in merged:
        cfg.batch_size = int(merged["batch_size"])
    if "lr" in merged:
        cfg.lr = float(merged["lr"])
    return models.constructor_kwargs(cfg.model, merged)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgeferError(None, "--device cuda asked for, but no CUDA device is visible", "use --device cpu")
    return torch.device(name)


def warm_start(model: nn.Module, source: Path) -> int:
    """Copy every tensor whose name and shape match (e.g. a FER2013-trained encoder into a CK+
    model with another label set); the rest keeps its fresh initialisation."""
    from .default_model import resolve
    src = checkpoint.load_payload(resolve(str(source)))["state_dict"]
    own = model.state_dict()
    matched = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise EdgeferError(source, "shares no weights with this model", "warm-start from a checkpoint of the same architecture")
    model.load_state_dict(matched, strict=False)
    return len(matched)


@torch.no_grad()
def validate(model: nn.Module, pixels: np.ndarray, idx: np.ndarray, y: np.ndarray, mean: float, std: float,
             labels: list[str], device: torch.device, batch_size: int = 256) -> dict | None:
    logits = infer(model, eval_batches(pixels, idx, mean, std, batch_size), device)
    if not np.isfinite(logits).all():
        return None                    # the weights diverged: the caller stops and keeps the last good checkpoint
    loss = float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)))
    return {"loss": loss, **classification_report(y, logits, labels)}


def train(cfg: TrainConfig, on_epoch: Callable[[int, float], None] | None = None) -> dict:
    """Train one model; `on_epoch(epoch, val_accuracy)` may raise to stop early (search prunes this way)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    kwargs = resolve_hparams(cfg)
    entry = models.entry(cfg.model)
    size = cfg.size or entry.input_size

    # ---- data: decode once, split, fit normalisation on the training split, balance its indices
    ds, decoded, plan, man = prepare(cfg.data, size=size, seed=cfg.seed, folds=cfg.folds, protocol=cfg.protocol)
    train_idx = np.array(plan.indices("train", cfg.fold))
    val_idx = np.array(plan.indices("val", cfg.fold))
    labels = list(ds.labels)
    label_id = {lab: i for i, lab in enumerate(labels)}
    y_all = np.array([label_id[it.label] for it in ds.items], np.int64)
    mean, std = normalization.fit(decoded.pixels[train_idx])
    sample_idx = balance(train_idx, [ds.items[i].label for i in train_idx], cfg.balance, cfg.seed)
    sampler = ClipSampler(ds, decoded.pixels, mean, std, cfg.clip_length, cfg.augment, cfg.seed)

    # ---- model, optimiser, schedule
    model = models.create(cfg.model, len(labels), **kwargs)
    if cfg.init:
        warm_start(model, cfg.init)
    if cfg.transform:
        model = cfg.transform(model)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(sample_idx) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
                                                pct_start=cfg.warmup)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    meta = ModelMetadata(cfg.model, labels, size, mean, std, clip_length=cfg.clip_length, streaming=entry.streaming,
                         provenance={"dataset": cfg.data, "manifest_sha256": man["manifest_sha256"], "fold": cfg.fold,
                                     "train_split": plan.roles.get("train", "folds"), "seed": cfg.seed,
                                     "init": str(cfg.init) if cfg.init else None})
    cfg.out.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    start_epoch, best_acc, best_epoch = 0, -1.0, -1
    if cfg.resume:
        payload = checkpoint.load_payload(cfg.resume)
        if payload.get("pruned"):
            checkpoint.fit_shapes(model, payload["state_dict"])
        model.load_state_dict(payload["state_dict"])
        st = payload["extra"].get("train_state") or {}
        if not st:
            raise EdgeferError(cfg.resume, "has no training state to resume from", "resume from a last.pt")
        if st.get("epochs", cfg.epochs) != cfg.epochs:
            raise EdgeferError(cfg.resume, f"was scheduled for {st['epochs']} epochs; resuming keeps that schedule",
                               f"pass --epochs {st['epochs']}")
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start_epoch, best_acc, best_epoch, history = st["epoch"] + 1, st["best_acc"], st["best_epoch"], st["history"]
    rng = np.random.default_rng(cfg.seed + start_epoch)
    t0 = time.time()
    stop_reason = "epochs"

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        order = rng.permutation(sample_idx)
        tot_loss = tot_correct = seen = 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not cfg.progress, mininterval=2.0)
        for step in bar:
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            x, y = sampler.batch(idx).to(device), torch.from_numpy(y_all[idx]).to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                logits = model(x)
                loss = loss_fn(logits, y)
            if not torch.isfinite(loss):
                stop_reason = "nan"
                break
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            tot_loss += loss.item() * len(idx)
            tot_correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            bar.set_postfix(loss=f"{tot_loss / seen:.3f}", acc=f"{tot_correct / seen:.3f}")
        val = None if stop_reason == "nan" else validate(model, decoded.pixels, val_idx, y_all[val_idx], mean, std,
                                                          labels, device)
        if val is None:                # diverged: stop; last.pt still holds the previous, finite epoch
            stop_reason = "nan"
            break
        row = {"epoch": epoch + 1, "train_loss": tot_loss / seen, "train_acc": tot_correct / seen,
               "val_loss": val["loss"], "val_acc": val["accuracy"], "val_macro_f1": val["macro_f1"],
               "lr": sched.get_last_lr()[0], "minutes": (time.time() - t0) / 60}
        history.append(row)
        improved = val["accuracy"] > best_acc
        if improved:
            best_acc, best_epoch = val["accuracy"], epoch + 1
            meta.metrics = {"val_split": plan.roles.get("val", f"fold{cfg.fold}+1"), "val_accuracy": val["accuracy"],
                            "val_macro_f1": val["macro_f1"], "epoch": epoch + 1}
            checkpoint.save(cfg.out / "best.pt", model, cfg.model, kwargs, meta)
        state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch, "epochs": cfg.epochs, "best_acc": best_acc,
                 "best_epoch": best_epoch, "history": history}
        checkpoint.save(cfg.out / "last.pt", model, cfg.model, kwargs, meta, {"train_state": state})
        if cfg.log_epochs:
            print(f"epoch {epoch + 1:3d}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}  "
                  f"val loss {row['val_loss']:.3f} acc {row['val_acc']:.4f} F1 {row['val_macro_f1']:.3f}"
                  f"{'  *' if improved else ''}  [{row['minutes']:.1f} min]", flush=True)
        if on_epoch is not None:
            on_epoch(epoch + 1, val["accuracy"])
        if epoch + 1 - best_epoch >= cfg.patience:
            stop_reason = "early-stopping"
            break
        if cfg.max_minutes and (time.time() - t0) / 60 > cfg.max_minutes:
            stop_reason = "time-budget"
            break

    model_for_profile = models.create(cfg.model, len(labels), **kwargs)
    if cfg.transform:                  # profile the model as trained (e.g. pruned), not the registry default
        model_for_profile = copy.deepcopy(model).cpu()
    summary = {
        "model": cfg.model, "kwargs": kwargs, "data": cfg.data, "fold": cfg.fold, "labels": labels,
        "manifest_sha256": man["manifest_sha256"], "train_images": int(len(train_idx)), "train_samples_per_epoch": int(len(sample_idx)),
        "val_split": plan.roles.get("val"), "val_images": int(len(val_idx)), "normalization": {"mean": mean, "std": std},
        "best_epoch": best_epoch, "best_val_accuracy": best_acc, "stop_reason": stop_reason,
        "epochs_run": len(history), "minutes": (time.time() - t0) / 60, "device": str(device),
        "params": params(model_for_profile), "mflops_per_frame": mflops_per_frame(model_for_profile, size),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items() if k != "transform"},
        "transformed": cfg.transform is not None, "history": history,
    }
    (cfg.out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_curves(history, cfg.out / "curves.png", f"{cfg.model} on {ds.name}")
    return summary


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    if not history:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], label="train")
    a.plot(ep, [h["val_loss"] for h in history], label="validation")
    a.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    b.plot(ep, [h["train_acc"] for h in history], label="train (augmented)")
    b.plot(ep, [h["val_acc"] for h in history], label="validation")
    b.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
