"""Training with 1 vs N processes on one machine (DDP): images per second and time to a fixed accuracy.

    python -m edgefer.benchmarks.scaling --model cnn4 --data runs/scaling/fer2013-8k.pack --nproc 1,2

Every process count trains the same model on the same data with the same seed and global batch
(`edgefer train`, and `edgefer train --nproc N` for N > 1), one run after another so no run slows
another. The machine's cores are shared out: N processes get cores/N threads each. Reported per run:
median training images/s over the epochs after the first (the first includes warm-up), the
training clock's minutes until validation accuracy first reaches --target (validation included,
start-up and data loading not), wall-clock seconds of the whole command, and the best validation
accuracy. Ratios to the 1-process run are the numbers to quote; absolute times on a shared machine
are noisy. Writes scaling.json (settings, machine profile, every epoch), scaling.md and scaling.png.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .outputs import machine_profile


@dataclass
class ScalingConfig:
    model: str                                  # registry name
    data: str                                   # dataset spec or .pack (a pack: every process loads it in a second)
    out: Path = Path("runs/bench/scaling")
    nprocs: tuple[int, ...] = (1, 2)            # process counts to compare; the first is the reference
    epochs: int = 12
    batch_size: int = 64                        # the global batch, the same for every process count
    target: float = 0.45                        # validation accuracy whose first epoch is timed
    seed: int = 0
    extra: list[str] = field(default_factory=list)   # further `edgefer train` flags, the same for every run


def train_command(cfg: ScalingConfig, n: int) -> list[str]:
    threads = max(1, (os.cpu_count() or 1) // n)
    return [sys.executable, "-m", "edgefer.runtime.cli", "train", "--model", cfg.model, "--data", cfg.data,
            "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size), "--seed", str(cfg.seed),
            "--patience", "0", "--threads", str(threads), "--out", str(cfg.out / f"nproc{n}"),
            *(["--nproc", str(n)] if n > 1 else []), *cfg.extra]


def run_one(cfg: ScalingConfig, n: int) -> dict[str, Any]:
    cmd = train_command(cfg, n)
    print(f"[{_plural(n, 'process', 'es')}] {' '.join(cmd[2:])}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.run(cmd).returncode
    wall = time.perf_counter() - t0
    if rc:
        raise SystemExit(f"edgefer: error: the {n}-process run failed (exit {rc}); its message is above")
    m = json.loads((cfg.out / f"nproc{n}" / "metrics.json").read_text())
    hist = m["history"]
    rates = [h["train_images_per_s"] for h in hist[1:]] or [h["train_images_per_s"] for h in hist]
    reached = next((h for h in hist if h["val_acc"] >= cfg.target), None)
    return {"processes": n, "threads_per_process": int(m["config"]["threads"]), "images_per_s": statistics.median(rates),
            "minutes_to_target": reached["minutes"] if reached else None, "epoch_at_target": reached["epoch"] if reached else None,
            "train_minutes": m["minutes"], "wall_seconds": wall, "best_val_accuracy": m["best_val_accuracy"],
            "history": [{k: h[k] for k in ("epoch", "val_acc", "train_loss", "minutes", "train_images_per_s")} for h in hist]}


def table(result: dict[str, Any]) -> str:
    runs, cfg = result["runs"], result["settings"]
    ref = runs[0]
    lines = [f"| processes x threads | train images/s | speed-up | minutes to val acc {cfg['target']:.2f} (epoch) | "
             f"time-to-accuracy speed-up | best val acc | wall s |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        to = r["minutes_to_target"]
        reached = f"{to:.2f} ({r['epoch_at_target']})" if to else "not reached"
        ratio = f"{ref['minutes_to_target'] / to:.2f}x" if to and ref["minutes_to_target"] else "-"
        lines.append(f"| {r['processes']} x {r['threads_per_process']} | {r['images_per_s']:.0f} | "
                     f"{r['images_per_s'] / ref['images_per_s']:.2f}x | "
                     f"{reached} | {ratio} | "
                     f"{r['best_val_accuracy']:.4f} | {r['wall_seconds']:.0f} |")
    return "\n".join(lines)


def _plural(n: int, word: str, suffix: str = "s") -> str:
    return f"{n} {word}{suffix if n != 1 else ''}"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in result["runs"]:
        h = r["history"]
        ax.plot([x["minutes"] for x in h], [x["val_acc"] for x in h], "o-", ms=3,
                label=f"{_plural(r['processes'], 'process', 'es')} x {_plural(r['threads_per_process'], 'thread')}")
    ax.axhline(result["settings"]["target"], color="grey", ls=":", lw=1, label="target")
    s = result["settings"]
    ax.set(xlabel="training minutes (validation included)", ylabel="validation accuracy",
           title=f"{s['model']} on {Path(s['data']).name}, global batch {s['batch_size']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(cfg: ScalingConfig) -> dict[str, Any]:
    cfg.out.mkdir(parents=True, exist_ok=True)
    runs = [run_one(cfg, n) for n in cfg.nprocs]
    result = {"settings": {**asdict(cfg), "out": str(cfg.out)}, "profile": machine_profile(threads=0), "runs": runs}
    (cfg.out / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    (cfg.out / "scaling.md").write_text(table(result) + "\n")
    plot(result, cfg.out / "scaling.png")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgefer.benchmarks.scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cnn4", help="zoo model (default: %(default)s)")
    p.add_argument("--data", required=True, help="dataset spec or data pack, e.g. a FER2013 subset: "
                                                 "edgefer data pack 'fer2013:../shared/data/fer2013?subset=8000' X.pack")
    p.add_argument("--nproc", default="1,2", help="process counts, the first is the reference (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=64, help="global batch (default: %(default)s)")
    p.add_argument("--target", type=float, default=0.45, help="validation accuracy to time (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench/scaling")
    args, extra = p.parse_known_args(argv)
    cfg = ScalingConfig(args.model, args.data, Path(args.out), tuple(int(n) for n in args.nproc.split(",")), args.epochs,
                        args.batch_size, args.target, args.seed, extra)
    result = run(cfg)
    print(table(result))
    print(f"-> {cfg.out / 'scaling.md'}, scaling.json, scaling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
