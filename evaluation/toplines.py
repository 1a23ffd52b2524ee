"""Toplines: what the evaluation scores when the "model" is perfect, on the same utterances.

Two toplines are scored beside the model's modes (pseudo-modes in the metric keys, e.g.
``speech_bleu.en-zh.topline_reference``; the gate only reads its own modes, ``uniss.gate``):

- ``topline_reference``: the dataset's own target speech (``tgt_audio``) scored as an output:
  Speech-BLEU of its ASR vs the reference target text, SLC vs the *source* duration, speaker
  similarity to the source, MOS (paper §5.2.2 metrics, App. C.1). It bounds what any model trained
  on this data can reach (e.g. the SLC of the synthesized targets themselves).
- ``topline_codec``: ``codec.decode(src_speaker, tgt_semantic)`` with the data's own codec
  (``DATA/codec``, the codec the shard tokens came from): the speech a perfect LM would produce,
  since the LM predicts target semantic tokens and the decoder speaks them in the source speaker's
  voice (paper §3.1.2, §3.2). It separates LM errors from codec losses.

Text-BLEU is NaN for both (no text output); RTF is NaN for the reference (no processing) and the
codec decode time over the source duration for the codec topline.
Waveforms: ``(N,)`` float32 mono at 16 kHz (:data:`uniss.audio.SAMPLE_RATE_HZ`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.common import TOPLINE_CODEC, TOPLINE_REFERENCE, EvaluationError

__all__ = ["TOPLINE_CODEC", "TOPLINE_REFERENCE", "codec_outputs", "load_data_codec", "reference_outputs"]

#: Shard columns the codec topline needs (docs/design.md, the shard contract).
CODEC_COLUMNS = ("src_speaker", "tgt_semantic")


def load_data_codec(data: Any, codec: Any | None = None) -> Any | None:
    """The codec of the codec topline.

    Args:
        data: the dataset directory (its ``codec/`` is the codec the tokens came from) or a DataFrame.
        codec: a loaded codec (``uniss.codecs.SpeechCodec``) or a codec directory; wins over ``data``.
    Returns:
        The codec, or ``None`` when there is none (a DataFrame without ``codec``, or a dataset
        directory without ``codec/manifest.json``): the codec topline is then skipped.
    Raises:
        CodecError: a codec directory that is corrupt (sha256 mismatch, bad manifest).
    """
    from uniss.codecs import load_codec

    if codec is not None:
        return load_codec(codec) if isinstance(codec, (str, Path)) else codec
    if isinstance(data, (str, Path)) and (Path(data) / "codec" / "manifest.json").is_file():
        return load_codec(Path(data) / "codec")
    return None


def reference_outputs(ref_wavs: list[np.ndarray | None]) -> tuple[list[np.ndarray], list[float]]:
    """Outputs of the reference topline: the target speech itself (a row without ``tgt_audio``
    gives an empty output, which scores 0 BLEU and NaN speaker similarity / MOS).

    Returns:
        (``(N_i,)`` float32 waveforms, processing seconds per utterance = NaN).
    """
    wavs = [np.zeros(0, np.float32) if w is None else np.asarray(w, np.float32) for w in ref_wavs]
    return wavs, [float("nan")] * len(wavs)


def codec_outputs(rows: Any, codec: Any) -> tuple[list[np.ndarray], list[float]] | None:
    """Outputs of the codec topline: ``codec.decode(src_speaker, tgt_semantic)`` per row.

    Args:
        rows: shard rows (``DataFrame``) with int-list columns ``src_speaker`` (32) and
            ``tgt_semantic`` (T_s, 50 tokens/s).
        codec: ``uniss.codecs.SpeechCodec``.
    Returns:
        (``(T_s * 320,)`` float32 16 kHz waveforms, decode seconds per utterance), or ``None`` when
        the rows lack the token columns (a token-free dataset: topline skipped). A row whose codes
        the codec rejects (``CodecError``, e.g. codes from another codec) gives an empty output.
    Raises:
        EvaluationError: every row was rejected (the data's tokens do not belong to this codec).
    """
    from uniss.codecs import CodecError

    if any(c not in rows.columns for c in CODEC_COLUMNS):
        return None
    wavs: list[np.ndarray] = []
    secs: list[float] = []
    bad: list[str] = []
    for rid, spk, sem in zip(rows["id"], rows["src_speaker"], rows["tgt_semantic"], strict=True):
        t0 = time.perf_counter()
        try:
            w = codec.decode(np.asarray(spk, np.int64), np.asarray(sem, np.int64))
        except CodecError as e:
            bad.append(f"{rid}: {e}")
            w = np.zeros(0, np.float32)
        secs.append(time.perf_counter() - t0)
        wavs.append(np.asarray(w, np.float32).reshape(-1))
    if bad and len(bad) == len(wavs):
        raise EvaluationError(f"codec topline: the codec rejects every row's tokens ({bad[0]})")
    return wavs, secs
