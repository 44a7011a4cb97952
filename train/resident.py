"""Accelerator-resident training: the whole split on the GPU, augmentation as batched warps.

FER2013 is 71 MB of uint8 pixels, so on a GPU the per-image CPU pipeline of `trainer.py`
(albumentations, one image at a time) is the bottleneck, not the model. Here the decoded
split lives on the device, each batch is augmented there with one `affine_grid` /
`grid_sample` call (rotation, scale, shift, flip), contrast/brightness jitter and random
erasing, and the schedule is set by a wall-clock budget rather than an epoch count, so a
run on a lent machine always finishes inside its lease with a complete cosine decay.
Weights are averaged (EMA); each epoch the raw and averaged weights are scored on the
validation split and the best is kept, as `edgefer train` selects on PublicTest.

Two additions serve compression and small models: `--teacher` distils from an ensemble of
checkpoints (Hinton et al.'s soft targets, the averaged tempered softmax of the teachers on
the *same* augmented batch), and `--prune` removes channels (compress/prune.py) from the
`--init` weights before training, so a pruned model is fine-tuned here, on the GPU, with
its unpruned parent as the teacher. `--weight-fake-quant` is the int8-aware fine-tune: the
weights are trained through the rounding the int8 exporters will apply, so the shipped int8
artifacts answer as the fp32 model does.

A *pack* (`write_pack`) is the decoded, split dataset in one lzma-compressed file: the
same pixels and split manifest hash `edgefer train` would use, for machines that have no
copy of the image folders. Runs on CPU too (that is how the tests run it).
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import lzma
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgefer.compress.prune import PRUNE_METHODS
from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata

from . import checkpoint, models, normalization


# ---------------------------------------------------------------- data pack

@dataclass
class Pack:
    pixels: np.ndarray       # (N, S, S) uint8
    y: np.ndarray            # (N,) int64, index into labels
    train_idx: np.ndarray
    val_idx: np.ndarray
    labels: list[str]
    spec: str                # the dataset spec it came from
    manifest_sha256: str
    train_split: str
    val_split: str


def write_pack(spec: str, out: Path, size: int = 48, seed: int = 0) -> Path:
    """Decode and split `spec` exactly as `edgefer train` does, and store the result."""
    from .commands import prepare
    ds, decoded, plan, man = prepare(spec, size=size, seed=seed)
    labels = list(ds.labels)
    y = np.array([labels.index(it.label) for it in ds.items], np.int64)
    meta = {"labels": labels, "spec": spec, "manifest_sha256": man["manifest_sha256"],
            "train_split": plan.roles.get("train", "train"), "val_split": plan.roles.get("val", "val")}
    buf = io.BytesIO()
    np.savez(buf, pixels=decoded.pixels, y=y, train_idx=np.array(plan.indices("train")),
             val_idx=np.array(plan.indices("val")), meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    return out


def read_pack(path: Path) -> Pack:
    try:
        z = np.load(io.BytesIO(lzma.decompress(path.read_bytes())))
    except (OSError, lzma.LZMAError, ValueError) as exc:
        raise EdgeferError(path, f"is not a readable data pack ({exc})", "write one with python -m edgefer.train.resident pack") from None
    meta = json.loads(z["meta"].tobytes())
    return Pack(z["pixels"], z["y"], z["train_idx"], z["val_idx"], meta["labels"], meta["spec"],
                meta["manifest_sha256"], meta["train_split"], meta["val_split"])


# ---------------------------------------------------------------- augmentation on the device

@dataclass
class Augment:
    rotate: float = 15.0          # degrees, uniform +-
    scale: tuple[float, float] = (0.85, 1.15)
    shift: float = 0.10           # fraction of the side, uniform +-
    flip: bool = True
    contrast: float = 0.3         # x -> (x - m) * U(1 +- c) + m + U(+- brightness)
    brightness: float = 0.1
    erase_p: float = 0.5          # random erasing (Zhong et al.): one rectangle of 2-20% of the area
    erase_area: tuple[float, float] = (0.02, 0.2)


def augment(x: torch.Tensor, a: Augment, g: torch.Generator) -> torch.Tensor:
    """(B, 1, S, S) float in [0, 1] -> augmented, same shape; one random draw per image."""
    b, dev = x.shape[0], x.device
    u = lambda lo, hi: torch.rand(b, device=dev, generator=g) * (hi - lo) + lo  # noqa: E731
    ang = u(-a.rotate, a.rotate) * math.pi / 180
    s = u(*a.scale)
    sx = s * (torch.where(torch.rand(b, device=dev, generator=g) < 0.5, -1.0, 1.0) if a.flip else 1.0)
    cos, sin = torch.cos(ang), torch.sin(ang)
    # affine_grid maps output coords to input coords: zooming in by s means sampling a 1/s region
    theta = torch.stack([torch.stack([cos / sx, -sin / s, u(-a.shift, a.shift) * 2], 1),
                         torch.stack([sin / sx, cos / s, u(-a.shift, a.shift) * 2], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    m = x.mean((1, 2, 3), keepdim=True)
    x = ((x - m) * u(1 - a.contrast, 1 + a.contrast).view(b, 1, 1, 1) + m
         + u(-a.brightness, a.brightness).view(b, 1, 1, 1)).clamp(0, 1)
    if a.erase_p > 0:
        side = x.shape[-1]
        area = u(*a.erase_area) * side * side
        ratio = torch.exp(u(math.log(0.3), math.log(3.3)))
        h = (area * ratio).sqrt().clamp(1, side)
        w = (area / ratio).sqrt().clamp(1, side)
        top, left = u(0, 1) * (side - h), u(0, 1) * (side - w)
        r = torch.arange(side, device=dev, dtype=x.dtype)
        rows = (r >= top[:, None]) & (r < (top + h)[:, None])
        cols = (r >= left[:, None]) & (r < (left + w)[:, None])
        box = (rows[:, :, None] & cols[:, None, :]) & (torch.rand(b, device=dev, generator=g) < a.erase_p)[:, None, None]
        x = torch.where(box[:, None], torch.rand(x.shape, device=dev, generator=g), x)
    return x


# ---------------------------------------------------------------- training

@dataclass
class ResidentConfig:
    pack: Path
    out: Path
    model: str = "edge"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    minutes: float = 7.0            # wall-clock budget of the training loop; the schedule spans it
    optimizer: str = "sgd"          # sgd (Nesterov, momentum 0.9) | adamw
    lr: float = 0.1
    weight_decay: float = 5e-4      # on conv / linear weights only, not BN or biases
    batch_size: int = 128
    label_smoothing: float = 0.1
    warmup: float = 0.03            # fraction of the budget
    ema: float = 0.999              # per-step decay of the averaged weights; 0 disables
    augment: Augment = field(default_factory=Augment)
    seed: int = 0
    device: str = "auto"
    amp: bool = True                # fp16 autocast + loss scaling on CUDA
    max_epochs: int | None = None   # optional cap (tests)
    init: Path | None = None        # continue from this checkpoint's weights (same architecture), fresh schedule
    prune: float | None = None      # structured channel pruning ratio applied to the init weights
    prune_method: str = "uniform"   # compress/prune.py PRUNE_METHODS
    teachers: list[Path] = field(default_factory=list)   # distil from the mean of their tempered softmax
    kd_alpha: float = 0.7           # weight of the distillation term (the label term gets 1 - alpha)
    kd_temperature: float = 2.0
    weight_fake_quant: str | None = None   # "per-channel" | "mixed": train through int8 weight rounding
    log_every: int = 5              # epochs between log lines


def _param_groups(model: nn.Module, wd: float) -> list[dict]:
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def _normalize(x_u8: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """(B, S, S) uint8 -> (B, 1, S, S) float, as the metadata tells the device to normalise."""
    return (x_u8.float()[:, None] / 255 - mean) / std


@torch.no_grad()
def _logits(model: nn.Module, x_u8: torch.Tensor, mean: float, std: float, amp: bool, flip: bool = False) -> torch.Tensor:
    model.eval()
    out = []
    for i in range(0, len(x_u8), 1024):
        x = _normalize(x_u8[i:i + 1024], mean, std)
        if flip:
            x = x.flip(-1)
        with torch.autocast(x.device.type, dtype=torch.float16, enabled=amp):
            out.append(model(x[:, None]).float())
    return torch.cat(out)


class _Int8Weights(nn.Module):
    """Symmetric int8 rounding (scale = max |w| / 127) with a straight-through gradient, on the
    grid ONNX Runtime's and LiteRT's weight quantizers use, so training through it leaves the
    weights robust to that rounding. Exporters fold a following BatchNorm into the conv
    first; per-channel rounding does not care (folding scales each channel), per-tensor
    rounding does, so a per-tensor conv is rounded as folded (w * gamma / sqrt(var + eps))."""

    def __init__(self, per_tensor: bool = False, bn: nn.BatchNorm2d | None = None):
        super().__init__()
        self.per_tensor = per_tensor
        self._bn = [bn]          # a list, so the BatchNorm is not registered (twice) as a submodule

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        bn = self._bn[0]
        fold = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().view(-1, *[1] * (w.ndim - 1)) if bn is not None \
            else torch.ones(1, device=w.device)
        wf = w * fold
        amax = wf.detach().abs().amax() if self.per_tensor else wf.detach().abs().flatten(1).amax(1).view(-1, *[1] * (w.ndim - 1))
        scale = amax.clamp_min(1e-12) / 127
        q = (wf / scale).round().clamp(-127, 127) * scale / fold
        return w + (q - w).detach()


def add_weight_fake_quant(model: nn.Module, scheme: str = "per-channel") -> nn.Module:
    """scheme: "per-channel" everywhere (ONNX Runtime's int8), or "mixed" (our TFLite recipe:
    per-tensor for ordinary and pointwise convs, per-channel for depthwise convs and linear layers)."""
    from torch.nn.utils import parametrize
    mods = list(model.modules())
    for i, m in enumerate(mods):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            per_tensor = scheme == "mixed" and isinstance(m, nn.Conv2d) and m.groups == 1
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            bn = nxt if isinstance(nxt, nn.BatchNorm2d) and nxt.num_features == m.weight.shape[0] else None
            parametrize.register_parametrization(m, "weight", _Int8Weights(per_tensor, bn if per_tensor else None))
    return model


def remove_weight_fake_quant(model: nn.Module) -> nn.Module:
    """Bake the rounded weights in: the checkpoint holds plain tensors already on the int8 grid."""
    from torch.nn.utils import parametrize
    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return model


def _initial_model(cfg: ResidentConfig, pack: Pack, kwargs: dict[str, Any]) -> nn.Module:
    """Fresh, warm-started, or warm-started then pruned; a pruned `--init` keeps its shapes."""
    if cfg.init is None:
        if cfg.prune:
            raise EdgeferError(None, "--prune needs --init", "prune a trained checkpoint: --init CKPT --prune 0.5")
        return models.create(cfg.model, len(pack.labels), **kwargs)
    payload = checkpoint.load_payload(cfg.init)
    if payload["architecture"] != cfg.model or models.constructor_kwargs(cfg.model, payload["kwargs"]) != kwargs:
        raise EdgeferError(cfg.init, f"is a '{payload['architecture']}' {payload['kwargs']} checkpoint, not '{cfg.model}' {kwargs}",
                           "pass the same --model and --set as the run that wrote it")
    model, meta = checkpoint.build(payload, cfg.init)
    if meta.labels != pack.labels:
        raise EdgeferError(cfg.init, f"labels {meta.labels} differ from the pack's {pack.labels}", "use a checkpoint of this dataset")
    if cfg.prune:
        from edgefer.compress.prune import prune_encoder
        model = prune_encoder(model, cfg.prune, int(pack.pixels.shape[-1]), method=cfg.prune_method)
    return model.train()


def _teachers(cfg: ResidentConfig, pack: Pack, dev: torch.device) -> list[tuple[nn.Module, float, float]]:
    """Frozen teacher models with the normalisation each was trained with."""
    out = []
    for path in cfg.teachers:
        net, meta = checkpoint.load(path)
        if meta.labels != pack.labels or meta.input_size != int(pack.pixels.shape[-1]):
            raise EdgeferError(path, "teacher's labels or input size differ from the pack's", "distil from checkpoints of this dataset")
        net = net.to(dev).eval().requires_grad_(False)
        if dev.type == "cuda":
            net = net.to(memory_format=torch.channels_last)
        out.append((net, meta.mean, meta.std))
    return out


@torch.no_grad()
def _soft_targets(teachers: list[tuple[nn.Module, float, float]], raw: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean tempered softmax of the teachers on the student's augmented batch (pixels in [0, 1]),
    each teacher normalising it as it was trained."""
    probs = [(net(((raw - m) / s)[:, None]).float() / temperature).softmax(1) for net, m, s in teachers]
    return torch.stack(probs).mean(0)


