"""Kill the retraining pipeline during phase 2, rerun it, and check what the rerun does.

Issue #9 "Accept" (kill during phase 2 and rerun: completed steps are cached, training resumes from
its checkpoint) and #6 (the step counter and LR schedule continue; loss right after resume vs
before the kill).

Procedure (all on the embedded stack of the current ``UNISS_HOME``):

1. ``uniss stack up`` (the stack runs in its own sessions, so the kill below cannot touch it).
2. Run 1: ``uniss retrain --local --size SIZE -o max_steps=N -o checkpoint_every=K -o seed=S --json``
   in a new process group. Poll the phase-2 work directory (``<checkpoint root>/SIZE_phase2_*``,
   :func:`training.workdir.checkpoint_root`) until its ``metrics.jsonl`` records
   ``--kill-after`` checkpoint events, then ``SIGKILL`` the whole process group (kfp.local's
   executor, the torchrun launcher and both DeepSpeed ranks), and check no process of it is left.
3. Run 2: the same command. Its ``--json`` summary lists the steps that ran (a step that ran logs a
   nested MLflow run; a cached one does not); the phase-2 ``metrics.jsonl`` holds the ``resume``
   event (step, LR) and the losses on both sides of the kill.

The seed override makes the phase work directories new for this benchmark (they are keyed by the
config), so phase 2 really trains in run 1. Writes ``benchmarks/results/kill_resume.json``.

Run: ``python benchmarks/kill_resume.py [--size tiny] [--max-steps 12] [--checkpoint-every 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _uniss(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def _records(work: Path) -> list[dict[str, Any]]:
    from training.metric_logging import read_jsonl

    return read_jsonl(work / "metrics.jsonl")


def _phase2_dirs(root: Path, size: str) -> set[Path]:
    return set(root.glob(f"{size}_phase2_*")) if root.is_dir() else set()


def _group_alive(pgid: int, wait_s: float = 10.0) -> list[int]:
    """Live (non-zombie) processes of group ``pgid``, after waiting up to ``wait_s`` for them to go."""
    deadline = time.time() + wait_s
    while True:
        out = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(pgid)], capture_output=True, text=True).stdout
        live = [int(pid) for pid, stat in (ln.split()[:2] for ln in out.splitlines() if ln.strip()) if not stat.startswith("Z")]
        if not live or time.time() > deadline:
            return live
        time.sleep(0.5)


def _json_tail(text: str) -> dict[str, Any]:
    """The ``--json`` summary: the last top-level JSON object printed."""
    start = text.rfind("\n{")
    return json.loads(text[start + 1 if start >= 0 else 0:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--max-steps", type=int, default=12)
    ap.add_argument("--checkpoint-every", type=int, default=3)
    ap.add_argument("--kill-after", type=int, default=2, help="kill once phase 2 wrote this many checkpoints")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    ap.add_argument("--timeout-s", type=float, default=3600)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "kill_resume.json"))
    args = ap.parse_args()

    from training.workdir import checkpoint_root

    subprocess.run(_uniss("stack", "up"), check=True, cwd=ROOT)
    root = checkpoint_root()
    cmd = _uniss("retrain", "--local", "--size", args.size, "-o", f"max_steps={args.max_steps}",
                 "-o", f"checkpoint_every={args.checkpoint_every}", "-o", f"seed={args.seed}", "--json")
    before = _phase2_dirs(root, args.size)

    # ---- run 1: kill during phase 2
    log1 = Path(args.out).with_suffix(".run1.log")
    log1.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(log1, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    work: Path | None = None
    killed_at: dict[str, Any] = {}
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"run 1 ended (rc {proc.returncode}) before phase 2 wrote {args.kill_after} checkpoints; see {log1}")
        if time.time() - t0 > args.timeout_s:
            os.killpg(proc.pid, signal.SIGKILL)
            raise SystemExit(f"timed out waiting for phase 2; see {log1}")
        new = sorted(_phase2_dirs(root, args.size) - before)
        if new:
            work = new[0]
            recs = _records(work)
            ckpts = [r for r in recs if r.get("event") == "checkpoint"]
            if len(ckpts) >= args.kill_after:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                losses = [r for r in recs if r.get("kind") == "metrics" and "loss" in r]
                killed_at = {"after_s": time.time() - t0, "last_checkpoint_step": ckpts[-1]["step"],
                             "last_logged_step": losses[-1]["step"] if losses else None,
                             "loss_before_kill": losses[-1]["loss"] if losses else None,
                             "loss_at_checkpoint_step": next((r["loss"] for r in losses if r["step"] == ckpts[-1]["step"]), None)}
                break
        time.sleep(0.5)
    left = _group_alive(proc.pid)
    print(f"killed run 1 after {killed_at['after_s']:.0f} s at phase-2 step {killed_at['last_logged_step']} "
          f"(checkpoint {killed_at['last_checkpoint_step']}); processes left: {left}")

    # ---- run 2: same command
    t1 = time.time()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout_s)
    Path(args.out).with_suffix(".run2.log").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise SystemExit(f"run 2 failed (rc {res.returncode}); see {Path(args.out).with_suffix('.run2.log')}")
    summary = _json_tail(res.stdout)
    ran = [s["step"] for s in summary["steps"]]
    recs = _records(work)
    resume = [r for r in recs if r.get("event") == "resume"]
    resumed = resume[0] if resume else {}
    after = [r for r in recs if r.get("kind") == "metrics" and "loss" in r and resume and r["time"] > resume[0]["time"]]
    out = {
        "command": " ".join(cmd[2:]),
        "checkpoint_root": str(root),
        "phase2_work_dir": str(work),
        "run1_killed": {**killed_at, "signal": "SIGKILL to the process group", "processes_left": left},
        "run2": {
            "wall_s": time.time() - t1,
            "steps_ran": ran,
            "steps_cached_before_phase2": [s for s in ("build_source", "synthesize_unist", "fit_codec", "tokenize_unist",
                                                        "validate_unist", "version_unist", "checkout_unist", "phase-1")
                                           if s not in ran],
            "resume_event": resumed,
            "first_step_after_resume": after[0]["step"] if after else None,
            "loss_first_step_after_resume": after[0]["loss"] if after else None,
            "lr_first_step_after_resume": after[0].get("lr") if after else None,
            "phase2_final_step": max((r["step"] for r in recs if r.get("kind") == "metrics"), default=None),
            "summary": summary["summary"],
        },
    }
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
