"""Shared pytest fixtures.

``stack`` (session scope): a real embedded stack for integration tests: SeaweedFS S3 + MLflow
tracking server on 127.0.0.1, free ports, a temporary ``UNISS_HOME``. While it is up, the process
environment carries ``UNISS_HOME``/``UNISS_*_PORT`` (so ``uniss.settings.get_settings()`` anywhere
in the test process, and subprocesses, see this stack) plus the client variables of
``Settings.s3_env()`` (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL``, ``MLFLOW_S3_ENDPOINT_URL``, ``MLFLOW_TRACKING_URI``). It yields the
:class:`uniss.settings.Settings`; use ``stack.tracking_uri``, ``stack.s3_url``,
``stack.artifacts_bucket``, ``stack.data_bucket``, ``registry.storage.minio_client(stack)``.
At session end the stack is brought down (an error if any of its processes is left), the environment restored and the ``get_settings``
cache cleared. It never skips: if a server cannot start the test fails with the server's log tail.

Usage::

    @pytest.mark.integration
    def test_something(stack):
        mlflow.set_tracking_uri(stack.tracking_uri)
        ...

``whisper_model_dir`` (session scope): the installed Whisper-base CTranslate2 directory; a test that
needs it FAILS (never skips) when it is missing, naming ``make setup`` / ``scripts/install_models.py``,
so a broken install cannot pass.

``stack_settings_factory`` (session scope): ``make(home: Path) -> Settings`` with a fresh set of
free loopback ports, for a test that needs its own stack instance (e.g. to test ``down``); it
changes no environment variable, pass the settings to ``infra.local.stack`` functions explicitly.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

#: SeaweedFS also binds HTTP port + 10000 for gRPC (see infra.local.stack.GRPC_OFFSET).
_GRPC_OFFSET = 10000
_PORT_FIELDS = ("s3_port", "mlflow_port", "weed_master_port", "weed_volume_port", "weed_filer_port", "weed_admin_port",
                "model_server_port")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


#: Where the kernel reads its ephemeral (outbound source) port range; the Linux default is 32768-60999.
_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Lowest port the test stack draws (above the well-known and most registered server ports).
_LOWEST_PORT = 10000


def ephemeral_port_range(path: Path = _EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range ``(low, high)``, inclusive (Linux ``ip_local_port_range``);
    ``(32768, 60999)``, the Linux default, where the file is absent or unreadable (other systems)."""
    try:
        low, high = (int(v) for v in path.read_text().split()[:2])
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_stack_ports(rng: random.Random | None = None, ephemeral: tuple[int, int] | None = None) -> dict[str, int]:
    """Distinct free loopback ports for every stack port setting (each port with its +10000 twin
    free too: SeaweedFS's gRPC ports; harmless for the others).

    Every port and twin lies outside the kernel's ephemeral range (:func:`ephemeral_port_range`):
    a port inside it can be free when drawn and then taken as the source port of any outbound
    connection (SeaweedFS's servers open many while they start, before MLflow binds), which made a
    CI run fail with "port already in use". Ports are drawn from ``[10000, low)`` when that has room
    for them, else from ``(high, 65535]``.

    Raises:
        RuntimeError: no free ports outside the ephemeral range.
    """
    rng = rng or random.Random()
    low, high = ephemeral or ephemeral_port_range()
    below = (_LOWEST_PORT, low - _GRPC_OFFSET)           # p and p + 10000 both < low
    above = (max(high + 1, _LOWEST_PORT), 65536 - _GRPC_OFFSET)  # p > high, p + 10000 <= 65535
    lo, hi = below if below[1] - below[0] >= 1000 else above
    if hi - lo < 2 * len(_PORT_FIELDS):
        raise RuntimeError(f"no room for test stack ports outside the ephemeral range {low}-{high}")
    chosen: set[int] = set()
    out: dict[str, int] = {}
    for name in _PORT_FIELDS:
        for _ in range(2000):
            p = rng.randrange(lo, hi)
            twins = {p, p + _GRPC_OFFSET}
            if twins & chosen or not all(_free(q) for q in twins):
                continue
            chosen |= twins
            out[name] = p
            break
        else:
            raise RuntimeError("no free loopback port found for the test stack")
    return out


def free_port() -> int:
    """One free loopback port outside the kernel's ephemeral range (:func:`free_stack_ports`'s
    rule), for a test that starts a single server of its own."""
    return free_stack_ports()["model_server_port"]


#: Files a usable Whisper-base CTranslate2 directory has (``uniss.engines.asr.WhisperASR`` checks the same).
_WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")


@pytest.fixture(scope="session")
def whisper_model_dir() -> Path:
    """``Settings.whisper_dir`` (``$UNISS_MODELS_DIR/whisper-base``) when Whisper-base is installed.

    Fails the requesting test (no skip: a missing model is a broken install) with the command
    that installs it."""
    from uniss.settings import get_settings

    d = get_settings().whisper_dir
    missing = [f for f in _WHISPER_FILES if not (d / f).is_file()]
    if missing:
        pytest.fail(
            f"Whisper-base model missing at {d} (lacks {', '.join(missing)}): run `make setup` or "
            f"`python scripts/install_models.py --models-dir {d.parent}` (UNISS_MODELS_DIR selects the directory)",
            pytrace=False,
        )
    return d


@pytest.fixture(scope="session")
def stack_settings_factory() -> Callable[[Path], object]:
    """``make(home) -> Settings``: embedded-stack settings in ``home`` on fresh free ports
    (external endpoints and env keys explicitly unset)."""
    from uniss.settings import Settings

    def make(home: Path) -> Settings:
        return Settings(
            home=home, s3_endpoint=None, mlflow_tracking_uri=None, s3_access_key=None, s3_secret_key=None, **free_stack_ports()
        )

    return make


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running embedded stack (S3 + MLflow) for the whole session; yields its ``Settings``.
    See the module docstring."""
    from infra.local import stack as stack_mod
    from uniss.settings import get_settings

    home = tmp_path_factory.mktemp("uniss_home")
    ports = free_stack_ports()
    new_env = {"UNISS_HOME": str(home), **{f"UNISS_{k.upper()}": str(v) for k, v in ports.items()}}
    cleared = ("UNISS_S3_ENDPOINT", "UNISS_MLFLOW_TRACKING_URI", "UNISS_S3_ACCESS_KEY", "UNISS_S3_SECRET_KEY")
    saved = dict(os.environ)
    os.environ.update(new_env)
    for k in cleared:
        os.environ.pop(k, None)
    get_settings.cache_clear()
    settings = get_settings()
    try:
        try:
            stack_mod.up(settings, quiet=True)
        except stack_mod.StackError as e:
            pytest.fail(f"embedded stack failed to start (UNISS_HOME={home}):\n{e}", pytrace=False)
        os.environ.update(settings.s3_env())
        yield settings
    finally:
        try:
            ours = [p for v in stack_mod.status(settings).services.values() for p in v.pids]
            stack_mod.down(settings)
            left = [p for p in ours if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
            assert not left, f"stack processes left after down: {left}"
        finally:
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()
