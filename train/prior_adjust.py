"""Post-hoc logit adjustment: take the training set's class prior partly back out of the head.

A classifier trained on FER2013 / FERPlus learns their class prior (FERPlus: 29% neutral,
under 1% disgust and contempt) and carries it to a camera whose people are not distributed
that way: measured, the FERPlus-trained model calls 89% of CK+'s angry faces neutral. Menon
et al. (ICLR 2021, "Long-tail learning via logit adjustment") subtract tau * log(prior) from
the logits; tau = 1 targets a balanced test set, tau = 0 changes nothing. Baking it into the
head's bias costs nothing at inference and every exported format inherits it.

tau is chosen on the selection sets together (FER2013 and FERPlus PublicTest and CK+, as the
project chooses models), never on a test split. The prior is floored (`--floor`): a class
the training set barely holds (contempt, 0.4%) would otherwise get a boost that swamps the rest.

    python -m edgefer.train.prior_adjust runs/fp/w80/best.pt --prior runs/ferplus.pack --alt-label-weight 0.8 \\
        --select fer2013:../shared/data/fer2013@PublicTest --select ferplus:../shared/data/ferplus@PublicTest \\
        --select 'ckplus:../shared/data/ckplus48?exclude=contempt@all' --out runs/fp/w80/adjusted.pt
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from edgefer.runtime.errors import EdgeferError

from . import checkpoint, pack
from .batches import eval_batches, infer
from .config import TrainConfig
from .datasets import split_suffix
from .evaluate import targets
from .prepare import prepare
from .sources import training_targets


def training_prior(data: str, labels: list[str], alt_label_weight: float, floor: float) -> np.ndarray:
    """Mean training target over the model's labels (vote shares where the data has votes), floored, renormalised."""
    d = pack.load(data, None)
    t = training_targets(d, TrainConfig(model="edge", data=data, alt_label_weight=alt_label_weight))[d.train_idx]
    counts = t.mean(0) if t.ndim == 2 else np.bincount(t, minlength=len(d.labels)) / len(t)
    if list(d.labels) != list(labels):
        raise EdgeferError(data, f"has labels {d.labels}, the model {labels}", "pass the data the model was trained on")
    p = np.maximum(counts, floor)
    return p / p.sum()


def adjust(model: torch.nn.Module, prior: np.ndarray, tau: float) -> None:
    """head.bias -= tau * log(prior), in place."""
    with torch.no_grad():
        model.head.bias -= torch.as_tensor(tau * np.log(prior), dtype=model.head.bias.dtype)


def selection_logits(model, meta, specs: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for text in specs:
        spec, split = split_suffix(text, None)
        if split is None:
            raise EdgeferError(text, "a selection set is SPEC@SPLIT", "e.g. fer2013:../shared/data/fer2013@PublicTest")
        ds, dec, plan, _ = prepare(spec, size=meta.input_size, pre=meta.preprocessing)
        idx = np.array(plan.indices(split))
        y = targets([ds.items[i].label for i in idx], meta, spec)
        out[text] = (infer(model, eval_batches(dec.pixels, idx, meta.mean, meta.std, 512), torch.device("cpu")), y)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--prior", required=True, help="the pack or dataset the model was trained on (its training split's prior)")
    p.add_argument("--alt-label-weight", type=float, default=0.0, help="as the run was trained (the target mix)")
    p.add_argument("--floor", type=float, default=0.02, help="lowest prior a class is given (default %(default)s)")
    p.add_argument("--taus", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.8,1.0", help="candidate tau values")
    p.add_argument("--select", action="append", required=True, metavar="SPEC@SPLIT",
                   help="a selection set (repeatable); tau maximises their mean accuracy")
    p.add_argument("--out", type=Path, help="write the adjusted checkpoint here (default: only measure)")
    a = p.parse_args(argv)
    model, meta = checkpoint.load(a.checkpoint)
    prior = training_prior(a.prior, list(meta.labels), a.alt_label_weight, a.floor)
    sets = selection_logits(model, meta, a.select)
    log_prior = np.log(prior)
    rows = []
    for tau in (float(t) for t in a.taus.split(",")):
        accs = {k: float(((lg - tau * log_prior).argmax(1) == y).mean()) for k, (lg, y) in sets.items()}
        rows.append({"tau": tau, **accs, "mean": float(np.mean(list(accs.values())))})
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    best = max(rows, key=lambda r: r["mean"])
    report = {"checkpoint": str(a.checkpoint), "prior": dict(zip(meta.labels, prior.round(4).tolist())),
              "floor": a.floor, "rows": rows, "chosen_tau": best["tau"]}
    if a.out:
        payload = checkpoint.load_payload(a.checkpoint)
        adjust(model, prior, best["tau"])
        meta.provenance = {**meta.provenance, "logit_adjustment": {"tau": best["tau"], "floor": a.floor,
                                                                   "prior": report["prior"], "selected_on": a.select}}
        checkpoint.save(a.out, model, payload["architecture"], payload["kwargs"], meta)
        a.out.with_suffix(".adjust.json").write_text(json.dumps(report, indent=1) + "\n")
        print(f"tau {best['tau']} (mean {best['mean']:.4f}) baked into {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
