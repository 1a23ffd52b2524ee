"""Reader API of a built UniST dataset (docs/design.md "UniST data"): what training and evaluation
call. Training refuses data that did not pass the Great Expectations gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd

from uniss.unist.errors import DataNotValidatedError, UnistError
from uniss.unist.shards import read_all
from uniss.unist.shards import read_manifest as _read_manifest

__all__ = ["load_samples", "read_manifest"]


def read_manifest(data_dir: str | Path) -> dict:
    """``DATA/manifest.json`` as a dict (see docs/design.md for the keys).

    Raises:
        DataIntegrityError: missing or not JSON.
    """
    return _read_manifest(data_dir)


def load_samples(data_dir: str | Path, *, split: str = "train", subset: Literal["general", "hq"] = "general",
                 require_validated: bool = True) -> pd.DataFrame:
    """Rows of one split and subset, shard md5s verified.

    Args:
        data_dir: dataset directory.
        split: ``train`` | ``dev`` | ``test`` | ``all``.
        subset: ``general`` (every kept row, paper §4 General) or ``hq`` (High-Quality subset).
        require_validated: raise unless ``manifest["validation"]["passed"]`` is true.

    Returns:
        DataFrame with the columns of docs/design.md (audio as FLAC bytes, tokens as int lists),
        sorted by id.

    Raises:
        DataNotValidatedError: the gate did not pass (and ``require_validated``).
        DataIntegrityError: missing shard / md5 mismatch.
        UnistError: unknown split or subset.
    """
    if subset not in ("general", "hq"):
        raise UnistError(f"unknown subset {subset!r}; expected 'general' or 'hq'")
    if split not in ("train", "dev", "test", "all"):
        raise UnistError(f"unknown split {split!r}; expected train, dev, test or all")
    m = read_manifest(data_dir)
    if require_validated and not (m.get("validation") or {}).get("passed"):
        raise DataNotValidatedError(
            f"{data_dir}: data did not pass the Great Expectations gate (run `uniss data validate {data_dir}`)")
    df = read_all(data_dir)
    if split != "all":
        df = df[df["split"] == split]
    if subset == "hq":
        df = df[df["hq"]]
    return df.sort_values("id").reset_index(drop=True)
