"""Metric loggers: JSONL records survive a torn line; loss-curve PNG; MLflowLogger nests one run
per phase under the parent run and logs params, metrics and artifacts (real MLflow, SQLite store)."""

import json

import pytest

from training.metric_logging import JsonlLogger, MetricLogger, MLflowLogger, MultiLogger, StdoutLogger, plot_loss_curve, read_jsonl


def test_jsonl_and_plot(tmp_path):
    lg = JsonlLogger(tmp_path / "m.jsonl")
    assert isinstance(lg, MetricLogger) and isinstance(StdoutLogger(), MetricLogger)
    lg.log_params({"a": 1})
    for s in range(1, 6):
        lg.log_metrics({"loss": 5.0 - s, "lr": 1e-3}, s)
    lg.log_event("resume", step=3)
    lg.close()
    with (tmp_path / "m.jsonl").open("a") as f:
        f.write('{"kind": "metr')  # torn by a kill
    recs = read_jsonl(tmp_path / "m.jsonl")
    assert [r["loss"] for r in recs if r["kind"] == "metrics"] == [4.0, 3.0, 2.0, 1.0, 0.0]
    png = plot_loss_curve(recs, tmp_path / "loss.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch):
    """A real MLflow tracking store (SQLite) with experiment ``uniss-test`` selected."""
    import mlflow  # a project dependency: a missing mlflow is a broken install, not a skip
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "uniss-test")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("uniss-test")
    return uri


def test_mlflow_logger_nests_under_parent(tmp_path, mlflow_uri):
    import mlflow

    uri = mlflow_uri
    with mlflow.start_run(run_name="pipeline") as parent:
        pid = parent.info.run_id
    art = tmp_path / "config.json"
    art.write_text(json.dumps({"x": 1}))
    lg = MultiLogger(MLflowLogger("phase-1", parent_run_id=pid, tracking_uri=uri), JsonlLogger(tmp_path / "m.jsonl"))
    lg.log_params({"cfg.optim.lr": 8e-4, "data_version": "v3"})
    lg.log_metrics({"loss": 3.5, "lr": 8e-4, "tokens_per_s": 1000.0}, 1)
    lg.log_metrics({"loss": 3.0, "lr": 8e-4, "tokens_per_s": 1100.0}, 2)
    lg.set_tags({"shard_md5s": "a,b"})
    lg.log_artifact(art, "config")
    rid = lg.loggers[0].run_id
    lg.close()
    client = mlflow.tracking.MlflowClient(uri)
    run = client.get_run(rid)
    assert run.data.tags["mlflow.parentRunId"] == pid
    assert run.data.params["data_version"] == "v3" and run.data.tags["shard_md5s"] == "a,b"
    assert [m.value for m in client.get_metric_history(rid, "loss")] == [3.5, 3.0]
    assert [a.path for a in client.list_artifacts(rid, "config")] == ["config/config.json"]


def test_resumed_phase_run_moves_under_the_pipeline_run_that_finishes_it(mlflow_uri):
    """A kill + rerun resumes the phase's MLflow run (one loss curve) under the rerun's parent."""
    import mlflow

    uri = mlflow_uri
    with mlflow.start_run(run_name="killed pipeline") as p1:
        killed = p1.info.run_id
    with mlflow.start_run(run_name="rerun pipeline") as p2:
        rerun = p2.info.run_id
    first = MLflowLogger("phase-2", parent_run_id=killed, tracking_uri=uri)
    first.log_metrics({"loss": 4.0}, 1)
    rid = first.run_id
    first.close()
    again = MLflowLogger("phase-2", parent_run_id=rerun, run_id=rid, tracking_uri=uri)
    again.log_metrics({"loss": 3.5}, 2)
    again.close()
    client = mlflow.tracking.MlflowClient(uri)
    tags = client.get_run(rid).data.tags
    assert tags["mlflow.parentRunId"] == rerun and tags["uniss.resumed_from_parent"] == killed
    assert [m.value for m in client.get_metric_history(rid, "loss")] == [4.0, 3.5]
    same = MLflowLogger("phase-2", parent_run_id=rerun, run_id=rid, tracking_uri=uri)  # same parent: untouched
    same.close()
    assert client.get_run(rid).data.tags["uniss.resumed_from_parent"] == killed
