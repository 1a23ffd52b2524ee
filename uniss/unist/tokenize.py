"""Tokenization step: the three token streams (paper §3.1.2) of source and target speech.

Cached per chunk by (codec fingerprint, chunk audio hash), so re-tokenizing with the same codec is a
cache hit and a new codec re-tokenizes everything.

Columns added (family-local codes, int lists): ``src_speaker`` (32), ``src_linguistic`` (~12.5/s),
``src_semantic`` (~50/s), and the same for ``tgt_``; and each side's word alignment
(:data:`WORD_COLUMNS`): ``src_words`` (list of str, Whisper's words of the transcript with their
leading spaces) and ``src_word_starts`` (list of int, each word's start in semantic-token frames at
50 per second), from Whisper-base forced alignment of the row's own text
(:meth:`uniss.engines.asr.WhisperASR.align_words`), for the interleaved speech span of
``data.interleave_words`` (``uniss.prompts.interleave_words``), when asked for (``uniss data tokenize
--align-words``). A clip that cannot be aligned gets empty lists, and its samples keep the plain
speech span.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from uniss.unist.cache import StepCache, chunks
from uniss.unist.io import decode_flac

#: Token columns added by this step, in order.
TOKEN_COLUMNS = ["src_speaker", "src_linguistic", "src_semantic", "tgt_speaker", "tgt_linguistic", "tgt_semantic"]
#: Word-alignment columns added by this step (module docstring).
WORD_COLUMNS = ["src_words", "src_word_starts", "tgt_words", "tgt_word_starts"]
#: Bumped when the step changes (a tokenization without word alignment keeps version 1's cache keys).
TOKENIZE_VERSION = 1


def word_starts_in_frames(words: list[tuple[str, float, float]], n_frames: int, rate_hz: float) -> list[int]:
    """Word start times (s) as semantic-token frame indices: ``round(start x rate_hz)``, clipped to
    ``[0, n_frames]`` and made non-decreasing (DTW times can tie or cross by a frame).

    Args:
        words: ``W`` ``(word, start_s, end_s)`` (:meth:`uniss.engines.asr.WhisperASR.align_words`).
        n_frames: semantic tokens of the clip (``T_s``).
        rate_hz: semantic token rate (50 tok/s, paper §3.1.2).
    Returns:
        ``W`` ints.
    """
    st = np.clip(np.rint(np.asarray([w[1] for w in words], dtype=np.float64) * rate_hz), 0, n_frames).astype(np.int64)
    return np.maximum.accumulate(st).tolist() if st.size else []


def align_chunk(df: pd.DataFrame, wavs: dict[str, list[np.ndarray]], aligner: Any) -> None:
    """Fill :data:`WORD_COLUMNS` of ``df`` in place (one ``align_words`` call per side and language).

    Args:
        df: rows with ``{side}_lang``, ``{side}_text`` and ``{side}_semantic``.
        wavs: ``{"src": [...], "tgt": [...]}`` waveforms ``(N,)`` float32 16 kHz in row order.
        aligner: a :class:`uniss.engines.asr.WhisperASR` (``align_words``).
    """
    from uniss.codecs.base import SEMANTIC_RATE_HZ

    for side in ("src", "tgt"):
        words: list[list[str]] = [[] for _ in range(len(df))]
        starts: list[list[int]] = [[] for _ in range(len(df))]
        langs, texts = df[f"{side}_lang"].tolist(), df[f"{side}_text"].tolist()
        for lang in sorted(set(langs)):
            idx = [i for i, (l, t) in enumerate(zip(langs, texts)) if l == lang and isinstance(t, str) and t.strip()]
            if not idx:
                continue
            res = aligner.align_words([wavs[side][i] for i in idx], [texts[i] for i in idx], lang)
            for i, ws in zip(idx, res):
                words[i] = [w[0] for w in ws]
                starts[i] = word_starts_in_frames(ws, len(df[f"{side}_semantic"].iloc[i]), SEMANTIC_RATE_HZ)
        df[f"{side}_words"] = words
        df[f"{side}_word_starts"] = starts


def tokenize_chunk(chunk: pd.DataFrame, codec: Any, aligner: Any = None) -> pd.DataFrame:
    """Encode source and target audio of a chunk in one batched ``codec.encode`` call, and align
    each side's words (:func:`align_chunk`) when ``aligner`` is given.

    Args:
        chunk: sample rows with ``src_audio``, ``tgt_audio`` (FLAC bytes, 16 kHz), ``{side}_lang``
            and ``{side}_text``.
        codec: a ``SpeechCodec`` (``encode(list[(N,) float32]) -> list[CodecTokens]``).
        aligner: a :class:`uniss.engines.asr.WhisperASR`, or ``None`` for no word columns.

    Returns:
        the chunk with :data:`TOKEN_COLUMNS` (lists of int), and :data:`WORD_COLUMNS` with an aligner.

    Raises:
        EngineUnavailableError: the aligner's Whisper model is not installed.
    """
    df = chunk.drop(columns=[c for c in TOKEN_COLUMNS + WORD_COLUMNS if c in chunk]).copy()
    wavs = [decode_flac(b) for b in df["src_audio"]] + [decode_flac(b) for b in df["tgt_audio"]]
    toks = codec.encode(wavs) if wavs else []
    n = len(df)
    for side, part in (("src", toks[:n]), ("tgt", toks[n:])):
        for fam in ("speaker", "linguistic", "semantic"):
            df[f"{side}_{fam}"] = [[int(x) for x in getattr(t, fam)] for t in part]
    if aligner is not None:
        align_chunk(df, {"src": wavs[:n], "tgt": wavs[n:]}, aligner)
    return df


def tokenize_samples(samples: pd.DataFrame, codec: Any, *, cache: StepCache, chunk_rows: int,
                     aligner: Any = None) -> pd.DataFrame:
    """Add the token columns, and the word columns with an ``aligner``, to every sample (cached per
    chunk by the codec fingerprint, and for word alignment also by the texts and languages).

    Args:
        aligner: as in :func:`tokenize_chunk` (``None``: no word columns).

    Returns:
        the samples (same order) with :data:`TOKEN_COLUMNS` (and :data:`WORD_COLUMNS`).
    """
    cfg: dict[str, Any] = {"v": TOKENIZE_VERSION, "codec": codec.fingerprint()}
    cols = list(TOKEN_COLUMNS)
    keyed = ["id", "src_audio", "tgt_audio"]
    if aligner is not None:
        cfg["words"] = 1  # version of the word alignment
        cols += WORD_COLUMNS
        keyed += ["src_lang", "tgt_lang", "src_text", "tgt_text"]
    out = []
    for ch in tqdm(chunks(samples.reset_index(drop=True), chunk_rows), desc="unist tokenize", unit="chunk"):
        # only (id, tokens) are cached: the key hashes id + audio, not the other (param-dependent) columns
        k, _ = cache.run("tokenize", cfg, ch, lambda c: (tokenize_chunk(c, codec, aligner)[["id", *cols]], c.iloc[0:0]),
                         columns=keyed)
        base = ch.drop(columns=[c for c in [*TOKEN_COLUMNS, *WORD_COLUMNS] if c in ch])
        out.append(base.merge(k, on="id", how="left", validate="one_to_one"))
    return pd.concat(out, ignore_index=True) if out else samples.assign(**{c: [] for c in cols})
