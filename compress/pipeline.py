"""`edgefer compress`: checkpoint -> [prune + fine-tune] -> artifacts -> checks -> report.

Everything is written to a hidden work folder first and moved into --out only after every
artifact has been built and checked, so a failure never leaves a file that looks valid.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import file_sha256, write_sidecar

from . import calibration as cal
from .formats import FORMATS, Artifact, Job
from .graphs import state_spec
from .prune import check_method
from .report import Row, latency_p50, write_report

DEFAULT_DATA = "fer2013:../shared/data/fer2013"


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def parse_list(text: str, valid, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in valid]
    if bad or not items:
        raise EdgeferError(None, f"unknown {what} {bad or text!r}", f"use one or more of {sorted(valid)}, comma-separated")
    return items


def writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".edgefer-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise EdgeferError(out, f"output folder cannot be written ({exc.strerror})", "choose another --out") from None


def fine_tune(args, source: Path, out: Path) -> Path:
    """Prune the source's encoder, then train briefly on the training split (selection on val)."""
    from edgefer.train import checkpoint
    from edgefer.train.config import TrainConfig
    from edgefer.train.trainer import train

    payload = checkpoint.load_payload(source)
    meta = payload["metadata"]
    cfg = TrainConfig(model=payload["architecture"], data=args.data, out=out, model_kwargs=payload["kwargs"],
                      size=meta["input_size"], epochs=args.finetune_epochs, lr=args.finetune_lr, warmup=0.0,
                      label_smoothing=0.1, weight_decay=5e-5, patience=args.finetune_epochs, init=source,
                      prune=args.prune, prune_method=args.prune_method, threads=args.threads,
                      progress=sys.stderr.isatty(), clip_length=meta["clip_length"])
    train(cfg)
    return out / "best.pt"


