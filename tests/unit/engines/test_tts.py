"""SystemTTS (flite / festival / espeak-ng), voice_map, pinyin conversion, SparkTTS adapter errors."""

from __future__ import annotations

import numpy as np
import pytest

from uniss.audio import SAMPLE_RATE_HZ, duration_s
from uniss.engines import EngineUnavailableError, UnknownLanguageError
from uniss.engines.tts import SparkTTS, SystemTTS, TTSError, UnknownVoiceError, hanzi_to_pinyin, voice_map

FAMILY_VOICES = [("flite:slt", "en"), ("festival:kal_diphone", "en"), ("espeak:en-us", "en"),
                 ("espeak:cmn-latn-pinyin+f3", "zh")]


def test_voices_discovered_per_family(tts):
    en, zh = tts.voices("en"), tts.voices("zh")
    for v in ("flite:slt", "flite:awb", "flite:rms", "flite:kal16", "festival:kal_diphone",
              "festival:ked_diphone", "festival:cmu_us_slt_arctic_hts", "espeak:en-us", "espeak:en-gb+f3"):
        assert v in en
    assert "flite:awb_time" not in en  # limited-domain clock voice
    assert zh and all(v.startswith("espeak:cmn-latn-pinyin") for v in zh)
    assert "espeak:cmn-latn-pinyin+m3" in zh
    assert len(set(en)) == len(en) and not set(en) & set(zh)
    assert tts.voices("en") == en  # deterministic order


@pytest.mark.parametrize("voice,language", FAMILY_VOICES)
def test_each_family_speaks_audibly_at_16k(tts, voice, language):
    text = "Good morning, how are you today?" if language == "en" else "早上好，你今天好吗？"
    wav = tts.synthesize(text, language, voice)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert 0.8 < duration_s(wav) < 6.0
    rms = float(np.sqrt(np.mean(wav**2)))
    assert rms > 0.01 and float(np.max(np.abs(wav))) <= 1.0
    # energy sits in the speech band: a 16 kHz signal (not an upsampled 8 kHz one of silence) has
    # most energy below 4 kHz
    spec = np.abs(np.fft.rfft(wav)) ** 2
    freqs = np.fft.rfftfreq(wav.size, 1 / SAMPLE_RATE_HZ)
    assert spec[freqs < 4000].sum() / spec.sum() > 0.8


def test_voices_differ_and_rate_changes_duration(tts):
    text = "The weather is lovely this afternoon."
    a = tts.synthesize(text, "en", "espeak:en-us")
    b = tts.synthesize(text, "en", "espeak:en-us+f3")
    assert a.shape != b.shape or not np.allclose(a, b)
    fast = SystemTTS(rate=1.5).synthesize(text, "en", "espeak:en-us")
    slow = SystemTTS(rate=0.7).synthesize(text, "en", "flite:slt")
    assert duration_s(fast) < 0.85 * duration_s(a)
    assert duration_s(slow) > 1.2 * duration_s(tts.synthesize(text, "en", "flite:slt"))


def test_bad_requests_raise_typed_errors(tts):
    with pytest.raises(TTSError):
        tts.synthesize("   ", "en", "flite:slt")
    with pytest.raises(UnknownVoiceError, match="unknown voice"):
        tts.synthesize("hello", "en", "flite:nobody")
    with pytest.raises(UnknownVoiceError, match="does not speak"):
        tts.synthesize("hello", "en", "espeak:cmn-latn-pinyin")
    with pytest.raises(UnknownLanguageError):
        tts.synthesize("hello", "fr", "flite:slt")
    with pytest.raises(UnknownLanguageError):
        tts.voices("de")
    with pytest.raises(TTSError):
        tts.synthesize("a" * 5000, "en", "flite:slt")
    with pytest.raises(TTSError):
        SystemTTS(rate=0)


def test_hanzi_to_pinyin_numbered_tones():
    assert hanzi_to_pinyin("你好，世界。") == "ni3 hao3, shi4 jie4."
    assert hanzi_to_pinyin("我的书") == "wo3 de5 shu1"  # neutral tone as 5


def test_voice_map_deterministic_round_robin():
    m = voice_map(["flite:slt", "espeak:en-us", "flite:awb"], ["espeak:cmn-latn-pinyin+m3", "espeak:cmn-latn-pinyin"])
    assert m == {"espeak:en-us": "espeak:cmn-latn-pinyin", "flite:awb": "espeak:cmn-latn-pinyin+m3",
                 "flite:slt": "espeak:cmn-latn-pinyin"}
    assert voice_map(["flite:awb", "flite:slt", "espeak:en-us"], ["espeak:cmn-latn-pinyin", "espeak:cmn-latn-pinyin+m3"]) == m
    assert voice_map([], []) == {}
    with pytest.raises(TTSError):
        voice_map(["flite:slt"], [])


def test_sparktts_missing_checkpoint_and_module(tmp_path):
    with pytest.raises(EngineUnavailableError, match=str(tmp_path / "nope")):
        SparkTTS(tmp_path / "nope")
    ck = tmp_path / "Spark-TTS-0.5B"
    ck.mkdir()
    with pytest.raises(EngineUnavailableError, match="LLM"):
        SparkTTS(ck)
    (ck / "config.yaml").write_text("sample_rate: 16000\n")
    for d in ("LLM", "BiCodec", "wav2vec2-large-xlsr-53"):
        (ck / d).mkdir()
    with pytest.raises(EngineUnavailableError, match="cli.SparkTTS"):
        SparkTTS(ck, code_dir=tmp_path / "no-checkout")
