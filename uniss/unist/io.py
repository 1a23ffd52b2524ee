"""Byte-level I/O of the UniST tables: FLAC cells, Parquet tables, md5s.

Why FLAC bytes inside the Parquet row (rather than paths into a tarball): a shard is then
self-contained (one file = samples + audio + tokens), its md5 is stable (libFLAC output is a pure
function of the samples and settings, no timestamps; Parquet is written with fixed options), and
DVC tracks a handful of files instead of tens of thousands of tiny WAVs. FLAC is lossless, so the
audio the filters measured is exactly the audio training reads. (soundfile / libsndfile docs.)
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from uniss.audio import SAMPLE_RATE_HZ  # every waveform in UniST tables is at the platform rate
from uniss.unist.errors import UnistError



class AudioCellError(UnistError, ValueError):
    """An audio cell that is not decodable FLAC at 16 kHz mono."""


def flac_bytes(wav: np.ndarray) -> bytes:
    """Encode a waveform as 16-bit FLAC.

    Args:
        wav: ``(N,)`` float32 in [-1, 1] at 16 kHz (clipped).

    Returns:
        FLAC file bytes (deterministic for a given input).
    """
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0), SAMPLE_RATE_HZ, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes) -> np.ndarray:
    """Decode a FLAC cell.

    Returns:
        ``(N,)`` float32 at 16 kHz.

    Raises:
        AudioCellError: empty, undecodable/truncated, not 16 kHz, not mono, or zero samples.
    """
    if not data:
        raise AudioCellError("empty audio cell")
    try:
        wav, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises its own RuntimeError/LibsndfileError
        raise AudioCellError(f"undecodable audio cell ({len(data)} bytes): {e}") from None
    if sr != SAMPLE_RATE_HZ or wav.shape[1] != 1 or wav.shape[0] == 0:
        raise AudioCellError(f"audio cell must be 16 kHz mono and non-empty, got sr={sr} shape={wav.shape}")
    return wav[:, 0]


def flac_duration_s(data: bytes) -> float:
    """Duration (s) of a FLAC cell from its header, after a full decode check."""
    return len(decode_flac(data)) / SAMPLE_RATE_HZ


def file_md5(path: str | Path) -> str:
    """md5 hex digest of a file (the DVC checksum of a single file)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_table(df: pd.DataFrame, path: str | Path) -> str:
    """Write a DataFrame as a single-row-group Parquet file (zstd, no pandas index) atomically.

    Returns:
        md5 of the written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=max(1, len(df)))
    tmp.replace(path)
    return file_md5(path)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet file into pandas.

    Raises:
        UnistError: missing or unreadable file.
    """
    try:
        return pq.read_table(path).to_pandas()
    except FileNotFoundError:
        raise UnistError(f"missing table {path}") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise UnistError(f"unreadable Parquet file {path}: {e}") from None


def frame_digest(df: pd.DataFrame, columns: list[str] | None = None) -> str:
    """Content hash (sha256 hex) of selected columns of a frame, row order included.

    Used as the input part of step-cache keys: bytes cells are hashed raw, other cells by repr.
    """
    h = hashlib.sha256()
    cols = columns or list(df.columns)
    for col in cols:
        h.update(col.encode())
        for v in df[col].tolist():
            if isinstance(v, bytes | bytearray):
                h.update(hashlib.sha256(v).digest())
            else:
                h.update(repr(v).encode())
            h.update(b"\x00")
    return h.hexdigest()
