"""What each camera-like augmentation family buys: leave-one-out runs, scored where it matters.

Rows: no camera families, all of them (two seeds: the noise floor), and all but one, for each
family; every row is the same short fine-tune (`--minutes`) from the same start, so the only
difference is the augmentation. Each row's best.pt is scored on
- the validation split, clean and corrupted by each family (the family's own transform on
  every face, one seeded draw): what the family buys against its own corruption;
- cross sets (`--cross`, e.g. CK+ zero-shot): faces of another population;
- photos through the daemon's detector and crop (`--photos`): the number a user sees.
Detection runs once (all rows share the pixel contract), so a row costs its training time.
Rows already trained (their folder holds metrics.json) are scored, not retrained: the study
resumes after an interruption.

    python -m edgefer.train.camera_ablation runs/ferplus.pack --init default --minutes 5 \\
        --cross 'ckplus:../shared/data/ckplus48?exclude=contempt' --photos folder:runs/uncropped/fer-public
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgefer.runtime.errors import EdgeferError

from . import checkpoint, datasets, pack
from .batches import eval_batches, infer
from .camera_augment import FAMILIES, camera, framing
from .config import CAMERA_FAMILIES, TrainConfig, from_recipe
from .device_augment import Augment, augment
from .evaluate import targets
from .prepare import prepare
from .trainer import train


def rows() -> list[tuple[str, str, int]]:
    """(row name, --camera value, seed)."""
    return ([("none", "none", 0), ("all", "all", 0), ("all (seed 1)", "all", 1)]
            + [(f"all - {f}", f"all-{f}", 0) for f in CAMERA_FAMILIES])


def corrupted(pixels: np.ndarray, family: str, seed: int = 0) -> np.ndarray:
    """Every face corrupted by one family (probability 1), one seeded draw: uint8 (N, S, S)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(pixels).float()[:, None] / 255
    if family == "framing":
        a = replace(framing(Augment()), flip=False, contrast=0.0, brightness=0.0, erase_p=0.0)
        x = augment(x, a, g)
    else:
        x = FAMILIES[family](x, g, p=1.0)
    return (x[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(1) == y).mean())


def _logits(model: torch.nn.Module, pixels: np.ndarray, mean: float, std: float) -> np.ndarray:
    return infer(model, eval_batches(pixels, np.arange(len(pixels)), mean, std, 512), torch.device("cpu"))


class Scorer:
    """The fixed faces every row is scored on, prepared once."""

    def __init__(self, data: pack.SplitData, cross: list[str], photos: list[str], meta, progress: bool):
        self.val = data.pixels[data.val_idx]
        self.y = data.y[data.val_idx]
        self.alt = data.alt_y[data.val_idx] if data.alt_y is not None else None
        self.labels = data.labels
        self.bad = {f: corrupted(self.val, f) for f in CAMERA_FAMILIES}
        self.cross: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for spec in cross:
            ds, decoded, plan, _ = prepare(spec, size=data.size, pre=meta.preprocessing)
            idx = plan.indices("all")
            self.cross[spec] = (decoded.pixels[idx], targets([ds.items[i].label for i in idx], meta, spec))
        self.photos: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for spec in photos:
            from .detect_eval import detect_faces
            ds = datasets.load(spec)
            idx = list(range(len(ds.items)))
            px, found, _ = detect_faces(ds, idx, meta, progress=progress)
            self.photos[spec] = (px, found, targets([ds.items[i].label for i in idx], meta, spec))

    def score(self, ckpt: Path) -> dict:
        model, meta = checkpoint.load(ckpt)
        if list(meta.labels) != list(self.labels):
            raise EdgeferError(ckpt, f"predicts {meta.labels}, not the study's {self.labels}", "train every row on the same data")
        m, s = meta.mean, meta.std
        out = {"val": _accuracy(_logits(model, self.val, m, s), self.y)}
        if self.alt is not None:
            has = self.alt >= 0
            out["val_alt_labels"] = _accuracy(_logits(model, self.val[has], m, s), self.alt[has])
        out["val_corrupted"] = {f: _accuracy(_logits(model, px, m, s), self.y) for f, px in self.bad.items()}
        out["val_corrupted_mean"] = float(np.mean(list(out["val_corrupted"].values())))
        out["cross"] = {spec: _accuracy(_logits(model, px, m, s), y) for spec, (px, y) in self.cross.items()}
        out["photos"] = {}
        for spec, (px, found, y) in self.photos.items():
            pred = np.full(len(y), -1)
            if len(px):
                pred[found] = _logits(model, px, m, s).argmax(1)
            out["photos"][spec] = float((pred == y).mean())          # no face found counts as wrong
        return out


