"""A run's record: the validation score of an epoch, metrics.json and curves.png at the end."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import checkpoint
from .config import TrainConfig
from .fake_quant import baked_copy
from .metrics import classification_report
from .models.profile import mflops_per_frame, params
from .pack import SplitData


def score(logits: np.ndarray, y: np.ndarray, labels: list[str]) -> dict | None:
    """Validation loss and classification report; None if the weights diverged (non-finite logits)."""
    if not np.isfinite(logits).all():
        return None
    loss = float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)))
    return {"loss": loss, **classification_report(y, logits, labels)}


def record(cfg: TrainConfig, kwargs: dict[str, Any], data: SplitData, source, model: nn.Module, best: dict,
           history: list[dict], stop_reason: str, minutes: float, device: torch.device, amp: bool,
           processes: int = 1) -> dict:
    """metrics.json (config, history, split-manifest hash, the best weights' report with
    horizontal-flip test-time augmentation, params, MFLOPs) and curves.png; returns the summary."""
    y_val = data.y[data.val_idx]
    trained = baked_copy(model).cpu()             # the shapes as trained (e.g. pruned), rounding baked in
    tta = None
    if (cfg.out / "best.pt").exists():
        net, _ = checkpoint.load(cfg.out / "best.pt")
        net = net.to(device)
        if best["logits"] is None:                # a resumed run that did not improve on its best
            best.update(logits=source.val_logits(net, amp))
            best.update(report=score(best["logits"], y_val, data.labels))
        flipped = source.val_logits(net, amp, flip=True)
        tta = float(((best["logits"] + flipped).argmax(1) == y_val).mean())
    report = best["report"] or {}
    summary = {
        "model": cfg.model, "kwargs": kwargs, "data": cfg.data, "dataset": data.spec, "fold": cfg.fold,
        "labels": data.labels, "manifest_sha256": data.manifest_sha256, "train_images": int(len(data.train_idx)),
        "train_samples_per_epoch": int(source.samples), "val_split": data.val_split, "val_images": int(len(data.val_idx)),
        "normalization": {"mean": source.mean, "std": source.std},
        "best_epoch": best["epoch"], "best_weights": best["weights"], "best_val_accuracy": best["acc"],
        "best_val_macro_f1": report.get("macro_f1"), "val_accuracy_hflip_tta": tta,
        "stop_reason": stop_reason, "epochs_run": len(history), "minutes": minutes, "device": str(device),
        "processes": processes,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "torch": torch.__version__,
        "params": params(trained), "mflops_per_frame": mflops_per_frame(trained, data.size),
        "pruned": bool(getattr(trained, "pruned", False)), "config": cfg.to_json(), "history": history,
        "report": report,
    }
    (cfg.out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_curves(history, cfg.out / "curves.png", f"{cfg.model} on {data.name}")
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
    for name in ("raw", "ema") if "val_acc_ema" in history[0] else ():
        b.plot(ep, [h[f"val_acc_{name}"] for h in history], ":", label=f"validation ({name} weights)")
    b.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