def compress(args: argparse.Namespace) -> int:
    from edgefer.train import checkpoint, default_model
    from edgefer.train.models.profile import mflops_per_frame, params
    formats = parse_list(args.formats, FORMATS, "format(s)")
    check_method(args.prune_method)
    if args.prune_method != "uniform" and not args.prune:
        raise EdgeferError(None, f"--prune-method {args.prune_method} without --prune", "add the fraction to remove, e.g. --prune 0.5")
    precisions = parse_list(args.precision, {"fp32", "fp16", "int8"}, "precision(s)")
    source = default_model.resolve(args.model)
    model, meta = checkpoint.load(source)           # one-line error for foreign or corrupt files
    out = Path(args.out or f"runs/compress/{'default' if args.model == 'default' else source.stem}")
    writable(out)
    torch.set_num_threads(args.threads)
    stem = args.name or ("default" if args.model == "default" else source.stem)
    rows: list[Row] = []

    # ---- reference: the fp32 checkpoint in PyTorch, and the evaluation split
    evalset = cal.from_dataset(args.data, meta, args.split, None) if not args.no_eval else None
    prov = {"source": str(source), "source_checkpoint_sha256": file_sha256(source), "edgefer_commit": _commit()}

    def torch_logits(m) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([m(torch.from_numpy(evalset.x[i:i + 512][:, None])).numpy()
                                   for i in range(0, len(evalset.x), 512)])

    ref = torch_logits(model) if evalset else None
    base_row = Row("pytorch", "fp32", "window", source, source.stat().st_size, params(model),
                   mflops_per_frame(model, meta.input_size), {"exporter": "edgefer checkpoint"})
    rows.append(base_row)
    describe_torch(base_row, model, ref, evalset, meta)
    if args.prune:
        tuned = fine_tune(args, source, out / f"{stem}.pruned-run")
        model, meta = checkpoint.load(tuned)
        if not args.name:                  # an explicit --name is used as given
            stem = f"{stem}.pruned{int(round(args.prune * 100))}"
        prov.update({"pruned_from": prov["source_checkpoint_sha256"], "prune_ratio": args.prune, "prune_method": args.prune_method,
                     "finetune_epochs": args.finetune_epochs, "source_checkpoint_sha256": file_sha256(tuned)})
        rows.append(Row("pytorch", "fp32", "window", tuned, tuned.stat().st_size, params(model),
                        mflops_per_frame(model, meta.input_size), {"pruning": check_method(args.prune_method).describe.format(args.prune)
                                                                   + f", {args.finetune_epochs}-epoch fine-tune"}))
        ref = torch_logits(model) if evalset else None    # artifacts of a pruned model are checked against it
        describe_torch(rows[-1], model, ref, evalset, meta)
    model.eval()
    if getattr(model, "pruned", False):
        prov["pruned"] = True
        if meta.provenance.get("prune_ratio"):      # pruned elsewhere (e.g. resident --prune): keep the record
            prov.setdefault("prune_ratio", meta.provenance["prune_ratio"])
            prov.setdefault("prune_method", meta.provenance.get("prune_method") or "uniform")
    prof = {"params": params(model), "mflops": mflops_per_frame(model, meta.input_size)}

    calib = None
    if "int8" in precisions:
        calib = (cal.from_npy(Path(args.calibration_data), meta) if args.calibration_data and args.calibration_data.endswith(".npy")
                 else cal.from_dataset(args.calibration_data or args.data, meta, "train", args.calibration))
        cal.check_size(calib)
        prov["calibration"] = calib.source
    spec = state_spec(model, meta.input_size) if getattr(model, "streaming", False) else None
    work = out / f".partial-{stem}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    job = Job(model, meta, stem, work, calib.x if calib else None, meta.clip_length, spec)
    try:
        artifacts: list[Artifact] = []
        for fmt in formats:
            wanted = [p for p in precisions if p in FORMATS[fmt].precisions]
            for p in (["fp32"] if fmt != "tensorrt" and "fp32" not in wanted else []) + wanted:
                print(f"edgefer: {fmt} {p} ...", file=sys.stderr, flush=True)
                for a in FORMATS[fmt].build(job, p):
                    if all(a.path != b.path for b in artifacts):
                        artifacts.append(a)
        rows += check_and_describe(artifacts, job, meta, prov, prof, evalset, ref, model, args.threads)
        final = []
        for a in artifacts:                           # everything passed: move into place
            for f in (a.path, a.path.with_name(a.path.name + ".json")):
                if f.exists():
                    shutil.move(str(f), out / f.name)
            final.append(a.path.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in rows:
        if r.path.parent == work:
            r.path = out / r.path.name
    report = write_report(out, rows, {"model": str(source), "data": args.data, "split": args.split,
                                      "threads": args.threads, "notes": job.notes, "provenance": prov})
    for note in job.notes:
        print(f"edgefer: note: {note}", file=sys.stderr)
    print(f"wrote {len(final)} artifact(s) and {report} (+ report.json)")
    print(report.read_text() if args.print_report else "")
    return 0


def describe_torch(row: Row, model, logits, evalset, meta) -> None:
    from edgefer.train.metrics import classification_report
    model.eval()
    if evalset is not None:
        rep = classification_report(evalset.y, logits, list(meta.labels))
        row.accuracy, row.macro_f1, row.agreement, row.max_abs_diff = rep["accuracy"], rep["macro_f1"], 1.0, 0.0
    x = torch.zeros(1, meta.clip_length, 1, meta.input_size, meta.input_size)
    with torch.no_grad():
        row.latency_p50_ms = latency_p50(lambda: model(x))


def check_and_describe(artifacts, job, meta, prov, prof, evalset, ref, model, threads) -> list[Row]:
    """Sidecars, numerics against PyTorch, accuracy, latency; raises before anything is moved."""
    from edgefer.runtime import model as deployed
    from edgefer.train.metrics import classification_report
    rows = []
    streams = {(a.format, a.precision): a for a in artifacts if a.graph == "stream"}
    for a in artifacts:
        if a.format not in ("onnx", "tflite", "tensorrt"):
            rows.append(Row(a.format, a.precision, a.graph, a.path, a.path.stat().st_size, None, None, a.method))
            continue
        m = replace(meta, format=a.format, precision=a.precision, graph=a.graph,
                    metrics={"params": prof["params"], "mflops_per_frame": prof["mflops"]},
                    provenance={**prov, **a.method}, state=job.state.to_metadata() if a.graph == "stream" and job.state else [],
                    companions={})
        if a.graph == "window" and (a.format, a.precision) in streams:
            m.companions = {"stream": streams[(a.format, a.precision)].path.name}
        write_sidecar(a.path, m)
    for a in artifacts:
        if a.graph != "window" or a.format not in ("onnx", "tflite", "tensorrt"):
            continue
        dm = deployed.load(a.path, threads=threads)
        size = a.path.stat().st_size
        if a.graph == "window" and (a.format, a.precision) in streams:
            size += streams[(a.format, a.precision)].path.stat().st_size
        row = Row(a.format, a.precision, "window+stream" if dm.stream else "window", a.path, size, prof["params"],
                  prof["mflops"], a.method)
        if evalset is not None:
            logits = dm.logits(evalset.x[:, None])
            rep = classification_report(evalset.y, logits, list(meta.labels))
            row.accuracy, row.macro_f1 = rep["accuracy"], rep["macro_f1"]
            row.agreement = float((logits.argmax(1) == ref.argmax(1)).mean())
            n = min(256, len(logits))
            row.max_abs_diff = float(np.abs(logits[:n] - ref[:n]).max())
            if dm.stream is not None:
                row.stream_max_abs_diff = stream_check(dm, model, evalset.x[:8])
            m = replace(dm.meta, metrics={**dm.meta.metrics, "split": evalset.source, "accuracy": row.accuracy,
                                          "macro_f1": row.macro_f1, "agreement_with_fp32_pytorch": row.agreement})
            write_sidecar(a.path, m)
        one = (evalset.x[:1][:, None] if evalset is not None
               else np.zeros((1, meta.clip_length, 1, meta.input_size, meta.input_size), np.float32))
        row.latency_p50_ms = latency_p50(lambda: dm.window.run([one]))
        rows.append(row)
    return rows


def stream_check(dm, model, frames: np.ndarray) -> float:
    """Max |logit difference| between the artifact's streaming graph and PyTorch's step() over a short sequence."""
    from .graphs import StreamGraph
    spec = state_spec(model, dm.meta.input_size)
    wrapper = StreamGraph(model, spec.names).eval()
    st_t, st_a, worst = spec.zeros(1), dm.init_state(1), 0.0
    with torch.no_grad():
        for f in frames:
            out = wrapper(torch.from_numpy(f[None]), *st_t)
            lt, st_t = out[0].numpy(), list(out[1:])
            la, st_a = dm.step(f[None], st_a)
            worst = max(worst, float(np.abs(la - lt).max()))
    return worst
