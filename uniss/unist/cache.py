"""Step cache: every UniST step runs over chunks of rows; each chunk's result is stored under a key
hashing (step name, step version, the step's params, engine identities, the chunk's content).

This makes every step resumable (an interrupted build redoes only the chunks not yet stored) and
makes an unchanged rebuild do no synthesis/ASR/tokenization work at all (every chunk is a hit).
Entries are two Parquet files per key: ``kept.parquet`` and ``dropped.parquet`` (rows quarantined by
the step, with ``step`` and ``reason`` columns).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from uniss.unist.io import frame_digest, read_table, write_table

#: A step function over one chunk: returns (kept rows, dropped rows with ``step`` and ``reason``).
ChunkFn = Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]


@dataclass
class CacheStats:
    """Hit/miss counts per step (reported in the manifest: ``timings`` / ``cache``)."""

    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, dict[str, int]]:
        """JSON-ready ``{"hits": {...}, "misses": {...}}``."""
        return {"hits": dict(self.hits), "misses": dict(self.misses)}


class StepCache:
    """Content-addressed cache of chunk results under ``root/<step>/<key>/``.

    Args:
        root: cache directory (default: ``settings.home_dir / "cache" / "unist"``), or ``None``
            to disable caching (every chunk computed, nothing stored).
    """

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self.stats = CacheStats()

    @staticmethod
    def key(step: str, config: dict, chunk: pd.DataFrame, columns: list[str] | None = None) -> str:
        """sha256 hex of (step, JSON config, chunk content over ``columns``)."""
        h = hashlib.sha256()
        h.update(step.encode())
        h.update(json.dumps(config, sort_keys=True, default=str).encode())
        h.update(frame_digest(chunk, columns).encode())
        return h.hexdigest()

    def run(self, step: str, config: dict, chunk: pd.DataFrame, fn: ChunkFn,
            columns: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return the cached result of ``fn(chunk)`` or compute and store it.

        Args:
            step: step name (a folder of the cache).
            config: everything besides the chunk that determines the output (params, engine ids,
                step version). Must be JSON-serialisable.
            chunk: input rows.
            fn: the step function.
            columns: input columns the key hashes (default: all).
        """
        if self.root is None:
            self.stats.misses[step] = self.stats.misses.get(step, 0) + 1
            return fn(chunk)
        d = self.root / step / self.key(step, config, chunk, columns)
        if (d / "done").exists():
            self.stats.hits[step] = self.stats.hits.get(step, 0) + 1
            return read_table(d / "kept.parquet"), read_table(d / "dropped.parquet")
        self.stats.misses[step] = self.stats.misses.get(step, 0) + 1
        kept, dropped = fn(chunk)
        tmp = d.with_name(d.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        write_table(kept, tmp / "kept.parquet")
        write_table(dropped, tmp / "dropped.parquet")
        (tmp / "done").write_text("1")
        shutil.rmtree(d, ignore_errors=True)
        tmp.rename(d)
        return kept, dropped


def drop_rows(rows: pd.DataFrame, step: str, reasons: list[str]) -> pd.DataFrame:
    """Quarantine frame: ``rows`` plus ``step`` and ``reason`` columns (one reason per row)."""
    out = rows.copy()
    out["step"] = step
    out["reason"] = list(reasons)
    return out


def chunks(df: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """Split a frame into consecutive chunks of ``size`` rows (index reset)."""
    return [df.iloc[i : i + size].reset_index(drop=True) for i in range(0, len(df), size)]


def engine_id(engine: object) -> str:
    """Identity of an engine for cache keys: its ``cache_id`` attribute/method when it has one
    (e.g. a model sha256), else ``module.Class`` plus its public scalar attributes."""
    cid = getattr(engine, "cache_id", None)
    if cid is not None:
        return str(cid() if callable(cid) else cid)
    cls = type(engine)
    attrs = {k: v for k, v in sorted(vars(engine).items()) if not k.startswith("_")
             and isinstance(v, str | int | float | bool)} if hasattr(engine, "__dict__") else {}
    return f"{cls.__module__}.{cls.__qualname__}{json.dumps(attrs, sort_keys=True)}"