def markdown(result: dict) -> str:
    fams = list(CAMERA_FAMILIES)
    cross = list(result["cross"])
    photos = list(result["photos"])
    head = (["row", "val", "val (alt labels)", "val corrupted (mean)"] + [f"vs {f}" for f in fams]
            + [Path(c.split(":", 1)[1].split("?")[0]).name for c in cross]
            + [f"photos {Path(p.split(':', 1)[1]).name}" for p in photos])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    pct = lambda v: f"{100 * v:.2f}" if v is not None else "–"  # noqa: E731
    for r in result["rows"]:
        s = r["scores"]
        cells = ([r["row"], pct(s["val"]), pct(s.get("val_alt_labels")), pct(s["val_corrupted_mean"])]
                 + [pct(s["val_corrupted"][f]) for f in fams] + [pct(s["cross"][c]) for c in cross]
                 + [pct(s["photos"][p]) for p in photos])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a pack or dataset spec to fine-tune on (e.g. runs/ferplus.pack)")
    p.add_argument("--init", default="default", help="where every row starts (default: the shipped model)")
    p.add_argument("--minutes", type=float, default=5.0, help="training budget of each row (cosine over minutes)")
    p.add_argument("--alt-label-weight", type=float, default=0.3, help="as edgefer train's")
    p.add_argument("--cross", action="append", default=[], help="dataset spec scored whole (split all); repeatable")
    p.add_argument("--photos", action="append", default=[], help="photo set scored through detect + crop; repeatable")
    p.add_argument("--only", help="comma-separated row names to run (default: all rows)")
    p.add_argument("--out", type=Path, default=Path("runs/camera-ablation"))
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from .default_model import resolve
    init = resolve(a.init)
    chosen = [r for r in rows() if not a.only or r[0] in a.only.split(",")]
    done: list[dict] = []
    for name, fams, seed in chosen:
        out = a.out / name.replace(" ", "").replace("(", "-").replace(")", "")
        if not (out / "metrics.json").is_file():
            cfg: TrainConfig = from_recipe("resident", model="edge", data=a.data, out=out, init=init, device="cpu",
                                           optimizer="adamw", lr=1e-3, weight_decay=0.05, warmup=0.05,
                                           minutes=a.minutes, camera=fams, seed=seed, alt_label_weight=a.alt_label_weight,
                                           weight_fake_quant="mixed", log_every=1, progress=False, threads=a.threads,
                                           ema=0.0)     # a short run's average lags its start: score the run's own weights
            print(f"== {name}: --camera {fams} --seed {seed}", flush=True)
            train(cfg)
        done.append({"row": name, "camera": fams, "seed": seed, "checkpoint": str(out / "best.pt")})
    data = pack.load(a.data, None)
    _, meta = checkpoint.load(Path(done[0]["checkpoint"]))
    scorer = Scorer(data, a.cross, a.photos, meta, progress=True)
    for r in done:
        r["scores"] = scorer.score(Path(r["checkpoint"]))
    result = {"data": a.data, "init": str(a.init), "minutes_per_row": a.minutes, "cross": a.cross, "photos": a.photos,
              "rows": done}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ablation.json").write_text(json.dumps(result, indent=1) + "\n")
    (a.out / "ablation.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
