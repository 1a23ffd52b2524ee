"""Embedded stack: time from ``uniss stack up`` to healthy (cold: fresh workspace; warm: data kept;
no-op: already running), RSS of each server process tree, and that ``down`` leaves no process.
Writes JSON to ``benchmarks/results/stack.json``.

Runs the real CLI (``uniss stack up|status --json|down``) in a temporary workspace on free
loopback ports, ``--repeats`` times. Wall time includes the CLI's own import time. RSS is read
from ``status --json`` (psutil, sum over the server process and its descendants) after up and
again after a small MLflow run and a 1 MB S3 write (the working set in use). The 1-minute load
average is recorded since the machine is shared.

Run:  .venv/bin/python benchmarks/bench_stack.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO / "tests"))
from conftest import free_stack_ports  # noqa: E402

UNISS = str(Path(sys.executable).parent / "uniss")


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run([UNISS, "stack", *args], env=env, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - t0, r


def _status(env: dict[str, str]) -> dict:
    _, r = _cli(env, "status", "--json")
    return json.loads(r.stdout)


def _workload(env: dict[str, str]) -> None:
    """One MLflow run (metric + 1 MB artifact) and a 1 MB object write/read."""
    from mlflow.tracking import MlflowClient

    from registry.storage import minio_client
    from uniss.settings import Settings

    s = Settings(home=Path(env["UNISS_HOME"]), **{k[6:].lower(): int(v) for k, v in env.items() if k.startswith("UNISS_") and k.endswith("_PORT")})
    c = MlflowClient(tracking_uri=s.tracking_uri)
    exp = c.create_experiment(f"bench-{time.time_ns()}")
    run = c.create_run(exp)
    c.log_metric(run.info.run_id, "x", 1.0)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "blob.bin"
        p.write_bytes(os.urandom(1 << 20))
        c.log_artifact(run.info.run_id, str(p))
    payload = os.urandom(1 << 20)
    m = minio_client(s)
    m.put_object(s.data_bucket, "bench/blob.bin", io.BytesIO(payload), len(payload))
    assert m.get_object(s.data_bucket, "bench/blob.bin").read() == payload


def one_round(home: Path) -> dict:
    ports = free_stack_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNISS_")}
    env.update({"UNISS_HOME": str(home), **{f"UNISS_{k.upper()}": str(v) for k, v in ports.items()}})
    out: dict = {"ports": ports}
    t_cold, r = _cli(env, "up")
    if r.returncode != 0:
        raise SystemExit(f"up failed: {r.stderr}")
    st = _status(env)
    out["up_cold_s"] = round(t_cold, 2)
    out["rss_mb_after_up"] = {n: v["rss_mb"] for n, v in st["services"].items()}
    out["processes"] = {n: len(v["pids"]) for n, v in st["services"].items()}
    t_noop, _ = _cli(env, "up")
    out["up_noop_s"] = round(t_noop, 2)
    _workload(env)
    out["rss_mb_after_workload"] = {n: v["rss_mb"] for n, v in _status(env)["services"].items()}
    pids = [p for v in st["services"].values() for p in v["pids"]]
    t_down, r = _cli(env, "down")
    out["down_s"] = round(t_down, 2)
    time.sleep(0.5)
    out["left_after_down"] = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    t_warm, r = _cli(env, "up")  # same workspace: SQLite db and volumes already there
    out["up_warm_s"] = round(t_warm, 2)
    st2 = _status(env)
    pids2 = [p for v in st2["services"].values() for p in v["pids"]]
    _cli(env, "down")
    time.sleep(0.5)
    out["left_after_second_down"] = [p for p in pids2 if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS / "stack.json")
    args = ap.parse_args()
    rounds = []
    for i in range(args.repeats):
        home = Path(tempfile.mkdtemp(prefix="uniss-bench-stack-"))
        try:
            rounds.append(one_round(home))
        finally:
            shutil.rmtree(home, ignore_errors=True)
        print(json.dumps(rounds[-1]), flush=True)
    res = {
        "what": "uniss stack up/down timings and server RSS",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_1m_end": os.getloadavg()[0]},
        "rounds": rounds,
        "summary": {
            "up_cold_s_median": sorted(r["up_cold_s"] for r in rounds)[len(rounds) // 2],
            "up_warm_s_median": sorted(r["up_warm_s"] for r in rounds)[len(rounds) // 2],
            "no_process_left": all(not r["left_after_down"] and not r["left_after_second_down"] for r in rounds),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res["summary"]))


if __name__ == "__main__":
    main()
