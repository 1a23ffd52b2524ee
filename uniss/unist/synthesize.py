"""UniST synthesis (paper §4, App. E): source speech -> filtered, voice-mapped, speed-tagged
parallel speech, split into General and High-Quality subsets.

Steps, in paper order (each row's *first* failing check is its quarantine reason):

1. ``src_asr``   re-ASR the source; keep error <= ``src_max_error[lang]`` (paper: WER <= 0.05).
2. ``translate`` MT engine (``ReferenceMT``: the corpus's own translation) + the App. E.2 clean-up
   rules (``clean_translation``; mixed-script output is dropped).
3. ``tgt_tts``   synthesize the target in the source's own voice when the TTS engine speaks that voice
   in the target language (paper §4: the target is synthesised conditioned on the source voice;
   every Kokoro voice speaks en and zh), else in a voice of a deterministic source->target map
   (system TTS voices, recorded speakers); ``voice_preserved`` records which (the map is in the
   manifest).
4. ``speed``     ratio = tgt/src duration, speed token ``round(10*ratio) - 1`` (``uniss.vocab.speed_index``).
5. ``tgt_asr``   ASR the target; keep error <= ``tgt_max_error[lang]`` (paper: WER <= 0.01, CER for
   Chinese) and ratio in ``general_ratio`` (paper: [0.5, 2.0]) = **General**.
6. ``vad``       VAD edge trim of both sides; trimmed ratio in ``hq_ratio`` (paper: [0.7, 1.5]) = **HQ**.

The expensive measurements (ASR, TTS, VAD) run as cached steps over *fixed* chunks of the source
table, so changing a threshold re-runs only the cheap filter, and an unchanged rebuild does no
ASR/TTS work. A consequence: target TTS/ASR also run on rows the source filter later drops (about
the share of the source filter's drops of extra work); the reported reasons follow paper order.

Shape/units legend: audio cells are FLAC bytes of (N,) float32 16 kHz mono; durations in seconds;
error rates are WER (en) / CER (zh) in [0, inf).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from uniss.audio import SAMPLE_RATE_HZ
from uniss.unist.cache import StepCache, chunks, drop_rows, engine_id
from uniss.unist.io import decode_flac, flac_bytes
from uniss.unist.params import DataParams
from uniss.vocab import speed_index

#: Bumped when a step's computation changes (part of every step-cache key).
STEP_VERSION = 1

#: Columns the measurement steps add to the source table.
WORK_COLUMNS = ["src_asr", "src_wer", "tgt_text", "tgt_voice", "tgt_audio", "tgt_duration_s", "tgt_asr",
                "tgt_wer", "src_trim_s", "tgt_trim_s", "fail_step", "fail_reason"]


@dataclass
class Engines:
    """The external engines a synthesis run uses (docs/design.md ``uniss/engines``).

    Attributes:
        asr: ``transcribe(wavs: list[(N,) float32], language) -> list[str]``.
        tts: ``voices(language) -> list[str]``, ``synthesize(text, language, voice) -> (N,) float32``.
        mt: ``translate(texts, src, tgt) -> list[str]``.
        error_rate: ``(ref, hyp, language) -> float`` (WER en / CER zh).
        clean_translation: ``(text, tgt) -> str``; raises a ``UnissError`` on mixed script.
        voice_map: ``(src_voices, tgt_voices) -> dict[str, str]``.
        vad_trim: ``(N,) float32 -> (M,) float32`` speech with edge silence removed.
    """

    asr: Any
    tts: Any
    mt: Any
    error_rate: Callable[[str, str, str], float]
    clean_translation: Callable[[str, str], str]
    voice_map: Callable[[list[str], list[str]], dict[str, str]]
    vad_trim: Callable[[np.ndarray], np.ndarray]

    def ids(self) -> dict[str, str]:
        """Engine identities (cache-key parts and manifest record)."""
        return {k: engine_id(getattr(self, k)) if k in ("asr", "tts", "mt") else
                f"{getattr(self, k).__module__}.{getattr(self, k).__qualname__}"
                for k in ("asr", "tts", "mt", "error_rate", "clean_translation", "vad_trim")}


def default_engines(params: DataParams, *, translations: dict[str, str] | None = None) -> Engines:
    """The real engines of this machine: Whisper-base ASR (``uniss.engines.asr.WhisperASR``), the
    ``params.tts`` engine (:func:`tts_engine`), the ``params.mt`` engine (:func:`mt_engine`), silero-vad trim.

    Args:
        params: data params (``asr_beam_size``, ``asr_pack_s``, ``mt``).
        translations: ``{source text: reference translation}`` for ``ReferenceMT``.

    Raises:
        UnistError: ``params.mt`` names an unknown engine.
        MTModelNotInstalledError: ``params.mt`` is the local LLM and its checkpoint is not installed.
    """
    from uniss.audio import vad_trim
    from uniss.engines.asr import WhisperASR, error_rate
    from uniss.engines.mt import clean_translation
    from uniss.engines.tts import voice_map

    return Engines(asr=WhisperASR(beam_size=params.asr_beam_size, pack_s=params.asr_pack_s), tts=tts_engine(params),
                   mt=mt_engine(params, translations), error_rate=error_rate,
                   clean_translation=clean_translation, voice_map=voice_map, vad_trim=vad_trim)


def mt_engine(params: DataParams, translations: dict[str, str] | None = None) -> Any:
    """The ``params.mt`` engine: ``reference`` -> ``ReferenceMT(translations)``; ``qwen2.5-0.5b`` ->
    ``uniss.engines.llm_mt.LocalChatMT`` (App. E.2 prompt, greedy, 8 texts per
    call, ``params.tts_threads`` torch threads). Its raw replies go through ``clean_translation`` in
    :func:`step_translate` (mixed script -> quarantined with the reason).

    Raises:
        UnistError: unknown engine name.
        MTModelNotInstalledError: the LLM checkpoint is not installed (names the install command).
    """
    from uniss.engines.llm_mt import QWEN_MT_NAME, LocalChatMT
    from uniss.engines.mt import ReferenceMT
    from uniss.unist.errors import UnistError

    if params.mt == "reference":
        return ReferenceMT(translations or {})
    if params.mt == QWEN_MT_NAME:
        return LocalChatMT(threads=params.tts_threads)
    raise UnistError(f"unknown mt engine {params.mt!r}; offline engines: 'reference', {QWEN_MT_NAME!r}")


def tts_engine(params: DataParams) -> Any:
    """The ``params.tts`` engine (``uniss.engines.tts.make_tts``); neural engines get ``params.tts_threads``
    onnxruntime threads.

    Raises:
        TTSError: unknown engine name; EngineUnavailableError: its model is not installed (``make setup``).
    """
    from uniss.engines.tts import make_tts

    return make_tts(params.tts) if params.tts == "system" else make_tts(params.tts, threads=params.tts_threads)


def preserving_voice_map(src_voices: dict[str, list[str]], tts: Any, languages: tuple[str, ...],
                         voice_map: Callable[[list[str], list[str]], dict[str, str]],
                         n_tgt_voices: int | None = None) -> dict[str, str]:
    """Source voice -> target voice: the source voice itself when ``tts`` speaks it in the other language
    (``uniss.engines.tts.voice_languages``), else ``voice_map`` onto the target language's preferred
    voices (``uniss.unist.sources.pick_voices``).

    Args:
        src_voices: ``{source language: [voice or speaker id]}``.
        n_tgt_voices: target voices per language for the mapped ones (default: as many as mapped sources).

    Returns:
        ``{source voice: target voice}``; equal key and value = voice preserved.

    Raises:
        TTSError: a voice must be mapped and the engine has no voice in the target language.
    """
    from uniss.engines.tts import TTSError, voice_languages
    from uniss.unist.sources import pick_voices

    vmap: dict[str, str] = {}
    for lang in languages:
        for tgt in languages:
            if tgt == lang or not src_voices.get(lang):
                continue
            rest = []
            for v in src_voices[lang]:
                try:
                    speaks = tgt in voice_languages(tts, v)
                except TTSError:  # a recorded speaker, not a voice of this engine
                    speaks = False
                if speaks:
                    vmap[v] = v
                else:
                    rest.append(v)
            if rest:
                tgt_voices = pick_voices(list(tts.voices(tgt)), tgt, n_tgt_voices or len(rest))
                vmap.update(voice_map(rest, tgt_voices))
    return vmap


def _fail(df: pd.DataFrame, i: int, step: str, reason: str) -> None:
    if not df.at[i, "fail_step"]:
        df.at[i, "fail_step"] = step
        df.at[i, "fail_reason"] = reason


def _alive(df: pd.DataFrame) -> list[int]:
    return [i for i in range(len(df)) if not df.at[i, "fail_step"]]


def _measure_asr(df: pd.DataFrame, idx: list[int], lang: str, eng: Engines, *, side: str, audio_col: str,
                 ref_col: str) -> None:
    """Transcribe rows ``idx`` (one language) and write ``{side}_asr`` / ``{side}_wer`` in place.

    A failing ASR call, or one that does not return exactly one hypothesis per input, quarantines
    every row of the batch under step ``{side}_asr`` with the reason (nothing is silently dropped).
    """
    try:
        hyps = list(eng.asr.transcribe([decode_flac(df.at[i, audio_col]) for i in idx], lang))
        if len(hyps) != len(idx):
            raise RuntimeError(f"ASR returned {len(hyps)} results for {len(idx)} inputs")
    except Exception as e:  # noqa: BLE001 - quarantined with the reason
        for i in idx:
            _fail(df, i, f"{side}_asr", f"asr failed: {type(e).__name__}: {e}")
        return
    for i, h in zip(idx, hyps, strict=True):
        df.at[i, f"{side}_asr"] = h
        df.at[i, f"{side}_wer"] = float(eng.error_rate(df.at[i, ref_col], h, lang))


def step_src_asr(chunk: pd.DataFrame, eng: Engines) -> pd.DataFrame:
    """Step 1 measurement: source re-ASR text and error rate (columns ``src_asr``, ``src_wer``)."""
    df = chunk.copy()
    for c in WORK_COLUMNS:
        if c not in df:
            df[c] = None
    df["fail_step"] = df["fail_step"].fillna("")
    df["fail_reason"] = df["fail_reason"].fillna("")
    for lang, idx in df.groupby("language").groups.items():
        _measure_asr(df, list(idx), lang, eng, side="src", audio_col="audio", ref_col="transcript")
    return df


def step_translate(chunk: pd.DataFrame, eng: Engines) -> pd.DataFrame:
    """Step 2: translate the *given* transcript (paper §4) and apply the clean-up rules (``tgt_text``)."""
    df = chunk.copy()
    for (src, tgt), idx in df.groupby(["language", "tgt_lang"]).groups.items():
        idx = [i for i in idx if not df.at[i, "fail_step"]]
        if not idx:
            continue
        try:
            outs = list(eng.mt.translate([df.at[i, "transcript"] for i in idx], src, tgt))
        except Exception as e:  # noqa: BLE001
            for i in idx:
                _fail(df, i, "translate", f"mt failed: {type(e).__name__}: {e}")
            continue
        for i, t in zip(idx, outs):
            try:
                cleaned = eng.clean_translation(t, tgt)
                if not cleaned.strip():
                    raise ValueError("empty translation after clean-up")
                df.at[i, "tgt_text"] = cleaned
            except Exception as e:  # noqa: BLE001 - MixedScriptError etc.
                _fail(df, i, "translate", f"{type(e).__name__}: {e}")
    return df


def step_tgt_tts(chunk: pd.DataFrame, eng: Engines, vmap: dict[str, str], params: DataParams) -> pd.DataFrame:
    """Step 3: target speech in the mapped voice (``tgt_voice``, ``tgt_audio``, ``tgt_duration_s``)."""
    df = chunk.copy()
    for i in _alive(df):
        v = vmap.get(df.at[i, "voice"] or df.at[i, "speaker"])
        if v is None:
            _fail(df, i, "tgt_tts", f"no target voice mapped for source voice {df.at[i, 'voice']!r}")
            continue
        try:
            wav = np.asarray(eng.tts.synthesize(df.at[i, "tgt_text"], df.at[i, "tgt_lang"], v), dtype=np.float32)
            dur = len(wav) / SAMPLE_RATE_HZ
            if not params.min_duration_s <= dur <= params.max_duration_s:
                raise ValueError(f"target duration {dur:.2f} s outside [{params.min_duration_s}, {params.max_duration_s}]")
        except Exception as e:  # noqa: BLE001
            _fail(df, i, "tgt_tts", f"tts failed: {type(e).__name__}: {e}")
            continue
        df.at[i, "tgt_voice"], df.at[i, "tgt_audio"], df.at[i, "tgt_duration_s"] = v, flac_bytes(wav), dur
    return df


def step_tgt_asr(chunk: pd.DataFrame, eng: Engines) -> pd.DataFrame:
    """Step 5 measurement: target ASR text and error rate (``tgt_asr``, ``tgt_wer``)."""
    df = chunk.copy()
    alive = _alive(df)
    for lang in sorted({df.at[i, "tgt_lang"] for i in alive}):
        idx = [i for i in alive if df.at[i, "tgt_lang"] == lang]
        _measure_asr(df, idx, lang, eng, side="tgt", audio_col="tgt_audio", ref_col="tgt_text")
    return df


def step_vad(chunk: pd.DataFrame, eng: Engines) -> pd.DataFrame:
    """Step 6 measurement: VAD-trimmed durations (s) of both sides (``src_trim_s``, ``tgt_trim_s``)."""
    df = chunk.copy()
    for i in _alive(df):
        try:
            df.at[i, "src_trim_s"] = len(eng.vad_trim(decode_flac(df.at[i, "audio"]))) / SAMPLE_RATE_HZ
            df.at[i, "tgt_trim_s"] = len(eng.vad_trim(decode_flac(df.at[i, "tgt_audio"]))) / SAMPLE_RATE_HZ
        except Exception as e:  # noqa: BLE001
            _fail(df, i, "vad", f"vad failed: {type(e).__name__}: {e}")
    return df


#: Output columns of a synthesized (not yet tokenized) UniST table, in order.
SAMPLE_COLUMNS = ["id", "split", "src_lang", "tgt_lang", "src_text", "tgt_text", "src_voice", "tgt_voice",
                  "src_audio", "tgt_audio", "src_duration_s", "tgt_duration_s", "ratio", "speed_index",
                  "src_wer", "tgt_wer", "general", "hq", "hq_ratio", "src_asr", "tgt_asr", "speaker", "origin",
                  "voice_preserved", "voice_set"]


def _le(x: Any, thr: float) -> bool:
    return x is not None and np.isfinite(float(x)) and float(x) <= thr


def _fmt(x: Any) -> str:
    return "missing" if x is None else f"{float(x):.3f}"


def apply_filters(work: pd.DataFrame, params: DataParams) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, int]]]:
    """The paper's filters over the measured table (pure, cheap, uncached).

    Args:
        work: source table + :data:`WORK_COLUMNS`.
        params: thresholds (``src_max_error``, ``tgt_max_error``, ``general_ratio``, ``hq_ratio``).

    Returns:
        (samples with :data:`SAMPLE_COLUMNS`, quarantine rows with ``step`` and ``reason``,
        per-step counts ``{step: {"in", "kept", "dropped"}}`` in paper order).
    """
    order = ["src_asr", "translate", "tgt_tts", "speed", "tgt_asr", "general", "vad"]
    reason: list[tuple[str, str] | None] = []
    ratios, sidx, hq_ratio, hq = [], [], [], []
    g_lo, g_hi = params.general_ratio
    h_lo, h_hi = params.hq_ratio
    for r in work.itertuples(index=False):
        why = None
        if r.fail_step in ("src_asr",):
            why = (r.fail_step, r.fail_reason)
        elif not _le(r.src_wer, params.src_max_error[r.language]):
            why = ("src_asr", f"source error {_fmt(r.src_wer)} > {params.src_max_error[r.language]} ({r.language})")
        elif r.fail_step in ("translate", "tgt_tts"):
            why = (r.fail_step, r.fail_reason)
        ratio = si = hr = None
        if why is None:
            ratio = float(r.tgt_duration_s) / float(r.duration_s)
            try:
                si = speed_index(ratio)
            except Exception as e:  # noqa: BLE001 - VocabError: outside the token range
                why = ("speed", str(e))
        if why is None and r.fail_step == "tgt_asr":
            why = (r.fail_step, r.fail_reason)
        elif why is None and not _le(r.tgt_wer, params.tgt_max_error[r.tgt_lang]):
            why = ("tgt_asr", f"target error {_fmt(r.tgt_wer)} > {params.tgt_max_error[r.tgt_lang]} ({r.tgt_lang})")
        elif why is None and not g_lo <= ratio <= g_hi:
            why = ("general", f"duration ratio {ratio:.3f} outside [{g_lo}, {g_hi}]")
        elif why is None and r.fail_step == "vad":
            why = (r.fail_step, r.fail_reason)
        if why is None:
            hr = float(r.tgt_trim_s) / float(r.src_trim_s) if r.src_trim_s else float("nan")
        reason.append(why)
        ratios.append(ratio), sidx.append(si), hq_ratio.append(hr)
        hq.append(bool(why is None and h_lo <= hr <= h_hi))
    keep = np.array([x is None for x in reason], dtype=bool)
    w = work.assign(ratio=ratios, speed_index=sidx, hq_ratio=hq_ratio, hq=hq)
    kept = w[keep].reset_index(drop=True)
    samples = pd.DataFrame({
        "id": kept["id"], "split": kept["split"], "src_lang": kept["language"], "tgt_lang": kept["tgt_lang"],
        "src_text": kept["transcript"], "tgt_text": kept["tgt_text"], "src_voice": kept["voice"].fillna(kept["speaker"]),
        "tgt_voice": kept["tgt_voice"], "src_audio": kept["audio"], "tgt_audio": kept["tgt_audio"],
        "src_duration_s": kept["duration_s"].astype(float), "tgt_duration_s": kept["tgt_duration_s"].astype(float),
        "ratio": kept["ratio"].astype(float), "speed_index": kept["speed_index"].astype("int64"),
        "src_wer": kept["src_wer"].astype(float), "tgt_wer": kept["tgt_wer"].astype(float),
        "general": True, "hq": kept["hq"].astype(bool), "hq_ratio": kept["hq_ratio"].astype(float),
        "src_asr": kept["src_asr"], "tgt_asr": kept["tgt_asr"], "speaker": kept["speaker"], "origin": kept["origin"],
        "voice_preserved": (kept["tgt_voice"] == kept["voice"].fillna(kept["speaker"])).astype(bool),
        "voice_set": (kept["voice_set"].fillna("") if "voice_set" in kept else pd.Series([""] * len(kept), dtype=object)),
    }, columns=SAMPLE_COLUMNS)
    dropped_rows = w[~keep].reset_index(drop=True)
    rs = [x for x in reason if x is not None]
    q = dropped_rows.drop(columns=["fail_step", "fail_reason"])
    q["step"] = [s for s, _ in rs]
    q["reason"] = [m for _, m in rs]
    counts: dict[str, dict[str, int]] = {}
    n_in = len(work)
    for st in order:
        d = sum(1 for s, _ in rs if s == st)
        counts[st] = {"in": n_in, "kept": n_in - d, "dropped": d}
        n_in -= d
    counts["hq"] = {"in": int(keep.sum()), "kept": int(samples["hq"].sum()), "dropped": 0,
                    "not_hq": int((~samples["hq"]).sum())}
    return samples, q, counts


def run_synthesis(source: pd.DataFrame, eng: Engines, params: DataParams, *, cache: StepCache,
                  n_tgt_voices: int | None = None) -> dict[str, Any]:
    """All measurement steps over fixed chunks of the source table, then :func:`apply_filters`.

    Args:
        source: source table (``uniss.unist.sources.SOURCE_COLUMNS``).
        eng: engines.
        params: data params.
        cache: step cache (hits/misses land in ``cache.stats``).
        n_tgt_voices: target voices per language (default: as many as source voices of the other
            language).

    Returns:
        dict with ``samples`` (DataFrame), ``quarantine`` (DataFrame), ``counts`` (per step),
        ``voice_map`` ({src voice: tgt voice}), ``timings`` ({step: seconds}).
    """
    timings: dict[str, float] = {}
    keys = source["voice"].fillna(source["speaker"]) if "voice" in source else source["speaker"]
    src_voices = {lang: sorted(set(keys[source["language"] == lang].dropna())) for lang in params.languages}
    vmap = preserving_voice_map(src_voices, eng.tts, tuple(params.languages), eng.voice_map, n_tgt_voices)
    ids = eng.ids()
    steps: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame], dict]] = [
        ("src_asr", lambda c: step_src_asr(c, eng), {"asr": ids["asr"], "er": ids["error_rate"]}),
        ("translate", lambda c: step_translate(c, eng), {"mt": ids["mt"], "clean": ids["clean_translation"]}),
        ("tgt_tts", lambda c: step_tgt_tts(c, eng, vmap, params), {"tts": ids["tts"], "map": vmap,
                                                                   "dur": [params.min_duration_s, params.max_duration_s]}),
        ("tgt_asr", lambda c: step_tgt_asr(c, eng), {"asr": ids["asr"], "er": ids["error_rate"]}),
        ("vad", lambda c: step_vad(c, eng), {"vad": ids["vad_trim"]}),
    ]
    parts = chunks(source.reset_index(drop=True), params.chunk_rows)
    for name, fn, cfg in steps:
        t0 = time.perf_counter()
        new = []
        for ch in tqdm(parts, desc=f"unist {name}", unit="chunk"):
            k, _ = cache.run(name, {"v": STEP_VERSION, **cfg}, ch, lambda c, fn=fn: (fn(c), c.iloc[0:0]))
            new.append(k)
        parts = new
        timings[f"{name}_s"] = round(time.perf_counter() - t0, 3)
    work = pd.concat(parts, ignore_index=True) if parts else source.assign(**{c: None for c in WORK_COLUMNS})
    t0 = time.perf_counter()
    samples, quarantine, counts = apply_filters(work, params)
    timings["filter_s"] = round(time.perf_counter() - t0, 3)
    return {"samples": samples, "quarantine": quarantine, "counts": counts, "voice_map": vmap, "timings": timings}
