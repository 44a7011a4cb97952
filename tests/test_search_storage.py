"""`edgefer search --storage`: several workers share one Optuna study on PostgreSQL (a real,
throwaway cluster) or a journal file; bad storages fail in one line without leaving a broken study."""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import run_cli

PG_USER, PG_PASS = "edgefer", "s3cret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").exists() and Path(d, "pg_ctl").exists():
            return Path(d)
    return None


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port> with password auth; yields a URL maker."""
    pytest.importorskip("psycopg", reason="psycopg (the `train` extra's PostgreSQL driver) is not installed")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries absent (/usr/lib/postgresql/*/bin; Debian's `postgresql` package)")
    root = Path(tempfile.mkdtemp(prefix="edgefer-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:                          # initdb refuses root: run the cluster as an unprivileged user
        import pwd
        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        if user is None or not shutil.which("runuser"):
            pytest.skip("running as root without a `postgres`/`nobody` user and runuser to own the cluster")
        pw = pwd.getpwnam(user)
        os.chmod(root, 0o700)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", user, "--"]
    data, port = root / "data", _free_port()
    (root / "pw").write_text(PG_PASS + "\n")
    if as_user:
        os.chown(root / "pw", pw.pw_uid, pw.pw_gid)
    env = {**os.environ, "LC_ALL": "C", "PGPASSWORD": PG_PASS}

    def run(*cmd):
        return subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True, env=env, timeout=120,
                              cwd=root)

    r = run(bindir / "initdb", "-D", data, "-U", PG_USER, "--pwfile", root / "pw", "--auth", "scram-sha-256",
            "-E", "UTF8", "--no-sync")
    if r.returncode:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {r.stderr.strip()[-300:]}")
    r = run(bindir / "pg_ctl", "-D", data, "-l", root / "log", "-w", "-t", "60", "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c fsync=off", "start")
    if r.returncode:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"pg_ctl start failed: {(r.stderr + log).strip()[-300:]}")
    try:
        def make_db(name: str) -> str:
            r = run(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", PG_USER, name)
            assert r.returncode == 0, r.stderr
            return f"postgresql://{PG_USER}:{PG_PASS}@127.0.0.1:{port}/{name}"
        make_db.port = port
        yield make_db
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    import pwd
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _workers(n: int, *args, outs: list[Path]) -> list[subprocess.CompletedProcess]:
    """n concurrent `edgefer search` processes (the real CLI), each with its own --out."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([sys.executable, "-m", "edgefer.runtime.cli", "search", *map(str, args), "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              cwd=tempfile.mkdtemp(prefix="edgefer-cli-"))
             for out in outs[:n]]
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return results


def _check_shared(outs: list[Path], total: int) -> list[dict]:
    import csv
    results = [json.loads((o / "search.json").read_text()) for o in outs]
    for r in results:
        assert r["trials"] == total and r["completed"] + r["pruned"] == total and r["still_running"] == 0
    assert all(r["best"] == results[0]["best"] for r in results)        # every worker reports the same best
    rows = list(csv.DictReader(open(outs[0] / "trials.csv")))
    assert sorted(int(r["number"]) for r in rows) == list(range(total))
    best = results[0]["best"]
    assert best["val_accuracy"] == max(float(r["val_accuracy"]) for r in rows if r["state"] == "COMPLETE")
    assert Path(best["checkpoint"]).is_file()                           # on whichever worker ran it
    return rows


def test_two_workers_share_a_grid_on_postgresql(postgres, fixture_dir, tmp_path):
    """Two workers, 3 grid points each, on one PostgreSQL study: 6 trials, 6 different grid points
    (each point claimed by exactly one worker), both report the same best trial."""
    url = postgres("grid")
    outs = [tmp_path / "w0", tmp_path / "w1"]
    res = _workers(2, "--model", "cnn4", "--method", "grid", "--trials", "3", "--epochs", "1",
                   "--data", f"fer2013:{fixture_dir('fer2013-folders')}", "--threads", "1", "--storage", url, outs=outs)
    for r in res:
        assert r.returncode == 0, r.stderr
    rows = _check_shared(outs, 6)
    points = {(r["filters"], r["kernel"], r["dense"]) for r in rows}
    assert len(points) == 6                                              # no grid point run twice
    ran = [len(list(o.glob("trial[0-9]*"))) for o in outs]
    assert ran == [3, 3]


def test_wrong_password_is_one_line(postgres, fixture_dir, tmp_path):
    url = postgres("auth").replace(f":{PG_PASS}@", ":wrong@")
    res = run_cli("search", "--model", "tiny", "--data", f"fer2013:{fixture_dir('fer2013-folders')}", "--storage", url, "--out", tmp_path)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "password" in lines[0] and "fix:" in lines[0] and "wrong" not in lines[0], res.stderr


def test_two_workers_share_a_tpe_study_in_a_journal(fixture_dir, tmp_path):
    """Two TPE workers, 2 trials each, on one journal file: 4 trials, same best; then a worker with
    another sampler is refused in one line and the study is left as it was."""
    journal = f"journal:{tmp_path / 'shared' / 'study.log'}"
    outs = [tmp_path / "w0", tmp_path / "w1"]
    data = f"fer2013:{fixture_dir('fer2013-folders')}"
    res = _workers(2, "--model", "tiny", "--method", "tpe", "--trials", "2", "--epochs", "1", "--data", data,
                   "--threads", "1", "--storage", journal, "--study", "shared", outs=outs)
    for r in res:
        assert r.returncode == 0, r.stderr
    rows = _check_shared(outs, 4)
    assert len({(r["lr"], r["weight_decay"], r["batch_size"]) for r in rows}) == 4    # the workers drew different points
    bad = run_cli("search", "--model", "cnn4", "--method", "grid", "--epochs", "1", "--data", data,
                  "--storage", journal, "--study", "shared", "--out", tmp_path / "w2")
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode != 0 and len(lines) == 1 and "another model" in lines[0] and "fix:" in lines[0], bad.stderr
    import optuna
    from edgefer.train.search import open_storage
    study = optuna.load_study(study_name="shared", storage=open_storage(journal, tmp_path))
    assert len(study.trials) == 4
    optuna.create_study(study_name="down", storage=open_storage(journal, tmp_path), direction="minimize")
    bad = run_cli("search", "--model", "tiny", "--epochs", "1", "--data", data, "--storage", journal,
                  "--study", "down", "--out", tmp_path / "w3")
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode != 0 and len(lines) == 1 and "optimises minimize" in lines[0], bad.stderr
    assert not (tmp_path / "w3" / "trial000").exists()


def test_unreachable_postgresql_is_one_line_and_quick(fixture_dir, tmp_path):
    pytest.importorskip("psycopg", reason="psycopg (the `train` extra's PostgreSQL driver) is not installed")
    start = time.monotonic()
    res = run_cli("search", "--model", "tiny", "--data", f"fer2013:{fixture_dir('fer2013-folders')}", "--out", tmp_path,
                  "--storage", f"postgresql://u:pw@127.0.0.1:{_free_port()}/db")
    assert res.returncode != 0 and time.monotonic() - start < 30
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot open the study storage" in lines[0] and "start the database server" in lines[0], res.stderr
    assert ":pw@" not in lines[0]                                        # the password is not echoed
