"""evaluation.compare: the paper Table 4 table (deltas vs the first row) and its markdown.

Run metrics are paper Table 4's Speech-BLEU numbers; the expected deltas are worked out by hand
(e.g. 30.28 - 29.38 = +0.90, 14.44 - 29.38 = -14.94)."""

from types import SimpleNamespace

import pytest

from evaluation.common import EvaluationError
from evaluation.compare import compare_runs, comparison_markdown

RUNS = {
    "a" * 32: ("phase 1+2", {"speech_bleu.en-zh.performance": 29.38, "speech_bleu.zh-en.performance": 21.55,
                             "speech_bleu.en-zh.direct": 14.44, "speech_bleu.zh-en.direct": 7.15}),
    "b" * 32: ("w/ phase 3", {"speech_bleu.en-zh.performance": 30.28, "speech_bleu.zh-en.performance": 23.61}),
    "c" * 32: ("UniST only", {"speech_bleu.en-zh.performance": 22.20, "speech_bleu.zh-en.performance": 11.40}),
    "e" * 32: ("cascade", {"speech_bleu.en-zh.quality": 20.0, "speech_bleu.zh-en.quality": 10.0,
                           "text_bleu.en-zh.quality": 30.0, "text_bleu.zh-en.quality": 12.5}),
    "f" * 32: ("textless", {"speech_bleu.en-zh.quality": 4.0, "speech_bleu.zh-en.quality": 3.0}),
}


class _FakeClient:
    """The two MlflowClient calls compare_runs makes, over the RUNS table."""

    def get_run(self, run_id):
        from mlflow.exceptions import MlflowException

        if run_id not in RUNS:
            raise MlflowException(f"Run '{run_id}' not found")
        variant, metrics = RUNS[run_id]
        return SimpleNamespace(data=SimpleNamespace(tags={"uniss.variant": variant}, metrics=metrics))


@pytest.fixture
def fake_client(monkeypatch):
    import registry.models

    monkeypatch.setattr(registry.models, "client", lambda: _FakeClient())


def test_comparison_deltas_are_the_hand_computed_ones(fake_client):
    df = compare_runs(["a" * 32, "b" * 32, "c" * 32, "a" * 32 + ":direct"])
    assert list(df["variant"]) == ["phase 1+2", "w/ phase 3", "UniST only", "phase 1+2 (Direct S2ST)"]
    assert list(df["mode"]) == ["performance", "performance", "performance", "direct"]
    assert df["delta.speech_bleu.en-zh"].tolist() == pytest.approx([0.0, 0.90, -7.18, -14.94], abs=1e-9)
    assert df["delta.speech_bleu.zh-en"].tolist() == pytest.approx([0.0, 2.06, -10.15, -14.40], abs=1e-9)


def test_comparison_markdown_deltas(fake_client):
    md = comparison_markdown(compare_runs(["a" * 32, "b" * 32, "a" * 32 + ":direct"]))
    assert md == (
        "| variant | mode | speech_bleu.en-zh | speech_bleu.zh-en | delta.speech_bleu.en-zh | delta.speech_bleu.zh-en |\n"
        "|---|---|---|---|---|---|\n"
        "| phase 1+2 | performance | 29.38 | 21.55 | - | - |\n"
        "| w/ phase 3 | performance | 30.28 | 23.61 | +0.90 | +2.06 |\n"
        "| phase 1+2 (Direct S2ST) | direct | 14.44 | 7.15 | -14.94 | -14.40 |\n"
    )


def test_comparison_errors(fake_client):
    with pytest.raises(EvaluationError, match="at least one"):
        compare_runs([])
    with pytest.raises(EvaluationError, match="unknown run"):
        compare_runs(["d" * 32])
    with pytest.raises(EvaluationError, match="has no metric speech_bleu.en-zh.direct"):
        compare_runs(["b" * 32 + ":direct"])
    with pytest.raises(EvaluationError, match="unknown mode"):
        compare_runs(["a" * 32 + ":fastest"])


def test_several_metrics_side_by_side_table1_style(fake_client):
    """Several metrics (paper Table 1 style): a column per metric and direction, deltas per column,
    and a system without text (no Text-BLEU) shows n/a rather than failing the table."""
    df = compare_runs(["e" * 32, "f" * 32], metric=["speech_bleu", "text_bleu"], default_mode="quality")
    assert df["delta.speech_bleu.en-zh"].tolist() == pytest.approx([0.0, -16.0])
    assert df["text_bleu.zh-en"].iloc[0] == 12.5 and df["text_bleu.zh-en"].isna().tolist() == [False, True]
    md = comparison_markdown(df)
    assert md.splitlines()[-1] == "| textless | quality | 4.00 | 3.00 | n/a | n/a | -16.00 | -7.00 | n/a | n/a |"
    with pytest.raises(EvaluationError, match="none of the metrics compared"):
        compare_runs(["e" * 32, "f" * 32 + ":direct"], metric=["speech_bleu", "text_bleu"])
    with pytest.raises(EvaluationError, match="at least one metric"):
        compare_runs(["e" * 32], metric=[])
