"""`edgefer search`: hyper-parameter search with Optuna, every trial recorded.

- grid: the papers' own grids — cnn4's grid (paper 004) or the resrnn cases I/II
  (paper 000's Table 2) — through Optuna's GridSampler.
- tpe: Tree-structured Parzen Estimator over kernel size, filters, recurrent units, batch
  size, learning rate, dropout and weight decay (whichever the model has), with median
  pruning of trials whose validation accuracy lags after a few epochs.
Trials live in `<out>/study.db` (SQLite: re-running continues the study) or in any storage
given with `--storage` (`postgresql://...`, `journal:PATH`, `sqlite:///...`), which several
workers on one or several machines share: grid points are queued once and each is claimed by
exactly one worker, TPE and the pruner see every worker's trials, and each worker waits for the
others' running trials before it reports, so every worker reports the same best trial. Trials
are exported to `trials.csv`; selection is on the validation split only.
"""
from __future__ import annotations

import csv
import inspect
import itertools
import json
import os
import socket
import threading
import time
import warnings
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
    trials = [t for t in study.trials if t.state.name != "WAITING"]     # queued grid points have not run yet
    names = sorted({k for t in trials for k in t.params})
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["number", "state", "val_accuracy", "seconds", "last_epoch", *names])
        for t in trials:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
            w.writerow([t.number, t.state.name, t.value, seconds, t.last_step, *(t.params.get(n) for n in names)])


