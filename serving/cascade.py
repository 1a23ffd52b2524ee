"""Cascaded S2ST baseline (paper Table 1's cascade rows): ASR -> MT -> TTS behind the same
``translate`` interface as :class:`serving.engine.TranslationEngine`, so ``uniss evaluate --model
cascade:`` scores it like any model and ``uniss compare`` shows it beside UniSS.

- ASR: ``transcribe(wavs, language) -> list[str]`` (default ``uniss.engines.asr.WhisperASR``, Whisper-base).
- MT: an ``uniss.engines.mt.MTEngine`` (default ``uniss.engines.llm_mt.LocalChatMT``, reference-free
  App. E.2 LLM translation), its raw reply cleaned by ``clean_translation`` (App. E.2 rules).
- TTS: ``voices(language)``, ``synthesize(text, language, voice) -> (N,) float32 16 kHz`` (default
  Kokoro, ``uniss.engines.tts.make_tts("kokoro")``), in the source's voice where the TTS can speak it.

Voice choice per row (no voice cloning TTS can be had here, FACTS.md): an explicit ``voices[i]`` the TTS
speaks in the target language; else the TTS voice whose speaker embedding (resemblyzer) of an
enrolment sentence in the source language is nearest the source clip, when the cosine is at least
``voice_min_cosine`` (same voice ~0.84-0.91, different voices ~0.46-0.57, FACTS.md: the demo's Kokoro
sources are found); else ``default_voice``. ``TranslationResult.reason`` is ``None`` for a complete row;
a row whose ASR, MT clean-up or TTS fails comes back incomplete (empty wav) with the stage and reason.

The cascade has one path for every mode (it always transcribes, translates and speaks); ``mode`` only
sets which texts the result carries, as the UniSS engine does (Quality: transcript + translation,
Performance: translation, Direct: none). Sampling arguments are accepted and ignored (greedy engines).

Shape legend: B = batch rows; wavs (N,) float32 mono 16 kHz.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from serving.engine import EngineError, TranslationResult, row_modes
from uniss.audio import SAMPLE_RATE_HZ, check_waveform
from uniss.audio import require_speech as require_speech_fn  # name clash with translate(require_speech=)
from uniss.engines import LANGUAGES
from uniss.prompts import other_language

#: ``--model`` prefix of a cascade (``evaluation.evaluate``): ``cascade:`` or ``cascade:key=value,...``.
CASCADE_PREFIX = "cascade:"

#: Keys of a cascade spec and their defaults (``mt``: ``make_mt`` name; ``tts``: ``make_tts`` name;
#: ``voice``: default target voice, empty = the TTS's first voice of the target language).
SPEC_DEFAULTS = {"mt": "qwen2.5-0.5b", "tts": "kokoro", "voice": "", "min_cosine": "0.75", "threads": "1"}

#: Enrolment sentences (one per language) each TTS voice speaks once for the voice match.
ENROLL_TEXT = {"en": "The weather is lovely today, let us take a walk in the park.",
               "zh": "今天天气很好，我们一起去公园散步吧。"}

#: Default minimum speaker cosine for "this source is that TTS voice" (FACTS.md resemblyzer figures).
VOICE_MIN_COSINE = 0.75


class CascadeSpecError(EngineError):
    """A ``cascade:`` model spec with an unknown key or a bad value."""


class CascadeEngine:
    """ASR -> MT -> TTS with :meth:`serving.engine.TranslationEngine.translate`'s interface.

    Args:
        asr: ``transcribe(wavs, language) -> list[str]``.
        mt: ``translate(texts, src, tgt) -> list[str]`` (raw replies).
        tts: ``voices(language)``, ``synthesize(text, language, voice)`` (16 kHz); ``languages(voice)`` optional.
        speaker_embed: waveform -> speaker embedding, for the voice match; ``None`` = no match (default voice).
        default_voice: target voice when no source voice is kept (``None`` = ``tts.voices(tgt)[0]``).
        voice_min_cosine: minimum cosine of source clip vs a TTS voice to speak in that voice.
        clean: ``(raw, tgt) -> str`` App. E.2 clean-up (default ``uniss.engines.mt.clean_translation``).
    Raises:
        EngineError: ``voice_min_cosine`` outside [-1, 1].
    """

    def __init__(self, asr: Any, mt: Any, tts: Any, *, speaker_embed: Callable[[np.ndarray], np.ndarray] | None = None,
                 default_voice: str | None = None, voice_min_cosine: float = VOICE_MIN_COSINE,
                 clean: Callable[[str, str], str] | None = None) -> None:
        if not -1.0 <= float(voice_min_cosine) <= 1.0:
            raise EngineError(f"voice_min_cosine must be in [-1, 1], got {voice_min_cosine}")
        if clean is None:
            from uniss.engines.mt import clean_translation as clean
        self.asr, self.mt, self.tts = asr, mt, tts
        self.speaker_embed = speaker_embed
        self.default_voice = default_voice
        self.voice_min_cosine = float(voice_min_cosine)
        self.clean = clean
        self.meta = {"kind": "cascade", "asr": type(asr).__name__, "mt": type(mt).__name__, "tts": type(tts).__name__}
        self._enrolled: dict[str, tuple[list[str], np.ndarray]] = {}  # src lang -> (voices, (V, D) unit embeddings)

    # ------------------------------------------------------------------ voices
    def _speaks(self, voice: str, lang: str) -> bool:
        from uniss.engines.tts import voice_languages

        try:
            return lang in voice_languages(self.tts, voice)
        except Exception:  # noqa: BLE001 - an unknown voice is simply not spoken
            return False

    def _default(self, tgt: str) -> str:
        if self.default_voice:
            if not self._speaks(self.default_voice, tgt):
                raise EngineError(f"default voice {self.default_voice!r} cannot speak {tgt!r}")
            return self.default_voice
        vs = list(self.tts.voices(tgt))
        if not vs:
            raise EngineError(f"the TTS has no {tgt!r} voice")
        return vs[0]

    def _enroll(self, src: str, tgt: str) -> tuple[list[str], np.ndarray]:
        """TTS voices that speak both ``src`` and ``tgt``, with unit embeddings of ``ENROLL_TEXT[src]`` (V, D)."""
        if src not in self._enrolled:
            voices = [v for v in self.tts.voices(src) if self._speaks(v, tgt)]
            embs = [np.asarray(self.speaker_embed(self.tts.synthesize(ENROLL_TEXT[src], src, v)), dtype=np.float64)
                    for v in voices]
            m = np.stack(embs) if embs else np.zeros((0, 1))
            m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
            self._enrolled[src] = (voices, m)
        return self._enrolled[src]

    def choose_voice(self, wav: np.ndarray, src: str, tgt: str, given: str | None = None) -> tuple[str, float | None]:
        """Target voice for one source clip, and the match cosine (``None`` when no match was made).

        Order: ``given`` when the TTS speaks it in ``tgt``; the nearest enrolled TTS voice when its
        cosine >= ``voice_min_cosine``; else the default voice.
        """
        if given and self._speaks(given, tgt):
            return given, None
        if self.speaker_embed is not None:
            voices, m = self._enroll(src, tgt)
            if voices:
                e = np.asarray(self.speaker_embed(wav), dtype=np.float64)
                sims = m @ (e / max(float(np.linalg.norm(e)), 1e-12))  # (V,)
                k = int(np.argmax(sims))
                if sims[k] >= self.voice_min_cosine:
                    return voices[k], float(sims[k])
        return self._default(tgt), None

    # ------------------------------------------------------------------ translate
    def translate(self, wavs: Sequence[np.ndarray], *, target_language: str | Sequence[str], mode: str | Sequence[str] = "quality",
                  voices: Sequence[str | None] | None = None, require_speech: bool = True,
                  **sampling: Any) -> list[TranslationResult]:
        """Translate a batch of source utterances: ASR (one batched call per source language), MT
        (one call per direction), clean-up, TTS per row.

        Args:
            wavs: ``B`` waveforms, each ``(N_i,)`` float32 mono 16 kHz.
            target_language: ``en``/``zh`` for all rows or one per row (source = the other language).
            mode: ``quality`` / ``performance`` / ``direct`` (which texts the results carry), for all
                rows or one per row.
            voices: optional source voice id per row (e.g. a UniST row's ``src_voice``), used when the
                TTS speaks it in the target language.
            require_speech: check each row with ``uniss.audio.require_speech`` (silero-vad) first.
            sampling: ``TranslationEngine.translate``'s decoding arguments (``seed``, ``do_sample``,
                ``speed``, ...): accepted for interface parity, ignored.
        Returns:
            ``B`` ``TranslationResult`` in input order; ``timings`` hold ``asr``, ``mt``, ``tts``, ``total``
            seconds of the batch; ``reason`` names the failing stage of an incomplete row.
        Raises:
            EngineError: empty batch, unknown mode or language, list lengths that do not match ``B``.
            AudioError / NoSpeechAudioError: a bad waveform (``uniss.audio.check_waveform``), no speech.
        """
        t0 = time.perf_counter()
        if len(wavs) == 0:
            raise EngineError("empty batch: give at least one waveform")
        B = len(wavs)
        modes = [t.value for t in row_modes(mode, B)]
        tgts = [target_language] * B if isinstance(target_language, str) else list(target_language)
        given = [None] * B if voices is None else list(voices)
        if len(tgts) != B or len(given) != B:
            raise EngineError(f"target_language/voices lists must have {B} entries")
        for t in tgts:
            if t not in LANGUAGES:
                raise EngineError(f"unknown target language {t!r}; supported: {', '.join(LANGUAGES)}")
        xs = [require_speech_fn(w, what=f"row {i}") if require_speech else check_waveform(w, what=f"row {i}")
              for i, w in enumerate(wavs)]
        srcs = [other_language(t) for t in tgts]
        transcripts: list[str] = [""] * B
        texts: list[str | None] = [None] * B
        reasons: list[str | None] = [None] * B
        timings = {"asr": 0.0, "mt": 0.0, "tts": 0.0}

        t = time.perf_counter()
        for lang in sorted(set(srcs)):
            idx = [i for i in range(B) if srcs[i] == lang]
            for i, h in zip(idx, self.asr.transcribe([xs[i] for i in idx], lang), strict=True):
                transcripts[i] = (h or "").strip()
                if not transcripts[i]:
                    reasons[i] = "asr: empty transcript"
        timings["asr"] = time.perf_counter() - t

        t = time.perf_counter()
        for src, tgt in sorted(set(zip(srcs, tgts, strict=True))):
            idx = [i for i in range(B) if srcs[i] == src and tgts[i] == tgt and reasons[i] is None]
            if not idx:
                continue
            try:
                raw = self.mt.translate([transcripts[i] for i in idx], src, tgt)
            except Exception as e:  # noqa: BLE001 - the rows come back incomplete with the reason
                for i in idx:
                    reasons[i] = f"mt: {type(e).__name__}: {e}"
                continue
            for i, r in zip(idx, raw, strict=True):
                try:
                    texts[i] = self.clean(r, tgt)
                except Exception as e:  # noqa: BLE001 - MixedScriptError / EmptyTranslationError
                    reasons[i] = f"mt: {type(e).__name__}: {e}"
        timings["mt"] = time.perf_counter() - t

        t = time.perf_counter()
        out_wavs: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * B
        chosen: list[str | None] = [None] * B
        for i in range(B):
            if reasons[i] is not None:
                continue
            try:
                chosen[i], _ = self.choose_voice(xs[i], srcs[i], tgts[i], given[i])
                out_wavs[i] = np.asarray(self.tts.synthesize(texts[i], tgts[i], chosen[i]), dtype=np.float32)
            except Exception as e:  # noqa: BLE001
                reasons[i] = f"tts: {type(e).__name__}: {e}"
        timings["tts"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0

        res = []
        for i in range(B):
            r = TranslationResult(
                source_text=transcripts[i] if modes[i] == "quality" else None,
                target_text=texts[i] if modes[i] != "direct" else None,
                wav=out_wavs[i], duration_s=len(out_wavs[i]) / SAMPLE_RATE_HZ,
                source_duration_s=len(xs[i]) / SAMPLE_RATE_HZ, output_tokens=0, timings=dict(timings),
                complete=reasons[i] is None, reason=reasons[i], mode=modes[i], target_language=tgts[i])
            r.voice = chosen[i]  # the TTS voice spoken (None when no speech came out)
            res.append(r)
        return res

    def source_language(self, target_language: str) -> str:
        """The source language for a target (the other one of the EN<->ZH pair)."""
        return other_language(target_language)


def parse_spec(spec: str) -> dict[str, str]:
    """``cascade:`` / ``cascade:mt=qwen2.5-0.5b,tts=kokoro,voice=kokoro:jf_alpha,min_cosine=0.75,threads=1``
    -> the settings, defaults filled (:data:`SPEC_DEFAULTS`).

    Raises:
        CascadeSpecError: not a cascade spec, an item without ``=``, an unknown key.
    """
    if not spec.startswith(CASCADE_PREFIX):
        raise CascadeSpecError(f"{spec!r} is not a cascade spec (expected {CASCADE_PREFIX}...)")
    out = dict(SPEC_DEFAULTS)
    for item in filter(None, (x.strip() for x in spec[len(CASCADE_PREFIX):].split(","))):
        k, sep, v = item.partition("=")
        if not sep or k.strip() not in SPEC_DEFAULTS:
            raise CascadeSpecError(f"bad cascade spec item {item!r}; keys: {', '.join(SPEC_DEFAULTS)}")
        out[k.strip()] = v.strip()
    return out


def load_cascade(spec: str = CASCADE_PREFIX) -> CascadeEngine:
    """The real cascade of this machine from a spec (:func:`parse_spec`): Whisper-base ASR, the ``mt``
    engine (``uniss.engines.llm_mt.make_mt``), the ``tts`` engine (``uniss.engines.tts.make_tts``),
    resemblyzer speaker embeddings for the voice match.

    Raises:
        CascadeSpecError: bad spec or value; MTModelNotInstalledError: the LLM checkpoint is absent
        (names the install command); EngineUnavailableError / TTSError: ASR or TTS not installed/unknown.
    """
    from uniss.engines.asr import WhisperASR
    from uniss.engines.llm_mt import make_mt
    from uniss.engines.speaker import SpeakerEncoder
    from uniss.engines.tts import make_tts

    s = parse_spec(spec)
    try:
        threads, min_cos = int(s["threads"]), float(s["min_cosine"])
    except ValueError:
        raise CascadeSpecError(f"cascade spec threads/min_cosine must be numbers: {spec!r}") from None
    if threads < 1:
        raise CascadeSpecError(f"cascade spec threads must be >= 1, got {threads}")
    tts = make_tts(s["tts"]) if s["tts"] == "system" else make_tts(s["tts"], threads=threads)
    eng = CascadeEngine(WhisperASR(), make_mt(s["mt"], threads=threads), tts, speaker_embed=SpeakerEncoder().embed,
                        default_voice=s["voice"] or None, voice_min_cosine=min_cos)
    eng.meta["spec"] = spec
    return eng
