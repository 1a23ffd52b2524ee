"""Decoding programs of the MSLM-S2ST recipe (issue 20; arXiv 2403.12408 §3.4), for
:meth:`serving.engine.TranslationEngine.translate` on a bundle whose ``recipe`` is ``mslm``.

The recipe decodes in two stages with the same LM (prompts in ``uniss/mslm.py``):

1. translation: source linguistic units -> target linguistic units (one ``linguistic`` span ended
   by ``<|end_glm_token|>``, then ``<|im_end|>``);
2. generation: target linguistic units + the source speaker block -> semantic tokens (one
   ``semantic`` span ended by ``<|end_semantic_token|>``, then ``<|im_end|>``), decoded to speech by
   the codec with the *source* speaker tokens.

Steps are those of ``serving.engine.decoding_program`` (``("span", family, terminator, budget,
min_len)`` / ``("force", id)``), so the continuous decoder (:class:`serving.decoder.ProgramCursor`),
the ``hf`` runtime (``StageConstraint``) and vLLM enforce them unchanged.

Span lengths (a platform choice; the paper decodes to the end-of-sequence token without bounds):
the translated span is sized like UniSS's semantic span, around the duration the ``speed`` ratio asks
for (``n = 12.5 tok/s x speed x source_s``), and the generated span around the duration of the
translated units (``n = 4 x T_l``: the codec's semantic stream runs at 4x the linguistic rate, 50 vs
12.5 tok/s, paper UniSS §3.1.2). Both hold ``[floor(lo x n), ceil(hi x n)]`` tokens with the
engine's duration window ``(lo, hi)`` (``serving.engine.SPEED_WINDOW``), so every row terminates
and the output duration follows ``speed`` as it does for UniSS (issue 16).
"""

from __future__ import annotations

import math

from uniss.codecs.base import LINGUISTIC_RATE_HZ
from uniss.mslm import SEMANTIC_PER_LINGUISTIC
from uniss.vocab import SpeechVocab

__all__ = ["generation_program", "span_bounds", "translation_program"]


def span_bounds(n_expected: float, window: tuple[float, float], cap: int | None = None) -> tuple[int, int]:
    """``(budget, min_len)`` of a span expected to hold ``n_expected`` tokens.

    ``budget = ceil(hi x n)`` (at least 1, at most ``cap`` when given), ``min_len = floor(lo x n)``
    (at least 1, never above the budget), for ``window = (lo, hi)``.
    """
    lo, hi = window
    budget = max(1, math.ceil(n_expected * hi))
    if cap is not None:
        budget = min(budget, max(1, int(cap)))
    return int(budget), int(min(budget, max(1, math.floor(n_expected * lo))))


def translation_program(vocab: SpeechVocab, source_duration_s: float, speed: float, *, window: tuple[float, float],
                        max_duration_s: float | None = None) -> list[tuple]:
    """Stage 1: ``linguistic* <|end_glm_token|>`` then forced ``<|im_end|>``.

    Args:
        vocab: the layout.
        source_duration_s: seconds of source speech (> 0).
        speed: target/source duration ratio (0.1 .. 3.5).
        window: ``(lo, hi)`` duration window (``serving.engine.SPEED_WINDOW``).
        max_duration_s: optional cap of the output duration in seconds (caps the span at 12.5 tok/s).

    Returns:
        the program (list of steps).
    """
    cap = None if max_duration_s is None else int(LINGUISTIC_RATE_HZ * max_duration_s)
    budget, min_len = span_bounds(LINGUISTIC_RATE_HZ * speed * source_duration_s, window, cap)
    return [("span", "linguistic", vocab.token_id("<|end_glm_token|>"), budget, min_len), ("force", vocab.eos_id)]


def generation_program(vocab: SpeechVocab, n_linguistic: int, *, window: tuple[float, float], semantic_rate_hz: float,
                       max_duration_s: float | None = None) -> list[tuple]:
    """Stage 2: ``semantic* <|end_semantic_token|>`` then forced ``<|im_end|>``, sized by the
    ``n_linguistic`` translated units (``4 x n_linguistic`` semantic tokens expected; at least 1 unit).

    Args:
        semantic_rate_hz: semantic tokens per second (``serving.engine.SEMANTIC_RATE_HZ``, 50), for
            ``max_duration_s``.
    """
    cap = None if max_duration_s is None else int(semantic_rate_hz * max_duration_s)
    budget, min_len = span_bounds(SEMANTIC_PER_LINGUISTIC * max(1, int(n_linguistic)), window, cap)
    return [("span", "semantic", vocab.token_id("<|end_semantic_token|>"), budget, min_len), ("force", vocab.eos_id)]
