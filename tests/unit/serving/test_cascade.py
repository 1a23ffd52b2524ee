"""Cascaded baseline (serving/cascade.py) with fake ASR, MT and TTS engines: order of calls, voice
choice (given voice, speaker-embedding match, default), incomplete rows with the failing stage,
typed errors, the ``cascade:`` spec and its hook in ``evaluation.evaluate``."""

from __future__ import annotations

import numpy as np
import pytest

from serving.cascade import CascadeEngine, CascadeSpecError, parse_spec
from serving.engine import EngineError

SR = 16_000


def tone(hz: float, s: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * s)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


class Log(list):
    pass


class FakeASR:
    def __init__(self, log, texts):
        self.log, self.texts = log, texts

    def transcribe(self, wavs, language):
        self.log.append(("asr", language, len(wavs)))
        return [self.texts[round(float(np.abs(np.fft.rfft(w)).argmax()))] for w in wavs]  # by tone (Hz at 1 s)


class FakeMT:
    def __init__(self, log, table):
        self.log, self.table = log, table

    def translate(self, texts, src, tgt):
        self.log.append(("mt", src, tgt, list(texts)))
        return [self.table[t] for t in texts]


class FakeTTS:
    """Voices 'a' (en+zh), 'b' (en+zh), 'e' (en only); the wav's tone encodes the voice (a 200 Hz, b 300 Hz)."""

    HZ = {"a": 200.0, "b": 300.0, "e": 400.0}

    def __init__(self, log):
        self.log = log

    def voices(self, language):
        return ["a", "b", "e"] if language == "en" else ["a", "b"]

    def languages(self, voice):
        if voice not in self.HZ:
            raise KeyError(voice)
        return ("en",) if voice == "e" else ("en", "zh")

    def synthesize(self, text, language, voice):
        self.log.append(("tts", text, language, voice))
        return tone(self.HZ[voice], 0.5 + 0.1 * len(text) / 10)


def embed_by_pitch(wav):
    """A toy speaker embedding: the dominant frequency as an angle (same tone -> cosine 1)."""
    f = float(np.abs(np.fft.rfft(wav)).argmax()) * SR / len(wav)
    a = f / 1000.0 * np.pi
    return np.array([np.cos(a), np.sin(a)])


@pytest.fixture
def parts():
    log = Log()
    asr = FakeASR(log, {200: "I like tea.", 300: "We meet.", 250: "Odd voice.", 500: "", 600: "mixed"})
    mt = FakeMT(log, {"I like tea.": "我喜欢茶。", "We meet.": "好的，以下是翻译：我们见面。",
                      "Odd voice.": "奇怪。", "mixed": "我们在station见面。"})
    return log, asr, mt, FakeTTS(log)


def test_order_of_calls_and_texts(parts):
    log, asr, mt, tts = parts
    eng = CascadeEngine(asr, mt, tts)
    res = eng.translate([tone(200), tone(300)], target_language="zh", mode="quality", require_speech=False,
                        seed=3, do_sample=True)
    assert [e[0] for e in log] == ["asr", "mt", "tts", "tts"]
    assert log[0] == ("asr", "en", 2) and log[1] == ("mt", "en", "zh", ["I like tea.", "We meet."])
    assert [r.source_text for r in res] == ["I like tea.", "We meet."]
    assert [r.target_text for r in res] == ["我喜欢茶。", "我们见面。"]  # App. E.2 clean-up applied
    assert all(r.complete and r.reason is None and r.wav.dtype == np.float32 and r.duration_s > 0 for r in res)
    assert set(res[0].timings) == {"asr", "mt", "tts", "total"}
    perf = eng.translate([tone(200)], target_language="zh", mode="performance", require_speech=False)[0]
    direct = eng.translate([tone(200)], target_language="zh", mode="direct", require_speech=False)[0]
    assert perf.source_text is None and perf.target_text == "我喜欢茶。" and direct.target_text is None


