"""Tiny serving fixtures: a random-init tiny Qwen2 UniSS model, its tokenizer/vocab, and a small
deterministic signal-processing codec implementing the ``SpeechCodec`` protocol (docs/design.md
"uniss/codecs") so the engine can be exercised end to end without trained codec weights.

The codec is a test codec, not a speech codec: speaker codes = quantised log band energies of the
average spectrum (32 bands), linguistic codes = quantised log energy of 80 ms frames (12.5 Hz),
semantic codes = quantised log energy of 20 ms frames (50 Hz); decode renders one tone per 20 ms
frame (pitch from the speaker codes, amplitude from the semantic code) at 16 kHz.
Importable by path (the integration test's server subprocess loads it with ``runpy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 16_000
SIZES = {"speaker": 64, "semantic": 256, "linguistic": 64}

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "hello world this is a tiny speech translation model",
    "we translate english speech into chinese speech",
    "今天天气很好 我们去公园散步",
    "你好 世界 这是一个小模型",
    "speech to speech translation keeps the voice of the speaker",
] * 4


@dataclass
class CodecTokens:
    speaker: np.ndarray  # (32,) int64
    linguistic: np.ndarray  # (T_l,) int64
    semantic: np.ndarray  # (T_s,) int64


def _frame_log_energy(wav: np.ndarray, hop: int) -> np.ndarray:
    n = max(1, int(np.ceil(wav.shape[0] / hop)))
    pad = np.zeros(n * hop, dtype=np.float32)
    pad[: wav.shape[0]] = wav
    e = (pad.reshape(n, hop) ** 2).mean(axis=1)  # (n,)
    return np.log10(e + 1e-8)  # -8 .. ~0


class ToyCodec:
    """Deterministic ``SpeechCodec`` stand-in for tests (see module docstring)."""

    backend = "toy"
    sizes = dict(SIZES)
    semantic_rate_hz = 50.0
    linguistic_rate_hz = 12.5
    sample_rate_hz = SR
    n_speaker_tokens = 32

    def speaker(self, wav: np.ndarray) -> np.ndarray:
        spec = np.abs(np.fft.rfft(wav[: SR * 4], n=1024)) + 1e-6  # (513,)
        bands = np.array_split(np.log10(spec), 32)
        v = np.array([b.mean() for b in bands])
        return np.clip(((v + 6) / 10 * SIZES["speaker"]).astype(np.int64), 0, SIZES["speaker"] - 1)

    def linguistic(self, wav: np.ndarray) -> np.ndarray:
        e = _frame_log_energy(wav, SR // 25 * 2)  # 1280 samples = 80 ms -> 12.5 Hz
        return np.clip(((e + 8) / 8 * SIZES["linguistic"]).astype(np.int64), 0, SIZES["linguistic"] - 1)

    def semantic(self, wav: np.ndarray) -> np.ndarray:
        e = _frame_log_energy(wav, SR // 50)  # 320 samples = 20 ms -> 50 Hz
        return np.clip(((e + 8) / 8 * SIZES["semantic"]).astype(np.int64), 0, SIZES["semantic"] - 1)

    def encode(self, wavs: list[np.ndarray], *, semantic: bool = True) -> list[CodecTokens]:
        return [CodecTokens(self.speaker(w), self.linguistic(w), self.semantic(w) if semantic else np.zeros(0, dtype=np.int64))
                for w in wavs]

    def decode(self, speaker: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        f0 = 100.0 + 4.0 * float(np.mean(speaker))  # Hz
        hop = SR // 50
        t = np.arange(hop) / SR
        amp = 10 ** ((np.asarray(semantic, dtype=np.float64) / SIZES["semantic"] * 8 - 8) / 2)
        out = np.concatenate([a * np.sin(2 * np.pi * f0 * (t + k * hop / SR)) for k, a in enumerate(amp)]) if amp.size else np.zeros(0)
        return out.astype(np.float32)


def build_tiny(seed: int = 0, *, hidden: int = 64, layers: int = 2):
    """(model, tokenizer, vocab, codec): a random-init tiny Qwen2 with the lite layout."""
    import torch

    from uniss.lm import build_speech_tokenizer, train_text_tokenizer, uniss_lm, vocab_for

    text_tok = train_text_tokenizer(SENTENCES, vocab_size=400, min_frequency=1)
    vocab = vocab_for(text_tok, SIZES, layout="lite")
    tok = build_speech_tokenizer(text_tok, vocab)
    torch.manual_seed(seed)
    model = uniss_lm("tiny", vocab.total, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                     num_attention_heads=4, num_key_value_heads=2).eval()
    return model, tok, vocab, ToyCodec()


def tiny_engine(seed: int = 0, **kw):
    """A ``TranslationEngine`` over :func:`build_tiny`."""
    from serving.engine import TranslationEngine

    model, tok, vocab, codec = build_tiny(seed, **kw)
    return TranslationEngine(model, tok, vocab, codec, meta={"name": "tiny-test"})


def tone(seconds: float, freq: float = 220.0, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    """``(round(seconds*sr),)`` float32 test signal: a tone with a slow amplitude envelope."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


HERE = Path(__file__).resolve()
