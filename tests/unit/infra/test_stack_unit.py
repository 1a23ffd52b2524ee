"""infra.local.stack without servers: PID-file identity checks (``down`` never kills a process that
is not ours), status of a stopped stack, port-conflict errors, weed binary lookup. (The CLI of a
stopped stack: tests/unit/pipelines/test_cli_stack.py.)"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import psutil
import pytest

from infra.local import stack
from uniss.settings import Settings


@pytest.fixture
def settings(tmp_path, stack_settings_factory):
    """Embedded-stack settings on free ports (tests/conftest.py); nothing is started."""
    return stack_settings_factory(tmp_path / "ws")


@pytest.fixture
def sleeper():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p
    if p.poll() is None:
        p.kill()
    p.wait()


def _write_pid(s: Settings, name: str, rec: dict) -> None:
    (s.home_dir / "run").mkdir(parents=True, exist_ok=True)
    (s.home_dir / "run" / f"{name}.pid").write_text(json.dumps(rec))


def test_down_never_kills_a_process_that_is_not_ours(settings, sleeper):
    ps = psutil.Process(sleeper.pid)
    # same PID, but the command line is not what we started (PID reused by another program)
    _write_pid(settings, "s3", {"pid": sleeper.pid, "create_time": ps.create_time(), "cmdline": ["/x/weed", "mini"]})
    # same PID and command line, but another create time
    _write_pid(settings, "mlflow", {"pid": sleeper.pid, "create_time": ps.create_time() - 100, "cmdline": ps.cmdline()})
    assert stack.down(settings) == []
    assert sleeper.poll() is None, "a foreign process was killed"
    assert not list((settings.home_dir / "run").glob("*.pid"))  # stale PID files removed


def test_down_stops_the_process_its_pid_file_names(settings, sleeper):
    ps = psutil.Process(sleeper.pid)
    _write_pid(settings, "s3", {"pid": sleeper.pid, "create_time": ps.create_time(), "cmdline": ps.cmdline()})
    st = stack.status(settings)
    assert st.services["s3"].running and st.services["s3"].pid == sleeper.pid and st.services["s3"].rss_mb > 1
    assert not st.services["s3"].healthy  # running but nothing answers on the S3 port
    assert stack.down(settings, timeout_s=10) == [sleeper.pid]
    sleeper.wait(timeout=10)  # (already reaped by psutil: the status is not available here)
    assert not psutil.pid_exists(sleeper.pid) or psutil.Process(sleeper.pid).status() == psutil.STATUS_ZOMBIE


def test_corrupt_pid_file_is_ignored(settings):
    (settings.home_dir / "run").mkdir(parents=True)
    (settings.home_dir / "run" / "s3.pid").write_text("{garbage")
    assert stack.down(settings) == []
    assert not (settings.home_dir / "run" / "s3.pid").exists()


def test_status_of_stopped_stack(settings):
    st = stack.status(settings)
    assert not st.healthy
    assert {n: v.detail for n, v in st.services.items()} == {"s3": "not running", "mlflow": "not running", "serve": "not running"}
    assert st.services["serve"].url == f"http://127.0.0.1:{settings.model_server_port}" and st.services["serve"].model_version is None
    assert json.loads(json.dumps(st.to_dict()))["healthy"] is False
    off = settings.model_copy(update={"model_server": False})
    assert set(stack.status(off).services) == {"s3", "mlflow"}


def test_port_in_use_is_a_typed_error(settings):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", settings.s3_port))
        blocker.listen()
        with pytest.raises(stack.StackError, match=rf"\[{settings.s3_port}\].*UNISS_S3_PORT"):
            stack.up(settings, quiet=True, timeout_s=5)
    assert not list((settings.home_dir / "run").glob("*.pid"))


def test_weed_binary_is_the_wheels(settings):
    w = stack.weed_binary(settings)
    out = subprocess.run([str(w), "version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "version" in out.stdout.lower()
