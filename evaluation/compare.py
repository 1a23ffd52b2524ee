"""Paper Table 4 style comparison of evaluation runs (ablations).

:func:`compare_runs` reads MLflow runs and builds the table (rows = runs or ``run:mode``, columns =
a metric per direction, deltas vs the first row); :func:`log_comparison` logs it as a run of
experiment ``uniss-eval``; :func:`comparison_markdown` renders it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaluation.common import DIRECTIONS, EVAL_EXPERIMENT, MODES, EvaluationError, eval_mlflow
from uniss.metrics import metric_key

__all__ = ["compare_runs", "comparison_markdown", "log_comparison"]


def compare_runs(
    run_specs: Sequence[str],
    *,
    metric: str | Sequence[str] = "speech_bleu",
    directions: Sequence[str] = DIRECTIONS,
    default_mode: str = "performance",
) -> Any:
    """Table 4 style comparison of evaluation runs; with several metrics, Table 1 style (systems
    side by side on Speech-BLEU, Text-BLEU, SLC, speaker similarity ...).

    Args:
        run_specs: ``RUN_ID`` or ``RUN_ID:MODE`` (e.g. ``abc123:direct`` for the Direct S2ST row of the
            base model); the first is the base of the deltas.
        metric: metric compared (default Speech-BLEU, as paper Table 4), or a sequence of metrics
            (``uniss.metrics`` names, e.g. ``["speech_bleu", "text_bleu", "slc_0.2", "speaker_sim"]``).
        directions: directions shown (columns).
        default_mode: mode when a spec has none (paper: Base/Train rows in Performance mode).
    Returns:
        ``DataFrame``: ``variant``, ``run_id``, ``mode``, then ``<metric>.<dir>`` per metric and
        direction and ``delta.<metric>.<dir>`` (vs the first row). With several metrics, a run that
        lacks some of them (a textless system has no Text-BLEU) gets NaN there.
    Raises:
        EvaluationError: no runs or no metric, an unknown run id or mode, or a run lacking every
            requested metric of its mode.
        RegistryError: the MLflow tracking server is down.
    """
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from registry.models import client

    metrics = [metric] if isinstance(metric, str) else list(metric)
    if not run_specs:
        raise EvaluationError("compare needs at least one run id")
    if not metrics:
        raise EvaluationError("compare needs at least one metric")
    c = client()
    rows = []
    for spec in run_specs:
        run_id, _, mode = spec.partition(":")
        mode = mode or default_mode
        if mode not in MODES:
            raise EvaluationError(f"{spec}: unknown mode {mode!r}")
        try:
            run = c.get_run(run_id)
        except MlflowException as e:
            raise EvaluationError(f"unknown run {run_id}: {e.message}") from None
        variant = run.data.tags.get("uniss.variant") or run.data.tags.get("mlflow.runName") or run_id[:8]
        if mode == "direct" and ":" in spec:
            variant = f"{variant} (Direct S2ST)"
        row: dict[str, Any] = {"variant": variant, "run_id": run_id, "mode": mode}
        missing = []
        for m in metrics:
            for d in directions:
                key = metric_key(m, d, mode)
                if key not in run.data.metrics:
                    missing.append(key)
                    if len(metrics) == 1:
                        raise EvaluationError(f"run {run_id} has no metric {key}")
                row[f"{m}.{d}"] = float(run.data.metrics.get(key, float("nan")))
        if len(missing) == len(metrics) * len(directions):
            raise EvaluationError(f"run {run_id} has none of the metrics compared ({', '.join(missing[:4])} ...)")
        rows.append(row)
    df = pd.DataFrame(rows)
    for m in metrics:
        for d in directions:
            df[f"delta.{m}.{d}"] = df[f"{m}.{d}"] - df[f"{m}.{d}"].iloc[0]
    return df


def log_comparison(df: Any, *, metric: str | Sequence[str] = "speech_bleu") -> str:
    """Log a :func:`compare_runs` table as a new run of ``uniss-eval`` (CSV + markdown artifacts,
    tag ``uniss.compare`` with the run ids); returns its run id."""
    mlflow = eval_mlflow()
    mlflow.set_experiment(EVAL_EXPERIMENT)
    with mlflow.start_run(run_name="compare", tags={"uniss.compare": ",".join(df["run_id"]), "uniss.compare.metric": metric if isinstance(metric, str) else ",".join(metric)}) as run:
        mlflow.log_text(df.to_csv(index=False), "comparison/table4.csv")
        mlflow.log_text(comparison_markdown(df), "comparison/table4.md")
        for _, r in df.iloc[1:].iterrows():
            for col in df.columns:
                if col.startswith("delta."):
                    if r[col] == r[col]:  # NaN: a metric the system does not have
                        mlflow.log_metric(_metric_name(f"{col}.{r['variant']}"), float(r[col]))
        return run.info.run_id


def _metric_name(name: str) -> str:
    """An MLflow-legal metric name (alphanumerics, ``_ - . : /`` and spaces; MLflow REST rule)."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-.:/ ]", "_", name)[:250]


def comparison_markdown(df: Any) -> str:
    """The comparison table in markdown (deltas signed, first row ``-`` like paper Table 4)."""
    cols = [c for c in df.columns if c not in ("run_id",)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for i, (_, r) in enumerate(df.iterrows()):
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float) and v != v:  # NaN: the system lacks this metric
                cells.append("n/a")
            elif c.startswith("delta."):
                cells.append("-" if i == 0 else f"{v:+.2f}")
            elif isinstance(v, float):
                cells.append(f"{v:.2f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
