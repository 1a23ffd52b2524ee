"""uniss.gate: floors, non-regression, tolerance edges, no champion, config loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from uniss.gate import GateConfigError, GateThresholds, decide, load_thresholds

REPO = Path(__file__).resolve().parents[2]

T = GateThresholds(
    modes=("quality",),
    directions=("en-zh", "zh-en"),
    floors={"speech_bleu": 5.0, "slc_0.4": 0.5},
    ceilings={"rtf": 2.0},
    non_regression={"speech_bleu": 1.0, "slc_0.2": 0.05},
)


def metrics(bleu_en_zh=20.0, bleu_zh_en=15.0, slc02=0.8, slc04=0.95, rtf=0.5) -> dict[str, float]:
    return {
        "speech_bleu.en-zh.quality": bleu_en_zh,
        "speech_bleu.zh-en.quality": bleu_zh_en,
        "slc_0.2.en-zh.quality": slc02,
        "slc_0.2.zh-en.quality": slc02,
        "slc_0.4.en-zh.quality": slc04,
        "slc_0.4.zh-en.quality": slc04,
        "rtf.en-zh.quality": rtf,
        "rtf.zh-en.quality": rtf,
    }


def test_no_champion_only_floors_apply():
    d = decide(metrics(), None, T)
    assert d.passed and d.reasons == []
    assert {c.kind for c in d.checks} == {"floor", "ceiling"}
    assert len(d.checks) == 2 * (2 + 1)  # directions x (2 floors + 1 ceiling)


def test_floor_failure_names_the_metric():
    d = decide(metrics(bleu_zh_en=4.0), None, T)
    assert not d.passed
    assert len(d.reasons) == 1 and "speech_bleu.zh-en.quality" in d.reasons[0] and "floor" in d.reasons[0]


def test_ceiling_failure():
    d = decide(metrics(rtf=3.0), None, T)
    assert not d.passed and all("rtf" in r for r in d.reasons) and len(d.reasons) == 2


def test_regression_vs_champion_refused_with_reasons():
    champion = metrics(bleu_en_zh=25.0)
    d = decide(metrics(bleu_en_zh=20.0), champion, T)
    assert not d.passed
    assert len(d.reasons) == 1
    assert "speech_bleu.en-zh.quality" in d.reasons[0] and "regressed by 5" in d.reasons[0]


def test_tolerance_edge_passes_and_just_beyond_fails():
    champion = metrics(bleu_en_zh=21.0, slc02=0.85)
    at_edge = decide(metrics(bleu_en_zh=20.0, slc02=0.80), champion, T)  # exactly champion - tolerance
    assert at_edge.passed, at_edge.reasons
    beyond = decide(metrics(bleu_en_zh=19.99, slc02=0.80), champion, T)
    assert not beyond.passed and len(beyond.reasons) == 1
    slc_beyond = decide(metrics(bleu_en_zh=21.0, slc02=0.79), champion, T)
    assert not slc_beyond.passed and all("slc_0.2" in r for r in slc_beyond.reasons)


def test_better_challenger_passes():
    d = decide(metrics(bleu_en_zh=30.0, bleu_zh_en=20.0, slc02=0.9), metrics(), T)
    assert d.passed
    assert sum(c.kind == "regression" for c in d.checks) == 4


def test_missing_challenger_metric_fails_and_missing_champion_metric_skips():
    ch = metrics()
    del ch["speech_bleu.en-zh.quality"]
    d = decide(ch, metrics(), T)
    assert not d.passed
    assert sum("missing" in r for r in d.reasons) == 2  # floor and regression checks

    old_champion = {k: v for k, v in metrics().items() if not k.startswith("slc_0.2")}
    d2 = decide(metrics(), old_champion, T)
    assert d2.passed
    assert sum(c.skipped for c in d2.checks) == 2


def test_nan_metric_is_a_failure_not_a_pass():
    d = decide(metrics(bleu_en_zh=float("nan")), None, T)
    assert not d.passed


def test_decision_serialises():
    d = decide(metrics(bleu_zh_en=1.0), metrics(), T)
    js = d.to_dict()
    assert js["passed"] is False and js["reasons"] and js["checks"][0]["key"]
    assert d.summary().startswith("REFUSED")


def test_repo_params_yaml_gate_section_loads():
    t = load_thresholds(REPO / "params.yaml")
    assert "speech_bleu" in t.non_regression and "slc_0.2" in t.non_regression
    assert set(t.directions) == {"en-zh", "zh-en"}


def test_bad_gate_config_is_a_typed_error(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train: {}\n")
    with pytest.raises(GateConfigError, match="no 'gate:'"):
        load_thresholds(p)
    p.write_text("gate:\n  floor: {speech_bleu: 1}\n")  # misspelt key
    with pytest.raises(GateConfigError):
        load_thresholds(p)
    p.write_text("gate:\n  non_regression: {speech_bleu: -1}\n")
    with pytest.raises(GateConfigError):
        load_thresholds(p)
    with pytest.raises(GateConfigError):
        load_thresholds(tmp_path / "missing.yaml")


def test_missing_direction_is_refused_naming_it_even_without_floors():
    """The evaluation skipped zh-en (no test rows): every zh-en metric is absent. The gate refuses
    with one reason naming the direction and the gated metrics it lacks, never a KeyError, and also
    when no floor applies and the champion lacks zh-en too (where per-metric checks would pass)."""
    ch = {k: v for k, v in metrics().items() if ".zh-en." not in k}
    d = decide(ch, None, T)
    assert not d.passed and len(d.reasons) == 1
    r = d.reasons[0]
    assert "direction zh-en has no quality metrics" in r
    assert "speech_bleu.zh-en.quality" in r and "slc_0.4.zh-en.quality" in r and "rtf.zh-en.quality" in r
    assert [c.kind for c in d.checks if not c.passed] == ["coverage"]
    assert all(c.passed for c in d.checks if ".en-zh." in c.key)  # en-zh still judged metric by metric

    no_floors = GateThresholds(modes=("quality",), directions=("en-zh", "zh-en"))  # non-regression only
    old_champion = {k: v for k, v in metrics().items() if ".zh-en." not in k}
    d2 = decide(ch, old_champion, no_floors)
    assert not d2.passed and d2.reasons == [
        "direction zh-en has no quality metrics in the challenger (not evaluated, e.g. no test rows for zh-en): "
        "missing speech_bleu.zh-en.quality, slc_0.2.zh-en.quality"]
    assert decide(ch, None, no_floors).reasons == [  # no floors, no champion: still refused
        "direction zh-en has no quality metrics in the challenger (not evaluated, e.g. no test rows for zh-en): "
        "missing every metric"]
    only_slices = {"speech_bleu.zh-en.quality/seen": 9.0, **ch}  # a slice is not the direction's metric
    assert not decide(only_slices, None, GateThresholds(directions=("zh-en",))).passed