def _distillation(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(targets || student) at temperature T, scaled by T^2 so its gradients match the label term's."""
    return F.kl_div((logits / temperature).log_softmax(1), targets, reduction="batchmean") * temperature ** 2


def fit(cfg: ResidentConfig, log=print) -> dict:
    torch.manual_seed(cfg.seed)
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    amp = cfg.amp and dev.type == "cuda"
    pack = read_pack(cfg.pack)
    mean, std = normalization.fit(pack.pixels[pack.train_idx])
    xtr = torch.from_numpy(pack.pixels[pack.train_idx]).to(dev)
    ytr = torch.from_numpy(pack.y[pack.train_idx]).to(dev)
    xva = torch.from_numpy(pack.pixels[pack.val_idx]).to(dev)
    yva = torch.from_numpy(pack.y[pack.val_idx]).to(dev)
    kwargs = models.constructor_kwargs(cfg.model, cfg.model_kwargs)
    model = _initial_model(cfg, pack, kwargs)
    if cfg.weight_fake_quant:
        add_weight_fake_quant(model, cfg.weight_fake_quant)
    model = model.to(dev)
    teachers = _teachers(cfg, pack, dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    if amp:     # one trial step: fall back to fp32 rather than lose a leased run to an unsupported fp16 kernel
        try:
            x = _normalize(xtr[:cfg.batch_size], mean, std)
            with torch.autocast(dev.type, dtype=torch.float16):
                model(x[:, None]).float().sum().backward()
            model.zero_grad(set_to_none=True)
        except RuntimeError as exc:
            log(f"{cfg.out.name}: fp16 autocast failed ({str(exc).splitlines()[0]}); training in fp32")
            amp = False
    groups = _param_groups(model, cfg.weight_decay)
    opt = (torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True) if cfg.optimizer == "sgd"
           else torch.optim.AdamW(groups, lr=cfg.lr))
    ema = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema),
                                               use_buffers=True) if cfg.ema > 0 else None)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    g = torch.Generator(device=dev).manual_seed(cfg.seed)
    n, bs = len(xtr), cfg.batch_size
    steps_per_epoch = max(1, n // bs)
    budget = cfg.minutes * 60
    size = int(pack.pixels.shape[-1])
    meta = ModelMetadata(cfg.model, pack.labels, size, mean, std, clip_length=1,
                         streaming=models.entry(cfg.model).streaming,
                         provenance={"dataset": pack.spec, "manifest_sha256": pack.manifest_sha256, "fold": None,
                                     "train_split": pack.train_split, "seed": cfg.seed,
                                     "init": str(cfg.init) if cfg.init else None,
                                     "prune_ratio": cfg.prune,
                                     "prune_method": cfg.prune_method if cfg.prune else None,
                                     "teachers": [str(t) for t in cfg.teachers] or None,
                                     "recipe": "resident"})
    cfg.out.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    best = {"val_accuracy": -1.0}
    t0 = time.time()
    epoch = 0
    progress = lr_scale = 0.0
    while progress < 1.0 and (cfg.max_epochs is None or epoch < cfg.max_epochs):
        model.train()
        order = torch.randperm(n, device=dev, generator=g)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev)
        seen = 0
        for step in range(steps_per_epoch):
            progress = (time.time() - t0) / budget
            if cfg.max_epochs is not None:
                progress = max(progress, (epoch + step / steps_per_epoch) / cfg.max_epochs)
            if progress >= 1.0:
                break
            lr_scale = progress / cfg.warmup if progress < cfg.warmup else \
                0.5 * (1 + math.cos(math.pi * (progress - cfg.warmup) / (1 - cfg.warmup)))
            for grp in opt.param_groups:
                grp["lr"] = cfg.lr * lr_scale
            idx = order[step * bs:(step + 1) * bs]
            raw = augment(xtr[idx].float()[:, None] / 255, cfg.augment, g)
            x = (raw - mean) / std
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            y = ytr[idx]
            with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
                logits = model(x[:, None])
                loss = loss_fn(logits.float(), y)
                if teachers:
                    loss = (1 - cfg.kd_alpha) * loss + cfg.kd_alpha * _distillation(
                        logits.float(), _soft_targets(teachers, raw, cfg.kd_temperature), cfg.kd_temperature)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == y).sum()
            seen += len(idx)
        epoch += 1
        seen = max(1, seen)       # the budget can end an epoch before its first step
        row = {"epoch": epoch, "train_loss": float(loss_sum) / seen, "train_acc": float(correct) / seen,
               "lr": cfg.lr * lr_scale, "minutes": (time.time() - t0) / 60}
        for name, net in (("raw", model), ("ema", ema)):
            if net is None:
                continue
            acc = float((_logits(net, xva, mean, std, amp).argmax(1) == yva).float().mean())
            row[f"val_acc_{name}"] = acc
            if acc > best["val_accuracy"]:
                best = {"val_accuracy": acc, "epoch": epoch, "weights": name,
                        "state": {k: v.detach().cpu().clone() for k, v in
                                  (net.module if name == "ema" else net).state_dict().items()}}
        history.append(row)
        if epoch % cfg.log_every == 0 or progress >= 1.0:
            log(f"{cfg.out.name}: epoch {epoch} loss {row['train_loss']:.3f} train {row['train_acc']:.3f} "
                f"val raw {row['val_acc_raw']:.4f} ema {row.get('val_acc_ema', float('nan')):.4f} "
                f"best {best['val_accuracy']:.4f} [{row['minutes']:.1f} min]")

    final = copy.deepcopy(model.cpu())     # same (possibly pruned) shapes as the trained model
    final.load_state_dict(best["state"])
    if cfg.weight_fake_quant:
        remove_weight_fake_quant(final)
    final = final.to(dev)
    from .metrics import classification_report
    val_logits = _logits(final, xva, mean, std, amp)
    report = classification_report(pack.y[pack.val_idx], val_logits.cpu().numpy(), pack.labels)
    flip_logits = _logits(final, xva, mean, std, amp, flip=True)
    tta = float(((val_logits + flip_logits).argmax(1) == yva).float().mean())
    meta.metrics = {"val_split": pack.val_split, "val_accuracy": report["accuracy"], "val_macro_f1": report["macro_f1"],
                    "epoch": best["epoch"], "weights": best["weights"]}
    final = final.cpu()
    checkpoint.save(cfg.out / "best.pt", final, cfg.model, kwargs, meta)
    from .models.profile import mflops_per_frame, params
    summary = {"model": cfg.model, "kwargs": kwargs, "data": pack.spec, "manifest_sha256": pack.manifest_sha256,
               "labels": pack.labels, "normalization": {"mean": mean, "std": std}, "device": str(dev),
               "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None, "torch": torch.__version__,
               "epochs_run": epoch, "best_epoch": best["epoch"], "best_weights": best["weights"],
               "best_val_accuracy": report["accuracy"], "best_val_macro_f1": report["macro_f1"],
               "val_accuracy_hflip_tta": tta, "params": params(final), "mflops_per_frame": mflops_per_frame(final, size),
               "config": json.loads(json.dumps(asdict(cfg), default=str)), "history": history,
               "report": report}
    (cfg.out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgefer.train.resident", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="decode + split a dataset into one compressed file")
    pk.add_argument("data")
    pk.add_argument("out", type=Path)
    fp = sub.add_parser("fit", help="train from a pack within a wall-clock budget")
    fp.add_argument("pack", type=Path)
    fp.add_argument("--out", type=Path, required=True)
    fp.add_argument("--model", default="edge")
    fp.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="constructor override, e.g. widths=[32,96,192,512]")
    for name in ("minutes", "lr", "weight_decay", "label_smoothing", "ema", "warmup"):
        fp.add_argument("--" + name.replace("_", "-"), type=float)
    for name in ("batch_size", "seed", "max_epochs", "log_every"):
        fp.add_argument("--" + name.replace("_", "-"), type=int)
    fp.add_argument("--optimizer", choices=("sgd", "adamw"))
    fp.add_argument("--init", type=Path, help="start from this checkpoint's weights (same architecture and kwargs)")
    fp.add_argument("--prune", type=float, help="remove this fraction of the --init encoder's channels, then train")
    fp.add_argument("--prune-method", choices=list(PRUNE_METHODS),
                    help="uniform: the same fraction of every channel group (L2); global: LAMP-ranked across groups")
    fp.add_argument("--teacher", dest="teachers", type=Path, action="append",
                    help="distil from this checkpoint (repeat for an ensemble)")
    fp.add_argument("--kd-alpha", type=float, help="weight of the distillation loss (default 0.7)")
    fp.add_argument("--kd-temperature", type=float, help="softmax temperature of distillation (default 2)")
    fp.add_argument("--weight-fake-quant", choices=("per-channel", "mixed"),
                    help="quantization-aware fine-tune: train through int8 weight rounding, per-channel "
                         "(ONNX Runtime) or mixed (the TFLite recipe: per-tensor pointwise convs)")
    fp.add_argument("--device")
    a = p.parse_args(argv)
    try:
        if a.cmd == "pack":
            print(write_pack(a.data, a.out))
            return 0
        over = {k: v for k, v in vars(a).items() if k not in ("cmd", "pack", "out", "model", "set") and v is not None}
        kw = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
        cfg = ResidentConfig(a.pack, a.out, a.model, kw, **over)
        s = fit(cfg, log=lambda m: print(m, flush=True))
        print(json.dumps({k: s[k] for k in ("best_val_accuracy", "best_val_macro_f1", "val_accuracy_hflip_tta",
                                              "epochs_run", "best_epoch", "best_weights", "params", "mflops_per_frame")}))
        return 0
    except EdgeferError as exc:
        print(f"edgefer: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
