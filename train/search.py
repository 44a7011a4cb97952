"""`edgefer search`: hyper-parameter search with Optuna, every trial recorded.

- grid: the papers' own grids — cnn4's grid (paper 004) or the resrnn cases I/II
  (paper 000's Table 2) — through Optuna's GridSampler.
- tpe: Tree-structured Parzen Estimator over kernel size, filters, recurrent units, batch
  size, learning rate, dropout and weight decay (whichever the model has), with median
  pruning of trials whose validation accuracy lags after a few epochs.
Trials live in `<out>/study.db` (SQLite: re-running continues the study) and are exported
to `trials.csv`; selection is on the validation split only.
"""
from __future__ import annotations

import csv
import inspect
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgefer.runtime.errors import EdgeferError

from . import models
from .config import TrainConfig
from .trainer import train

# knob -> optuna suggestion; a knob is searched only where the model's constructor (or training) takes it
SPACE: dict[str, tuple[str, Any]] = {
    "lr": ("log", (1e-4, 3e-3)),
    "weight_decay": ("log", (1e-6, 1e-3)),
    "batch_size": ("cat", [16, 32, 64]),
    "dropout": ("float", (0.1, 0.6)),
    "units": ("cat", [64, 100, 128, 228]),
    "filters": ("cat", [16, 32, 64]),
    "kernel": ("cat", [3, 5]),
    "dsn_filters": ("cat", [32, 64, 128]),
    "dtn_filters": ("cat", [64, 128]),
    "dtn_kernel": ("cat", [3, 4, 5]),
}
TRAINING = {"lr", "weight_decay", "batch_size"}


def knobs(model: str) -> list[str]:
    accepted = set(inspect.signature(models.entry(model).build).parameters) | set(models.entry(model).defaults)
    return [k for k in SPACE if k in TRAINING or k in accepted]


def grid_space(model: str) -> dict[str, list[Any]]:
    e = models.entry(model)
    if e.grid:
        return e.grid
    if e.presets:
        return {"preset": list(e.presets)}
    raise EdgeferError(None, f"model '{model}' has no published grid", "use --method tpe")


def _suggest(trial, name: str) -> Any:
    kind, arg = SPACE[name]
    if kind == "log":
        return trial.suggest_float(name, *arg, log=True)
    if kind == "float":
        return trial.suggest_float(name, *arg)
    return trial.suggest_categorical(name, arg)


def _config_for(base: TrainConfig, params: dict[str, Any], out: Path) -> TrainConfig:
    cfg = replace(base, out=out, progress=False, log_every=0, model_kwargs=dict(base.model_kwargs))
    for key, value in params.items():
        if key == "preset":
            cfg.preset = value
        elif key in ("lr", "weight_decay", "batch_size"):
            setattr(cfg, key, value)
        else:
            cfg.model_kwargs[key] = value
    return cfg


def write_trials(study, path: Path) -> None:
    """Every trial, one row: number, state, value, duration and its parameters."""
    names = sorted({k for t in study.trials for k in t.params})
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["number", "state", "val_accuracy", "seconds", "last_epoch", *names])
        for t in study.trials:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
            w.writerow([t.number, t.state.name, t.value, seconds, t.last_step, *(t.params.get(n) for n in names)])


def search(base: TrainConfig, method: str, trials: int, out: Path) -> dict:
    import optuna

    out.mkdir(parents=True, exist_ok=True)
    if method == "grid":
        space = grid_space(base.model)
        sampler = optuna.samplers.GridSampler(space, seed=base.seed)
        n_trials = 1
        for values in space.values():
            n_trials *= len(values)
    elif method == "tpe":
        space, sampler, n_trials = {}, optuna.samplers.TPESampler(seed=base.seed), trials
    else:
        raise EdgeferError(None, f"unknown search method '{method}'", "use grid or tpe")
    study = optuna.create_study(study_name=f"{base.model}-{method}", storage=f"sqlite:///{out / 'study.db'}",
                                load_if_exists=True, direction="maximize", sampler=sampler,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2))

    def objective(trial) -> float:
        params = ({k: trial.suggest_categorical(k, v) for k, v in space.items()} if method == "grid"
                  else {k: _suggest(trial, k) for k in knobs(base.model)})

        def report(epoch: int, acc: float) -> None:
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        summary = train(_config_for(base, params, out / f"trial{trial.number:03d}"), on_epoch=report)
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        trial.set_user_attr("manifest_sha256", summary["manifest_sha256"])
        print(f"trial {trial.number}: val accuracy {summary['best_val_accuracy']:.4f} {params}", flush=True)
        return summary["best_val_accuracy"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials, show_progress_bar=base.progress)
    write_trials(study, out / "trials.csv")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise EdgeferError(out, "no trial completed", "give trials more epochs or relax the pruner")
    best = study.best_trial
    result = {"model": base.model, "data": base.data, "method": method, "trials": len(study.trials),
              "completed": len(done), "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
              "best": {"number": best.number, "val_accuracy": best.value, "params": best.params,
                       "checkpoint": str(out / f"trial{best.number:03d}" / "best.pt")}}
    (out / "search.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
