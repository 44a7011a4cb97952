"""Which target should the shipped model learn, FERPlus' votes or FER2013's labels, or a mix?

The same PublicTest faces carry two label sets (FERPlus' crowd majority, FER2013's single
label; they agree on 67%), and the product is scored on both. This probe answers the question
cheaply before a long run: it freezes a checkpoint's encoder, fits a linear 8-class head on
the FERPlus Training faces for each mix weight W of FER2013's one-hot in the vote target, and
scores each head on PublicTest against both label sets.

    python -m edgefer.train.label_mix_probe runs/ferplus.pack --init default
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from . import checkpoint, pack
from .batches import eval_batches
from .config import TrainConfig
from .default_model import resolve
from .sources import training_targets


@torch.no_grad()
def features(model: torch.nn.Module, pixels: np.ndarray, idx: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """Inputs of the model's label head (its penultimate features), one row per face."""
    got: list[torch.Tensor] = []
    hook = model.head.register_forward_hook(lambda m, inp, out: got.append(inp[0].detach()))
    model.eval()
    for x in eval_batches(pixels, idx, mean, std, 512):
        model(x)
    hook.remove()
    return torch.cat(got)


def fit_head(f: torch.Tensor, t: torch.Tensor, steps: int = 400) -> torch.nn.Linear:
    """Full-batch L-BFGS on soft cross-entropy with a little L2: a linear probe."""
    torch.manual_seed(0)
    head = torch.nn.Linear(f.shape[1], t.shape[1])
    opt = torch.optim.LBFGS(head.parameters(), lr=1, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(head(f), t) + 1e-4 * head.weight.pow(2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return head


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a FERPlus pack or spec joined to FER2013 (edgefer data pack ferplus:DIR OUT)")
    p.add_argument("--init", default="default", help="checkpoint whose encoder is frozen (default: the shipped model)")
    p.add_argument("--weights", default="0,0.15,0.3,0.5,0.7,1", help="mix weights W of FER2013's one-hot to try")
    p.add_argument("--out", default="runs/probe/label-mix.json")
    a = p.parse_args(argv)
    d = pack.load(a.data, None)
    model, meta = checkpoint.load(resolve(a.init))
    ftr = features(model, d.pixels, d.train_idx, meta.mean, meta.std)
    fva = features(model, d.pixels, d.val_idx, meta.mean, meta.std)
    y, alt = d.y[d.val_idx], d.alt_y[d.val_idx]
    rows = []
    for w in (float(v) for v in a.weights.split(",")):
        cfg = TrainConfig(model="edge", data=a.data, alt_label_weight=w)
        t = torch.from_numpy(training_targets(d, cfg)[d.train_idx])
        pred = fit_head(ftr, t)(fva).argmax(1).numpy()
        has = alt >= 0
        row = {"alt_label_weight": w, "ferplus_acc": float((pred == y).mean()),
               "fer2013_acc": float((pred[has] == alt[has]).mean()), "n": int(len(y))}
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"init": a.init, "data": a.data, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