HEARTBEAT_S = 10        # RDB storages: a worker that stops beating for GRACE_S has its trial failed (and a grid point re-queued)
GRACE_S = 60
SETUP_WAIT_S = 10       # a joining worker waits this long for the creator to mark the study as edgefer's ...
READY_WAIT_S = 120      # ... and this long for it to queue every grid point


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def open_storage(url: str | None, out: Path):
    """An Optuna storage from `--storage`: None -> `<out>/study.db`; `journal:PATH`; any SQLAlchemy URL."""
    import optuna

    if url is None:
        url = f"sqlite:///{out / 'study.db'}"
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):]).expanduser()
        if not url[len("journal:"):]:
            raise EdgeferError(None, "--storage journal: needs a file path", "use --storage journal:/shared/dir/study.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            from optuna.storages.journal import JournalFileBackend as Backend
        except ImportError:                                                     # optuna < 4.0
            from optuna.storages import JournalFileStorage as Backend
        try:
            return optuna.storages.JournalStorage(Backend(str(path)))
        except OSError as e:
            raise EdgeferError(path, f"cannot open the journal: {e.strerror or e}",
                               "give a writable path on a file system every worker can reach") from None
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if "://" not in url or scheme not in ("sqlite", "postgresql", "postgres", "mysql"):
        raise EdgeferError(None, f"unsupported --storage '{_redact(url)}'",
                           "use postgresql://user:pass@host:port/db, journal:PATH or sqlite:///PATH")
    if scheme == "postgres":
        url = "postgresql" + url[len("postgres"):]
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if scheme in ("postgresql", "postgres", "mysql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    elif scheme == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 60}}
    # a crashed worker's trial goes stale after GRACE_S; it is failed and a copy queued again
    with warnings.catch_warnings():                     # heartbeats are "experimental" in Optuna: not the user's concern
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):               # optuna >= 4.9
            retry = {"heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)}
        else:
            retry = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=2)}
    try:
        for attempt in range(5):
            try:
                # wrapped in Optuna's trial cache exactly as a study wraps it, so the study and this
                # module's queue/heartbeat calls go through one storage object
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.get_storage(optuna.storages.RDBStorage(
                        url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                        **retry))
            except Exception as e:
                # workers starting together on an empty database race to create Optuna's tables;
                # the loser sees "already exists" / "duplicate key" and finds them there on a retry
                text = str(e).lower()
                if attempt == 4 or not ("already exists" in text or "duplicate key" in text):
                    raise
                time.sleep(0.5 + attempt)
    except ImportError as e:                    # optuna re-raises the driver's ModuleNotFoundError as ImportError
        missing = getattr(e, "name", None) or getattr(e.__cause__, "name", None) or "its driver"
        raise EdgeferError(None, f"--storage {scheme}: the database driver ({missing}) is not installed",
                           "pip install 'edgefer[train]' (it brings psycopg for PostgreSQL)") from None
    except Exception as e:      # sqlalchemy errors: the driver's first line names the cause
        cause = str(getattr(e, "orig", None) or e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        low = cause.lower()
        if "password" in low or "authentication" in low or "access denied" in low:
            fix = "check the user and password in the URL"
        elif "does not exist" in low or "unknown database" in low:
            fix = "create the database first (createdb NAME) or fix its name in the URL"
        elif any(w in low for w in ("connect", "refused", "timeout", "timed out", "resolve", "host")):
            fix = "start the database server, or fix host:port in the URL (and the firewall between them)"
        else:
            fix = "check the storage URL"
        raise EdgeferError(_redact(url), f"cannot open the study storage: {cause}", fix) from None


def _signature(base: TrainConfig, method: str, space: dict[str, list[Any]]) -> dict[str, Any]:
    """What makes a study this study: a worker with a different one must not join it."""
    return {"model": base.model, "method": method, "direction": "maximize",
            "space": {k: list(v) for k, v in space.items()} if method == "grid" else knobs(base.model)}


def _open_study(storage, name: str, sig: dict[str, Any], grid: list[dict[str, Any]], sampler, pruner):
    """Create the study (and queue every grid point, once) or join the one that exists; check it matches."""
    import optuna
    from optuna.exceptions import DuplicatedStudyError

    created = False
    try:
        study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], name)
        created = True
    except DuplicatedStudyError:
        study_id = storage.get_study_id_from_name(name)
    if created:
        try:
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
            study.set_user_attr("edgefer", sig)
            for params in grid:
                study.enqueue_trial(params)
            study.set_user_attr("edgefer_ready", True)
            return study
        except BaseException:
            try:
                storage.delete_study(study_id)          # no half-made study for the next worker to join
            except Exception:
                pass
            raise
    directions = storage.get_study_directions(study_id)
    if [d.name.lower() for d in directions] != [sig["direction"]]:
        raise EdgeferError(None, f"study '{name}' optimises {', '.join(d.name.lower() for d in directions)}, "
                           f"this search {sig['direction']}s validation accuracy", "use another --study name")
    start = time.monotonic()
    while True:
        attrs = storage.get_study_user_attrs(study_id)
        waited = time.monotonic() - start
        if attrs.get("edgefer_ready") or waited > READY_WAIT_S or ("edgefer" not in attrs and waited > SETUP_WAIT_S):
            break
        if "edgefer" not in attrs and storage.get_n_trials(study_id) > 0:
            break                                       # trials but no edgefer setup: not ours
        time.sleep(0.5)
    if not attrs.get("edgefer_ready"):
        raise EdgeferError(None, f"study '{name}' exists in this storage but was not set up by `edgefer search` "
                           "(another tool, an older edgefer, or a worker that crashed while creating it)",
                           "use another --study name, or delete that study (optuna delete-study)")
    theirs = attrs["edgefer"]
    for key, what in (("model", "model"), ("method", "sampler"), ("space", "search space")):
        if theirs.get(key) != sig[key]:
            raise EdgeferError(None, f"study '{name}' was created with another {what} ({theirs.get(key)!r}, "
                               f"this search: {sig[key]!r})",
                               "run with the same --model/--method as the study's other workers, or another --study name")
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)


def _beats(storage) -> bool:
    return hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval() is not None


