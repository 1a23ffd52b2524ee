"""Metric loggers behind one Protocol (STYLE.md #10, after torchtune ``training/metric_logging.py``).

The trainer logs only through :class:`MetricLogger`; MLflow is one implementation
(:class:`MLflowLogger`), so ``uniss/`` and the training loop never import mlflow. Runs without a
tracking server use :class:`JsonlLogger` (always on rank 0: the phase's ``metrics.jsonl`` is also
what the exported bundle's ``train_metrics`` and the loss-curve plot are made from) and
:class:`StdoutLogger`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "JsonlLogger",
    "MLflowLogger",
    "MetricLogger",
    "MultiLogger",
    "StdoutLogger",
    "mlflow_configured",
    "plot_loss_curve",
    "read_jsonl",
]


@runtime_checkable
class MetricLogger(Protocol):
    """What the trainer calls. Metric names used: ``loss`` (mean token cross-entropy, nats),
    ``lr``, ``tokens_per_s`` (real, non-padding tokens per second over all ranks), ``step_s``,
    ``peak_rss_gib_rank<r>`` / ``peak_rss_gib_max`` (each rank's peak resident memory so far, GiB;
    training/recipe.py ``peak_rss_gib_per_rank``)."""

    def log_params(self, params: dict[str, Any]) -> None:
        """Record run parameters (flat ``str -> scalar`` mapping)."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Record scalar metrics at an optimizer step."""

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Attach a file (config, loss-curve plot)."""

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Attach tags (data version, phase)."""

    def close(self) -> None:
        """Flush and end the run."""


class StdoutLogger:
    """Prints one line per logged step (for runs without MLflow)."""

    def log_params(self, params: dict[str, Any]) -> None:
        print("params:", json.dumps(params, default=str)[:2000], flush=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        print(f"step {step}: " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        print(f"artifact: {path}", flush=True)

    def set_tags(self, tags: dict[str, Any]) -> None:
        print("tags:", json.dumps(tags, default=str), flush=True)

    def close(self) -> None:
        pass


class JsonlLogger:
    """Appends JSON lines ``{"kind": "metrics"|"params"|"tags"|"event", "step", ..., "time"}``
    to ``path`` (appending, so a resumed run continues the same file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", buffering=1)

    def _write(self, rec: dict[str, Any]) -> None:
        rec["time"] = time.time()
        self._f.write(json.dumps(rec, default=str) + "\n")

    def log_params(self, params: dict[str, Any]) -> None:
        self._write({"kind": "params", **params})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._write({"kind": "metrics", "step": int(step), **{k: float(v) for k, v in metrics.items()}})

    def log_event(self, event: str, **fields: Any) -> None:
        """A non-metric record (``resume``, ``checkpoint``, ``end``)."""
        self._write({"kind": "event", "event": event, **fields})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._write({"kind": "artifact", "path": str(path)})

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._write({"kind": "tags", **tags})

    def close(self) -> None:
        self._f.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of a :class:`JsonlLogger` file (a torn last line after a kill is skipped)."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def mlflow_configured() -> bool:
    """Whether a tracking server was configured explicitly: :func:`uniss.settings.tracking_configured`."""
    from uniss.settings import tracking_configured

    return tracking_configured()


class MLflowLogger:
    """One MLflow run per phase, nested under the pipeline's parent run.

    Args:
        run_name: e.g. ``phase-2``.
        experiment: MLflow experiment (env ``MLFLOW_EXPERIMENT_NAME``, default ``uniss-retrain``).
        parent_run_id: parent run (default env ``MLFLOW_PARENT_RUN_ID``); ``None`` = top level.
        run_id: resume an existing run (a resumed phase keeps logging into its run). When the
            resuming pipeline run is a different parent (a rerun after a kill), the run moves under
            it (MLflow's ``mlflow.parentRunId`` tag) so the pipeline run that finished the phase
            lists it, and ``uniss.resumed_from_parent`` keeps the killed run's id.
        tracking_uri: default :func:`uniss.settings.tracking_uri`.
    """

    def __init__(self, run_name: str, *, experiment: str | None = None, parent_run_id: str | None = None,
                 run_id: str | None = None, tracking_uri: str | None = None) -> None:
        import mlflow

        from uniss.settings import tracking_uri as default_uri

        self._mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri or default_uri())
        mlflow.set_experiment(experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME", "uniss-retrain"))
        parent = parent_run_id if parent_run_id is not None else os.environ.get("MLFLOW_PARENT_RUN_ID")
        if run_id:
            self.run = mlflow.start_run(run_id=run_id)
            old = self.run.data.tags.get("mlflow.parentRunId")
            if parent and old != parent:
                mlflow.set_tags({"mlflow.parentRunId": parent, "uniss.resumed_from_parent": old or ""})
        else:
            self.run = mlflow.start_run(run_name=run_name, parent_run_id=parent or None, nested=bool(parent))
        self.run_id = self.run.info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        try:
            self._mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        except Exception:  # noqa: BLE001 - params are immutable in MLflow; a resumed run re-logs them
            pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=int(step))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._mlflow.set_tags({k: str(v)[:5000] for k, v in tags.items()})

    def close(self) -> None:
        self._mlflow.end_run()


class MultiLogger:
    """Fans every call out to several loggers."""

    def __init__(self, *loggers: MetricLogger) -> None:
        self.loggers = [lg for lg in loggers if lg is not None]

    def log_params(self, params: dict[str, Any]) -> None:
        for lg in self.loggers:
            lg.log_params(params)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for lg in self.loggers:
            lg.log_metrics(metrics, step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        for lg in self.loggers:
            lg.log_artifact(path, artifact_path)

    def set_tags(self, tags: dict[str, Any]) -> None:
        for lg in self.loggers:
            lg.set_tags(tags)

    def close(self) -> None:
        for lg in self.loggers:
            lg.close()


def plot_loss_curve(records: list[dict[str, Any]], out_png: str | Path, title: str = "training loss") -> Path:
    """Loss (nats/token) and LR against optimizer step from JSONL metric records -> PNG.
    A resumed run's re-done steps are drawn as they were logged last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_step: dict[int, dict[str, Any]] = {}
    for r in records:
        if r.get("kind") == "metrics" and "loss" in r:
            by_step[int(r["step"])] = r
    steps = sorted(by_step)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [by_step[s]["loss"] for s in steps], label="loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    if steps and "lr" in by_step[steps[0]]:
        ax2 = ax.twinx()
        ax2.plot(steps, [by_step[s]["lr"] for s in steps], color="tab:orange", alpha=0.6, label="lr")
        ax2.set_ylabel("learning rate")
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
