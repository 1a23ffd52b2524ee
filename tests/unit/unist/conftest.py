"""Small deterministic engines for unit tests of the UniST step logic (the real engines are used by
the integration test and the CLI). They implement the engine protocols of docs/design.md exactly:
the "TTS" writes a tone whose length follows the text, the "ASR" recognises a waveform by its hash
(so a test decides what each utterance is heard as), the "MT" is a lookup of reference translations.
"""

from __future__ import annotations

import hashlib

import jiwer
import numpy as np
import pandas as pd
import pytest

from uniss.errors import UnissError
from uniss.unist.io import flac_bytes
from uniss.unist.params import DataParams
from uniss.unist.synthesize import Engines

SR = 16000


def _key(wav: np.ndarray) -> tuple[int, int]:
    """Identity of a tone that survives 16-bit FLAC: (length, peak amplitude in 1e-3 steps)."""
    return len(wav), int(round(float(np.max(np.abs(wav))) * 1000))


class ToneTTS:
    """``synthesize`` -> tone of 0.08 s per character (+0.2 s), pitch set by the voice."""

    cache_id = "tone-tts-1"

    def __init__(self, asr: EarASR, *, fail_on: str | None = None, stretch: dict[str, float] | None = None) -> None:
        self.asr, self.fail_on, self.stretch = asr, fail_on, stretch or {}
        self.calls = 0

    def voices(self, language: str) -> list[str]:
        return {"en": ["flite:slt", "espeak:en-us"], "zh": ["espeak:cmn-latn-pinyin+m3", "espeak:cmn-latn-pinyin+f2"]}[language]

    def synthesize(self, text: str, language: str, voice: str) -> np.ndarray:
        self.calls += 1
        if self.fail_on and self.fail_on in text:
            raise RuntimeError("voice crashed")
        per_char = 0.08 if language == "en" else 0.25
        dur = (0.2 + per_char * len(text)) * self.stretch.get(text, 1.0)
        t = np.arange(int(dur * SR)) / SR
        f0 = 100 + (hash(voice) % 7) * 20 + (len(text) % 5)
        amp = 0.1 + (int(hashlib.sha256(f"{text}|{voice}".encode()).hexdigest(), 16) % 300) * 0.001
        wav = (amp * np.sin(2 * np.pi * f0 * t)).astype(np.float32)
        wav[: int(0.1 * SR)] = 0  # 0.1 s of leading silence
        self.asr.heard[_key(wav)] = self.asr.mishear.get(text, text)
        return wav


class EarASR:
    """``transcribe`` -> the text registered for the waveform (``mishear`` swaps chosen texts)."""

    cache_id = "ear-asr-1"

    def __init__(self) -> None:
        self.heard: dict[tuple[int, int], str] = {}
        self.mishear: dict[str, str] = {}
        self.calls = 0

    def transcribe(self, wavs: list[np.ndarray], language: str) -> list[str]:
        self.calls += len(wavs)
        return [self.heard.get(_key(w), "") for w in wavs]


class LookupMT:
    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def translate(self, texts: list[str], src: str, tgt: str) -> list[str]:
        return [self.table[t] for t in texts]


class MixedScriptError(UnissError, ValueError):
    pass


def clean(text: str, tgt: str) -> str:
    if tgt == "zh" and any("a" <= c.lower() <= "z" for c in text):
        raise MixedScriptError(f"mixed script: {text!r}")
    return " ".join(text.split())


def error_rate(ref: str, hyp: str, language: str) -> float:
    strip = lambda s: "".join(c for c in s.lower() if c.isalnum() or c.isspace())  # noqa: E731
    r, h = strip(ref), strip(hyp)
    if language == "zh":
        return float(jiwer.cer(r.replace(" ", ""), h.replace(" ", "") or " "))
    return float(jiwer.wer(r, h or "<empty>"))


def voice_map(src: list[str], tgt: list[str]) -> dict[str, str]:
    return {s: tgt[i % len(tgt)] for i, s in enumerate(sorted(src))}


