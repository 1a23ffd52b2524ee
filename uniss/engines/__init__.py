"""External engines behind small protocols (docs/design.md "uniss/engines/").

- :mod:`uniss.engines.asr`: ``ASREngine``, ``WhisperASR``, ``PocketsphinxASR``, ``normalize_text``, ``error_rate``
- :mod:`uniss.engines.tts`: ``TTSEngine``, ``SystemTTS`` (flite / festival / espeak-ng), ``SparkTTS``, ``voice_map``
- :mod:`uniss.engines.kokoro`: ``KokoroTTS`` (Kokoro-82M, en + zh per voice), ``PiperTTS`` (en_US-joe-medium)
- :mod:`uniss.engines.mos`: ``MOSPredictor``, ``DNSMOS`` (DNSMOS P.808 via speechmos)
- :mod:`uniss.engines.speaker`: ``SpeakerEncoder`` (resemblyzer; the one wrapper, also behind the lite codec's speaker tokens)
- :mod:`uniss.engines.mt`: ``MTEngine``, ``ReferenceMT``, ``OpenAIChatMT``, ``clean_translation``
- :mod:`uniss.engines.vad`: silero-vad speech timestamps

This package module holds only the shared errors and the language check, so importing it is cheap;
each engine imports its heavy library lazily.
"""

from __future__ import annotations

from uniss.errors import UnissError

#: Languages of the platform (ARCHITECTURE.md: ``en`` and ``zh``).
LANGUAGES: tuple[str, ...] = ("en", "zh")


class EngineError(UnissError, ValueError):
    """Bad input for an engine, or an engine that failed on it."""


class EngineUnavailableError(UnissError, RuntimeError):
    """An engine's model, program or Python module is not present on this machine (the message names it)."""


class UnknownLanguageError(EngineError):
    """A language other than the platform's ``en`` / ``zh`` (or one the engine does not speak)."""


def check_language(language: str) -> str:
    """Return ``language`` if it is ``en`` or ``zh``; raise :class:`UnknownLanguageError` otherwise."""
    if language not in LANGUAGES:
        raise UnknownLanguageError(f"unknown language {language!r}: expected one of {LANGUAGES}")
    return language


__all__ = ["LANGUAGES", "EngineError", "EngineUnavailableError", "UnknownLanguageError", "check_language"]
