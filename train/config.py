"""Every option of a training run, declared once with its default and a comment.

`edgefer train` builds a `TrainConfig` from its flags; the search, cross-validation,
experiments and `compress --prune` build one in code. A *recipe* is a named set of
defaults (a row of RECIPES): `clips` is the dataclass itself (Adam with a one-cycle schedule
over epochs, CPU clip batches); `resident` is the GPU recipe that made the shipped model.
Options given explicitly win over the recipe's. No torch here: the CLI reads this module.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgefer.runtime.errors import EdgeferError

# allowed values of the options that name a registry row; tests hold each equal to its registry
CHOICES: dict[str, tuple[str, ...]] = {
    "batches": ("clips", "device"),                         # sources.BATCH_SOURCES
    "schedule": ("one-cycle", "cosine-budget"),             # schedules.SCHEDULES
    "optimizer": ("adam", "adamw", "sgd"),                  # optim.OPTIMIZERS
    "balance": ("none", "oversample", "downsample"),        # balance.METHODS
    "prune_method": ("uniform", "global"),                  # compress.prune.PRUNE_METHODS
    "weight_fake_quant": ("per-channel", "mixed"),          # fake_quant.SCHEMES
}


# camera-like augmentation families (camera_augment.FAMILIES; a test holds them equal)
CAMERA_FAMILIES = ("framing", "lowres", "blur", "noise", "jpeg", "light", "tone")


def camera_families(text: str) -> tuple[str, ...]:
    """`all`, `none`, `a,b`, or `all-a,b` (every family but those: the ablation's rows)."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    base, minus = (CAMERA_FAMILIES, text[4:]) if text.startswith("all-") else ((CAMERA_FAMILIES, "") if text == "all" else ((), text))
    names = [n.strip() for n in minus.split(",") if n.strip()]
    unknown = [n for n in names if n not in CAMERA_FAMILIES]
    if unknown:
        raise EdgeferError(None, f"camera augmentation {unknown} is not one of {list(CAMERA_FAMILIES)}",
                           "pass --camera all | none | FAMILY,FAMILY | all-FAMILY")
    return tuple(f for f in base if f not in names) if base else tuple(f for f in CAMERA_FAMILIES if f in names)


@dataclass
class TrainConfig:
    # ---- what, on what
    model: str                                   # registry name (edgefer train --list)
    data: str                                    # dataset spec NAME:PATH, or a .pack file (edgefer data pack)
    out: Path = Path("runs/train")               # run folder: best.pt, last.pt, metrics.json, curves.png
    preset: str | None = None                    # named hyper-parameter set of the model (e.g. case-I)
    model_kwargs: dict[str, Any] = field(default_factory=dict)   # constructor overrides (--set)
    size: int | None = None                      # input side; default: the model's paper size (a pack: its own)
    protocol: str = "dataset"                    # split protocol: the dataset's own, or a leaky one (experiments only)
    fold: int | None = None                      # k-fold datasets: which fold is the test fold
    folds: int = 10                              # k of k-fold datasets
    seed: int = 0                                # model init, batch order, augmentation
    # ---- batches
    batches: str = "clips"                       # batch source (sources.BATCH_SOURCES): clips (CPU) | device
    batch_size: int = 64
    augment: bool = True                         # training augmentation (the source's own kind)
    camera: str = "none"                         # camera-like augmentation families (device_augment.CAMERA): all | none | a,b,...
    clip_length: int = 1                         # T of training clips (clips source only)
    balance: str = "none"                        # none | oversample | downsample (training split only)
    # ---- optimisation
    optimizer: str = "adam"                      # optim.OPTIMIZERS: adam (L2 on all) | adamw | sgd (decay on weights only)
    lr: float = 1e-3                             # peak learning rate
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    vote_targets: bool = True                    # datasets with crowd votes (FERPlus): train on the vote shares (soft cross-entropy)
    alt_label_weight: float = 0.0                # mix this weight of the dataset's other label set (FERPlus faces: FER2013's) into the target
    schedule: str = "one-cycle"                  # schedules.SCHEDULES: one-cycle (over epochs) | cosine-budget (over minutes)
    epochs: int | None = 30                      # one-cycle: its length; cosine-budget: a cap (None: the budget alone)
    minutes: float | None = None                 # wall-clock budget; one-cycle stops after the epoch that exceeds it
    warmup: float = 0.1                          # fraction of the schedule spent warming up
    ema: float = 0.0                             # per-step decay of averaged weights (0: off); raw and EMA scored each epoch
    patience: int | None = 8                     # early stopping: epochs without a better val accuracy (None: never)
    amp: bool = True                             # fp16 autocast + loss scaling on CUDA (fp32 if a trial step fails)
    # ---- where training starts, and what it is fitted for
    init: Path | None = None                     # warm start: matching weights of a checkpoint (or `default`)
    resume: Path | None = None                   # a last.pt to continue from (same schedule)
    prune: float | None = None                   # remove this fraction of the --init encoder's channels first
    prune_method: str = "uniform"                # compress/prune.py PRUNE_METHODS: uniform | global
    teachers: list[Path] = field(default_factory=list)   # distil from the mean of their tempered softmax
    kd_alpha: float = 0.7                        # weight of the distillation term (the label term gets 1 - alpha)
    kd_temperature: float = 2.0                  # softmax temperature of distillation
    weight_fake_quant: str | None = None         # per-channel | mixed: train through int8 weight rounding, baked in at save
    # ---- machine and output
    device: str = "auto"                         # auto | cpu | cuda
    threads: int | None = None                   # CPU threads for torch (per process under torchrun)
    sync_bn: bool = True                         # DDP on CUDA: BatchNorm over the global batch (CPU: always per process)
    progress: bool = True                        # progress bar per epoch
    log_every: int = 1                           # epochs between summary lines on stdout (0: none)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        for key, allowed in CHOICES.items():
            value = getattr(self, key)
            if value is not None and value not in allowed:
                raise EdgeferError(None, f"{key} '{value}' is not one of {list(allowed)}",
                                   f"pass --{key.replace('_', '-')} {' | '.join(allowed)}")

        camera_families(self.camera)
        if not 0.0 <= self.alt_label_weight <= 1.0:
            raise EdgeferError(None, f"alt_label_weight {self.alt_label_weight} is not in [0, 1]", "pass --alt-label-weight 0..1")

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


# named defaults; explicit options win
RECIPES: dict[str, dict[str, Any]] = {
    "clips": {},
    "resident": {"batches": "device", "optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4, "batch_size": 128,
                 "label_smoothing": 0.1, "schedule": "cosine-budget", "minutes": 7.0, "epochs": None,
                 "warmup": 0.03, "ema": 0.999, "patience": None, "log_every": 5, "camera": "all"},
}


def from_recipe(recipe: str, **options: Any) -> TrainConfig:
    """TrainConfig defaults < the recipe's < `options` (the ones given explicitly)."""
    if recipe not in RECIPES:
        raise EdgeferError(None, f"unknown recipe '{recipe}'", f"use one of {sorted(RECIPES)}")
    return TrainConfig(**{**RECIPES[recipe], **options})
