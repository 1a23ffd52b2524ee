"""The trainer's view of a UniST dataset directory (docs/design.md "UniST data") and its codec.

Rows come from ``uniss.unist.dataset.load_samples`` (the data product's reader). The checks the
trainer must make **before any compute** live here: the manifest's Great Expectations gate passed,
every shard's md5 matches, and the dataset was tokenized with the codec the model will carry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from uniss.errors import UnissError
from uniss.jsonio import read_json

__all__ = ["DataError", "check_dataset", "codec_info", "has_alignment", "load_alignment_rows", "load_rows"]


class DataError(UnissError, ValueError):
    """Missing/unvalidated/corrupt dataset or codec directory."""


def _md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - content checksum, as the manifest records it
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_dataset(data_dir: str | Path) -> dict[str, Any]:
    """Validate a dataset directory for training and return its manifest.

    Raises:
        DataError: no manifest, the GE gate did not pass (``validation.passed`` not true; the
            message lists the failures), a missing shard or an md5 mismatch.
    """
    d = Path(data_dir)
    mf = d / "manifest.json"
    if not mf.is_file():
        raise DataError(f"{d} is not a UniST dataset (no manifest.json)")
    manifest = read_json(mf, what="UniST manifest", error=DataError)
    val = manifest.get("validation") or {}
    if val.get("passed") is not True:
        fails = val.get("failures") or []
        raise DataError(
            f"{d}: dataset did not pass validation (validation.passed={val.get('passed')!r}); "
            f"refusing to train on it. failures: {json.dumps(fails, default=str)[:500]}"
        )
    shards = manifest.get("shards") or []
    if not shards:
        raise DataError(f"{d}: manifest lists no shards")
    for s in shards:
        p = d / s["path"]
        if not p.is_file():
            raise DataError(f"{d}: shard {s['path']} is missing")
        if s.get("md5") and _md5(p) != s["md5"]:
            raise DataError(f"{d}: shard {s['path']} md5 does not match the manifest")
    return manifest


def load_rows(data_dir: str | Path, *, split: str, subset: str, max_rows: int | None = None,
              keep_audio: bool = False) -> list[dict[str, Any]]:
    """Corpus rows (dicts with the UniST columns, audio bytes dropped unless ``keep_audio``: the
    S2ST-Omni recipe encodes the speech itself) of a split/subset.

    Uses ``uniss.unist.dataset.load_samples(..., require_validated=True)``.

    Raises:
        DataError: no rows; the reader's own errors (``DataNotValidatedError`` ...) pass through.
    """
    from uniss.unist.dataset import load_samples

    df = load_samples(data_dir, split=split, subset=subset, require_validated=True)
    if not keep_audio:
        df = df.drop(columns=[c for c in ("src_audio", "tgt_audio") if c in df.columns])
    if max_rows is not None:
        df = df.iloc[:max_rows]
    if len(df) == 0:
        raise DataError(f"{data_dir}: no rows in split={split!r} subset={subset!r}")
    return df.to_dict("records")


def has_alignment(data_dir: str | Path) -> bool:
    """Whether the dataset's manifest lists a phase-1 alignment corpus (``uniss.unist.alignment``)."""
    from uniss.unist.dataset import read_manifest

    return bool(read_manifest(data_dir).get("alignment"))


def load_alignment_rows(data_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of the dataset's phase-1 alignment corpus (``uniss.unist.alignment``), audio dropped.

    ``speech`` rows carry both sides' token columns; ``text`` rows only texts (MT samples).

    Raises:
        DataError: the dataset has no alignment corpus (``alignment: true`` in a phase config needs one),
            or the corpus is not tokenized.
        DataIntegrityError: its md5 differs from the manifest's.
    """
    from uniss.unist.alignment import read_alignment

    df = read_alignment(data_dir)
    if df is None or len(df) == 0:
        raise DataError(f"{data_dir}: no phase-1 alignment corpus (data size presets alignment_speech/alignment_text)")
    if "src_semantic" not in df.columns:
        raise DataError(f"{data_dir}: the alignment corpus is not tokenized (run the tokenize step)")
    df = df.drop(columns=[c for c in ("src_audio", "tgt_audio") if c in df.columns])
    return df.to_dict("records")


def codec_info(codec_dir: str | Path) -> dict[str, Any]:
    """Sizes, backend and fingerprint of a codec directory from its ``manifest.json`` (read with
    ``uniss.codecs.base.read_manifest``; the fingerprint is the codec's own ``fingerprint()``, the
    one the UniST tokenize step records, without loading any weights).

    Returns:
        ``{"sizes": {"speaker", "semantic", "linguistic"}, "backend", "fingerprint", "path"}``.

    Raises:
        DataError: missing directory/manifest or sizes.
    """
    d = Path(codec_dir)
    mf = d / "manifest.json"
    if not mf.is_file():
        raise DataError(f"{d} is not a codec directory (no manifest.json)")
    m = read_json(mf, what="codec manifest", error=DataError)
    sizes = m.get("sizes") or {}
    if not all(k in sizes for k in ("speaker", "semantic", "linguistic")):
        raise DataError(f"{mf}: sizes must hold speaker, semantic, linguistic; got {sorted(sizes)}")
    from uniss.codecs.base import CodecError, read_manifest

    try:
        fingerprint = read_manifest(d, verify=False).fingerprint()
    except CodecError as e:
        raise DataError(f"{mf}: {e}") from None
    return {"sizes": {k: int(sizes[k]) for k in ("speaker", "semantic", "linguistic")}, "backend": m.get("backend", "lite"),
            "fingerprint": fingerprint, "path": str(d)}
