"""Run by tests/test_ddp.py under torchrun: `edgefer train`'s own entry, with spies on what each rank does.

Each rank writes PROBE_DIR/rank<R>.json (the training indices of every batch it drew, the files it
saved) and rank<R>-step1.npy (all its parameters right after the first optimiser step).

It also registers `probe-nobn`, a small CNN without BatchNorm: on a CPU each process normalises
with its own share of the batch (torch's SyncBatchNorm is GPU-only), so only a BatchNorm-free
model can show that sharding plus gradient averaging reproduce one process to rounding.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgefer.train import models

PROBE_MODEL = "probe-nobn"


class NoBatchNorm(nn.Module):
    """conv-relu-pool-linear on each frame, mean over the clip: no BatchNorm, no dropout."""

    def __init__(self, num_classes: int, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                 nn.Linear(width * 16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        return self.net(x.flatten(0, 1)).view(b, t, -1).mean(1)


def probe_entry() -> models.ModelEntry:
    return models.ModelEntry(PROBE_MODEL, NoBatchNorm, 48, False, "test model without BatchNorm")


def run(argv: list[str]) -> int:
    from edgefer.runtime.cli import main
    from edgefer.train import batches, checkpoint, trainer

    models.REGISTRY[PROBE_MODEL] = probe_entry()
    rank, out = int(os.environ.get("RANK", 0)), Path(os.environ["PROBE_DIR"])
    seen: list[list[int]] = []
    saved: list[str] = []
    real_clips, real_save, real_optimizer = batches.ClipSampler.clips, checkpoint.save, trainer.optimizer

    def clips(self, indices):
        seen.append([int(i) for i in indices])          # training batches only: validation does not augment
        return real_clips(self, indices)

    def save(path, *args, **kwargs):
        saved.append(Path(path).name)
        return real_save(path, *args, **kwargs)

    def optimizer(model, cfg):
        opt = real_optimizer(model, cfg)
        steps = [0]

        def after(o, args, kwargs):
            steps[0] += 1
            if steps[0] == 1:
                flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy()
                np.save(out / f"rank{rank}-step1.npy", flat)
        opt.register_step_post_hook(after)
        return opt

    batches.ClipSampler.clips, checkpoint.save, trainer.optimizer = clips, save, optimizer
    rc = main(["train", *argv])
    (out / f"rank{rank}.json").write_text(json.dumps({"batches": seen, "saved": saved, "rc": rc}))
    return rc


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
