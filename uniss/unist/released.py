"""The released UniST (Parquet shards of token ids, no audio) as a token-only dataset in the paper
layout (issue 19 item 2).

Schema, as documented by the public training reproduction ``happyjin/UniSS-training-reproduction``
(``training/prepare_unist_s2st.py``, ``training/sample_builders.py``); token values are
family-local codebook indices, not vocabulary ids:

- required: ``id``; ``transcription`` (source text); ``translation`` (target text); ``src_lang``,
  ``tgt_lang`` (``en``/``eng``/``english``, ``zh``/``zh-cn``/``cmn``/``mandarin`` ...);
  ``source_glm`` (GLM-4-Voice linguistic tokens of the source, 0..16383, 12.5 Hz);
  ``target_bicodec`` (BiCodec semantic tokens of the target, 0..8191, 50 Hz); ``bicodec_global``
  (32 BiCodec global speaker tokens of the source voice, 0..4095; UniST synthesises the target in
  that voice, so it is also the target's speaker);
- optional: ``source_bicodec`` (BiCodec semantic tokens of the source), ``dataset_name``, ``split``,
  ``duration_ratio`` (target / source duration; absent = 1.0, speed token ``<|speed_9|>``).

:func:`read_unist_parquet` maps a file onto this project's sample table (docs/design.md columns,
``src_linguistic`` / ``tgt_semantic`` / ``src_speaker`` / ``tgt_speaker`` filled, the other token
columns empty lists, no audio, ``token_only``); :func:`build_released` writes it as a dataset whose
manifest says ``token_only: true`` and whose ``codec/`` is a weightless paper-codec manifest
(``uniss.codecs.paper.write_token_only_manifest``), so the GE suite runs its token-only variant,
training selects the paper layout (180,407 ids) and evaluation refuses it with a clear error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from uniss.unist.errors import ManifestError, UnistError
from uniss.unist.params import DataParams

#: Columns a released UniST shard must hold.
REQUIRED_COLUMNS = ("id", "transcription", "translation", "src_lang", "tgt_lang", "source_glm", "target_bicodec",
                    "bicodec_global")
#: Optional columns that are read when present.
OPTIONAL_COLUMNS = ("source_bicodec", "dataset_name", "split", "duration_ratio")
_LANG = {"en": "en", "eng": "en", "english": "en", "en_xx": "en", "en-xx": "en",
         "zh": "zh", "zh-cn": "zh", "zh_cn": "zh", "cn": "zh", "cmn": "zh", "mandarin": "zh", "chinese": "zh"}


def _lang(v: Any, path: Path, rid: str, col: str) -> str:
    key = str(v).strip().lower().replace(" ", "_")
    if key not in _LANG:
        raise ManifestError(f"{path}: row {rid!r}: field {col!r}: unknown language {v!r}")
    return _LANG[key]


def _ids(v: Any, path: Path, rid: str, col: str) -> list[int]:
    if v is None:
        raise ManifestError(f"{path}: row {rid!r}: field {col!r}: missing")
    try:
        return [int(x) for x in v]
    except (TypeError, ValueError):
        raise ManifestError(f"{path}: row {rid!r}: field {col!r}: expected a list of ints") from None


def read_unist_parquet(paths: str | Path | list[str | Path]) -> pd.DataFrame:
    """Released UniST Parquet file(s) -> a token-only sample table.

    Args:
        paths: one file or several (read in the order given).

    Returns:
        one row per record with ``id, split, src_lang, tgt_lang, src_text, tgt_text, src_voice,
        tgt_voice, ratio, speed_index, general, hq, hq_ratio, speaker, origin, dataset_name`` and the
        six token columns (``uniss.unist.tokenize.TOKEN_COLUMNS``; ``tgt_linguistic`` and, when the
        file has no ``source_bicodec``, ``src_semantic`` are empty lists). ``split`` is the file's
        own (``train`` when absent); ``hq`` is left to :func:`build_released`.

    Raises:
        ManifestError: a missing required column (names it), a null/ill-typed token list or an
            unknown language (names file, row id and field).
    """
    from uniss.vocab import speed_index

    files = [Path(p) for p in (paths if isinstance(paths, list) else [paths])]
    rows: list[dict[str, Any]] = []
    for path in files:
        if not path.is_file():
            raise ManifestError(f"{path}: released UniST shard does not exist")
        df = pd.read_parquet(path)
        missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            raise ManifestError(f"{path}: field {missing[0]!r}: missing from the UniST schema columns {list(df.columns)}")
        for r in df.to_dict("records"):
            rid = str(r["id"])
            ratio = r.get("duration_ratio")
            ratio = 1.0 if ratio is None or pd.isna(ratio) else float(ratio)
            spk = _ids(r["bicodec_global"], path, rid, "bicodec_global")
            src_sem = r.get("source_bicodec")
            rows.append({
                "id": rid, "split": str(r.get("split") or "train"),
                "src_lang": _lang(r["src_lang"], path, rid, "src_lang"),
                "tgt_lang": _lang(r["tgt_lang"], path, rid, "tgt_lang"),
                "src_text": str(r["transcription"]), "tgt_text": str(r["translation"]),
                "src_voice": None, "tgt_voice": None, "ratio": ratio, "speed_index": speed_index(ratio),
                "general": True, "hq": False, "hq_ratio": ratio, "speaker": None, "origin": "unist-release",
                "dataset_name": str(r.get("dataset_name") or ""),
                "src_speaker": spk, "src_linguistic": _ids(r["source_glm"], path, rid, "source_glm"),
                "src_semantic": [] if src_sem is None else _ids(src_sem, path, rid, "source_bicodec"),
                "tgt_speaker": list(spk), "tgt_linguistic": [],
                "tgt_semantic": _ids(r["target_bicodec"], path, rid, "target_bicodec"),
            })
    if not rows:
        raise UnistError(f"no rows in {[str(p) for p in files]}")
    return pd.DataFrame(rows)


def build_released(paths: str | Path | list[str | Path], out_dir: str | Path, *, params: DataParams) -> dict[str, Any]:
    """Write released UniST shards as a token-only dataset (shards + manifest + weightless paper
    codec manifest in ``OUT/codec``); not yet validated (``uniss.unist.steps.validate`` next).

    ``hq`` is True where ``ratio`` lies within ``params.hq_ratio`` (the release carries no
    VAD-trimmed durations; paper §4 High-Quality rule on the ratio it has).

    Returns:
        summary: ``rows``, ``counts`` (per direction/split), ``codec_fingerprint``, ``version``, ``timings``.

    Raises:
        ManifestError / UnistError: as :func:`read_unist_parquet`.
    """
    from uniss.codecs.paper import write_token_only_manifest
    from uniss.codecs.base import read_manifest as codec_manifest
    from uniss.unist.shards import write_dataset
    from uniss.unist.steps import _stamp_version

    t0 = time.perf_counter()
    out = Path(out_dir)
    df = read_unist_parquet(paths)
    lo, hi = params.hq_ratio
    df["hq"] = [lo <= r <= hi for r in df["ratio"]]
    out.mkdir(parents=True, exist_ok=True)
    write_token_only_manifest(out / "codec")
    cm = codec_manifest(out / "codec", verify=False)
    counts = {f"{a}-{b}/{s}": int(n) for (a, b, s), n in df.groupby(["src_lang", "tgt_lang", "split"]).size().items()}
    manifest = write_dataset(df, pd.DataFrame(), out, rows_per_shard=params.rows_per_shard, manifest={
        "params": params.model_dump(mode="json"), "token_only": True,
        "counts": {"released": counts, "subsets": {"total/general": int(len(df)), "total/hq": int(df["hq"].sum())}},
        "source": {"kind": "unist-release", "files": [str(Path(p).resolve()) for p in
                                                      (paths if isinstance(paths, list) else [paths])]},
        "codec_fingerprint": cm.fingerprint(),
        "codec": {"backend": "paper", "sizes": dict(cm.sizes), "path": str((out / "codec").resolve())},
        "validation": {"passed": False, "suite": None, "failures": []},
        "timings": {"read_s": round(time.perf_counter() - t0, 3)},
    })
    _stamp_version(out, manifest)
    return {"rows": int(len(df)), "counts": counts, "codec_fingerprint": manifest["codec_fingerprint"],
            "version": manifest["version"], "timings": manifest["timings"]}


__all__ = ["REQUIRED_COLUMNS", "OPTIONAL_COLUMNS", "read_unist_parquet", "build_released"]
