"""Typed UniST data parameters: the ``data:`` section of the repository's ``params.yaml``.

Every threshold is documented in ``params.yaml`` with its paper value and the reason for the value
used here. Unknown keys are rejected (STYLE.md #6) so a typo never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from uniss.settings import REPO_ROOT
from uniss.unist.errors import UnistError

#: Languages of UniST (paper §4: English and Mandarin).
LANGUAGES = ("en", "zh")

#: ``voice_set`` values of a sample: a synthetic voice used in training, a synthetic voice kept out of
#: training (speaker-disjoint test rows), recorded speech. They are the evaluation slices
#: (``evaluation.common.SLICES``) and the GE suite's allowed values.
VOICE_SETS = ("seen", "heldout", "real")


class SizePreset(BaseModel):
    """Pairs per split *per direction* of the demo source corpus.

    Attributes:
        train / dev / test: pairs per split per direction (EN->ZH and ZH->EN).
        librivox: add the LibriVox clips to ``real_speech.parquet``.
        voices_per_language: TTS voices used in training (the ``seen`` voices).
        heldout_voices: further voices per language that speak only half of the test split (the
            ``heldout`` slice: speaker-disjoint from training; issue "Voice-preserving ... UniST").
        real_test: real-voice ZH->EN test pairs read from gcin-voice syllables (the ``real`` slice).
        asterisk: Asterisk English prompts added to ``real_speech.parquet`` (held-out real speech).
        alignment_speech: train-split sentence pairs of the phase-1 alignment corpus spoken on both
            sides by cheap voices (Piper English, gcin-voice Mandarin; :mod:`uniss.unist.alignment`).
        alignment_text: further train-split sentence pairs of that corpus without audio (MT samples).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    train: int = Field(ge=1)
    dev: int = Field(ge=0)
    test: int = Field(ge=0)
    librivox: bool = True
    voices_per_language: int = Field(default=4, ge=1)
    heldout_voices: int = Field(default=0, ge=0)
    real_test: int = Field(default=0, ge=0)
    asterisk: int = Field(default=0, ge=0)
    alignment_speech: int = Field(default=0, ge=0)
    alignment_text: int = Field(default=0, ge=0)


class DataParams(BaseModel):
    """UniST construction parameters (paper §4, App. E; see ``params.yaml`` for the rationale).

    Attributes:
        seed: RNG seed of the sentence generator and voice draws.
        languages: allowed language codes.
        sizes: size presets (``tiny``, ``demo``) of the demo source.
        src_max_error: source re-ASR filter, max WER (en) / CER (zh) per source language.
        tgt_max_error: target ASR filter, max WER (en) / CER (zh) per target language.
        general_ratio: [lo, hi] duration ratio (tgt/src, untrimmed) of the General subset.
        hq_ratio: [lo, hi] VAD-trimmed duration ratio of the High-Quality subset.
        rows_per_shard: rows per Parquet shard.
        chunk_rows: rows per step-cache unit (resumability granularity).
        token_rate_tolerance: relative tolerance of token counts vs duration x rate in the GE gate.
        token_count_slack: absolute slack (tokens) on top of the relative tolerance.
        asr_beam_size: Whisper beam size for both ASR filters.
        asr_pack_s: pack utterances into Whisper windows of at most this many seconds for both ASR
            filters (0 = one 30 s window per utterance); ``uniss.engines.asr`` module docstring.
        mt: translation engine: ``reference`` (the corpus's own translations) or ``qwen2.5-0.5b``
            (``uniss.engines.llm_mt.LocalChatMT``: the local Qwen2.5-Coder-0.5B-Instruct with the
            App. E.2 prompt; opt-in install ``python scripts/install_models.py --only qwen2.5-0.5b``).
        dvc_size: size preset the ``dvc.yaml`` stages build (``dvc repro``).
        min_duration_s / max_duration_s: accepted source/target speech length (s).
        tts: TTS engine of source and target synthesis (``uniss.engines.tts.make_tts`` name:
            ``kokoro`` | ``system`` | ``piper``).
        tts_threads: onnxruntime intra-op threads of a neural TTS engine.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = 0
    languages: tuple[str, ...] = LANGUAGES
    sizes: dict[str, SizePreset] = Field(
        default_factory=lambda: {
            "tiny": SizePreset(train=20, dev=4, test=4, voices_per_language=2),
            "demo": SizePreset(train=440, dev=40, test=40),
        }
    )
    src_max_error: dict[str, float] = Field(default_factory=lambda: {"en": 0.2, "zh": 0.25})
    tgt_max_error: dict[str, float] = Field(default_factory=lambda: {"en": 0.2, "zh": 0.25})
    paper_src_max_wer: float = 0.05
    paper_tgt_max_wer: float = 0.01
    general_ratio: tuple[float, float] = (0.5, 2.0)
    hq_ratio: tuple[float, float] = (0.7, 1.5)
    rows_per_shard: int = Field(default=256, ge=1)
    chunk_rows: int = Field(default=32, ge=1)
    token_rate_tolerance: float = Field(default=0.1, ge=0)
    token_count_slack: int = Field(default=2, ge=0)
    asr_beam_size: int = Field(default=1, ge=1)
    asr_pack_s: float = Field(default=0.0, ge=0.0, le=30.0)
    mt: Literal["reference", "qwen2.5-0.5b"] = "reference"
    dvc_size: str = "tiny"
    min_duration_s: float = 0.3
    max_duration_s: float = 12.0
    tts: str = "kokoro"
    tts_threads: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> DataParams:
        for name in ("general_ratio", "hq_ratio"):
            lo, hi = getattr(self, name)
            if not 0 < lo < hi:
                raise ValueError(f"{name} must be 0 < lo < hi, got {[lo, hi]}")
        for name in ("src_max_error", "tgt_max_error"):
            missing = set(self.languages) - set(getattr(self, name))
            if missing:
                raise ValueError(f"{name} lacks languages {sorted(missing)}")
        return self

    def size(self, name: str) -> SizePreset:
        """Size preset by name.

        Raises:
            UnistError: unknown size.
        """
        if name not in self.sizes:
            raise UnistError(f"unknown data size {name!r}; known: {sorted(self.sizes)}")
        return self.sizes[name]

    def digest(self, *keys: str) -> str:
        """sha256 (hex, 16 chars) of the named fields (all fields when none): a step-cache key part."""
        d = self.model_dump(mode="json")
        sel = {k: d[k] for k in keys} if keys else d
        return hashlib.sha256(json.dumps(sel, sort_keys=True).encode()).hexdigest()[:16]


#: Default params file: the repository's ``params.yaml``.
PARAMS_FILE = REPO_ROOT / "params.yaml"


def load_params(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> DataParams:
    """Read the ``data:`` section of ``params.yaml`` (missing file/section -> defaults) and apply
    ``overrides`` (a dict of top-level ``data`` keys, e.g. from a KFP pipeline parameter).

    A view of :func:`uniss.params.load_project_params`: the whole file is validated.

    Raises:
        UnistError: unreadable YAML or invalid/unknown keys in any section (message lists them).
    """
    from uniss.params import ParamsError, load_project_params, read_params_yaml

    p = Path(path) if path is not None else PARAMS_FILE
    try:
        project = load_project_params(p)
        if not overrides:
            return project.data
        raw: dict[str, Any] = dict(read_params_yaml(p).get("data") or {})
    except ParamsError as e:
        raise UnistError(str(e)) from None
    raw.update(overrides)
    try:
        return DataParams(**raw)
    except ValidationError as e:
        raise UnistError(f"invalid data params ({p}): {e}") from None
