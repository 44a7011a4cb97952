"""Data-parallel training (issue 20): torchrun with two CPU processes on gloo, on generated data.

Protects: the two ranks draw disjoint shares that cover the training split each epoch; DDP
averages gradients (both ranks hold identical weights after a step); only rank 0 writes files;
the 2-process result equals a 1-process run with the same global batch (to float rounding, on a
BatchNorm-free model: on a CPU each process normalises with its own share of the batch, see
edgefer/train/distributed.py); `edgefer train --nproc` resumes a 1-process run with 2; batch
sizes that do not split are a one-line error before any process starts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from ddp_probe import PROBE_MODEL, NoBatchNorm, probe_entry
from edgefer.train import checkpoint, distributed, models, pack
from edgefer.train.config import TrainConfig
from edgefer.train.trainer import train

PROBE = Path(__file__).with_name("ddp_probe.py")
EPOCHS, BATCH, LR = 3, 16, 0.01
# 84 training faces (12 per class), batch 16 = 8 per rank: 6 steps, the last of 4 = 2 per rank
FLAGS = ["--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--lr", str(LR), "--no-augment"]


@pytest.fixture(scope="module")
def data(fixture_dir) -> str:
    return f"fer2013:{fixture_dir('fer2013-folders', per_class=12)}"


@pytest.fixture(scope="module")
def two_ranks(data, tmp_path_factory):
    """One real torchrun run of `edgefer train` (its own entry) with two gloo processes."""
    probe, out = tmp_path_factory.mktemp("probe"), tmp_path_factory.mktemp("ddp") / "run"
    env = {**os.environ, "PROBE_DIR": str(probe), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(PROBE), "--model", PROBE_MODEL, "--data", data, "--out", str(out), *FLAGS],
                         capture_output=True, text=True, env=env, timeout=600, cwd=probe)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    steps = [np.load(probe / f"rank{r}-step1.npy") for r in (0, 1)]
    return {"out": out, "ranks": ranks, "step1": steps, "stdout": res.stdout}


def test_ranks_draw_disjoint_shares_covering_the_training_split(two_ranks, data):
    train_idx = set(pack.load(data, 48).train_idx.tolist())
    per_rank = [r["batches"] for r in two_ranks["ranks"]]
    assert [len(b) for b in per_rank] == [EPOCHS * 6] * 2                  # the same number of steps
    assert [len(b) for b in per_rank[0][:6]] == [8, 8, 8, 8, 8, 2]         # half of each global batch
    for e in range(EPOCHS):
        mine, theirs = ([i for b in batches[e * 6:(e + 1) * 6] for i in b] for batches in per_rank)
        assert len(mine) == len(set(mine)) == 42 and not set(mine) & set(theirs)
        assert set(mine) | set(theirs) == train_idx
    assert per_rank[0][0] != per_rank[0][6]                                # a new order each epoch


def test_gradients_are_averaged_so_ranks_hold_the_same_weights(two_ranks):
    a, b = two_ranks["step1"]
    torch.manual_seed(0)
    init = torch.cat([p.detach().reshape(-1) for p in NoBatchNorm(7).parameters()]).numpy()
    assert np.array_equal(a, b)                          # after one step on different data
    assert np.abs(a - init).max() > 1e-4                 # ... and the step did move them


def test_only_rank_0_writes_files_and_prints(two_ranks):
    saved = [r["saved"] for r in two_ranks["ranks"]]
    assert saved[1] == [] and saved[0].count("last.pt") == EPOCHS and "best.pt" in saved[0]
    assert sorted(p.name for p in two_ranks["out"].iterdir()) == ["best.pt", "curves.png", "last.pt", "metrics.json"]
    metrics = json.loads((two_ranks["out"] / "metrics.json").read_text())
    assert metrics["processes"] == 2 and len(metrics["history"]) == EPOCHS
    assert two_ranks["stdout"].count("best validation accuracy") == 1


def test_two_processes_match_one_with_the_same_global_batch(two_ranks, data, tmp_path, monkeypatch):
    """Tolerance 1e-4 on every weight after 3 epochs (they are ~0.3; the runs differ only in
    float summation order, ~1e-6). A 1-process run with the per-rank batch (8) is 100x further."""
    monkeypatch.setitem(models.REGISTRY, PROBE_MODEL, probe_entry())

    def one(batch: int, out: Path) -> dict[str, torch.Tensor]:
        train(TrainConfig(model=PROBE_MODEL, data=data, out=out, epochs=EPOCHS, batch_size=batch, lr=LR,
                          augment=False, threads=1, progress=False, log_every=0))
        return checkpoint.load_payload(out / "last.pt")["state_dict"]

    ddp = checkpoint.load_payload(two_ranks["out"] / "last.pt")["state_dict"]
    same, half = one(BATCH, tmp_path / "b16"), one(BATCH // 2, tmp_path / "b8")
    gap = lambda s: max(float((s[k] - ddp[k]).abs().max()) for k in ddp)   # noqa: E731
    assert gap(same) < 1e-4 < 1e-2 < gap(half)
    h1 = json.loads((tmp_path / "b16" / "metrics.json").read_text())["history"]
    h2 = json.loads((two_ranks["out"] / "metrics.json").read_text())["history"]
    assert [round(h["train_loss"], 4) for h in h1] == [round(h["train_loss"], 4) for h in h2]   # metrics all-reduced
    assert [h["val_acc"] for h in h1] == [h["val_acc"] for h in h2]                            # validation gathered


def test_launcher_resumes_a_one_process_run_with_two(data, tmp_path):
    """`edgefer train --nproc 2 --resume` continues a 1-process zoo-model run (tiny) at another world size."""
    out = tmp_path / "run"
    first = train(TrainConfig(model="tiny", data=data, out=out, epochs=3, threads=1, progress=False, minutes=1e-6))
    assert first["epochs_run"] == 1                                        # "interrupted" after its first epoch
    res = run_cli("train", "--model", "tiny", "--data", data, "--epochs", "3", "--out", out,
                  "--resume", out / "last.pt", "--nproc", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3] and metrics["processes"] == 2
    assert checkpoint.load_payload(out / "last.pt")["extra"]["train_state"]["processes"] == 2
    assert res.stdout.count("best validation accuracy") == 1 and "Traceback" not in res.stderr


def test_a_batch_that_does_not_split_is_a_one_line_error_before_launch(data, tmp_path, fixture_dir):
    res = run_cli("train", "--model", "tiny", "--data", data, "--out", tmp_path / "o", "--nproc", "3", "--batch-size", "16")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "does not split over 3 processes" in res.stderr and "--batch-size 18" in res.stderr
    assert not (tmp_path / "o").exists()
    ck = run_cli("train", "--model", "tiny", "--data", f"ckplus:{fixture_dir('ckplus48')}", "--nproc", "2")
    assert ck.returncode == 2 and "--fold K" in ck.stderr and "Traceback" not in ck.stderr


def test_sharding_is_torchs_distributed_sampler_partition():
    """Each rank's batches, concatenated, are exactly DistributedSampler's indices for that rank
    (padding by wrapping included), for odd and even sizes and world sizes 1 to 3."""
    from torch.utils.data import DistributedSampler
    for n in (7, 10, 11, 2, 1):
        for world in (1, 2, 3):
            batch = 2 * world
            order = distributed.pad(np.arange(n), world)
            steps = -(-n // batch)
            for rank in range(world):
                ranks = distributed.Ranks(rank, world)
                mine = [int(i) for s in range(steps) for i in distributed.rank_batch(order, s, batch, ranks)]
                sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False)
                assert mine == list(sampler), (n, world, rank)


def test_batchnorm_is_synchronised_only_where_torch_can():
    ranks = distributed.Ranks(0, 2)
    count = lambda m: sum(isinstance(x, torch.nn.SyncBatchNorm) for x in m.modules())  # noqa: E731
    assert count(distributed.prepare_model(models.create("tiny", 7), ranks, torch.device("cuda"), True)) == 2
    assert count(distributed.prepare_model(models.create("tiny", 7), ranks, torch.device("cuda"), False)) == 0
    assert count(distributed.prepare_model(models.create("tiny", 7), ranks, torch.device("cpu"), True)) == 0
    assert distributed.backend_for(torch.device("cuda")) == "nccl" and distributed.backend_for(torch.device("cpu")) == "gloo"
