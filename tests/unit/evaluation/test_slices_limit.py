"""evaluation.evaluate.limit_rows: a per-direction limit never drops a whole voice_set slice."""

from __future__ import annotations

import pandas as pd

from evaluation.evaluate import limit_rows


def _rows(sets: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"u{i:03d}" for i in range(len(sets))], "voice_set": sets})


def test_limit_takes_round_robin_over_slices_in_id_order():
    df = _rows(["seen"] * 6 + ["heldout"] * 6 + ["real"] * 3).sample(frac=1.0, random_state=0)
    out = limit_rows(df, 6)
    assert out["voice_set"].value_counts().to_dict() == {"seen": 2, "heldout": 2, "real": 2}
    assert list(out["id"]) == sorted(out["id"])
    # within each slice the first ids are taken
    assert list(out.loc[out["voice_set"] == "real", "id"]) == ["u012", "u013"]


def test_limit_without_slices_is_first_ids_and_no_limit_keeps_all():
    df = pd.DataFrame({"id": ["c", "a", "b"]})
    assert list(limit_rows(df, 2)["id"]) == ["a", "b"]
    assert list(limit_rows(_rows(["seen", "real"]), None)["id"]) == ["u000", "u001"]
    assert len(limit_rows(_rows(["seen"] * 3), 10)) == 3
