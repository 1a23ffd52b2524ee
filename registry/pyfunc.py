"""MLflow pyfunc wrapper of a UniSS bundle: what ``mlflow.pyfunc.load_model("models:/uniss-s2st@champion")``
returns, logged by :func:`registry.models.register`.

The model is pickled by reference to this module (``registry.pyfunc.UnissPyfunc``); the bundle
travels as the artifact ``bundle`` (:data:`registry.models.BUNDLE_ARTIFACT`).
Source: MLflow 3 docs, "Custom Python Models" (pyfunc).
"""

from __future__ import annotations

import base64
from typing import Any

import mlflow.pyfunc
import pandas as pd

from registry.models import BUNDLE_ARTIFACT
from uniss.errors import UnissError

__all__ = ["PredictRequestError", "UnissPyfunc"]


class PredictRequestError(UnissError, ValueError):
    """A pyfunc ``predict`` input that is not a DataFrame with ``audio_b64`` and ``target_language``."""


class UnissPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper around ``serving.engine.TranslationEngine``.

    ``predict`` input: a ``pandas.DataFrame`` with columns ``audio_b64`` (base64 of a WAV/FLAC file,
    any sample rate: resampled to 16 kHz mono), ``target_language`` (``en``/``zh``), optional ``mode``
    (``quality`` default, ``performance``, ``direct``), optional ``seed`` (int).
    Output: a DataFrame with ``source_text``, ``target_text``, ``audio_b64`` (16 kHz WAV of the
    translation), ``duration_s``, ``source_duration_s``, ``complete``, ``reason`` (one row per input row).

    Raises:
        PredictRequestError: missing columns or undecodable base64; audio errors from
            ``uniss.audio.load_audio`` (``AudioError``) pass through typed.
    """

    def load_context(self, context: Any) -> None:
        """Load the bundle (``context.artifacts["bundle"]``) with ``TranslationEngine.load``."""
        from serving.engine import TranslationEngine

        self.engine = TranslationEngine.load(context.artifacts[BUNDLE_ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Translate each row's audio (``model_input``: DataFrame, see the class docstring); returns a DataFrame.

        ``pd.DataFrame`` is one of the hints MLflow 3 accepts without inferring a schema from it
        (``mlflow.types.type_hints.type_hints_no_signature_inference``), so MLflow neither warns
        ("Add type hints to the `predict` method ...") nor validates/converts the input: the
        columns are checked here, as before.
        """
        from uniss.audio import load_audio, to_wav_bytes

        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        missing = {"audio_b64", "target_language"} - set(model_input.columns)
        if missing:
            raise PredictRequestError(f"predict input lacks columns {sorted(missing)}")
        rows = []
        for _, row in model_input.iterrows():
            try:
                raw = base64.b64decode(row["audio_b64"], validate=True)
            except (ValueError, TypeError) as e:
                raise PredictRequestError(f"audio_b64 is not valid base64: {e}") from None
            wav = load_audio(raw)
            mode = row.get("mode") if "mode" in model_input.columns and isinstance(row.get("mode"), str) else "quality"
            seed = row.get("seed") if "seed" in model_input.columns else None
            seed = None if seed is None or pd.isna(seed) else int(seed)
            res = self.engine.translate([wav], target_language=str(row["target_language"]), mode=mode, seed=seed)[0]
            rows.append({
                "source_text": res.source_text,
                "target_text": res.target_text,
                "audio_b64": base64.b64encode(to_wav_bytes(res.wav)).decode("ascii") if len(res.wav) else "",
                "duration_s": float(res.duration_s),
                "source_duration_s": float(res.source_duration_s),
                "complete": bool(res.complete),
                "reason": res.reason or "",
            })
        return pd.DataFrame(rows)
