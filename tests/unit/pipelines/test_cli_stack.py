"""``uniss stack status|down`` (pipelines.cli) on a stopped embedded stack: exit codes and output.
The stack itself without servers: tests/unit/infra/test_stack_unit.py."""

from __future__ import annotations

import json

from typer.testing import CliRunner


def test_cli_status_and_down_of_stopped_stack(tmp_path, stack_settings_factory, monkeypatch):
    from pipelines.cli import app
    from uniss.settings import get_settings

    settings = stack_settings_factory(tmp_path / "ws")
    monkeypatch.setenv("UNISS_HOME", str(settings.home_dir))
    for k in ("s3_port", "mlflow_port", "weed_master_port", "weed_volume_port", "weed_filer_port", "weed_admin_port",
              "model_server_port"):
        monkeypatch.setenv(f"UNISS_{k.upper()}", str(getattr(settings, k)))
    for k in ("UNISS_S3_ENDPOINT", "UNISS_MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(k, raising=False)
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, ["stack", "status", "--json"])
        assert r.exit_code == 1, r.output
        assert json.loads(r.output)["healthy"] is False
        r = CliRunner().invoke(app, ["stack", "down"])
        assert r.exit_code == 0 and "none running" in r.output
    finally:
        get_settings.cache_clear()
