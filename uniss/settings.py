"""One settings object for every client of the platform (minio SDK, DVC, MLflow, boto3, engines).

Read from the environment with prefix ``UNISS_`` (pydantic-settings), so pointing the platform
at a cluster's MinIO/MLflow is configuration only. Object-store keys are never constants in the
code: they come from ``UNISS_S3_ACCESS_KEY``/``UNISS_S3_SECRET_KEY`` (e.g. a Kubernetes secret),
or from the credentials file that ``uniss stack up`` generates (mode 0600) in the workspace.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Repository root when installed editable (``pip install -e .``): where ``.models`` lives.
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Name of the generated credentials file inside ``UNISS_HOME``.
CREDENTIALS_FILE = "credentials.json"


class Settings(BaseSettings):
    """Platform configuration (env prefix ``UNISS_``).

    Attributes:
        home: workspace directory for all local state (``UNISS_HOME``, default ``./.uniss``).
        models_dir: offline model weights installed by ``make setup`` (Whisper-base CT2 ...).
        s3_endpoint: S3 API URL (embedded: SeaweedFS on 127.0.0.1; cluster: MinIO service).
        s3_access_key / s3_secret_key: S3 credentials; when unset, read from the workspace
            credentials file written by ``uniss stack up``.
        s3_region: region name sent to S3 clients.
        artifacts_bucket: bucket where MLflow proxies artifacts.
        data_bucket: bucket of the DVC remote.
        mlflow_tracking_uri: MLflow server URL.
        s3_port / mlflow_port / host: embedded stack bind address and ports.
    """

    model_config = SettingsConfigDict(env_prefix="UNISS_", extra="ignore")

    home: Path = Path(".uniss")
    models_dir: Path = REPO_ROOT / ".models"
    host: str = "127.0.0.1"
    s3_port: int = 8333
    mlflow_port: int = 5000
    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    artifacts_bucket: str = "mlflow"
    data_bucket: str = "uniss-data"
    mlflow_tracking_uri: str | None = None

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
    def tracking_uri(self) -> str:
        """MLflow tracking URI."""
        return self.mlflow_tracking_uri or f"http://{self.host}:{self.mlflow_port}"

    def s3_credentials(self) -> tuple[str, str]:
        """(access key, secret key) from the environment, else the workspace credentials file.

        Raises:
            RuntimeError: neither is available (run ``uniss stack up`` or set the env vars).
        """
        if self.s3_access_key and self.s3_secret_key:
            return self.s3_access_key.get_secret_value(), self.s3_secret_key.get_secret_value()
        f = self.home_dir / CREDENTIALS_FILE
        if f.exists():
            d = json.loads(f.read_text())
            return d["access_key"], d["secret_key"]
        raise RuntimeError(
            "no object-store credentials: set UNISS_S3_ACCESS_KEY/UNISS_S3_SECRET_KEY "
            f"or run `uniss stack up` (which writes {f})"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()
