"""Scoring of one group of outputs (a mode or a topline of one direction) and its slices.

:func:`score_outputs` turns output waveforms into :class:`uniss.metrics.UtteranceResult` rows:
batched ASR of the output (Speech-BLEU, paper §5.2.2), speaker similarity to the source, MOS proxy
(DNSMOS P.808, ``uniss.engines.mos``; NaN for an output with no speech), durations for SLC
(App. C.1). :func:`slice_scores` scores the whole group (slice ``all``) and each ``voice_set`` slice
(seen voices, held-out voices, real speech) when the data has that column.

Waveforms: ``(N,)`` float32 mono at 16 kHz; durations in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from evaluation.common import ALL_SLICE, SAMPLE_RATE_HZ, SLICES
from uniss.metrics import CorpusScores, UtteranceResult, score_group, speaker_similarities

__all__ = ["SourceEmbedCache", "row_voice_set", "score_outputs", "slice_scores", "transcribe"]


def transcribe(asr: Any, wavs: list[np.ndarray], language: str, batch_size: int) -> list[str]:
    """ASR of output speech in batches of ``batch_size``; empty or sub-0.1 s outputs transcribe as
    ``""`` (kept, not dropped)."""
    texts = [""] * len(wavs)
    idx = [i for i, w in enumerate(wavs) if w.size >= SAMPLE_RATE_HZ // 10]
    for s in range(0, len(idx), batch_size):
        part = idx[s:s + batch_size]
        for i, t in zip(part, asr.transcribe([wavs[i] for i in part], language), strict=True):
            texts[i] = t
    return texts


class SourceEmbedCache:
    """Wraps a speaker ``embed`` so each *source* waveform of a direction is embedded once across
    the modes and toplines (the outputs differ each time and are not cached).

    Args:
        embed: waveform ``(N,)`` float32 16 kHz -> ``(D,)`` embedding.
        sources: the direction's source waveforms (kept referenced, so their ``id`` stays unique).
    """

    def __init__(self, embed: Callable[[np.ndarray], np.ndarray], sources: Sequence[np.ndarray]) -> None:
        self.embed, self.sources = embed, list(sources)
        self._ids = {id(w) for w in self.sources}
        self._cache: dict[int, np.ndarray] = {}

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        k = id(wav)
        if k not in self._ids:
            return self.embed(wav)
        if k not in self._cache:
            self._cache[k] = self.embed(wav)
        return self._cache[k]


def row_voice_set(row: Any) -> str:
    """The row's ``voice_set`` slice (``seen``/``heldout``/``real``), ``""`` when absent or null."""
    v = row.get("voice_set") if hasattr(row, "get") else None
    return v if isinstance(v, str) else ""


def score_outputs(
    sub: Any,
    direction: str,
    mode: str,
    src_wavs: list[np.ndarray],
    ref_wavs: list[np.ndarray | None],
    out_wavs: list[np.ndarray],
    *,
    asr: Any,
    embed: Callable[[np.ndarray], np.ndarray],
    mos: Any | None,
    batch_size: int,
    processing_s: list[float],
    texts: list[str] | None = None,
    source_texts: list[str] | None = None,
    complete: list[bool] | None = None,
    reasons: list[str] | None = None,
) -> list[UtteranceResult]:
    """Per-utterance results of one (direction, mode-or-topline) group (not yet corpus-scored).

    Args:
        sub: the direction's shard rows (``DataFrame``, same order as the waveforms).
        src_wavs / ref_wavs / out_wavs: source, reference target (or None) and output waveforms.
        asr: ``transcribe(wavs, language)`` engine; embed: speaker embedding function.
        mos: ``uniss.engines.mos.MOSPredictor`` or ``None`` (MOS left NaN).
        processing_s: seconds of processing per utterance (NaN for the reference topline).
        texts / source_texts: the model's target / source text (``""`` for toplines).
        complete / reasons: the engine's completion flags.
    """
    from uniss.engines.mos import mos_or_nan

    src_lang, tgt_lang = direction.split("-")
    n = len(out_wavs)
    asr_texts = transcribe(asr, out_wavs, tgt_lang, batch_size)
    sims = speaker_similarities(src_wavs, out_wavs, embed)
    scores = mos_or_nan(mos, out_wavs, SAMPLE_RATE_HZ) if mos is not None else [float("nan")] * n
    results = []
    for k in range(n):
        row = sub.iloc[k]
        ref = ref_wavs[k]
        results.append(UtteranceResult(
            id=str(row["id"]), direction=direction, mode=mode, src_lang=src_lang, tgt_lang=tgt_lang,
            src_text=str(row.get("src_text", "")), ref_text=str(row.get("tgt_text", "")),
            output_text=(texts[k] if texts else "") or "", output_asr=asr_texts[k],
            source_text_pred=(source_texts[k] if source_texts else "") or "",
            source_duration_s=float(len(src_wavs[k]) / SAMPLE_RATE_HZ),
            output_duration_s=float(out_wavs[k].size / SAMPLE_RATE_HZ),
            ref_duration_s=float(ref.size / SAMPLE_RATE_HZ) if ref is not None else float("nan"),
            processing_s=processing_s[k], speaker_sim=sims[k], mos=scores[k], voice_set=row_voice_set(row),
            complete=bool(complete[k]) if complete else True, reason=(reasons[k] if reasons else "") or "",
        ))
    return results


def slice_scores(results: list[UtteranceResult]) -> list[CorpusScores]:
    """Corpus scores of the whole group (slice ``all``) and of each ``voice_set`` slice present
    (order :data:`evaluation.common.SLICES`, then any other value sorted). Rows without a
    ``voice_set`` (old data) give the ``all`` slice only."""
    out = [score_group(results, ALL_SLICE)]
    present = {r.voice_set for r in results if r.voice_set}
    for s in [*[s for s in SLICES if s in present], *sorted(present - set(SLICES))]:
        out.append(score_group([r for r in results if r.voice_set == s], s))
    return out
