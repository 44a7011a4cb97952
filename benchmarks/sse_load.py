"""Frame rate of the daemon with 0, 10, 50 ... live-event (SSE) clients, measured in one run.

Each row starts the real daemon (`edgefer run`, its HTTP server, the demo source) as a
process, attaches N clients that read /events as fast as a browser would (one process of
reader threads, so the clients do not share the daemon's interpreter), and reads the
daemon's own fps from its final log line. The stream cap is raised to N for the run; the
ratio to the 0-client row is what the issue's "50 SSE clients cut the frame rate by 40%"
is checked against.

    python -m edgefer.benchmarks.sse_load --clients 0,10,50 --frames 1500
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

CLIENTS = r'''
import sys, threading, urllib.request, time
port, n = int(sys.argv[1]), int(sys.argv[2])
got = [0] * n
def read(i):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=30) as r:
            for line in r:
                got[i] += line.startswith(b"data:")
    except Exception:
        pass
threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(n)]
for t in threads: t.start()
print("ready", flush=True)
sys.stdin.read()
print(sum(got), min(got) if got else 0, flush=True)
'''


def one_row(clients: int, frames: int, model: str) -> dict:
    daemon = subprocess.Popen([sys.executable, "-m", "edgefer.runtime.cli", "run", "--source", "demo", "--model", model,
                               "--http", "--http-port", "0", "--http-max-streams", str(max(clients, 1)),
                               "--http-max-connections", str(clients + 8), "--max-frames", str(frames),
                               "--sink", "jsonl:/dev/null"], stderr=subprocess.PIPE, text=True)
    port = None
    for line in daemon.stderr:
        if "HTTP on" in line:
            port = int(line.split(":")[-1].split("/")[0])
            break
    readers = None
    if clients:
        readers = subprocess.Popen([sys.executable, "-c", CLIENTS, str(port), str(clients)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        readers.stdout.readline()
    err = daemon.communicate(timeout=1800)[1]
    delivered = min_per_client = 0
    if readers is not None:
        out = readers.communicate("", timeout=60)[0].split()
        delivered, min_per_client = int(out[0]), int(out[1])
    m = re.search(r"stopped: (\d+) frames, ([\d.]+) fps, total p50 ([\d.]+) ms", err)
    return {"clients": clients, "frames": int(m[1]), "fps": float(m[2]), "total_p50_ms": float(m[3]),
            "events_delivered": delivered, "min_events_per_client": min_per_client}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", default="0,10,50", help="comma-separated client counts (default %(default)s)")
    p.add_argument("--frames", type=int, default=1500, help="frames per row (default %(default)s)")
    p.add_argument("--model", default="default")
    p.add_argument("--repeats", type=int, default=2, help="alternating passes over the rows; the median is kept")
    p.add_argument("--out", default="benchmarks/results/sse-load.json")
    a = p.parse_args(argv)
    counts = [int(c) for c in a.clients.split(",")]
    runs: dict[int, list[dict]] = {c: [] for c in counts}
    for _ in range(a.repeats):                      # interleaved, so machine noise hits every row alike
        for c in counts:
            runs[c].append(one_row(c, a.frames, a.model))
            time.sleep(1)
    rows = [sorted(runs[c], key=lambda r: r["fps"])[len(runs[c]) // 2] for c in counts]
    base = rows[0]["fps"]
    for r in rows:
        r["fps_vs_first"] = round(r["fps"] / base, 3)
        print(f"{r['clients']:>4} clients  {r['fps']:7.1f} fps  ({r['fps_vs_first']:.2f}x)  "
              f"p50 {r['total_p50_ms']:.2f} ms  events delivered {r['events_delivered']}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"command": "python -m edgefer.benchmarks.sse_load " + " ".join(argv or sys.argv[1:]),
                                       "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
