"""Benchmark outputs: leaderboard markdown, CSV, JSON with the machine profile, Pareto plot;
and merging runs from several devices into one comparison."""
from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

COLUMNS = ["device", "name", "format", "precision", "accuracy", "claimed_accuracy", "macro_f1", "p50_ms", "p90_ms", "p99_ms",
           "throughput_b8", "size_bytes", "params", "mflops", "peak_rss_mb", "path"]


def _cpu_model() -> str:
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        for key in ("model name", "hardware", "model"):     # x86, then ARM boards (Pi: "Model" names the board)
            if fields.get(key):
                return fields[key]
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_profile(threads: int) -> dict[str, Any]:
    versions = {}
    for pkg in ("numpy", "opencv-python-headless", "onnxruntime", "ai-edge-litert", "torch", "tensorrt", "edgefer"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    try:
        here = Path(__file__).parent
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=here).stdout.strip() or None
        if commit and subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                     text=True, timeout=5, cwd=here).stdout.strip():
            commit += "+dirty"          # measured with uncommitted changes to tracked files
    except (OSError, subprocess.TimeoutExpired):
        commit = None
    return {"device": f"{_cpu_model()} ({platform.machine()})", "cpu": _cpu_model(), "machine": platform.machine(),
            "cores": os.cpu_count(), "threads": threads, "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions, "git_commit": commit}


def cross_keys(results: list[dict[str, Any]]) -> list[str]:
    """The `--cross` datasets' column names (ckplus, ...), in order, over one or several runs."""
    keys: list[str] = []
    for result in results:
        keys += [c["key"] for c in result.get("cross") or [] if c["key"] not in keys]
    return keys


def csv_columns(keys: list[str]) -> list[str]:
    """COLUMNS with each cross dataset's accuracy beside the main accuracy, and the notes last."""
    at = COLUMNS.index("macro_f1") + 1
    return (COLUMNS[:at] + [f"{k}_accuracy" for k in keys] + COLUMNS[at:] + ["peer", "pruned", "note"]
            + [f"{k}_note" for k in keys] + ["claim_source"])


def flat_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in result["rows"]:
        cross = {}
        for k in cross_keys([result]):
            c = (r.get("cross") or {}).get(k) or {}
            cross[f"{k}_accuracy"], cross[f"{k}_note"] = c.get("accuracy"), c.get("note")
        rows.append({"device": result["profile"]["device"], **{k: r.get(k) for k in COLUMNS if k != "device"},
                     "params": (r.get("info") or {}).get("params"), "mflops": (r.get("info") or {}).get("mflops"),
                     "peer": r.get("peer", False), "pruned": (r.get("info") or {}).get("pruned", False),
                     "note": r.get("note"), "claim_source": r.get("claim_source"), **cross})
    return rows


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both lower latency and higher accuracy."""
    front = []
    for i, (lat, acc) in enumerate(points):
        if not any((l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc) for l2, a2 in points):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_pareto(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = [r for r in rows if r.get("accuracy") is not None and r.get("p50_ms")]
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ours = [r for r in pts if not r["peer"]]
    idx = pareto_front([(r["p50_ms"], r["accuracy"]) for r in ours]) if ours else []
    rank = {id(ours[i]): k for k, i in enumerate(idx)}    # the front's points, by position along it (latency)
    for r in pts:    # only the front and the peers are labelled: off-front rows are in the table
        marker, color = ("*", "tab:red") if r["peer"] else ("o", "tab:blue" if id(r) in rank else "lightsteelblue")
        ax.scatter(r["p50_ms"], 100 * r["accuracy"], marker=marker, s=120 if r["peer"] else 50, color=color, zorder=3)
        if r["peer"] or id(r) in rank:
            # neighbours on the front alternate above / below, so close points' labels do not overlap
            dy = -12 if r["peer"] or rank[id(r)] % 2 else 5
            ax.annotate(f"{r['name']} {r['format']} {r['precision']}", (r["p50_ms"], 100 * r["accuracy"]), fontsize=7,
                        xytext=(4, dy), textcoords="offset points")
    if ours:
        ax.step([ours[i]["p50_ms"] for i in idx], [100 * ours[i]["accuracy"] for i in idx], where="post",
                color="tab:blue", alpha=0.6, label="our Pareto front")
    ax.scatter([], [], marker="o", color="lightsteelblue", label="ours, off the front")
    ax.scatter([], [], marker="*", color="tab:red", label="peer")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter
    for axis in (ax.xaxis,):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        # label the 2, 3 and 5 of each decade (the leading digit, so 0.2 ms is labelled as well as 2 ms)
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "235" else ""))
    ax.set_xlabel("latency p50, batch 1 (ms, log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _f(v, spec, scale=1.0):
    return "" if v is None else format(v * scale, spec)


def table(rows: list[dict[str, Any]], keys: Sequence[str] = ()) -> str:
    """The leaderboard; a `--cross` dataset's accuracy sits beside the main one, and a row that
    could not score a dataset has an empty cell and a note under the table."""
    cross_head = "".join(f" {k} acc |" for k in keys)
    claims = any(r.get("claimed_accuracy") is not None for r in rows)   # a peer's published figure, beside ours
    lines = [f"| device | model | format | precision | accuracy |{' claimed acc |' if claims else ''} macro-F1 |{cross_head} "
             "p50 ms | **p90 ms** | p99 ms | img/s (b8) | size | params | MFLOPs | peak RSS MB |",
             "|---|---|---|---|---|---|" + "---|" * (len(keys) + claims) + "---|---|---|---|---|---|---|---|"]
    notes, sources = [], []
    for r in sorted(rows, key=lambda r: (r["device"], -(r.get("accuracy") or 0))):
        what = f"{r['name']}{' (peer)' if r['peer'] else ''} | {r['format']} | {r['precision']}{' pruned' if r.get('pruned') else ''}"
        cross = "".join(f" {_f(r.get(f'{k}_accuracy'), '.2f', 100)} |" for k in keys)
        claim = ""
        if claims:
            mark = ""
            if r.get("claimed_accuracy") is not None:
                if r.get("claim_source") not in sources:
                    sources.append(r.get("claim_source"))
                mark = f" [{sources.index(r.get('claim_source')) + 1}]"
            claim = f" {_f(r.get('claimed_accuracy'), '.2f', 100)}{mark} |"
        lines.append(f"| {r['device']} | {what} | {_f(r.get('accuracy'), '.2f', 100)} |{claim} "
                     f"{_f(r.get('macro_f1'), '.3f')} |{cross} {_f(r['p50_ms'], '.3f')} | **{_f(r['p90_ms'], '.3f')}** | "
                     f"{_f(r['p99_ms'], '.3f')} | {_f(r['throughput_b8'], '.0f')} | {r['size_bytes'] / 1024:.0f} KiB | "
                     f"{'' if r.get('params') is None else format(r['params'], ',')} | {_f(r.get('mflops'), '.1f')} | "
                     f"{_f(r.get('peak_rss_mb'), '.0f')} |")
        for column, note in [("accuracy", r.get("note"))] + [(f"{k} acc", r.get(f"{k}_note")) for k in keys]:
            if note:
                notes.append(f"- {what.replace(' | ', ' ')}, {column} not scored: {note}")
    notes += [f"- [{i}] claimed by the peer, not measured here: {src or 'source not given'}" for i, src in enumerate(sources, 1)]
    return "\n".join(lines + ([""] + notes if notes else []))


def write(out: Path, result: dict[str, Any]) -> None:
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    rows, keys = flat_rows(result), cross_keys([result])
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=csv_columns(keys))
        w.writeheader()
        w.writerows(rows)
    cross = "".join(f" Cross-dataset `{c['key']} acc`: `{c['data']}` split `{c['split']}` (n={c['n']})."
                    for c in result.get("cross") or [])
    md = [f"# edgefer bench: {result['profile']['device']}", "",
          f"Data `{result.get('data')}` split `{result.get('split')}`.{cross} {result['settings']['threads']} thread(s); "
          f"single-stream batch 1, {result['settings']['warmup']} warm-up + {result['settings']['runs']} timed runs "
          f"(p90 is the headline, as in MLPerf single-stream); commit {result['profile']['git_commit']}. "
          "Peers' params and MFLOPs are counted from their graphs (constant weights, BatchNorm folded; "
          "a multiply-add = 2 FLOPs, as for ours).", ""]
    if rows:
        md += [table(rows, keys), "", "![pareto](pareto.png)", ""]
        plot_pareto(rows, out / "pareto.png", f"accuracy vs latency: {result['profile']['device']}")
    if result.get("streaming"):
        md += ["## Streaming vs windowed, per new frame", "", "| T | windowed p50 ms | streaming p50 ms | streaming / single-frame call |",
               "|---|---|---|---|"]
        md += [f"| {r['T']} | {r['windowed_p50_ms']:.3f} | {r['streaming_p50_ms']:.3f} | {r['ratio_stream_to_single_frame']:.2f}x |"
               for r in result["streaming"]["rows"]] + [""]
    if result.get("e2e"):
        e = result["e2e"]
        md += ["## End to end (daemon pipeline)", "",
               f"`{Path(e['video']).name}`, model `{Path(e['model']).name}` ({e['backend']}), detector {e['detector']}: "
               f"**{e['fps']:.1f} fps** over {e['frames']} frames, frame p50 {e['frame_p50_ms']:.2f} ms, "
               f"p99 {e['frame_p99_ms']:.2f} ms, dropped {e['dropped']}, RSS max {e['rss_mb_max']:.0f} MB, "
               f"growth after warm-up {100 * e['rss_growth']:+.1f}%.", "",
               "| stage | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|"]
        md += [f"| {k} | {v['p50']:.3f} | {v['p95']:.3f} | {v['p99']:.3f} |" for k, v in e["stages"].items()] + [""]
    (out / "table.md").write_text("\n".join(md) + "\n")


def summary(result: dict[str, Any], out: Path) -> str:
    return (out / "table.md").read_text() + f"\nwrote {out}/table.md, results.csv, results.json" + \
        (", pareto.png" if result["rows"] else "")


def merge(paths: list[Path], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    rows, results = [], []
    for p in paths:
        results.append(json.loads((p / "results.json" if p.is_dir() else p).read_text()))
        rows += flat_rows(results[-1])
    keys = cross_keys(results)
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=csv_columns(keys))
        w.writeheader()
        w.writerows(rows)
    plot_pareto(rows, out / "pareto.png", "accuracy vs latency, all devices")
    (out / "table.md").write_text("# edgefer bench: merged\n\n" + table(rows, keys) + "\n\n![pareto](pareto.png)\n")
    print((out / "table.md").read_text())
    return 0