def test_voice_choice(parts):
    log, asr, mt, tts = parts
    eng = CascadeEngine(asr, mt, tts, speaker_embed=embed_by_pitch, default_voice="b", voice_min_cosine=0.99)
    # source at 200 Hz = voice 'a' -> kept; 250 Hz matches no voice closely -> default 'b'
    res = eng.translate([tone(200), tone(250)], target_language="zh", require_speech=False)
    assert [r.voice for r in res] == ["a", "b"]
    # an explicit source voice the TTS speaks in the target language wins; one it cannot speak is ignored
    res = eng.translate([tone(300), tone(200)], target_language="zh", voices=["a", "e"], require_speech=False)
    assert [r.voice for r in res] == ["a", "a"]
    # enrolment: only voices speaking both languages, once per source language
    enrolled = [e for e in log if e[0] == "tts" and e[1].startswith("The weather")]
    assert [e[3] for e in enrolled] == ["a", "b"]
    # no embedding and no default -> the TTS's first target voice
    assert CascadeEngine(asr, mt, tts).translate([tone(300)], target_language="zh", require_speech=False)[0].voice == "a"


def test_failed_stages_come_back_incomplete(parts):
    log, asr, mt, tts = parts
    eng = CascadeEngine(asr, mt, tts)
    res = eng.translate([tone(500), tone(600), tone(200)], target_language="zh", require_speech=False)
    assert res[0].reason == "asr: empty transcript" and res[0].wav.size == 0 and not res[0].complete
    assert res[1].reason.startswith("mt: MixedScriptError")  # dropped by the App. E.2 rule
    assert res[2].complete
    assert [e[3] for e in log if e[0] == "mt"] == [["mixed", "I like tea."]]  # failed ASR rows not translated


def test_typed_errors(parts):
    _, asr, mt, tts = parts
    eng = CascadeEngine(asr, mt, tts)
    with pytest.raises(EngineError, match="empty batch"):
        eng.translate([], target_language="zh")
    with pytest.raises(EngineError, match="mode"):
        eng.translate([tone(200)], target_language="zh", mode="fast", require_speech=False)
    with pytest.raises(EngineError, match="language"):
        eng.translate([tone(200)], target_language="fr", require_speech=False)
    with pytest.raises(EngineError, match="entries"):
        eng.translate([tone(200)], target_language=["zh", "en"], require_speech=False)
    from uniss.audio import AudioError, NoSpeechAudioError

    with pytest.raises(AudioError):
        eng.translate([np.array([np.nan], dtype=np.float32)], target_language="zh", require_speech=False)
    with pytest.raises(NoSpeechAudioError):
        eng.translate([np.zeros(SR, dtype=np.float32)], target_language="zh")
    with pytest.raises(EngineError):
        CascadeEngine(asr, mt, tts, voice_min_cosine=2.0)
    bad = CascadeEngine(asr, mt, tts, default_voice="e")  # speaks no Chinese
    assert bad.translate([tone(200)], target_language="zh", require_speech=False)[0].reason.startswith("tts: EngineError")


def test_spec_and_evaluate_hook(monkeypatch):
    assert parse_spec("cascade:")["mt"] == "qwen2.5-0.5b"
    assert parse_spec("cascade:tts=system,voice=x")["voice"] == "x"
    for bad in ("bundle/", "cascade:foo=1", "cascade:mt"):
        with pytest.raises(CascadeSpecError):
            parse_spec(bad)
    import evaluation.evaluate as ev

    seen = []
    monkeypatch.setattr("serving.cascade.load_cascade", lambda spec: seen.append(spec) or "engine")
    assert ev._load_engine("cascade:mt=qwen2.5-0.5b") == "engine" and seen == ["cascade:mt=qwen2.5-0.5b"]


def test_missing_llm_checkpoint_is_typed(tmp_path, monkeypatch):
    from serving.cascade import load_cascade
    from uniss.engines.llm_mt import MTModelNotInstalledError

    monkeypatch.setattr("uniss.engines.llm_mt.default_qwen_dir", lambda: tmp_path / "absent")
    monkeypatch.setattr("uniss.engines.asr.WhisperASR", lambda *a, **k: object())
    monkeypatch.setattr("uniss.engines.speaker.SpeakerEncoder", lambda *a, **k: type("E", (), {"embed": None})())
    monkeypatch.setattr("uniss.engines.tts.make_tts", lambda *a, **k: object())
    with pytest.raises(MTModelNotInstalledError, match="install_models.py --only qwen2.5-0.5b"):
        load_cascade("cascade:")
