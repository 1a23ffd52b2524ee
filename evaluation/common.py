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
from uniss.unist.params import VOICE_SETS

__all__ = ["ALL_SLICE", "DIRECTIONS", "EVAL_EXPERIMENT", "MODES", "SAMPLE_RATE_HZ", "SLICES", "TOPLINES",
           "TOPLINE_CODEC", "TOPLINE_REFERENCE", "EvaluationError", "SkippedDirectionWarning", "eval_mlflow",
           "slice_key"]

#: Inference modes (paper §3.2) and directions evaluated by default (paper Table 1: EN-ZH | ZH-EN).
MODES = ("quality", "performance", "direct")
DIRECTIONS = ("en-zh", "zh-en")
#: Toplines scored beside the modes (:mod:`evaluation.toplines`); they take the mode's place in the
#: metric key (``speech_bleu.en-zh.topline_reference``), which the gate never reads (it reads only
#: the modes of ``params.yaml`` ``gate.modes``).
TOPLINE_REFERENCE = "topline_reference"
TOPLINE_CODEC = "topline_codec"
TOPLINES = (TOPLINE_REFERENCE, TOPLINE_CODEC)
#: Evaluation slices: every utterance, then the shard column ``voice_set`` values (seen voices,
#: held-out voices, real speech; defined once with the data, ``uniss.unist.params.VOICE_SETS``).
#: Data without that column has only ``all``.
ALL_SLICE = "all"
SLICES = VOICE_SETS
#: Experiment of evaluation and comparison runs.
EVAL_EXPERIMENT = "uniss-eval"


class EvaluationError(UnissError, ValueError):
    """Bad evaluation request: unknown direction/mode, no rows in the split for any requested
    direction, bad audio in the split."""


class SkippedDirectionWarning(UserWarning):
    """A requested direction has no rows in the evaluated split: it is skipped (recorded in
    ``EvalReport.skipped``), the other directions are still scored."""


class TokenOnlyDataError(EvaluationError):
    """The dataset holds token ids only (the released UniST: no source audio, no BiCodec / GLM-4-Voice
    checkpoints), so there is no speech to translate and no speech to score against."""


def slice_key(metric: str, direction: str, mode: str, slice: str) -> str:
    """Flat metric name of one slice: ``speech_bleu.en-zh.quality`` for ``all`` (the gate's key,
    ``uniss.metrics.metric_key``), ``speech_bleu.en-zh.quality/seen`` for a slice ("/" is legal in
    MLflow metric names and groups a metric's slices in its UI)."""
    base = f"{metric}.{direction}.{mode}"
    return base if slice == ALL_SLICE else f"{base}/{slice}"


def eval_mlflow() -> Any:
    """The ``mlflow`` module with its tracking URI set to ``uniss.settings.tracking_uri()``
    (env ``MLFLOW_TRACKING_URI`` > ``UNISS_MLFLOW_TRACKING_URI`` > embedded stack)."""
    import mlflow

    from uniss.settings import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow
