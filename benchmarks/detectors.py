"""Face detectors measured on annotated real video (`edgefer bench --detectors`).

Per detector row (runtime/detect.py's registry, plus `auto` as the daemon resolves it): recall
and precision at IoU 0.5 against the hand-checked boxes in annotations/video-faces.json,
recall by face size (box side < 40 px, 40-80, > 80), milliseconds per frame (p50 / p90, one
thread, the detector alone) and the whole daemon's frame rate with it (the e2e pipeline on
every annotated video). A daemon whose detector misses a face emits nothing for it, so recall
on the camera's view is what decides the detector, and ms per frame is what it costs.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ANNOTATIONS = Path(__file__).parent / "annotations" / "video-faces.json"
BUCKETS = (("<40", 0.0, 40.0), ("40-80", 40.0, 80.0), (">80", 80.0, math.inf))
IOU = 0.5


def load_truth(path: Path = ANNOTATIONS) -> dict[str, dict[int, np.ndarray]]:
    """video name -> annotated frame index -> (N, 4) boxes (x0, y0, x1, y1); an annotated frame
    with no face is an empty array (a detection there is a false positive)."""
    data = json.loads(Path(path).read_text())
    truth = {}
    for name, v in data["videos"].items():
        boxes = {int(k): np.asarray(b, np.float32).reshape(-1, 4) for k, b in v["boxes"].items()}
        truth[name] = {i: boxes.get(i, np.zeros((0, 4), np.float32)) for i in v["annotated"]}
    return truth


def side(boxes: np.ndarray) -> np.ndarray:
    """Face size: the box's longer side, in pixels (as annotations/README.md counts them)."""
    return np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) -> (N, M) intersection over union."""
    x0, y0 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x1, y1 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def match(pred: np.ndarray, scores: np.ndarray, truth: np.ndarray, thr: float = IOU) -> tuple[np.ndarray, int]:
    """Greedy matching, most confident prediction first -> (which truth boxes were found,
    number of predictions that matched none = false positives)."""
    found = np.zeros(len(truth), bool)
    if not len(pred):
        return found, 0
    if not len(truth):
        return found, len(pred)
    m = iou(pred, truth)
    fp = 0
    for i in np.argsort(-scores, kind="stable"):
        cand = np.where(~found, m[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= thr:
            found[j] = True
        else:
            fp += 1
    return found, fp


def read_frames(video: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def score_detector(detector, videos: dict[str, list[np.ndarray]], truth: dict[str, dict[int, np.ndarray]]) -> dict[str, Any]:
    """Run `detector` on every annotated frame -> recall, precision, recall by size, ms per frame."""
    hits, sizes, fp, npred, times = [], [], 0, 0, []
    per_video = {}
    for name, frames in videos.items():
        v_hits, v_fp = [], 0
        for i, boxes in truth[name].items():
            t = time.perf_counter()
            dets = detector(frames[i])
            times.append((time.perf_counter() - t) * 1000)
            pred = np.array([d.box for d in dets], np.float32).reshape(-1, 4)
            found, f = match(pred, np.array([d.score for d in dets], np.float32), boxes)
            hits.append(found)
            sizes.append(side(boxes))
            v_hits.append(found)
            fp, v_fp, npred = fp + f, v_fp + f, npred + len(pred)
        vh = np.concatenate(v_hits) if v_hits else np.zeros(0, bool)
        per_video[name] = {"faces": int(len(vh)), "recall": float(vh.mean()) if len(vh) else None, "false_positives": v_fp}
    found, size = np.concatenate(hits), np.concatenate(sizes)
    row = {"faces": int(len(found)), "detections": npred, "recall": float(found.mean()),
           "precision": float((npred - fp) / npred) if npred else 1.0, "false_positives": fp,
           "ms_p50": float(np.percentile(times, 50)), "ms_p90": float(np.percentile(times, 90)),
           "frames": len(times), "per_video": per_video}
    for label, lo, hi in BUCKETS:
        sel = (size >= lo) & (size < hi)
        row[f"recall{label}"] = float(found[sel].mean()) if sel.any() else None
        row[f"faces{label}"] = int(sel.sum())
    return row


def detector_bench(names: list[str], folder: Path, annotations: Path = ANNOTATIONS, model: str = "default",
                   e2e_frames: int = 300, threads: int = 1) -> dict[str, Any]:
    """Every named detector on every annotated video in `folder`; `auto` is measured as the
    daemon resolves it. e2e_frames: frames of the whole daemon per video (0: skip fps)."""
    from edgefer.runtime import detect
    from edgefer.runtime.errors import EdgeferError

    from .e2e import end_to_end
    truth = load_truth(annotations)
    missing = [n for n in truth if not (folder / n).is_file()]
    if missing:
        raise EdgeferError(folder, f"lacks the annotated videos {missing}", "pass ../shared/data/video (the data README)")
    videos = {n: read_frames(folder / n) for n in truth}
    rows = []
    for name in names:
        try:
            det = detect.create(name, threads=threads)
        except EdgeferError as exc:
            print(f"edgefer: note: skipped detector {name}: {exc}")
            continue
        row = {"detector": name, "resolved": getattr(det, "name", type(det).__name__), **score_detector(det, videos, truth)}
        if e2e_frames:
            fps = [end_to_end(str(folder / n), model, e2e_frames, threads, detector=name)["fps"] for n in truth]
            row["daemon_fps"] = float(len(fps) / sum(1 / f for f in fps))          # frames over total time
            row["daemon_fps_min"] = float(min(fps))
        rows.append(row)
    return {"annotations": str(annotations), "videos": {n: len(f) for n, f in videos.items()},
            "iou": IOU, "threads": threads, "model": model, "rows": rows}


def table(result: dict[str, Any]) -> str:
    def f(v, spec=".3f"):
        return "-" if v is None else format(v, spec)
    head = ("| detector | recall | precision | recall <40 px | 40-80 | >80 | ms/frame p50 | p90 | daemon fps |\n"
            "|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in result["rows"]:
        lines.append(f"| {r['detector']} | {f(r['recall'])} | {f(r['precision'])} | {f(r['recall<40'])} "
                     f"({r['faces<40']}) | {f(r['recall40-80'])} ({r['faces40-80']}) | {f(r['recall>80'])} "
                     f"({r['faces>80']}) | {f(r['ms_p50'], '.2f')} | {f(r['ms_p90'], '.2f')} | "
                     f"{f(r.get('daemon_fps'), '.0f')} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    fig, ax = plt.subplots(figsize=(7, 4.5))
    auto = next((r["resolved"] for r in result["rows"] if r["detector"] == "auto"), None)
    for r in result["rows"]:
        if r["detector"] == "auto":                      # drawn as the row it resolves to
            continue
        if r["detector"] == auto:
            ax.scatter(r["ms_p50"], 100 * r["recall"], s=220, facecolors="none", edgecolors="tab:green", zorder=4)
        ax.scatter(r["ms_p50"], 100 * r["recall"], s=60, color="tab:blue" if r["precision"] >= 0.95 else "tab:orange",
                   zorder=3)
        ax.annotate(f"{r['detector']} (P {100 * r['precision']:.0f}%)", (r["ms_p50"], 100 * r["recall"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "235" else ""))
    ax.set_xlabel("detector ms per frame, p50, 1 thread (log scale)")
    ax.set_ylabel("face recall at IoU 0.5 (%)")
    ax.set_title(f"Face detectors on {len(result['videos'])} annotated real videos (green ring: auto = {auto}; "
                 "orange: precision < 95%)", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(out: Path, result: dict[str, Any]) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "detectors.json").write_text(json.dumps(result, indent=2) + "\n")
    text = table(result)
    (out / "detectors.md").write_text(text + "\n")
    plot(result, out / "detectors.png")
    return text
