"""Process supervision for the embedded stack: PID files, the workspace lock, starting a server
process, stopping exactly the processes we started, and the small probes around them.

Nothing here knows about S3 or MLflow (that is :mod:`infra.local.stack`); every function takes
plain paths and command lines.

PID file (``run/<service>.pid``): JSON ``{"pid", "create_time" (s since epoch, psutil),
"cmdline" (the exec'd argv), "service", "started_at" (s since epoch)}``. A PID is only ever
signalled when its create time (within 0.05 s) and command line both still match, so a PID reused
by another program is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock
import psutil

from uniss.jsonio import JsonFileError, read_json

#: Seconds ``down`` waits after SIGTERM before SIGKILL.
DEFAULT_STOP_TIMEOUT_S = 20.0
#: Lines of a server log quoted in a start failure.
LOG_TAIL_LINES = 40
#: Tolerance when comparing a PID file's create time with the live process's (seconds; psutil
#: reports create time with 0.01 s resolution on Linux).
CREATE_TIME_TOLERANCE_S = 0.05

#: Popen objects of servers started by this process, to reap them (no zombies under pytest).
_CHILDREN: dict[int, subprocess.Popen] = {}


@contextlib.contextmanager
def workspace_lock(run_dir: Path) -> Iterator[None]:
    """Exclusive lock on ``run_dir/stack.lock`` (``filelock.FileLock``: ``flock`` on Unix) so two
    ``up``/``down`` never interleave, across processes. Blocks until acquired."""
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with filelock.FileLock(run_dir / "stack.lock"):
        yield


def read_pid(path: Path) -> dict[str, Any] | None:
    """The PID record in ``path``, or None when there is none. An unreadable record is removed
    (nothing can safely be done with it)."""
    if not path.exists():
        return None
    try:
        d = read_json(path, what="PID record")
        int(d["pid"]), float(d["create_time"]), list(d["cmdline"])
        return d
    except (JsonFileError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None


def our_process(rec: dict[str, Any] | None) -> psutil.Process | None:
    """The live process a PID record names, or None if it is gone or the PID now belongs to
    another program (create time or command line differ)."""
    if rec is None:
        return None
    try:
        p = psutil.Process(int(rec["pid"]))
        if p.status() == psutil.STATUS_ZOMBIE:
            reap(p.pid)
            return None
        if abs(p.create_time() - float(rec["create_time"])) > CREATE_TIME_TOLERANCE_S or p.cmdline() != list(rec["cmdline"]):
            return None
        return p
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def alive(p: psutil.Process) -> bool:
    """True while ``p`` runs and is not a zombie."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def reap(pid: int) -> None:
    """Collect the exit status of a child this process started (no zombie left)."""
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(Exception):
            child.wait(timeout=0.1)


def family(p: psutil.Process) -> list[psutil.Process]:
    """``p``, its descendants, and any process left in its session (``start_new_session``)."""
    procs = {p.pid: p}
    with contextlib.suppress(psutil.Error):
        for c in p.children(recursive=True):
            procs[c.pid] = c
    for q in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if q.pid not in procs and os.getsid(q.pid) == p.pid:
                procs[q.pid] = q
    return list(procs.values())


def rss_mb(procs: list[psutil.Process]) -> float:
    """Resident memory of ``procs`` together (MiB, one decimal)."""
    total = 0
    for q in procs:
        with contextlib.suppress(psutil.Error):
            total += q.memory_info().rss
    return round(total / 2**20, 1)


def port_free(host: str, port: int) -> bool:
    """True when a TCP socket can bind ``host:port`` now (``SO_REUSEADDR``, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return True
        except OSError:
            return False


def log_tail(path: Path, n: int = LOG_TAIL_LINES) -> str:
    """The last ``n`` lines of a log file, or ``"(no log)"``."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(lines[-n:])


def start(service: str, cmd: list[str], env: dict[str, str], cwd: Path, log: Path, pid_file: Path) -> psutil.Process:
    """Start ``cmd`` in its own session, output appended to ``log`` (after a header line), and
    record it in ``pid_file``.

    Args:
        service: name written into the PID record.
        cmd: argv (keys never go here: the caller passes them by file or ``env``).
        env: the complete environment of the process.
        cwd: working directory.
        log: log file (parent created 0700).
        pid_file: where the PID record goes.

    Returns:
        the started process.
    """
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log, "ab") as fh:
        fh.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} uniss stack up: {' '.join(cmd)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)  # noqa: S603
    _CHILDREN[proc.pid] = proc
    p = psutil.Process(proc.pid)
    # the command we exec'd, not p.cmdline(): /proc/PID/cmdline can still be empty right after fork
    rec = {"pid": proc.pid, "create_time": p.create_time(), "cmdline": cmd, "service": service, "started_at": time.time()}
    pid_file.write_text(json.dumps(rec))
    return p


def stop(pid_files: list[Path], timeout_s: float) -> list[int]:
    """SIGTERM each process named by ``pid_files`` that is still ours, and its family (in list
    order), then wait for all of them together (``psutil.wait_procs``); SIGKILL what is left after
    ``timeout_s`` seconds. Every PID file is removed; one naming a process that is no longer ours
    is removed without killing anything.

    Returns:
        the PIDs signalled, sorted.
    """
    fams: list[psutil.Process] = []
    leaders: list[int] = []
    for f in pid_files:
        p = our_process(read_pid(f))
        if p is None:
            continue
        fam = family(p)
        for q in [p] + [q for q in fam if q.pid != p.pid]:
            with contextlib.suppress(psutil.Error):
                q.send_signal(signal.SIGTERM)
        fams += fam
        leaders.append(p.pid)
    if fams:
        _, left = psutil.wait_procs(fams, timeout=timeout_s)
        for q in left:
            with contextlib.suppress(psutil.Error):
                q.kill()
        psutil.wait_procs(left, timeout=5)
    for pid in leaders:  # reap direct children of this process (no zombies under pytest)
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
    for f in pid_files:
        f.unlink(missing_ok=True)
    return sorted(q.pid for q in fams)
