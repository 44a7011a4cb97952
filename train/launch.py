"""`edgefer train --nproc N`: torchrun on this machine, handed the rest of the command line.

torchrun (torch.distributed.run) starts N processes of `python -m edgefer.train ...` with
RANK / WORLD_SIZE / LOCAL_RANK set, restarts nothing (`--max-restarts 0`), and `--standalone`
picks a free local rendezvous port, so two runs on one machine do not collide. On a CPU each
process gets cores/N intra-op threads (torchrun's own default is 1) unless --threads says.
"""
from __future__ import annotations

import logging
import os


def child_argv(argv: list[str]) -> list[str]:
    """The `edgefer train` flags for each process: the same, less the subcommand and --nproc."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
        elif i == 0 and a == "train":
            continue
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def launch(nproc: int, argv: list[str]) -> int:
    """Run torchrun; the exit status of the first process that failed (rank 0 has printed why), else 0."""
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)   # rank 0 reports; no per-worker chatter
    args = torchrun.get_args_parser().parse_args(
        ["--standalone", "--nproc-per-node", str(nproc), "--max-restarts", "0", "-m", "edgefer.train", *child_argv(argv)])
    try:
        torchrun.run(args)
    except ChildFailedError as exc:
        codes = [f.exitcode for _, f in sorted(exc.failures.items())]
        return next((c for c in codes if c > 0), 1)
    return 0
