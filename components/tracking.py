"""MLflow glue shared by the component bodies: one nested run per pipeline step.

The parent run of a pipeline run is created by ``uniss retrain`` (or the cluster submitter) and
handed to the step processes through the environment variable ``MLFLOW_PARENT_RUN_ID`` (not a
component argument, so KFP's cache keys stay stable across runs and unchanged steps are served
from cache). Without it, step runs are top-level runs in the experiment.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

#: Experiment that every retraining pipeline logs to.
EXPERIMENT = os.environ.get("MLFLOW_EXPERIMENT_NAME", "uniss-retrain")


def tracking_available() -> bool:
    """Whether an MLflow tracking server is configured: :func:`uniss.settings.tracking_configured`
    (env ``MLFLOW_TRACKING_URI`` or ``UNISS_MLFLOW_TRACKING_URI``)."""
    from uniss.settings import tracking_configured

    return tracking_configured()


@contextlib.contextmanager
def step_run(step: str, params: dict[str, Any] | None = None, tags: dict[str, str] | None = None) -> Iterator[Any]:
    """Open a nested MLflow run for one step (or nothing when no tracking server is configured).

    Yields the active ``mlflow.ActiveRun`` or ``None``. Logs ``step_wall_s`` (seconds) at exit and
    tags the run with ``uniss.step`` and ``tags`` (e.g. ``uniss.variant``, which ``uniss compare``
    shows as the row label).
    """
    t0 = time.perf_counter()
    if not tracking_available():
        yield None
        return
    import mlflow

    from uniss.settings import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(EXPERIMENT)
    parent = os.environ.get("MLFLOW_PARENT_RUN_ID")
    with mlflow.start_run(run_name=step, parent_run_id=parent, nested=bool(parent), tags={"uniss.step": step, **(tags or {})}) as run:
        if params:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        try:
            yield run
        finally:
            mlflow.log_metric("step_wall_s", time.perf_counter() - t0)


def log_dir_artifacts(path: str, artifact_path: str | None = None, pattern: str = "*.png") -> None:
    """Log the files matching ``pattern`` under ``path`` to the active run (no-op without a run)."""
    if not tracking_available():
        return
    import glob

    import mlflow

    if mlflow.active_run() is None:
        return
    for f in sorted(glob.glob(os.path.join(path, "**", pattern), recursive=True)):
        mlflow.log_artifact(f, artifact_path=artifact_path)


def set_parent_tags(tags: dict[str, Any]) -> None:
    """Tag the pipeline's parent run (e.g. data version, registered model version)."""
    parent = os.environ.get("MLFLOW_PARENT_RUN_ID")
    if not (parent and tracking_available()):
        return
    from mlflow.tracking import MlflowClient

    from uniss.settings import tracking_uri

    client = MlflowClient(tracking_uri=tracking_uri())
    for k, v in tags.items():
        client.set_tag(parent, k, str(v))


def record_metrics(artifact: Any, values: dict[str, Any]) -> None:
    """Log ``values`` on a KFP ``Metrics`` output and write them as JSON at its path.

    The file matters locally: kfp.local treats an output artifact whose file does not exist as a
    cache miss, so a Metrics output that only carried metadata would re-run its step every time.
    """
    import json

    numeric = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for k, v in numeric.items():
        artifact.log_metric(k, v)
    os.makedirs(os.path.dirname(artifact.path) or ".", exist_ok=True)
    with open(artifact.path, "w") as f:
        json.dump(numeric, f, indent=2, sort_keys=True)