def vad_trim(wav: np.ndarray) -> np.ndarray:
    nz = np.flatnonzero(np.abs(wav) > 1e-3)
    return wav[nz[0] : nz[-1] + 1] if len(nz) else wav[:0]


@pytest.fixture
def params() -> DataParams:
    return make_params()


def make_params() -> DataParams:
    return DataParams(chunk_rows=4, rows_per_shard=5, src_max_error={"en": 0.2, "zh": 0.25},
                      tgt_max_error={"en": 0.2, "zh": 0.25})


def make_source(rows: list[tuple[str, str, str, str]], tts: ToneTTS) -> pd.DataFrame:
    """rows: (id, language, transcript, translation) -> a source table spoken by ``tts``."""
    out = []
    for i, (rid, lang, text, tr) in enumerate(rows):
        voice = tts.voices(lang)[i % 2]
        wav = tts.synthesize(text, lang, voice)
        out.append({"id": rid, "split": "train" if i % 3 else "test", "language": lang,
                    "tgt_lang": "zh" if lang == "en" else "en", "transcript": text, "translation": tr,
                    "speaker": voice, "voice": voice, "origin": "demo", "audio": flac_bytes(wav),
                    "duration_s": len(wav) / SR})
    return pd.DataFrame(out)


@pytest.fixture
def fake():
    """(engines, asr, tts, source rows) of an 8-row bilingual corpus."""
    return make_fake()


def make_fake():
    """(engines, asr, tts, source rows) of an 8-row bilingual corpus."""
    asr = EarASR()
    tts = ToneTTS(asr)
    pairs = [
        ("a1", "en", "my mother likes green tea today", "我妈妈今天喜欢绿茶"),
        ("a2", "en", "the teacher buys fresh fish", "老师买新鲜的鱼"),
        ("a3", "en", "my friend sees a small cat", "我朋友看见一只小猫"),
        ("a4", "zh", "我爸爸明天想要白米饭", "my father wants white rice tomorrow"),
        ("a5", "zh", "医生晚上吃热汤", "the doctor eats hot soup at night"),
        ("a6", "en", "our neighbor needs cold water", "我们的邻居需要冷水"),
        ("a7", "zh", "学生每天早上喝黑咖啡", "the student drinks black coffee every morning"),
        ("a8", "en", "the little girl finds some flowers", "小女孩找到一些花"),
    ]
    table = {en: zh for _, _, en, zh in pairs}
    eng = Engines(asr=asr, tts=tts, mt=LookupMT(table), error_rate=error_rate, clean_translation=clean,
                  voice_map=voice_map, vad_trim=vad_trim)
    return eng, asr, tts, pairs


class RateCodec:
    """A ``SpeechCodec`` stand-in with the paper's token rates: 50 semantic and 12.5 linguistic tokens
    per second (codes from frame energy), 32 speaker tokens (from the spectrum)."""

    backend = "test"
    sizes = {"speaker": 16, "semantic": 64, "linguistic": 32}

    def fingerprint(self) -> str:
        return "rate-codec-1"

    def _frames(self, wav: np.ndarray, hop: int, size: int) -> np.ndarray:
        n = max(1, int(round(len(wav) / hop)))
        e = [float(np.abs(wav[i * hop : (i + 1) * hop]).mean()) if i * hop < len(wav) else 0.0 for i in range(n)]
        return (np.minimum(np.array(e) * 200, size - 1)).astype(np.int64)

    def encode(self, wavs):
        from uniss.codecs.base import CodecTokens

        out = []
        for w in wavs:
            spec = np.abs(np.fft.rfft(w[:4096], n=4096))[:32 * 8].reshape(32, 8).mean(1)
            spk = (spec / (spec.max() + 1e-9) * 15).astype(np.int64)
            out.append(CodecTokens(speaker=spk, linguistic=self._frames(w, 1280, 32), semantic=self._frames(w, 320, 64)))
        return out
