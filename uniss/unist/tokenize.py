"""Tokenization step: the three token streams (paper §3.1.2) of source and target speech.

Cached per chunk by (codec fingerprint, chunk audio hash), so re-tokenizing with the same codec is a
cache hit and a new codec re-tokenizes everything.

Columns added (family-local codes, int lists): ``src_speaker`` (32), ``src_linguistic`` (~12.5/s),
``src_semantic`` (~50/s), and the same for ``tgt_``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from uniss.unist.cache import StepCache, chunks
from uniss.unist.io import decode_flac

#: Token columns added by this step, in order.
TOKEN_COLUMNS = ["src_speaker", "src_linguistic", "src_semantic", "tgt_speaker", "tgt_linguistic", "tgt_semantic"]
#: Bumped when the step changes.
TOKENIZE_VERSION = 1


def tokenize_chunk(chunk: pd.DataFrame, codec: Any) -> pd.DataFrame:
    """Encode source and target audio of a chunk in one batched ``codec.encode`` call.

    Args:
        chunk: sample rows with ``src_audio``, ``tgt_audio`` (FLAC bytes, 16 kHz).
        codec: a ``SpeechCodec`` (``encode(list[(N,) float32]) -> list[CodecTokens]``).

    Returns:
        the chunk with :data:`TOKEN_COLUMNS` (lists of int).
    """
    df = chunk.drop(columns=[c for c in TOKEN_COLUMNS if c in chunk]).copy()
    wavs = [decode_flac(b) for b in df["src_audio"]] + [decode_flac(b) for b in df["tgt_audio"]]
    toks = codec.encode(wavs) if wavs else []
    n = len(df)
    for side, part in (("src", toks[:n]), ("tgt", toks[n:])):
        for fam in ("speaker", "linguistic", "semantic"):
            df[f"{side}_{fam}"] = [[int(x) for x in getattr(t, fam)] for t in part]
    return df


def tokenize_samples(samples: pd.DataFrame, codec: Any, *, cache: StepCache, chunk_rows: int) -> pd.DataFrame:
    """Add the token columns to every sample (cached per chunk by the codec fingerprint).

    Returns:
        the samples (same order) with :data:`TOKEN_COLUMNS`.
    """
    cfg = {"v": TOKENIZE_VERSION, "codec": codec.fingerprint()}
    out = []
    for ch in tqdm(chunks(samples.reset_index(drop=True), chunk_rows), desc="unist tokenize", unit="chunk"):
        # only (id, tokens) are cached: the key hashes id + audio, not the other (param-dependent) columns
        k, _ = cache.run("tokenize", cfg, ch, lambda c: (tokenize_chunk(c, codec)[["id", *TOKEN_COLUMNS]], c.iloc[0:0]),
                         columns=["id", "src_audio", "tgt_audio"])
        base = ch.drop(columns=[c for c in TOKEN_COLUMNS if c in ch])
        out.append(base.merge(k, on="id", how="left", validate="one_to_one"))
    return pd.concat(out, ignore_index=True) if out else samples.assign(**{c: [] for c in TOKEN_COLUMNS})
