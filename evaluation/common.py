"""Names shared by the evaluation modules: modes, directions, the evaluation experiment, the typed
error, and the MLflow handle on the platform's tracking server.

Kept apart so :mod:`evaluation.evaluate` (running a model), :mod:`evaluation.report` (report files,
MLflow logging) and :mod:`evaluation.compare` (paper Table 4) import it without importing each other
in a circle.
"""

from __future__ import annotations

from typing import Any

from uniss.audio import SAMPLE_RATE_HZ
from uniss.errors import UnissError

__all__ = ["DIRECTIONS", "EVAL_EXPERIMENT", "MODES", "SAMPLE_RATE_HZ", "EvaluationError", "eval_mlflow"]

#: Inference modes (paper §3.2) and directions evaluated by default (paper Table 1: EN-ZH | ZH-EN).
MODES = ("quality", "performance", "direct")
DIRECTIONS = ("en-zh", "zh-en")
#: Experiment of evaluation and comparison runs.
EVAL_EXPERIMENT = "uniss-eval"


class EvaluationError(UnissError, ValueError):
    """Bad evaluation request: unknown direction/mode, no test rows, bad audio in the split."""


def eval_mlflow() -> Any:
    """The ``mlflow`` module with its tracking URI set to ``uniss.settings.tracking_uri()``
    (env ``MLFLOW_TRACKING_URI`` > ``UNISS_MLFLOW_TRACKING_URI`` > embedded stack)."""
    import mlflow

    from uniss.settings import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow
