"""Write a UniST dataset directory (docs/design.md "UniST data"): Parquet shards of ~fixed row count,
``quarantine.parquet``, ``plots/*.png`` and ``manifest.json`` with shard md5s.

Rows are sorted by (split, id) before sharding so the same samples always give the same shards
(byte-identical files, identical md5s) whatever order the steps produced them in.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from uniss.jsonio import read_json
from uniss.unist.errors import DataIntegrityError
from uniss.unist.io import file_md5, read_table, write_table

MANIFEST = "manifest.json"
QUARANTINE = "quarantine.parquet"
SHARD_DIR = "shards"
#: Format of ``manifest.json``.
MANIFEST_FORMAT = 1


def shard_frames(samples: pd.DataFrame, rows_per_shard: int) -> list[pd.DataFrame]:
    """Sort by (split, id) and cut into consecutive shards of ``rows_per_shard`` rows."""
    s = samples.sort_values(["split", "id"], kind="stable").reset_index(drop=True)
    return [s.iloc[i : i + rows_per_shard].reset_index(drop=True) for i in range(0, len(s), rows_per_shard)] or [s]


def subset_counts(samples: pd.DataFrame) -> dict[str, int]:
    """``{"<split>/<general|hq>/<src>-<tgt>": n}`` plus per-subset totals ``"<split>/<subset>"``."""
    out: dict[str, int] = {}
    for split, g in samples.groupby("split"):
        out[f"{split}/general"] = int(len(g))
        out[f"{split}/hq"] = int(g["hq"].sum())
        for (s, t), gg in g.groupby(["src_lang", "tgt_lang"]):
            out[f"{split}/general/{s}-{t}"] = int(len(gg))
            out[f"{split}/hq/{s}-{t}"] = int(gg["hq"].sum())
    out["total/general"] = int(len(samples))
    out["total/hq"] = int(samples["hq"].sum()) if len(samples) else 0
    return out


def write_dataset(samples: pd.DataFrame, quarantine: pd.DataFrame, out_dir: str | Path, *,
                  rows_per_shard: int, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write shards + quarantine + manifest into ``out_dir`` (old shards are removed first).

    Args:
        samples: sample table (columns of docs/design.md).
        quarantine: dropped rows with ``id``, ``step``, ``reason``.
        out_dir: dataset directory.
        rows_per_shard: rows per shard.
        manifest: extra manifest fields (params, counts, timings, voice map, codec fingerprint ...).

    Returns:
        the manifest written (``shards`` lists path, md5, rows).
    """
    out = Path(out_dir)
    shutil.rmtree(out / SHARD_DIR, ignore_errors=True)
    (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    shards = []
    for n, df in enumerate(shard_frames(samples, rows_per_shard)):
        rel = f"{SHARD_DIR}/part-{n:05d}.parquet"
        shards.append({"path": rel, "md5": write_table(df, out / rel), "rows": int(len(df))})
    q = quarantine.copy()
    for c in ("id", "step", "reason"):
        if c not in q:
            q[c] = pd.Series(dtype=str)
    q_md5 = write_table(q.sort_values(["step", "id"], kind="stable") if len(q) else q, out / QUARANTINE)
    m = {
        "format": MANIFEST_FORMAT,
        "version": manifest.get("version"),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "codec_fingerprint": None,
        "validation": {"passed": False, "suite": None, "failures": []},
        **manifest,
        "shards": shards,
        "quarantine": {"path": QUARANTINE, "md5": q_md5, "rows": int(len(q))},
    }
    m.setdefault("counts", {})["subsets"] = subset_counts(samples)
    write_manifest(out, m)
    return m


def write_manifest(data_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` (pretty, sorted keys, UTF-8) atomically."""
    p = Path(data_dir) / MANIFEST
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, default=str))
    tmp.replace(p)


def read_manifest(data_dir: str | Path) -> dict[str, Any]:
    """Read ``DATA/manifest.json``.

    Raises:
        DataIntegrityError: missing or not JSON.
    """
    p = Path(data_dir) / MANIFEST
    if not p.exists():
        raise DataIntegrityError(f"{p} not found: not a UniST dataset directory")
    return read_json(p, what="UniST manifest", error=DataIntegrityError)


def read_all(data_dir: str | Path, *, verify: bool = True) -> pd.DataFrame:
    """All shards concatenated, in manifest order.

    Args:
        verify: check every shard's md5 against the manifest first.

    Raises:
        DataIntegrityError: missing shard or md5 mismatch.
    """
    d = Path(data_dir)
    m = read_manifest(d)
    frames = []
    for s in m["shards"]:
        p = d / s["path"]
        if not p.exists():
            raise DataIntegrityError(f"missing shard {p}")
        if verify and file_md5(p) != s["md5"]:
            raise DataIntegrityError(f"shard {p} md5 {file_md5(p)} != manifest {s['md5']}")
        frames.append(read_table(p))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def verify_md5s(data_dir: str | Path) -> dict[str, bool]:
    """``{shard path: md5 matches manifest}`` for every shard (missing -> False)."""
    d = Path(data_dir)
    m = read_manifest(d)
    return {s["path"]: (d / s["path"]).exists() and file_md5(d / s["path"]) == s["md5"] for s in m["shards"]}
