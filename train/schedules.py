"""Learning-rate schedules (a row each), and the run's clock.

- one-cycle: torch's one-cycle over a fixed number of epochs (`edgefer train`'s original);
  `--minutes`, if given, stops the run after the epoch that exceeds it.
- cosine-budget: linear warm-up, then a cosine decay over a wall-clock budget (`--minutes`),
  so a run on a lent machine always ends inside its lease with a complete decay; `--epochs`,
  if given, caps it (progress is the larger of the two fractions).
A schedule sets the lr before each step (`begin_step`, False once it is over), advances after
it (`end_step`) and says before each epoch whether the run is over (`stop`: a reason or None).
Its state goes into last.pt, so a resumed run continues the same schedule, budget included.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from edgefer.runtime.errors import EdgeferError

from .config import TrainConfig


class Clock:
    """Seconds of training, carried across --resume. Schedules read `agreed()`: under DDP rank 0's
    reading, so no two processes take a different learning rate or stop at a different step."""

    def __init__(self, already: float = 0.0, agree: Callable[[float], float] = lambda s: s):
        self.t0, self.agree = time.time() - already, agree

    def seconds(self) -> float:
        return time.time() - self.t0

    def minutes(self) -> float:
        return self.seconds() / 60

    def agreed(self) -> float:
        """Seconds as rank 0 reads them (a collective: every rank calls it at the same point)."""
        return self.agree(self.seconds())


class OneCycle:
    def __init__(self, opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, clock: Clock):
        if not cfg.epochs:
            raise EdgeferError(None, "the one-cycle schedule needs --epochs", "pass --epochs N, or --schedule cosine-budget --minutes M")
        self.cfg, self.clock = cfg, clock
        if float(cfg.warmup * (cfg.epochs * steps_per_epoch)) - 1 == 0:   # torch divides by (warm-up steps - 1)
            raise EdgeferError(None, f"a one-cycle warm-up of exactly one step ({cfg.epochs} epochs x {steps_per_epoch} "
                                     f"steps x --warmup {cfg.warmup}) cannot be scheduled", "change --warmup or --epochs")
        self.sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs,
                                                         steps_per_epoch=steps_per_epoch, pct_start=cfg.warmup)

    def begin_step(self, epoch: int, step: int) -> bool:
        return True

    def end_step(self) -> None:
        self.sched.step()

    def stop(self, epoch: int) -> str | None:
        if epoch and self.cfg.minutes and self.clock.agreed() / 60 > self.cfg.minutes:
            return "time-budget"
        return "epochs" if epoch >= self.cfg.epochs else None

    @property
    def lr(self) -> float:
        return self.sched.get_last_lr()[0]

    def state_dict(self) -> dict[str, Any]:
        return {"scheduler": self.sched.state_dict(), "epochs": self.cfg.epochs}

    def load_state_dict(self, st: dict[str, Any], path: Path) -> None:
        if st.get("epochs", self.cfg.epochs) != self.cfg.epochs:
            raise EdgeferError(path, f"was scheduled for {st['epochs']} epochs; resuming keeps that schedule",
                               f"pass --epochs {st['epochs']}")
        self.sched.load_state_dict(st["scheduler"])


class CosineBudget:
    def __init__(self, opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, clock: Clock):
        if not cfg.minutes:
            raise EdgeferError(None, "the cosine-budget schedule needs --minutes", "pass --minutes M (the wall-clock budget)")
        self.opt, self.cfg, self.clock, self.steps = opt, cfg, clock, steps_per_epoch
        self.progress = self.scale = 0.0

    def begin_step(self, epoch: int, step: int) -> bool:
        cfg = self.cfg
        self.progress = self.clock.agreed() / (cfg.minutes * 60)
        if cfg.epochs:
            self.progress = max(self.progress, (epoch + step / self.steps) / cfg.epochs)
        if self.progress >= 1.0:
            return False
        p, w = self.progress, cfg.warmup
        self.scale = p / w if p < w else 0.5 * (1 + math.cos(math.pi * (p - w) / (1 - w)))
        for grp in self.opt.param_groups:
            grp["lr"] = cfg.lr * self.scale
        return True

    def end_step(self) -> None:
        pass

    def stop(self, epoch: int) -> str | None:
        if self.progress >= 1.0:
            return "time-budget"
        return "epochs" if self.cfg.epochs and epoch >= self.cfg.epochs else None

    @property
    def lr(self) -> float:
        return self.cfg.lr * self.scale

    def state_dict(self) -> dict[str, Any]:
        return {"minutes": self.cfg.minutes, "epochs": self.cfg.epochs, "progress": self.progress}

    def load_state_dict(self, st: dict[str, Any], path: Path) -> None:
        if st.get("minutes") != self.cfg.minutes:
            raise EdgeferError(path, f"was scheduled over {st.get('minutes')} minutes; resuming keeps that schedule",
                               f"pass --minutes {st.get('minutes')}")
        if st.get("epochs") != self.cfg.epochs:
            raise EdgeferError(path, f"was capped at {st.get('epochs')} epochs; resuming keeps that schedule",
                               f"pass --epochs {st.get('epochs')}" if st.get("epochs") else "drop --epochs")
        self.progress = st["progress"]


SCHEDULES: dict[str, Callable[..., OneCycle | CosineBudget]] = {
    "one-cycle": OneCycle,
    "cosine-budget": CosineBudget,
}


def schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, clock: Clock):
    if cfg.schedule not in SCHEDULES:
        raise EdgeferError(None, f"unknown schedule '{cfg.schedule}'", f"use one of {sorted(SCHEDULES)}")
    return SCHEDULES[cfg.schedule](opt, cfg, steps_per_epoch, clock)
