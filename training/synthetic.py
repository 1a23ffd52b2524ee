"""Synthetic UniST-shaped datasets for tests, smoke runs and benchmarks.

Writes a directory with exactly the shard contract of docs/design.md "UniST data" (manifest with
shard md5s and a validation verdict, parquet shards with every column, a ``codec/`` directory with
a codec ``manifest.json``), filled with random-but-structured content: sentences drawn from small
English/Chinese word lists and token streams of the right lengths (speaker 32, linguistic
12.5 tok/s, semantic 50 tok/s of the stated durations). The target semantic stream is a
deterministic function of the target sentence, so a model can actually learn something.
It is not speech data: real figures come from ``uniss data build``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

__all__ = ["make_synthetic_dataset"]

_EN = ("the cat sat on a mat while rain fell over quiet hills and people walked home slowly "
       "music plays in small rooms every morning we read new books about distant cities").split()
_ZH = list("我们今天在公园里散步天气很好大家都很高兴他喜欢读书她在学习音乐城市很远")


def _sentence(rng: np.random.Generator, lang: str) -> str:
    n = int(rng.integers(4, 10))
    if lang == "en":
        return " ".join(rng.choice(_EN, n)).capitalize() + "."
    return "".join(rng.choice(_ZH, n + 3)) + "。"


def _codes_for(text: str, n: int, size: int, salt: str) -> list[int]:
    """``n`` frames for ``text``: each character owns a fixed code (hash of salt + char) held for
    an equal share of the frames, like a phone held over several 20 ms frames. Learnable from the
    text (TTS) and back (ASR), unlike uniform noise."""
    chars = [c for c in text if not c.isspace()] or [" "]
    codes = [int(hashlib.md5((salt + c).encode()).hexdigest()[:8], 16) % size for c in chars]  # noqa: S324
    idx = np.minimum((np.arange(n) * len(codes)) // max(n, 1), len(codes) - 1)
    return [codes[i] for i in idx]


def _audio_for(text: str, duration_s: float, salt: str) -> bytes:
    """FLAC bytes of a 16 kHz tone sequence for ``text`` (``with_audio``): each character owns a
    fixed pitch (hash of salt + char, 150-950 Hz) held for an equal share of ``duration_s``, with a
    short fade per character, so speech features follow the text like :func:`_codes_for`'s codes.
    Not speech; enough for a frozen encoder + adapter to have something learnable."""
    from uniss.audio import SAMPLE_RATE_HZ, to_flac_bytes

    chars = [c for c in text if not c.isspace()] or [" "]
    n = max(1, int(round(duration_s * SAMPLE_RATE_HZ)))
    f = np.asarray([150 + 20 * (int(hashlib.md5((salt + c).encode()).hexdigest()[:8], 16) % 41) for c in chars],  # noqa: S324
                   dtype=np.float64)
    idx = np.minimum((np.arange(n) * len(chars)) // n, len(chars) - 1)  # (n,) character of each sample
    t = np.arange(n) / SAMPLE_RATE_HZ
    seg = np.arange(n) - np.searchsorted(idx, idx)  # samples since the character started
    env = np.minimum(1.0, seg / 160.0)  # 10 ms fade-in per character
    wav = 0.3 * env * (np.sin(2 * np.pi * f[idx] * t) + 0.3 * np.sin(4 * np.pi * f[idx] * t))
    return to_flac_bytes(wav.astype(np.float32))


def make_synthetic_dataset(
    out_dir: str | Path,
    n_rows: int = 24,
    *,
    sizes: dict[str, int] | None = None,
    validated: bool = True,
    seed: int = 0,
    duration_s: tuple[float, float] = (0.6, 1.6),
    rows_per_shard: int = 16,
    with_audio: bool = False,
) -> Path:
    """Write a synthetic dataset directory.

    Args:
        out_dir: target directory (created).
        n_rows: rows per split ``train`` (plus a quarter as many ``dev`` rows).
        sizes: codec sizes ``{"speaker", "semantic", "linguistic"}`` (default 64/128/64).
        validated: value of ``manifest["validation"]["passed"]``.
        duration_s: range of source durations in seconds.
        with_audio: fill ``src_audio``/``tgt_audio`` with FLAC tone sequences that follow the texts
            (:func:`_audio_for`; the S2ST-Omni recipe reads the speech itself); default empty bytes,
            so existing datasets (and their shard md5s) are unchanged.

    Returns:
        ``Path`` of the dataset.
    """
    import pandas as pd

    sizes = sizes or {"speaker": 64, "semantic": 128, "linguistic": 64}
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    (out / "codec").mkdir(exist_ok=True)
    from uniss.codecs.base import CodecManifest

    cm = CodecManifest(backend="lite", version="synthetic", sizes=dict(sizes), config={"synthetic": True})
    (out / "codec" / "manifest.json").write_text(cm.to_json())
    fp = cm.fingerprint()
    rows = []
    for split, n in (("train", n_rows), ("dev", max(1, n_rows // 4))):
        for i in range(n):
            src = "en" if i % 2 == 0 else "zh"
            tgt = "zh" if src == "en" else "en"
            st, tt = _sentence(rng, src), _sentence(rng, tgt)
            sd = float(rng.uniform(*duration_s))
            ratio = float(np.clip(rng.normal(1.0, 0.2), 0.55, 1.9))
            td = sd * ratio
            spk_s = rng.integers(0, sizes["speaker"], 32).tolist()
            spk_t = rng.integers(0, sizes["speaker"], 32).tolist()
            rows.append({
                "id": f"{split}-{i:05d}", "split": split, "src_lang": src, "tgt_lang": tgt,
                "src_text": st, "tgt_text": tt, "src_voice": "synthetic:a", "tgt_voice": "synthetic:b",
                "src_audio": _audio_for(st, sd, "a") if with_audio else b"",
                "tgt_audio": _audio_for(tt, td, "a") if with_audio else b"", "src_duration_s": sd, "tgt_duration_s": td,
                "ratio": ratio, "speed_index": int(round(ratio * 10)) - 1, "src_wer": 0.0, "tgt_wer": 0.0,
                "general": True, "hq": bool(0.7 <= ratio <= 1.5),
                "src_speaker": spk_s, "src_linguistic": _codes_for(st, max(1, int(sd * 12.5)), sizes["linguistic"], "l"),
                "src_semantic": _codes_for(st, max(1, int(sd * 50)), sizes["semantic"], "s"),
                "tgt_speaker": spk_t, "tgt_linguistic": _codes_for(tt, max(1, int(td * 12.5)), sizes["linguistic"], "l"),
                "tgt_semantic": _codes_for(tt, max(1, int(td * 50)), sizes["semantic"], "s"),
            })
    df = pd.DataFrame(rows)
    shards = []
    for k, start in enumerate(range(0, len(df), rows_per_shard)):
        rel = f"shards/part-{k:05d}.parquet"
        df.iloc[start : start + rows_per_shard].to_parquet(out / rel, index=False)
        shards.append({"path": rel, "md5": hashlib.md5((out / rel).read_bytes()).hexdigest(),  # noqa: S324
                       "rows": int(min(rows_per_shard, len(df) - start))})
    manifest = {
        "version": "synthetic-0", "created_at": "1970-01-01T00:00:00+00:00", "params": {"seed": seed},
        "codec_fingerprint": fp, "shards": shards,
        "counts": {"train": n_rows, "dev": max(1, n_rows // 4)},
        "validation": {"passed": bool(validated), "suite": "synthetic",
                       "failures": [] if validated else [{"expectation": "synthetic failure", "column": "ratio"}]},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out
