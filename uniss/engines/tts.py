"""Text-to-speech engines: the Debian system synthesizers (many distinct voices) and a Spark-TTS
cloning adapter (the paper's UniST synthesizer, §4, when its checkpoint is on disk).

Output of every engine: ``np.ndarray`` float32 ``(N,)`` mono at 16 kHz (resampled with soxr by
:func:`uniss.audio.load_audio`).

Voice ids are ``family:name`` strings, each a distinct speaker:

- ``flite:<v>``: CMU Flite built-in voices (``flite -lv``; ``awb_time`` is a limited-domain clock
  voice and is left out).
- ``festival:<v>``: Festival voices found under ``/usr/share/festival/voices/*/`` (kal_diphone,
  ked_diphone, cmu_us_slt_arctic_hts), run with ``text2wave -eval (voice_<v>)``.
- ``espeak:<voice>[+<variant>]``: espeak-ng; English bases ``en-us``, ``en-gb`` and Mandarin
  ``cmn-latn-pinyin``, each alone and with every classic variant (``m1``-``m7``, ``f1``-``f5``)
  that ``espeak-ng --voices=variant`` lists. Mandarin text is converted to numbered-tone pinyin with
  pypinyin first (the plain ``cmn`` voice is broken on Debian 12, FACTS.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from uniss.audio import AudioError, load_audio
from uniss.engines import EngineError, EngineUnavailableError, UnknownLanguageError, check_language

#: Festival voice directories (Debian festvox-* packages).
FESTIVAL_VOICE_ROOT = Path("/usr/share/festival/voices")

#: Flite voices that are not general-purpose speakers (awb_time only says clock times).
FLITE_EXCLUDED = frozenset({"awb_time"})

#: espeak-ng base voices per language (``espeak-ng --voices``); cmn-latn-pinyin reads tone-numbered pinyin.
ESPEAK_BASES: dict[str, tuple[str, ...]] = {"en": ("en-us", "en-gb"), "zh": ("cmn-latn-pinyin",)}

#: espeak-ng classic variants (files ``espeak-ng-data/voices/!v/m1`` ...), used when installed.
ESPEAK_VARIANTS: tuple[str, ...] = tuple([f"m{i}" for i in range(1, 8)] + [f"f{i}" for i in range(1, 6)])

#: espeak-ng speaking rate at ``rate=1`` in words per minute per language. English: espeak-ng's
#: default (175). Mandarin: every pinyin syllable counts as a word, so 175 is hurried; measured with
#: Whisper-base (beam 1) on 3 sentences, voice cmn-latn-pinyin+f3: corpus CER about 0.30 at 175 wpm,
#: 0.08 at 140 (male variants stay poor at both rates, see benchmarks/bench_engines.py).
ESPEAK_WPM: dict[str, int] = {"en": 175, "zh": 140}

#: Subprocess time limit per utterance (seconds).
TTS_TIMEOUT_S = 60.0

#: Longest accepted text (characters) for one utterance.
MAX_TEXT_CHARS = 2000

#: Chinese punctuation -> ASCII punctuation that espeak-ng pauses on (after NFKC).
_ZH_PUNCT = str.maketrans({"。": ".", "、": ",", "，": ",", "；": ";", "：": ":", "？": "?", "！": "!",
                           "“": "", "”": "", "‘": "", "’": "", "《": "", "》": "", "「": "", "」": ""})



class TTSError(EngineError):
    """Bad TTS request (empty/oversized text) or a synthesizer that failed / produced no audio."""


class UnknownVoiceError(TTSError):
    """The voice id is not installed here, or does not speak the requested language."""


class EmptyTextError(TTSError):
    """The text to speak is empty or only whitespace."""


class TextTooLongError(TTSError):
    """The text is longer than :data:`MAX_TEXT_CHARS` characters."""


class UnpronounceableTextError(TTSError):
    """The text holds nothing the engine can pronounce (only punctuation, emoji, unknown script)."""


@runtime_checkable
class TTSEngine(Protocol):
    """Text-to-speech: ``synthesize(text, language, voice) -> (N,) float32 16 kHz``."""

    def voices(self, language: str) -> list[str]:
        """Voice ids this engine can speak ``language`` with."""
        ...

    def synthesize(self, text: str, language: str, voice: str) -> np.ndarray:
        """Speech of ``text`` in ``language`` with ``voice``: ``(N,)`` float32 at 16 kHz."""
        ...


def _run(cmd: list[str], what: str, stdin: str | None = None) -> None:
    try:
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=TTS_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise EngineUnavailableError(f"{what}: program {cmd[0]!r} is not installed (apt-get install it)") from None
    except subprocess.TimeoutExpired:
        raise TTSError(f"{what}: timed out after {TTS_TIMEOUT_S:.0f} s") from None
    if r.returncode != 0:
        raise TTSError(f"{what}: exit code {r.returncode}: {(r.stderr or r.stdout).strip()[:300]}")


@lru_cache(maxsize=1)
def _flite_voices() -> tuple[str, ...]:
    if shutil.which("flite") is None:
        return ()
    r = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=30, check=False)
    text = (r.stdout + r.stderr).split("Voices available:", 1)[-1]
    return tuple(sorted(v for v in text.split() if v not in FLITE_EXCLUDED))


@lru_cache(maxsize=1)
def _festival_voices() -> tuple[str, ...]:
    if shutil.which("text2wave") is None or not FESTIVAL_VOICE_ROOT.is_dir():
        return ()
    return tuple(sorted(p.name for p in FESTIVAL_VOICE_ROOT.glob("*/*") if p.is_dir()))


@lru_cache(maxsize=1)
def _espeak_inventory() -> tuple[frozenset[str], tuple[str, ...]]:
    """(installed base voice names, installed classic variants) from ``espeak-ng --voices``."""
    if shutil.which("espeak-ng") is None:
        return frozenset(), ()
    lines = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, timeout=30,
                           check=False).stdout.splitlines()[1:]
    bases = frozenset(ln.split()[1] for ln in lines if len(ln.split()) > 1)
    vlines = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, timeout=30,
                            check=False).stdout.splitlines()[1:]
    files = {ln.split()[4].split("/")[-1] for ln in vlines if len(ln.split()) > 4}
    return bases, tuple(v for v in ESPEAK_VARIANTS if v in files)


def hanzi_to_pinyin(text: str) -> str:
    """Hanzi -> space-separated numbered-tone pinyin for ``espeak-ng -v cmn-latn-pinyin``
    (``"你好。"`` -> ``"ni3 hao3 ."``; neutral tone as 5). Non-Han characters pass through.

    Source: pypinyin ``lazy_pinyin(style=Style.TONE3, neutral_tone_with_five=True)``.
    """
    from pypinyin import Style, lazy_pinyin

    text = unicodedata.normalize("NFKC", text).translate(_ZH_PUNCT)
    syl = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, errors="default")
    out = " ".join(s.strip() for s in syl if s.strip())
    out = re.sub(r"\s+([.,;:?!])", r"\1", out)
    return " ".join(out.split())


class SystemTTS:
    """The Debian speech synthesizers as one multi-voice engine (flite, festival, espeak-ng).

    Args:
        rate: speaking-rate factor (1.0 = the voice's default; 1.2 = 20 % faster). flite and festival
            scale phone durations by ``1/rate`` (``duration_stretch`` / ``Duration_Stretch``),
            espeak-ng speaks ``ESPEAK_WPM[language] * rate`` words per minute.
    Raises:
        TTSError: ``rate`` outside (0.25, 4].
    """

    def __init__(self, rate: float = 1.0) -> None:
        if not 0.25 < float(rate) <= 4.0:
            raise TTSError(f"speak rate {rate} outside (0.25, 4]")
        self.rate = float(rate)

    def voices(self, language: str) -> list[str]:
        """Installed voice ids for ``language`` in a fixed order (flite, festival, espeak).

        Raises UnknownLanguageError for anything but ``en``/``zh``.
        """
        check_language(language)
        out: list[str] = []
        if language == "en":
            out += [f"flite:{v}" for v in _flite_voices()]
            out += [f"festival:{v}" for v in _festival_voices()]
        bases, variants = _espeak_inventory()
        for b in ESPEAK_BASES[language]:
            if b in bases:
                out += [f"espeak:{b}"] + [f"espeak:{b}+{v}" for v in variants]
        return out

    def _check(self, text: str, language: str, voice: str) -> str:
        check_language(language)
        if not isinstance(text, str) or not text.strip():
            raise EmptyTextError("TTS text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise TextTooLongError(f"TTS text has {len(text)} characters > max {MAX_TEXT_CHARS}")
        if voice not in self.voices(language):
            family = voice.split(":", 1)[0]
            if any(voice in self.voices(lang) for lang in ("en", "zh")):
                raise UnknownVoiceError(f"voice {voice!r} does not speak {language!r}")
            raise UnknownVoiceError(f"unknown voice {voice!r} (family {family!r}); see SystemTTS().voices({language!r})")
        return " ".join(text.split())

    def synthesize(self, text: str, language: str, voice: str) -> np.ndarray:
        """Speak ``text`` with ``voice``.

        Args:
            text: the sentence (hanzi for ``zh``: converted to pinyin for espeak-ng).
            language: ``en`` or ``zh``.
            voice: an id from :meth:`voices`.
        Returns:
            ``(N,)`` float32 mono 16 kHz, N > 0.
        Raises:
            TTSError (empty/oversized text, synthesizer failure, silent output),
            UnknownVoiceError, UnknownLanguageError, EngineUnavailableError (program missing).
        """
        text = self._check(text, language, voice)
        family, name = voice.split(":", 1)
        with tempfile.TemporaryDirectory(prefix="uniss-tts-") as tmp:
            txt, out = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
            if family == "flite":
                txt.write_text(text, encoding="utf-8")
                _run(["flite", "-voice", name, "--setf", f"duration_stretch={1.0 / self.rate:.4f}",
                      "-f", str(txt), "-o", str(out)], f"flite voice {name}")
            elif family == "festival":
                txt.write_text(text, encoding="latin-1", errors="replace")
                _run(["text2wave", "-eval", f"(voice_{name})", "-eval",
                      f"(Parameter.set 'Duration_Stretch {1.0 / self.rate:.4f})", str(txt), "-o", str(out)],
                     f"festival voice {name}")
            elif family == "espeak":
                spoken = hanzi_to_pinyin(text) if name.startswith("cmn-latn-pinyin") else text
                txt.write_text(spoken, encoding="utf-8")
                _run(["espeak-ng", "-v", name, "-s", str(int(round(ESPEAK_WPM[language] * self.rate))), "-f", str(txt),
                      "-w", str(out)], f"espeak-ng voice {name}")
            else:  # pragma: no cover - _check admits only listed families
                raise UnknownVoiceError(f"unknown voice family {family!r}")
            try:
                wav = load_audio(out, min_duration_s=0.0)
            except AudioError as e:
                raise TTSError(f"{voice} produced no usable audio for {text[:60]!r}: {e}") from None
        if float(np.max(np.abs(wav))) < 1e-3:
            raise TTSError(f"{voice} produced silence for {text[:60]!r}")
        return wav


def voice_map(src_voices: Sequence[str], tgt_voices: Sequence[str]) -> dict[str, str]:
    """Deterministic source -> target voice map for engines that cannot clone (UniST synthesis keeps
    "the same speaker" as one fixed target voice per source voice).

    Both lists are de-duplicated and sorted; source voice ``i`` maps to target voice ``i mod T``
    (round robin), so the map does not depend on input order and spreads sources over targets.

    Returns ``{src: tgt}`` ({} for no sources). Raises TTSError when sources exist but no targets.
    """
    src = sorted(set(src_voices))
    tgt = sorted(set(tgt_voices))
    if src and not tgt:
        raise TTSError("voice_map: no target voices to map onto")
    return {s: tgt[i % len(tgt)] for i, s in enumerate(src)}


class SparkTTS:
    """Voice-cloning adapter over Spark-TTS (Wang et al. 2025, https://github.com/SparkAudio/Spark-TTS),
    the synthesizer of the paper's UniST pipeline (§4), from local files only.

    Args:
        checkpoint_dir: the ``Spark-TTS-0.5B`` directory (``config.yaml``, ``LLM/``, ``BiCodec/``,
            ``wav2vec2-large-xlsr-53/``).
        code_dir: a checkout of the Spark-TTS repository (holds ``cli/SparkTTS.py`` and ``sparktts/``);
            default: ``checkpoint_dir``'s parent, or already importable.
        device: torch device string.
    Raises:
        EngineUnavailableError: a missing path (named) or a missing module (``cli.SparkTTS``,
            or one of its dependencies, named).
    The voice of :meth:`synthesize` is the path of a prompt recording (16 kHz speech of the speaker
    to clone), so :meth:`voices` lists none: every source recording is a voice.
    """

    REQUIRED = ("config.yaml", "LLM", "BiCodec", "wav2vec2-large-xlsr-53")

    def __init__(self, checkpoint_dir: str | os.PathLike, code_dir: str | os.PathLike | None = None,
                 device: str = "cpu") -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        if not self.checkpoint_dir.is_dir():
            raise EngineUnavailableError(f"Spark-TTS checkpoint directory not found: {self.checkpoint_dir}")
        missing = [r for r in self.REQUIRED if not (self.checkpoint_dir / r).exists()]
        if missing:
            raise EngineUnavailableError(f"Spark-TTS checkpoint {self.checkpoint_dir} lacks {missing}")
        code = Path(code_dir) if code_dir is not None else self.checkpoint_dir.parent
        if (code / "cli" / "SparkTTS.py").is_file() and str(code) not in sys.path:
            sys.path.insert(0, str(code))
        try:
            from cli.SparkTTS import SparkTTS as _Spark  # type: ignore[import-not-found]
        except ImportError as e:
            raise EngineUnavailableError(
                f"Spark-TTS code module 'cli.SparkTTS' not importable ({e}); pass code_dir= a Spark-TTS checkout") from None
        import torch

        self._model: Any = _Spark(self.checkpoint_dir, torch.device(device))

    def voices(self, language: str) -> list[str]:
        """Cloning engine: no fixed voices (any prompt recording path is a voice)."""
        check_language(language)
        return []

    def synthesize(self, text: str, language: str, voice: str, prompt_text: str | None = None) -> np.ndarray:
        """Speak ``text`` in the voice of the prompt recording at path ``voice``.

        ``prompt_text`` is the transcript of the prompt recording (Spark-TTS ``inference``'s
        ``prompt_text``; improves cloning, e.g. the UniST source transcript).
        Returns ``(N,)`` float32 16 kHz (Spark-TTS decodes at 16 kHz). Raises TTSError (empty text,
        missing prompt file), UnknownLanguageError.
        """
        check_language(language)
        if not text or not text.strip():
            raise TTSError("TTS text is empty")
        if not Path(voice).is_file():
            raise UnknownVoiceError(f"Spark-TTS prompt recording not found: {voice}")
        import torch

        with torch.no_grad():
            wav = self._model.inference(text, prompt_speech_path=voice, prompt_text=prompt_text)
        return np.asarray(wav, dtype=np.float32).reshape(-1)


#: TTS engines selectable by name (``make_tts``): name -> ``module:Class``.
TTS_ENGINES: dict[str, str] = {
    "system": "uniss.engines.tts:SystemTTS",
    "kokoro": "uniss.engines.kokoro:KokoroTTS",
    "piper": "uniss.engines.kokoro:PiperTTS",
}


def make_tts(name: str = "system", **kwargs: Any) -> TTSEngine:
    """Build the TTS engine called ``name`` (a key of :data:`TTS_ENGINES`) with ``kwargs``.

    ``system``: flite / festival / espeak-ng (:class:`SystemTTS`); ``kokoro``: Kokoro-82M, 25 voices
    speaking both languages; ``piper``: Piper en_US-joe-medium (English only).
    Raises TTSError for an unknown name, EngineUnavailableError when its model is not installed.
    """
    import importlib

    if name not in TTS_ENGINES:
        raise TTSError(f"unknown TTS engine {name!r}: expected one of {sorted(TTS_ENGINES)}")
    module, cls = TTS_ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


def voice_languages(engine: Any, voice: str) -> tuple[str, ...]:
    """Languages ``voice`` of ``engine`` speaks, e.g. to know whether a source voice can be kept in
    the target language. Uses ``engine.languages(voice)`` when the engine has it, else the
    languages whose :meth:`TTSEngine.voices` list holds ``voice`` (``()`` when none)."""
    if hasattr(engine, "languages"):
        return tuple(engine.languages(voice))
    from uniss.engines import LANGUAGES

    return tuple(lang for lang in LANGUAGES if voice in engine.voices(lang))


__all__ = ["TTSEngine", "SystemTTS", "SparkTTS", "TTSError", "UnknownVoiceError", "UnknownLanguageError",
           "EmptyTextError", "TextTooLongError", "UnpronounceableTextError", "TTS_ENGINES", "make_tts",
           "voice_languages", "voice_map", "hanzi_to_pinyin"]