class _Heartbeat:
    """Beats for one running trial, so other workers can tell a crashed worker's trial from a slow one."""

    def __init__(self, storage, trial_id: int):
        self.storage, self.trial_id, self.stop = storage, trial_id, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True) if _beats(storage) else None

    def _run(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:
                pass

    def __enter__(self):
        if self.thread:
            self.storage.record_heartbeat(self.trial_id)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join()


def _claim(study, storage, study_id: int):
    """The next queued trial (a grid point), claimed atomically by this worker, or None when the queue is empty:
    the storage moves a trial WAITING -> RUNNING for one worker only (a row lock, or the journal's file lock)."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError

    for t in storage.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.RUNNING):
                return optuna.trial.Trial(study, t._trial_id)
        except UpdateFinishedTrialError:
            continue
    return None


def _wait_for_others(study, storage, study_id: int, limit_s: float = 6 * 3600) -> int:
    """Block until no trial of the study is running (other workers'); with a heartbeat (SQL storages) a
    crashed worker's trial goes stale and is failed (a grid point re-queued), so this cannot hang on it."""
    import optuna

    deadline, said, running = time.monotonic() + limit_s, None, 0
    while time.monotonic() < deadline:
        if _beats(storage):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        running = len(storage.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
        if not running:
            return 0
        if running != said:
            print(f"waiting for {running} trial(s) of other workers to finish", flush=True)
            said = running
        time.sleep(2)
    return running


def search(base: TrainConfig, method: str, trials: int | None, out: Path, storage: str | None = None,
           study_name: str | None = None) -> dict:
    """Run this worker's share of the study: grid points from the shared queue (up to `trials` of
    them, default all that are left) or `trials` TPE trials (default 20), then report the study's best."""
    import optuna

    out.mkdir(parents=True, exist_ok=True)
    if method == "grid":
        space = grid_space(base.model)
        names = list(space)
        grid = [dict(zip(names, values)) for values in itertools.product(*space.values())]
        sampler = optuna.samplers.GridSampler(space, seed=base.seed)    # only ever sees queued (fixed) points
    elif method == "tpe":
        space, grid, sampler = {}, [], optuna.samplers.TPESampler(seed=base.seed)
        trials = 20 if trials is None else trials
    else:
        raise EdgeferError(None, f"unknown search method '{method}'", "use grid or tpe")
    if trials is not None and trials < 1:
        raise EdgeferError(None, f"--trials {trials}", "give at least 1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name or f"{base.model}-{method}"
    store = open_storage(storage, out)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    study = _open_study(store, name, _signature(base, method, space), grid, sampler, pruner)
    study_id = store.get_study_id_from_name(name)
    host = socket.gethostname()
    if method == "tpe":
        # the seed moves on with the trials already recorded (a re-run does not redraw the same start points),
        # and on a shared storage also with the worker (workers starting together draw different points)
        seed = base.seed + store.get_n_trials(study_id)
        if storage is not None:
            seed = zlib.crc32(f"{seed}:{host}:{os.getpid()}".encode())
        study.sampler = optuna.samplers.TPESampler(seed=seed)

    def objective(trial) -> float:
        params = ({k: trial.suggest_categorical(k, v) for k, v in space.items()} if method == "grid"
                  else {k: _suggest(trial, k) for k in knobs(base.model)})

        def report(epoch: int, acc: float) -> None:
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        trial_out = out / f"trial{trial.number:03d}"
        trial.set_user_attr("checkpoint", str((trial_out / "best.pt").resolve()))
        trial.set_user_attr("host", host)
        summary = train(_config_for(base, params, trial_out), on_epoch=report)
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        trial.set_user_attr("manifest_sha256", summary["manifest_sha256"])
        print(f"trial {trial.number}: val accuracy {summary['best_val_accuracy']:.4f} {params}", flush=True)
        return summary["best_val_accuracy"]

    if method == "tpe":
        study.optimize(objective, n_trials=trials, show_progress_bar=base.progress)
    else:
        ran = 0
        while trials is None or ran < trials:
            trial = _claim(study, store, study_id)
            if trial is None:
                break
            ran += 1
            with _Heartbeat(store, trial._trial_id):
                try:
                    value = objective(trial)
                except optuna.TrialPruned:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                except BaseException:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    study.enqueue_trial(trial.params)        # the point stays queued for a later run
                    raise
                else:
                    study.tell(trial, value)
    still = _wait_for_others(study, store, study_id)
    write_trials(study, out / "trials.csv")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise EdgeferError(out, "no trial completed", "give trials more epochs or relax the pruner")
    best = study.best_trial
    queued = sum(t.state == optuna.trial.TrialState.WAITING for t in study.trials)
    result = {"model": base.model, "data": base.data, "method": method, "study": name,
              "storage": _redact(storage) if storage else str(out / "study.db"), "trials": len(study.trials) - queued, "queued": queued,
              "completed": len(done), "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
              "still_running": still,
              "best": {"number": best.number, "val_accuracy": best.value, "params": best.params,
                       "host": best.user_attrs.get("host"),
                       "checkpoint": best.user_attrs.get("checkpoint", str(out / f"trial{best.number:03d}" / "best.pt"))}}
    (out / "search.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
