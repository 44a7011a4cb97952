"""`edgefer train`: one model, one dataset, one split -> checkpoints, curves, metrics.

Reads top to bottom: config (config.py, a comment per option) -> data (a dataset decoded and
split, or a pack; normalisation fitted on the training split) -> a batch source (sources.py:
CPU clips or device-resident tensors) -> model (fresh, warm start or pruned; int8-aware
weights; teachers) -> optimiser, weight averaging and a schedule (one-cycle over epochs or
cosine over a wall-clock budget) -> the epoch loop -> per epoch: validation of the raw (and
averaged) weights, best.pt on each improvement, last.pt with everything `--resume` needs,
early stopping -> curves PNG and metrics JSON naming the split manifest. Validation is
PublicTest for FER2013 (the official model-selection split); test splits are only ever
touched by `edgefer evaluate` and CV's final scoring.

Under torchrun the same loop runs in every process (distributed.py): the model is wrapped in
DistributedDataParallel, each rank trains on its share of every global batch and scores its
share of the validation split, sums and logits are gathered so every rank takes the same
decisions, and rank 0 alone writes files and prints.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata

from . import checkpoint, distributed, models, normalization, pack
from .config import TrainConfig
from .distill import distillation, load_teachers, soft_targets
from .fake_quant import add_weight_fake_quant, baked_copy
from .optim import averaged, optimizer
from .record import record, score
from .schedules import Clock, schedule
from .sources import batch_source
from .start import initial_model, pick_device, resolve_hparams


def fp16_works(model: nn.Module, x: torch.Tensor, log: Callable[[str], None]) -> bool:
    """One trial step under autocast: fall back to fp32 rather than lose a leased run to an unsupported fp16 kernel."""
    try:
        with torch.autocast(x.device.type, dtype=torch.float16):
            model(x).float().sum().backward()
        model.zero_grad(set_to_none=True)
        return True
    except RuntimeError as exc:
        log(f"fp16 autocast failed ({str(exc).splitlines()[0]}); training in fp32")
        return False


def alt_accuracy(logits: np.ndarray, alt_y: np.ndarray) -> float:
    """Accuracy against the second label set, over the items that have one."""
    has = alt_y >= 0
    return float((logits[has].argmax(1) == alt_y[has]).mean()) if has.any() else 0.0


def save_best(path: Path, net: nn.Module, cfg: TrainConfig, kwargs: dict, meta: ModelMetadata) -> None:
    """A CPU copy of the winning weights, int8 rounding baked in."""
    checkpoint.save(path, baked_copy(net).cpu(), cfg.model, kwargs, meta)


def train(cfg: TrainConfig, on_epoch: Callable[[int, float], None] | None = None,
          log: Callable[[str], None] = lambda m: print(m, flush=True)) -> dict:
    """Train one model; `on_epoch(epoch, val_accuracy)` may raise to stop early (search prunes this way).
    Under torchrun, one process of a data-parallel run (rank 0 returns the full summary)."""
    ranks = distributed.from_env()
    device = distributed.device_for(ranks, pick_device(cfg.device))
    with distributed.session(ranks, device):
        return _train(cfg, ranks, device, on_epoch, log if ranks.main else lambda m: None)


def _train(cfg: TrainConfig, ranks: distributed.Ranks, device: torch.device,
           on_epoch: Callable[[int, float], None] | None, log: Callable[[str], None]) -> dict:
    torch.manual_seed(cfg.seed)                  # the same initial weights on every rank
    np.random.seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg, kwargs = resolve_hparams(cfg)
    distributed.check_batch(cfg.batch_size, ranks)
    entry = models.entry(cfg.model)

    # ---- data: decoded split, normalisation fitted on its training part, the batch source
    data = pack.load(cfg.data, cfg.size, cfg.seed, cfg.folds, cfg.protocol, cfg.fold, model_size=entry.input_size)
    size, labels = data.size, data.labels
    mean, std = normalization.fit(data.pixels[data.train_idx])
    source = batch_source(data, cfg, mean, std, device, ranks)
    y_val = data.y[data.val_idx]
    alt_val = data.alt_y[data.val_idx] if data.alt_y is not None else None

    # ---- model (fresh, warm start, pruned; resumed from last.pt), teachers, precision
    model = initial_model(cfg, kwargs, labels, size)
    if cfg.weight_fake_quant:
        add_weight_fake_quant(model, cfg.weight_fake_quant)
    payload = checkpoint.load_payload(cfg.resume) if cfg.resume else None
    state: dict[str, Any] = (payload["extra"].get("train_state") or {}) if payload else {}
    if payload:
        if not state:
            raise EdgeferError(cfg.resume, "has no training state to resume from", "resume from a last.pt")
        if payload.get("pruned"):
            checkpoint.fit_shapes(model, payload["state_dict"])
        model.load_state_dict(payload["state_dict"])
    model = distributed.prepare_model(model.to(device), ranks, device, cfg.sync_bn)
    teachers = load_teachers(cfg.teachers, labels, size, device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    amp = cfg.amp and device.type == "cuda" and fp16_works(model, source.trial_batch(), log)

    # ---- optimiser, weight averaging, schedule
    opt = optimizer(model, cfg)
    ema = averaged(model, cfg.ema)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    clock = Clock(state.get("seconds", 0.0), agree=distributed.agree)
    sched = schedule(opt, cfg, source.steps_per_epoch, clock)
    meta = ModelMetadata(cfg.model, labels, size, mean, std, clip_length=cfg.clip_length, streaming=entry.streaming,
                         preprocessing=data.preprocessing,
                         provenance={"dataset": data.spec, "manifest_sha256": data.manifest_sha256, "fold": cfg.fold,
                                     "train_split": data.train_split, "seed": cfg.seed,
                                     "init": str(cfg.init) if cfg.init else None, "prune_ratio": cfg.prune,
                                     "prune_method": cfg.prune_method if cfg.prune else None,
                                     "teachers": [str(t) for t in cfg.teachers] or None,
                                     "weight_fake_quant": cfg.weight_fake_quant,
                                     "batches": cfg.batches, "schedule": cfg.schedule})
    if ranks.main:
        cfg.out.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    epoch, best = 0, {"acc": -1.0, "epoch": -1, "weights": None, "report": None, "logits": None}
    if payload:                    # --resume: everything last.pt holds
        if state.get("schedule", "one-cycle") != cfg.schedule:
            raise EdgeferError(cfg.resume, f"was a {state['schedule']} run; resuming keeps that schedule",
                               f"pass --schedule {state['schedule']}")
        sched.load_state_dict(state, cfg.resume)
        opt.load_state_dict(state["optimizer"])
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        epoch, history = state["epoch"] + 1, state["history"]
        best.update(acc=state["best_acc"], epoch=state["best_epoch"], weights=state.get("best_weights"))
    net = distributed.wrap(model, ranks, device)      # what trains; `model` is what is scored and saved
    stop_reason = None

    while (stop_reason := sched.stop(epoch)) is None:
        model.train()
        torch.manual_seed(distributed.stream_seed(cfg.seed, epoch, ranks.rank))   # dropout: per epoch and rank
        order = source.epoch_order(epoch)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = torch.zeros((), dtype=torch.int64, device=device)
        started = time.perf_counter()
        for step in tqdm(range(source.steps_per_epoch), desc=f"epoch {epoch + 1}", leave=False,
                         disable=not (cfg.progress and ranks.main), mininterval=2.0):
            if not sched.begin_step(epoch, step):
                break
            x, y, raw = source.batch(order, step, raw=bool(teachers))
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                logits = net(x)
                loss = loss_fn(logits.float(), y)
                if teachers:
                    loss = (1 - cfg.kd_alpha) * loss + cfg.kd_alpha * distillation(
                        logits.float(), soft_targets(teachers, raw, cfg.kd_temperature), cfg.kd_temperature)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.end_step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.argmax(1) == (y.argmax(1) if y.ndim == 2 else y)).sum()
            seen += len(y)
        distributed.all_sum(loss_sum, correct, seen)    # over every rank's share
        train_seconds = time.perf_counter() - started
        epoch += 1

        # ---- validation of the raw and averaged weights; the better one competes with the best so far
        nets = {"raw": model, **({"ema": ema.module} if ema is not None else {})}
        for m in nets.values():
            distributed.sync_buffers(m)                   # rank 0's BatchNorm statistics everywhere
        logits_of = {name: distributed.gather_rows(source.val_logits(m, amp, ranks=ranks), ranks)
                     for name, m in nets.items()}
        scored = {name: score(lg, y_val, labels) for name, lg in logits_of.items()}
        if not torch.isfinite(loss_sum) or any(s is None for s in scored.values()):
            stop_reason = "nan"        # diverged: last.pt and best.pt still hold the last finite epoch
            break
        # selection: val accuracy, or where the faces carry a second label set (FERPlus: FER2013's)
        # the mean of both, so one label set is not bought at the other's expense
        alt = {n: alt_accuracy(lg, alt_val) for n, lg in logits_of.items()} if alt_val is not None else {}
        sel = {n: (s["accuracy"] + alt[n]) / 2 if alt else s["accuracy"] for n, s in scored.items()}
        pick = "ema" if "ema" in sel and sel["ema"] > sel["raw"] else "raw"
        val, seen = scored[pick], max(1, int(seen))
        row = {"epoch": epoch, "train_loss": float(loss_sum) / seen, "train_acc": int(correct) / seen,
               "val_loss": val["loss"], "val_acc": val["accuracy"], "val_macro_f1": val["macro_f1"],
               **({f"val_acc_{n}": s["accuracy"] for n, s in scored.items()} if ema is not None else {}),
               **({"val_acc_alt": alt[pick], "val_select": sel[pick]} if alt else {}),
               "weights": pick, "lr": sched.lr, "minutes": clock.minutes(),
               "train_images_per_s": seen / max(train_seconds, 1e-9)}
        history.append(row)
        improved = sel[pick] > best["acc"]
        if improved:
            best.update(acc=sel[pick], epoch=epoch, weights=pick, report=val, logits=logits_of[pick])
            meta.metrics = {"val_split": data.val_split, "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"],
                            "epoch": epoch, "weights": pick, **({"val_accuracy_alt_labels": alt[pick]} if alt else {})}
            if ranks.main:
                save_best(cfg.out / "best.pt", nets[pick], cfg, kwargs, meta)
        if ranks.main:             # random streams restart each epoch from (seed, epoch, rank): none to save
            state = {"optimizer": opt.state_dict(), **sched.state_dict(), "schedule": cfg.schedule,
                     "scaler": scaler.state_dict(), "seconds": clock.seconds(),
                     **({"ema": ema.state_dict()} if ema is not None else {}), "epoch": epoch - 1,
                     "best_acc": best["acc"], "best_epoch": best["epoch"], "best_weights": best["weights"],
                     "history": history, "processes": ranks.world}
            checkpoint.save(cfg.out / "last.pt", model, cfg.model, kwargs, meta, {"train_state": state})
        if cfg.log_every and epoch % cfg.log_every == 0:
            log(f"epoch {epoch:3d}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}  "
                f"val loss {row['val_loss']:.3f} acc {row['val_acc']:.4f} F1 {row['val_macro_f1']:.3f}"
                f"{f' alt {alt[pick]:.4f}' if alt else ''}"
                f"{' (ema)' if pick == 'ema' else ''}{'  *' if improved else ''}  [{row['minutes']:.1f} min]")
        if on_epoch is not None:
            on_epoch(epoch, val["accuracy"])
        if cfg.patience is not None and epoch - best["epoch"] >= cfg.patience:
            stop_reason = "early-stopping"
            break

    if not ranks.main:
        return {"rank": ranks.rank, "stop_reason": stop_reason, "epochs_run": len(history), "best_epoch": best["epoch"],
                "best_val_accuracy": best["acc"], "best_weights": best["weights"], "minutes": clock.minutes(),
                "history": history}
    return record(cfg, kwargs, data, source, model, best, history, stop_reason, clock.minutes(), device, amp,
                  processes=ranks.world)
