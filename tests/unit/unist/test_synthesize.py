"""UniST synthesis steps: every failure path lands in quarantine with its step and reason; speed
tokens; General/HQ; step cache makes an unchanged rerun do no TTS/ASR work."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.unit.unist.conftest import make_source
from uniss.unist.cache import StepCache
from uniss.unist.synthesize import apply_filters, run_synthesis
from uniss.vocab import speed_index


def _run(fake, params, tmp_path, mutate=None):
    eng, asr, tts, pairs = fake
    source = make_source([(i, l, t, tr) for i, l, t, tr in pairs], tts)
    if mutate:
        mutate(eng, asr, tts, source)
    cache = StepCache(tmp_path / "cache")
    return run_synthesis(source, eng, params, cache=cache), source, cache


def test_clean_corpus_keeps_everything_with_consistent_speed_tokens(fake, params, tmp_path):
    res, source, _ = _run(fake, params, tmp_path)
    s = res["samples"]
    assert len(s) == len(source) and len(res["quarantine"]) == 0
    assert s["general"].all()
    for r in s.itertuples():
        assert r.ratio == pytest.approx(r.tgt_duration_s / r.src_duration_s)
        assert r.speed_index == speed_index(r.ratio)
    # tone TTS: 0.08 s/char en vs 0.25 s/char zh; a1: 31 chars en -> 9 hanzi zh
    a1 = s.set_index("id").loc["a1"]
    assert a1.ratio == pytest.approx((0.2 + 0.25 * 9) / (0.2 + 0.08 * 31))
    # voice map is deterministic and recorded
    assert res["voice_map"] == {"espeak:en-us": "espeak:cmn-latn-pinyin+m3", "flite:slt": "espeak:cmn-latn-pinyin+f2",
                                "espeak:cmn-latn-pinyin+f2": "flite:slt", "espeak:cmn-latn-pinyin+m3": "espeak:en-us"}
    assert set(s["tgt_voice"]) <= set(res["voice_map"].values())


def test_each_failure_path_is_quarantined_with_step_and_reason(fake, params, tmp_path):
    def mutate(eng, asr, tts, source):
        # a2: source misheard (WER 2/5 = 0.4 > 0.2) -> src_asr
        asr.mishear["the teacher buys fresh fish"] = "the preacher buys french fish"
        # a3: MT output has Latin letters in Chinese -> translate (mixed script)
        eng.mt.table["my friend sees a small cat"] = "我朋友看见一只cat"
        # a5: target TTS crashes -> tgt_tts
        tts.fail_on = "the doctor eats"
        # a6: target misheard -> tgt_asr
        asr.mishear["我们的邻居需要冷水"] = "我们的孩子要喝水"
        # a8: target stretched 3x: ratio outside [0.5, 2.0] -> general
        tts.stretch["小女孩找到一些花"] = 3.0
        # a4: target so long the ratio leaves the speed-token range (> 3.5) -> speed
        tts.stretch["my father wants white rice tomorrow"] = 4.0
        # re-speak the source rows with the mishear table in force (a2 source)
        src2 = make_source([(r.id, r.language, r.transcript, r.translation) for r in source.itertuples()], tts)
        source["audio"] = src2["audio"]

    res, source, _ = _run(fake, params, tmp_path, mutate)
    q = res["quarantine"].set_index("id")
    assert set(q.index) == {"a2", "a3", "a4", "a5", "a6", "a8"}
    assert q.loc["a2", "step"] == "src_asr" and "source error 0.400" in q.loc["a2", "reason"]
    assert q.loc["a3", "step"] == "translate" and "MixedScriptError" in q.loc["a3", "reason"]
    assert q.loc["a4", "step"] == "speed" and "outside the speed-token range" in q.loc["a4", "reason"]
    assert q.loc["a5", "step"] == "tgt_tts" and "voice crashed" in q.loc["a5", "reason"]
    assert q.loc["a6", "step"] == "tgt_asr" and "(zh)" in q.loc["a6", "reason"]
    assert q.loc["a8", "step"] == "general" and "outside [0.5, 2.0]" in q.loc["a8", "reason"]
    assert set(res["samples"]["id"]) == {"a1", "a7"}
    # nothing lost: kept + dropped == input, per-step counts add up in paper order
    assert len(res["samples"]) + len(q) == len(source)
    c = res["counts"]
    assert c["src_asr"] == {"in": 8, "kept": 7, "dropped": 1}
    assert c["general"]["dropped"] == 1 and c["vad"]["kept"] == 2


def test_hq_uses_vad_trimmed_ratio(fake, params, tmp_path):
    def mutate(eng, asr, tts, source):
        tts.stretch["我朋友看见一只小猫"] = 1.6  # ratio ~1.7: General, not HQ

    res, _, _ = _run(fake, params, tmp_path, mutate)
    s = res["samples"].set_index("id")
    lo, hi = params.hq_ratio
    for rid, r in s.iterrows():
        # tone TTS has 0.1 s leading silence on both sides: trimmed ratio = (tgt-0.1)/(src-0.1)
        want = (r.tgt_duration_s - 0.1) / (r.src_duration_s - 0.1)
        assert r.hq_ratio == pytest.approx(want, abs=2e-3)
        assert r.hq == (lo <= want <= hi)
    assert s["hq"].sum() == len(s) - 1 and not s.loc["a3", "hq"]


def test_rerun_is_a_cache_hit_and_threshold_change_reuses_measurements(fake, params, tmp_path):
    eng, asr, tts, pairs = fake
    res1, source, cache = _run(fake, params, tmp_path)
    calls = (asr.calls, tts.calls)
    cache2 = StepCache(tmp_path / "cache")
    res2 = run_synthesis(source, eng, params, cache=cache2)
    assert (asr.calls, tts.calls) == calls  # no ASR/TTS work at all
    assert cache2.stats.misses == {} and sum(cache2.stats.hits.values()) == 5 * 2  # 5 steps x 2 chunks
    pd.testing.assert_frame_equal(res1["samples"], res2["samples"])
    # stricter HQ bounds: only the cheap filter reruns
    p2 = params.model_copy(update={"hq_ratio": (0.9, 1.1)})
    cache3 = StepCache(tmp_path / "cache")
    res3 = run_synthesis(source, eng, p2, cache=cache3)
    assert cache3.stats.misses == {} and (asr.calls, tts.calls) == calls
    assert res3["samples"]["hq"].sum() <= res1["samples"]["hq"].sum()


def test_apply_filters_missing_measurement_is_a_reason_not_a_crash(fake, params, tmp_path):
    res, source, _ = _run(fake, params, tmp_path)
    work = source.copy()
    for c in ("src_asr", "src_wer", "tgt_text", "tgt_voice", "tgt_audio", "tgt_duration_s", "tgt_asr", "tgt_wer",
              "src_trim_s", "tgt_trim_s"):
        work[c] = None
    work["fail_step"], work["fail_reason"] = "", ""
    samples, q, _ = apply_filters(work, params)
    assert samples.empty and len(q) == len(work)
    assert (q["step"] == "src_asr").all() and q["reason"].str.contains("missing").all()


class BilingualToneTTS:
    """ToneTTS whose voices each speak both languages (as Kokoro's do)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.cache_id = "bilingual-" + inner.cache_id
        self.spoken: list[tuple[str, str]] = []

    def voices(self, language: str) -> list[str]:
        return ["kokoro:a", "kokoro:b"]

    def languages(self, voice: str) -> tuple[str, ...]:
        from uniss.engines.tts import UnknownVoiceError

        if voice not in ("kokoro:a", "kokoro:b"):
            raise UnknownVoiceError(voice)
        return ("en", "zh")

    def synthesize(self, text: str, language: str, voice: str):
        self.spoken.append((language, voice))
        return self.inner.synthesize(text, language, voice)


def test_target_keeps_the_source_voice_when_the_engine_speaks_it(fake, params, tmp_path):
    eng, asr, tts, pairs = fake
    bi = BilingualToneTTS(tts)
    eng.tts = bi
    source = make_source(list(pairs), bi)
    source["voice_set"] = ["seen", "heldout"] * (len(source) // 2)
    # one recorded row: its speaker is no voice of the engine, so its target voice is mapped
    source.loc[0, ["voice", "speaker", "voice_set"]] = [None, "gcin-3", "real"]
    res = run_synthesis(source, eng, params, cache=StepCache(tmp_path / "c"))
    s = res["samples"].set_index("id")
    assert res["voice_map"]["kokoro:a"] == "kokoro:a" and res["voice_map"]["kokoro:b"] == "kokoro:b"
    assert res["voice_map"]["gcin-3"] in ("kokoro:a", "kokoro:b")
    first = source.loc[0, "id"]
    assert not s.loc[first, "voice_preserved"] and s.loc[first, "voice_set"] == "real"
    rest = s.drop(index=first)
    assert rest["voice_preserved"].all() and (rest["tgt_voice"] == rest["src_voice"]).all()
    assert list(rest["voice_set"]) == list(source.set_index("id").loc[rest.index, "voice_set"])
    # targets were spoken in the source voice, in the target language
    assert ("zh", "kokoro:a") in bi.spoken and ("en", "kokoro:b") in bi.spoken


def test_engine_with_language_specific_voices_maps_and_records_not_preserved(fake, params, tmp_path):
    res, source, _ = _run(fake, params, tmp_path)
    assert not res["samples"]["voice_preserved"].any()
    assert (res["samples"]["voice_set"] == "").all()  # old source tables without the column
