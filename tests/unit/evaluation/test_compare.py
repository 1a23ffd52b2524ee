"""evaluation.compare: the paper Table 4 table (deltas vs the first row) and its markdown.

Run metrics are paper Table 4's Speech-BLEU numbers; the expected deltas are worked out by hand
(e.g. 30.28 - 29.38 = +0.90, 14.44 - 29.38 = -14.94)."""

from pathlib import Path
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


#: Per-utterance outputs (``eval/utterances.parquet``) of the runs that logged them: run -> {(direction,
#: mode): ASR of each output}, against _REFS; run "c" logged none.
_REFS = {"en-zh": ["我们的邻居每天早上卖白米", "他喜欢红苹果", "今天下雨了", "我们喜欢白米饭", "猫坐在垫子上"] * 4,
         "zh-en": ["the cat sat on the mat", "a dog ran home", "hello world out there", "it is raining today",
                   "we like white rice"] * 4}
_GOOD = {"en-zh": ["我们的邻居每天卖白米", "他喜欢苹果", "今天下雨", "我们喜欢白米饭", "猫坐在垫子上"] * 4,
         "zh-en": ["the cat sat on mat", "a dog ran", "hello world", "it rains today", "we like rice"] * 4}
_BAD = {"en-zh": ["我们", "他", "今天", "我们", "猫"] * 4, "zh-en": ["cat", "dog", "hello", "rain", "rice"] * 4}
UTTS = {"a" * 32: {("en-zh", "performance"): _GOOD["en-zh"], ("zh-en", "performance"): _GOOD["zh-en"],
                   ("en-zh", "direct"): _BAD["en-zh"], ("zh-en", "direct"): _GOOD["zh-en"]},
        "b" * 32: {("en-zh", "performance"): _BAD["en-zh"], ("zh-en", "performance"): _GOOD["zh-en"]}}


def _utterance_table(run_id):
    import pandas as pd

    rows = []
    for (d, mode), hyps in UTTS[run_id].items():
        for i, h in enumerate(hyps):
            rows.append({"id": f"{d}-{i:03d}", "direction": d, "mode": mode, "ref_text": _REFS[d][i], "output_asr": h,
                         "output_text": ""})
    return pd.DataFrame(rows)


class _FakeClient:
    """The MlflowClient calls compare_runs makes, over the RUNS table (and UTTS for the artifacts)."""

    def download_artifacts(self, run_id, path, dst_path):
        from mlflow.exceptions import MlflowException

        if run_id not in UTTS or path != "eval/utterances.parquet":
            raise MlflowException(f"no artifact {path} in run {run_id}")
        out = Path(dst_path) / path
        out.parent.mkdir(parents=True, exist_ok=True)
        _utterance_table(run_id).to_parquet(out)
        return str(out)

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


def test_significance_gives_each_bleu_delta_its_paired_bootstrap_p_value(fake_client):
    """p of each delta = the paired bootstrap of the two runs' per-utterance outputs (uniss.metrics,
    tested there): a clear EN-ZH loss is significant, identical ZH-EN outputs give p = 1, a run without
    per-utterance outputs gets NaN, and the base row has none."""
    from uniss.metrics import paired_bootstrap_bleu

    df = compare_runs(["a" * 32, "b" * 32, "c" * 32, "a" * 32 + ":direct"], significance=True)
    assert df["p.speech_bleu.en-zh"].iloc[0] != df["p.speech_bleu.en-zh"].iloc[0]  # NaN
    want = paired_bootstrap_bleu(_GOOD["en-zh"], _BAD["en-zh"], _REFS["en-zh"], "zh").p_value
    assert df["p.speech_bleu.en-zh"].iloc[1] == pytest.approx(want) and want < 0.01
    assert df["p.speech_bleu.zh-en"].iloc[1] == 1.0  # the same outputs
    assert df[["p.speech_bleu.en-zh", "p.speech_bleu.zh-en"]].iloc[2].isna().all()  # run c logged no utterances
    assert df["p.speech_bleu.en-zh"].iloc[3] < 0.01 and df["p.speech_bleu.zh-en"].iloc[3] == 1.0  # Direct vs Performance
    md = comparison_markdown(df).splitlines()
    assert md[2].endswith("| - | - |") and md[4].endswith("| n/a | n/a |")
    assert md[3].endswith(f"| {want:.3f} | 1.000 |")
    assert "p.speech_bleu.en-zh" not in compare_runs(["a" * 32, "b" * 32]).columns  # off by default


def test_significance_skips_metrics_a_system_lacks(fake_client, monkeypatch):
    """A textless system has no Text-BLEU delta, so no Text-BLEU test (its empty texts are not scored
    as 0 BLEU), while its Speech-BLEU delta is tested; metrics other than BLEU have no paired test."""
    from evaluation.compare import paired_p_value

    monkeypatch.setitem(UTTS, "e" * 32, {("en-zh", "quality"): _GOOD["en-zh"], ("zh-en", "quality"): _GOOD["zh-en"]})
    monkeypatch.setitem(UTTS, "f" * 32, {("en-zh", "quality"): _BAD["en-zh"], ("zh-en", "quality"): _BAD["zh-en"]})
    df = compare_runs(["e" * 32, "f" * 32], metric=["speech_bleu", "text_bleu"], default_mode="quality", significance=True)
    assert (df[["p.speech_bleu.en-zh", "p.speech_bleu.zh-en"]].iloc[1] < 0.01).all()
    assert df[["p.text_bleu.en-zh", "p.text_bleu.zh-en"]].iloc[1].isna().all()
    with pytest.raises(EvaluationError, match="no paired test for slc_0.2"):
        paired_p_value(None, None, metric="slc_0.2", direction="en-zh", base_mode="quality", mode="quality")


def test_table_cells_are_formatted_by_one_rule(fake_client, monkeypatch):
    """The markdown artifact and the ``uniss compare`` terminal table render the same cells: deltas
    signed, p-values to 3 places, ``-`` for the base row's deltas and p, ``n/a`` where a system lacks a
    metric (a CLI that formatted p-values its own way, or dropped the sign, fails here)."""
    from rich.console import Console
    from typer.testing import CliRunner

    import pipelines.cli.evaluate as cli_eval
    from evaluation.compare import format_cell
    from pipelines.cli import app

    assert format_cell("delta.speech_bleu.en-zh", 0.9) == "+0.90"
    assert format_cell("delta.speech_bleu.en-zh", -14.94) == "-14.94"
    assert format_cell("p.speech_bleu.en-zh", 0.01234) == "0.012"
    assert format_cell("p.speech_bleu.en-zh", float("nan"), base_row=True) == "-"
    assert format_cell("text_bleu.en-zh", float("nan")) == "n/a"
    assert format_cell("speech_bleu.en-zh", 29.381) == "29.38" and format_cell("variant", "cascade") == "cascade"

    df = compare_runs(["a" * 32, "b" * 32, "c" * 32], significance=True)
    md_rows = [[c.strip() for c in line.strip("|").split("|")] for line in comparison_markdown(df).splitlines()[2:]]
    wide = Console(width=400, force_terminal=False, color_system=None)
    monkeypatch.setattr(cli_eval, "console", wide)  # the table is printed through the module's console
    with wide.capture() as cap:
        res = CliRunner().invoke(app, ["compare", "a" * 32, "b" * 32, "c" * 32, "--no-log"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in cap.get().splitlines() if ln.startswith("│")]
    cli_rows = [[c.strip() for c in ln.strip("│").split("│")] for ln in lines]
    assert cli_rows == md_rows
