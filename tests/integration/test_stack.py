"""The embedded stack against real servers (SeaweedFS ``weed mini`` + ``mlflow server``).

One stack instance of its own (fresh workspace and ports from ``stack_settings_factory``) so
that ``down`` can be tested without disturbing the session ``stack`` fixture other parts use.
The stack includes the model server (no champion in this workspace: live, waiting).
The tests run in file order: up -> status -> idempotent up -> S3 write/read -> MLflow metric +
artifact landing in the bucket -> bad keys rejected -> CLI status -> down -> nothing left.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UNISS = [str(Path(sys.executable).parent / "uniss")]  # the console script of this venv


@pytest.fixture(scope="module")
def own(tmp_path_factory, stack_settings_factory):
    """(settings, state dict) of a stack started here; brought down at module end whatever happens."""
    from infra.local import stack

    s = stack_settings_factory(tmp_path_factory.mktemp("own_stack"))
    state: dict = {}
    try:
        try:
            state["status"] = stack.up(s, quiet=True)
        except stack.StackError as e:
            pytest.fail(f"stack failed to start:\n{e}", pytrace=False)
        yield s, state
    finally:
        stack.down(s)


def test_up_status_healthy(own):
    from infra.local import stack

    s, state = own
    st = stack.status(s)
    assert st.healthy, st.to_dict()
    for name in ("s3", "mlflow"):
        svc = st.services[name]
        assert svc.running and svc.pid is not None and svc.rss_mb and svc.rss_mb > 10
        assert svc.embedded
    assert st.services["s3"].url == f"http://127.0.0.1:{s.s3_port}"
    assert st.services["mlflow"].url == f"http://127.0.0.1:{s.mlflow_port}"
    serve = st.services["serve"]  # the model server: live, waiting for the first champion
    assert serve.running and serve.url == f"http://127.0.0.1:{s.model_server_port}" and serve.model_version is None
    assert serve.detail.startswith("no model yet") and "no alias 'champion'" in serve.detail, serve.detail
    # only loopback: every listening socket of our processes is on 127.0.0.1
    ours = {p for v in st.services.values() for p in v.pids}
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in ours]
    assert listening, "no listening sockets found for our processes"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}, listening
    state["pids"] = ours


def test_up_is_idempotent(own):
    from infra.local import stack

    s, state = own
    before = {n: v.pid for n, v in stack.status(s).services.items()}
    st = stack.up(s, quiet=True)
    assert {n: v.pid for n, v in st.services.items()} == before


def test_credentials_generated_private_and_not_in_argv(own):
    s, state = own
    f = s.credentials_path
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE((s.home_dir / "seaweedfs" / "s3.json").stat().st_mode) == 0o600
    access, secret = s.s3_credentials()
    assert len(access) >= 16 and len(secret) >= 32
    for pid in state["pids"]:
        cmd = " ".join(psutil.Process(pid).cmdline())
        assert secret not in cmd and access not in cmd
    # the MLflow server (and only it) receives the keys by environment
    mlflow_pid = json.loads((s.home_dir / "run" / "mlflow.pid").read_text())["pid"]
    env = psutil.Process(mlflow_pid).environ()
    assert env["AWS_SECRET_ACCESS_KEY"] == secret and env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == s.s3_url


def test_bucket_write_read(own):
    from registry.storage import minio_client

    s, _ = own
    c = minio_client(s)
    assert c.bucket_exists(s.artifacts_bucket) and c.bucket_exists(s.data_bucket)
    payload = os.urandom(300_000)
    c.put_object(s.data_bucket, "t/blob.bin", io.BytesIO(payload), len(payload))
    r = c.get_object(s.data_bucket, "t/blob.bin")
    try:
        assert r.read() == payload
    finally:
        r.close()
        r.release_conn()


def test_mlflow_metric_and_artifact_land_in_bucket(own, tmp_path):
    from mlflow.tracking import MlflowClient

    from registry.storage import minio_client

    s, _ = own
    client = MlflowClient(tracking_uri=s.tracking_uri)
    exp_id = client.create_experiment("stack-test")
    run = client.create_run(exp_id)
    client.log_metric(run.info.run_id, "loss", 0.125, step=3)
    art = tmp_path / "notes.txt"
    art.write_text("uniss artifact check")
    client.log_artifact(run.info.run_id, str(art))
    client.set_terminated(run.info.run_id)

    got = client.get_run(run.info.run_id)
    assert got.data.metrics["loss"] == pytest.approx(0.125)
    assert got.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied through the server
    key = f"{exp_id}/{run.info.run_id}/artifacts/notes.txt"
    objs = [o.object_name for o in minio_client(s).list_objects(s.artifacts_bucket, prefix=f"{exp_id}/", recursive=True)]
    assert key in objs, objs
    r = minio_client(s).get_object(s.artifacts_bucket, key)
    try:
        assert r.read() == b"uniss artifact check"
    finally:
        r.close()
        r.release_conn()


def test_bad_credentials_rejected(own):
    import minio
    from minio.error import S3Error

    s, _ = own
    access, secret = s.s3_credentials()
    wrong_secret = minio.Minio(s.s3_netloc, access_key=access, secret_key=secret[::-1], secure=False)
    with pytest.raises(S3Error) as e1:
        wrong_secret.list_objects(s.data_bucket).__next__()
    assert e1.value.code == "SignatureDoesNotMatch"
    unknown = minio.Minio(s.s3_netloc, access_key="UNKNOWNKEY0000000000", secret_key=secret, secure=False)
    with pytest.raises(S3Error) as e2:
        unknown.bucket_exists(s.data_bucket)
    assert e2.value.code in ("InvalidAccessKeyId", "AccessDenied", "SignatureDoesNotMatch")
    anonymous = minio.Minio(s.s3_netloc, secure=False)
    with pytest.raises(S3Error) as e3:
        anonymous.get_object(s.data_bucket, "t/blob.bin")
    assert e3.value.code == "AccessDenied"


def test_wrong_configured_keys_fail_fast_with_clear_error(own):
    import time

    from pydantic import SecretStr

    from infra.local import stack

    s, _ = own
    bad = s.model_copy(update={"s3_access_key": SecretStr("WRONGKEY000000000000"), "s3_secret_key": SecretStr("w" * 40)})
    t0 = time.monotonic()
    with pytest.raises(stack.StackError, match="rejects the configured keys"):
        stack.up(bad, quiet=True, timeout_s=120)
    assert time.monotonic() - t0 < 30  # not a full health-wait timeout


def test_port_taken_by_another_workspace_is_a_typed_error(own, tmp_path):
    from infra.local import stack

    s, _ = own
    other = s.model_copy(update={"home": tmp_path / "other"})
    with pytest.raises(stack.StackError, match=rf"port\(s\) \[{s.s3_port}.*already in use.*UNISS_S3_PORT"):
        stack.up(other, quiet=True, timeout_s=30)
    assert not list((tmp_path / "other" / "run").glob("*.pid"))
    st = stack.status(other)  # the answering server is not this workspace's
    assert not st.healthy and "not this workspace" in st.services["s3"].detail


def test_cli_status_healthy_exit_zero(own):
    s, _ = own
    env = {**os.environ, "UNISS_HOME": str(s.home_dir)}
    env.update({f"UNISS_{k.upper()}": str(getattr(s, k)) for k in
                ("s3_port", "mlflow_port", "weed_master_port", "weed_volume_port", "weed_filer_port", "weed_admin_port",
              "model_server_port")})
    for k in ("UNISS_S3_ENDPOINT", "UNISS_MLFLOW_TRACKING_URI", "UNISS_S3_ACCESS_KEY", "UNISS_S3_SECRET_KEY"):
        env.pop(k, None)
    r = subprocess.run([*UNISS, "stack", "status", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["healthy"] is True and set(d["services"]) == {"s3", "mlflow", "serve"}
    assert d["services"]["serve"]["model_version"] is None  # nothing promoted in this workspace


def test_down_leaves_no_process(own):
    from infra.local import stack

    s, state = own
    pids = state["pids"]
    stopped = stack.down(s)
    assert set(stopped) == pids
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, alive
    assert not list((s.home_dir / "run").glob("*.pid"))
    st = stack.status(s)
    assert not st.healthy and not any(v.running for v in st.services.values())
    assert stack.down(s) == []  # idempotent
