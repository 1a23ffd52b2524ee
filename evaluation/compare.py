"""Paper Table 4 style comparison of evaluation runs (ablations).

:func:`compare_runs` reads MLflow runs and builds the table (rows = runs or ``run:mode``, columns =
a metric per direction, deltas vs the first row; with ``significance``, the paired-bootstrap p-value
of each BLEU delta from the runs' per-utterance outputs); :func:`log_comparison` logs it as a run of
experiment ``uniss-eval``; :func:`comparison_markdown` renders it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.common import DIRECTIONS, EVAL_EXPERIMENT, MODES, EvaluationError, eval_mlflow
from uniss.metrics import metric_key

__all__ = ["HYPOTHESIS_COLUMNS", "compare_runs", "comparison_markdown", "format_cell", "log_comparison", "paired_p_value", "run_utterances"]


def compare_runs(
    run_specs: Sequence[str],
    *,
    metric: str | Sequence[str] = "speech_bleu",
    directions: Sequence[str] = DIRECTIONS,
    default_mode: str = "performance",
    significance: bool = False,
    n_samples: int = 1000,
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
        significance: also test each BLEU delta (``speech_bleu``, ``text_bleu``) with paired bootstrap
            resampling over the utterances both runs scored (:func:`paired_p_value`).
        n_samples: bootstrap resamples.
    Returns:
        ``DataFrame``: ``variant``, ``run_id``, ``mode``, then ``<metric>.<dir>`` per metric and
        direction and ``delta.<metric>.<dir>`` (vs the first row). With several metrics, a run that
        lacks some of them (a textless system has no Text-BLEU) gets NaN there. With
        ``significance``, ``p.<metric>.<dir>`` for the BLEU metrics (NaN on the first row, and where
        a run has no per-utterance outputs or the two runs share no utterance).
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
    if significance:
        utts = {rid: run_utterances(c, rid) for rid in dict.fromkeys(df["run_id"])}
        tested = [m for m in metrics if m in HYPOTHESIS_COLUMNS]
        for m in tested:
            for d in directions:
                df[f"p.{m}.{d}"] = [float("nan")] + [
                    paired_p_value(utts[df["run_id"].iloc[0]], utts[r["run_id"]], metric=m, direction=d,
                                   base_mode=df["mode"].iloc[0], mode=r["mode"], n_samples=n_samples)
                    if r[f"delta.{m}.{d}"] == r[f"delta.{m}.{d}"] else float("nan")  # no delta (a textless system): no test
                    for _, r in df.iloc[1:].iterrows()]
    return df


#: Per-utterance column holding each BLEU metric's hypothesis (``evaluation.report`` ``utterances.parquet``).
HYPOTHESIS_COLUMNS = {"speech_bleu": "output_asr", "text_bleu": "output_text"}
#: Where ``evaluation.report.log_report`` logs the per-utterance table of an evaluation run.
UTTERANCES_ARTIFACT = "eval/utterances.parquet"


def run_utterances(client: Any, run_id: str) -> Any | None:
    """The per-utterance table (``DataFrame``) an evaluation run logged (:data:`UTTERANCES_ARTIFACT`),
    or ``None`` when the run has none (a run logged before it existed, or not an evaluation run)."""
    import pandas as pd
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
    from mlflow.exceptions import MlflowException

    saved = os.environ.get(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name)
    os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = "false"  # one line per step: no download bars
    try:
        with tempfile.TemporaryDirectory(prefix="uniss-compare-") as tmp:
            try:
                path = client.download_artifacts(run_id, UTTERANCES_ARTIFACT, tmp)
            except (MlflowException, OSError):
                return None
            return pd.read_parquet(Path(path))
    finally:
        if saved is None:
            os.environ.pop(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, None)
        else:
            os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = saved


def paired_p_value(base: Any | None, other: Any | None, *, metric: str, direction: str, base_mode: str, mode: str,
                   n_samples: int = 1000) -> float:
    """Paired-bootstrap p-value of ``other``'s BLEU minus ``base``'s on the utterances both scored in
    ``direction`` (``uniss.metrics.paired_bootstrap_bleu``: Koehn 2004 via SacreBLEU).

    Args:
        base / other: per-utterance tables (``id``, ``direction``, ``mode``, ``ref_text`` and the
            metric's hypothesis column, :data:`HYPOTHESIS_COLUMNS`), or ``None``.
        metric: ``speech_bleu`` or ``text_bleu``; base_mode / mode: each table's mode compared.
    Returns:
        The p-value; NaN when a table is missing or the two share no utterance id.
    Raises:
        EvaluationError: a metric without a per-utterance hypothesis column.
    """
    from uniss.metrics import paired_bootstrap_bleu

    if metric not in HYPOTHESIS_COLUMNS:
        raise EvaluationError(f"no paired test for {metric}; only {', '.join(HYPOTHESIS_COLUMNS)}")
    if base is None or other is None:
        return float("nan")
    col = HYPOTHESIS_COLUMNS[metric]
    pick = lambda t, md: t[(t["direction"] == direction) & (t["mode"] == md)][["id", "ref_text", col]]  # noqa: E731
    both = pick(base, base_mode).merge(pick(other, mode), on="id", suffixes=("_base", "_other"))
    if both.empty:
        return float("nan")
    both = both.sort_values("id", kind="stable")
    res = paired_bootstrap_bleu(both[f"{col}_base"].fillna("").tolist(), both[f"{col}_other"].fillna("").tolist(),
                                both["ref_text_base"].fillna("").tolist(), direction.split("-")[1], n_samples=n_samples)
    return res.p_value


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
                if col.startswith(("delta.", "p.")):
                    if r[col] == r[col]:  # NaN: a metric the system does not have
                        mlflow.log_metric(_metric_name(f"{col}.{r['variant']}"), float(r[col]))
        return run.info.run_id


def _metric_name(name: str) -> str:
    """An MLflow-legal metric name (alphanumerics, ``_ - . : /`` and spaces; MLflow REST rule)."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-.:/ ]", "_", name)[:250]


def format_cell(column: str, value: Any, *, base_row: bool = False) -> str:
    """One cell of a comparison table, the rule every rendering shares (markdown artifact and the
    ``uniss compare`` terminal table): deltas signed to 2 places, p-values to 3, other floats to 2;
    the base row (paper Table 4's first line) shows ``-`` for its deltas and p-values; NaN is
    ``n/a`` (the system lacks that metric, or no per-utterance outputs to test).

    Args:
        column: the :func:`compare_runs` column name (``delta.*`` and ``p.*`` are special).
        value: the cell's value (float, or a string such as the variant name).
        base_row: whether the row is the base of the deltas.
    """
    if column.startswith(("delta.", "p.")) and base_row:
        return "-"
    if isinstance(value, float) and value != value:
        return "n/a"
    if column.startswith("delta."):
        return f"{value:+.2f}"
    if column.startswith("p."):
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def comparison_markdown(df: Any) -> str:
    """The comparison table in markdown, cells by :func:`format_cell` (first row ``-`` like paper
    Table 4)."""
    cols = [c for c in df.columns if c not in ("run_id",)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for i, (_, r) in enumerate(df.iterrows()):
        lines.append("| " + " | ".join(format_cell(c, r[c], base_row=i == 0) for c in cols) + " |")
    return "\n".join(lines) + "\n"
