"""Source corpora for UniST (paper §4: "source speech with transcripts") as source tables.

The readers of standard manifests (CoVoST 2 / CVSS TSV, LibriSpeech-style folders, CSV / JSONL) live
in :mod:`uniss.unist.readers` (re-exported here) and return :class:`SourceRecord` lists;
:func:`records_to_table` decodes them. :func:`build_demo_source` makes the demo corpus offline: the
seeded bilingual generator of :mod:`uniss.unist.lexicon` spoken by TTS voices that speak both
languages (seen voices in every split, held-out voices on half the test split), both directions
(EN->ZH sources are English speech, ZH->EN sources Mandarin speech), with the reference translation
carried, plus real-voice ZH->EN test pairs (:mod:`uniss.unist.real`).

Real recorded speech: the 5 LibriVox clips of Debian ``pocketsphinx-testdata`` (one English
speaker, ~25 s). No Chinese translation of them exists offline and no EN->ZH MT model can be had
here (FACTS.md), so they are **not** training pairs: they are written to ``real_speech.parquet`` as
held-out real English speech (evaluation of ASR / speaker similarity / serving smoke tests on real
audio). When an MT engine is configured, :func:`records_to_table` rows with a translation can be fed
to synthesis like any other source.

A source table (``SOURCE/source.parquet``) has one row per utterance with columns
``id, split, language, tgt_lang, transcript, translation, speaker, voice, origin, voice_set, audio
(FLAC bytes), duration_s``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from uniss.audio import MIN_SPEECH_S, SAMPLE_RATE_HZ, require_speech
from uniss.unist import lexicon
from uniss.unist.cache import StepCache, chunks, drop_rows, engine_id
from uniss.unist.errors import UnistError
from uniss.unist.io import file_md5, flac_bytes, write_table
from uniss.unist.params import VOICE_SETS, DataParams  # noqa: F401 - VOICE_SETS re-exported
from uniss.unist.readers import (LIBRIVOX_DIR, MANIFEST_FIELDS, SourceRecord, Split, read_covost_tsv,  # noqa: F401 - re-exported
                                 read_cvss_tsv, read_librispeech, read_librivox, read_manifest)

#: Columns of a source table, in order.
SOURCE_COLUMNS = ["id", "split", "language", "tgt_lang", "transcript", "translation", "speaker", "voice",
                  "origin", "voice_set", "audio", "duration_s"]


#: Preferred demo voices (``SystemTTS`` ids, docs/design.md); the first ``voices_per_language``
#: that the engine offers are used. English: flite / festival / espeak; Mandarin: espeak
#: ``cmn-latn-pinyin`` variants (the plain ``cmn`` voice is broken here, FACTS.md).
PREFERRED_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("flite:slt", "espeak:en-us", "flite:awb", "festival:kal_diphone", "flite:rms", "espeak:en-gb+f3",
           "festival:ked_diphone", "flite:kal16"),
    # Ordered by Whisper-base CER measured on demo sentences (benchmarks/bench_engines.py, 2026-11-24):
    # +f3 0.21, +f1 0.58, +f5 0.63, plain 0.71, +m3 0.88: the most intelligible voices first.
    "zh": ("espeak:cmn-latn-pinyin+f3", "espeak:cmn-latn-pinyin+f1", "espeak:cmn-latn-pinyin+f5",
           "espeak:cmn-latn-pinyin", "espeak:cmn-latn-pinyin+m3", "espeak:cmn-latn-pinyin+f2"),
}

#: Kokoro voices in the order the demo corpus takes them (every one speaks en and zh,
#: ``uniss.engines.kokoro``): the 5 shipped style tables, then 8 mixes over 8 different pairs; the
#: last two mix pairs (gongitsune+kumo, nezumi+tebukuro) appear in no earlier mix, so with 13 seen
#: voices they are the held-out voices of the test split.
KOKORO_VOICE_ORDER: tuple[str, ...] = tuple(f"kokoro:{v}" for v in (
    "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo",
    "mix-jf_alpha-jf_gongitsune-0.3", "mix-jf_alpha-jf_nezumi-0.7", "mix-jf_alpha-jf_tebukuro-0.3",
    "mix-jf_alpha-jm_kumo-0.7", "mix-jf_gongitsune-jf_nezumi-0.3", "mix-jf_gongitsune-jf_tebukuro-0.7",
    "mix-jf_nezumi-jm_kumo-0.3", "mix-jf_tebukuro-jm_kumo-0.7",
    "mix-jf_gongitsune-jm_kumo-0.3", "mix-jf_nezumi-jf_tebukuro-0.7",
))
for _lang in ("en", "zh"):
    PREFERRED_VOICES[_lang] = KOKORO_VOICE_ORDER + PREFERRED_VOICES[_lang]


def _load_external_audio(audio: str | bytes) -> np.ndarray:
    """Decode + resample to 16 kHz mono via ``uniss.audio.load_audio`` (soundfile + soxr)."""
    from uniss.audio import load_audio  # the speech front-end (issue "Speech front-end")

    return load_audio(audio)


def records_to_table(records: list[SourceRecord], *, min_duration_s: float = 0.1,
                     max_duration_s: float | None = None,
                     min_speech_s: float = MIN_SPEECH_S) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode every record's audio into a source table (FLAC cells, 16 kHz mono).

    Each clip must hold speech (``uniss.audio.require_speech``: silero-vad finds at least
    ``min_speech_s`` seconds; default :data:`uniss.audio.MIN_SPEECH_S` = 0.25 s, silero-vad's
    ``min_speech_duration_ms``; 0 turns the check off): silence, a DC offset, a constant sample, NaN/inf
    samples or noise are quarantined with the ``NoSpeechAudioError`` / ``CorruptAudioError`` reason.

    Returns:
        (table with :data:`SOURCE_COLUMNS`, quarantine rows with ``step="source"`` and the reason for
        each record whose audio could not be read or holds no speech — never silently lost).
    """
    rows, bad = [], []
    for r in tqdm(records, desc="source audio", unit="utt", disable=len(records) < 20):
        base = {"id": r.id, "split": r.split, "language": r.language, "tgt_lang": r.target_language(),
                "transcript": r.transcript, "translation": r.translation, "speaker": r.speaker,
                "voice": r.voice, "origin": r.origin, "voice_set": "real" if r.voice is None else "seen"}
        try:
            wav = _load_external_audio(r.audio)
            dur = len(wav) / SAMPLE_RATE_HZ
            if dur < min_duration_s or (max_duration_s and dur > max_duration_s):
                raise UnistError(f"duration {dur:.2f} s outside [{min_duration_s}, {max_duration_s}]")
            if min_speech_s > 0:
                require_speech(wav, min_speech_s=min_speech_s, what=f"record {r.id}")
        except Exception as e:  # noqa: BLE001 - every failure becomes a quarantine reason
            bad.append({**base, "audio": None, "duration_s": None, "reason": f"{type(e).__name__}: {e}"})
            continue
        rows.append({**base, "audio": flac_bytes(wav), "duration_s": dur})
    table = pd.DataFrame(rows, columns=SOURCE_COLUMNS)
    q = pd.DataFrame(bad, columns=[*SOURCE_COLUMNS, "reason"])
    q.insert(len(q.columns) - 1, "step", "source")
    return table, q


def pick_voices(available: list[str], language: str, n: int) -> list[str]:
    """The first ``n`` of :data:`PREFERRED_VOICES` that the engine offers, then any others.

    Raises:
        UnistError: the engine offers no voice for ``language``.
    """
    pref = [v for v in PREFERRED_VOICES.get(language, ()) if v in available]
    rest = [v for v in available if v not in pref]
    chosen = (pref + rest)[:n]
    if not chosen:
        raise UnistError(f"the TTS engine has no voice for language {language!r}")
    return chosen


def demo_records(size: str, params: DataParams, voices: dict[str, list[str]],
                 heldout: dict[str, list[str]] | None = None) -> tuple[pd.DataFrame, list[lexicon.SentencePair]]:
    """The text side of the demo corpus (no audio yet): one row per source utterance.

    EN->ZH rows speak the English side, ZH->EN rows the Mandarin side of *different* sentence pairs;
    each row draws its voice from ``voices[language]`` with the seeded RNG. When ``heldout`` names
    voices, every second test row of each direction draws from them instead (``voice_set="heldout"``),
    so the test split holds seen and speaker-disjoint voices side by side.

    Returns:
        (frame with ``id, split, language, tgt_lang, transcript, translation, speaker, voice, origin,
        voice_set``; the ``real_test`` extra test pairs kept aside for the real-voice slice).
    """
    preset = params.size(size)
    per_split = {"train": preset.train, "dev": preset.dev, "test": preset.test}
    want = {k: 2 * v for k, v in per_split.items()}
    want["test"] += preset.real_test
    pairs = lexicon.generate_pairs(want, seed=params.seed)
    real: list[lexicon.SentencePair] = []
    if preset.real_test:
        test_idx = [i for i, p in enumerate(pairs) if p.split == "test"][-preset.real_test:]
        real = [pairs[i] for i in test_idx]
        drop = set(test_idx)
        pairs = [p for i, p in enumerate(pairs) if i not in drop]
    rng = np.random.default_rng(params.seed + 1)
    rows, count = [], {}
    for i, p in enumerate(pairs):
        src, tgt = ("en", "zh") if i % 2 == 0 else ("zh", "en")
        k = (src, p.split)
        count[k] = count.get(k, 0) + 1
        vset = "heldout" if heldout and heldout.get(src) and p.split == "test" and count[k] % 2 == 0 else "seen"
        pool = heldout[src] if vset == "heldout" else voices[src]  # type: ignore[index]
        voice = pool[int(rng.integers(0, len(pool)))]
        rows.append({
            "id": f"{src}{tgt}-{p.split}-{count[k]:05d}", "split": p.split, "language": src, "tgt_lang": tgt,
            "transcript": p.en if src == "en" else p.zh, "translation": p.zh if src == "en" else p.en,
            "speaker": voice, "voice": voice, "origin": "demo", "voice_set": vset,
        })
    return pd.DataFrame(rows), real


#: Bumped when the demo source generation changes (invalidates the step cache).
#: 2: ``voice_set`` column, held-out voices, gcin-voice real test pairs (issue "Voice-preserving ... UniST").
DEMO_SOURCE_VERSION = 2


def split_voices(available: list[str], language: str, seen: int, heldout: int) -> tuple[list[str], list[str]]:
    """``seen`` training voices and ``heldout`` test-only voices for ``language``, disjoint, in
    :data:`PREFERRED_VOICES` order (held-out ones are the next after the seen ones).

    Raises:
        UnistError: no voice for ``language``, or fewer than ``seen + 1`` voices when ``heldout > 0``
            (a held-out voice must never be a training voice).
    """
    chosen = pick_voices(available, language, seen + heldout)
    if heldout and len(chosen) <= seen:
        raise UnistError(f"{len(chosen)} {language} voices cannot give {seen} seen + {heldout} held-out voices")
    return chosen[:seen], chosen[seen:seen + heldout]


def build_demo_source(size: str, out_dir: str | Path, *, params: DataParams, tts: Any,
                      cache: StepCache | None = None) -> dict[str, Any]:
    """Synthesize the demo source corpus and write ``OUT/source.parquet`` (+ ``real_speech.parquet``,
    ``quarantine.parquet``, ``source.json``).

    Besides the TTS rows (seen voices; held-out voices on half the test split), the source table
    holds ``real_test`` real-voice ZH->EN test pairs read by the gcin-voice speakers
    (:mod:`uniss.unist.real`); ``real_speech.parquet`` holds the LibriVox clips and ``asterisk``
    Asterisk prompts (real English without a translation); ``alignment.parquet`` holds the phase-1
    speech-text alignment corpus (``alignment_speech`` / ``alignment_text`` pairs,
    :mod:`uniss.unist.alignment`).

    Args:
        size: size preset name (``tiny`` | ``demo``).
        out_dir: output folder (created).
        params: data params (seed, sizes).
        tts: a ``TTSEngine`` (``voices(language)``, ``synthesize(text, language, voice) -> (N,) float32``).
        cache: step cache (TTS output per chunk); ``None`` disables it.

    Returns:
        summary dict: ``rows``, ``dropped``, counts per direction/split/voice set, voices, timings (s), md5.

    Raises:
        UnistError: unknown size, no voices.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    preset = params.size(size)
    voices, heldout = {}, {}
    for lang in params.languages:
        voices[lang], heldout[lang] = split_voices(list(tts.voices(lang)), lang, preset.voices_per_language,
                                                   preset.heldout_voices)
    text, real_pairs = demo_records(size, params, voices, heldout if preset.heldout_voices else None)
    cache = cache or StepCache(None)
    cfg = {"version": DEMO_SOURCE_VERSION, "tts": engine_id(tts)}

    def speak(chunk: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        audio, durs, ok, reasons = [], [], [], []
        for r in chunk.itertuples(index=False):
            try:
                wav = np.asarray(tts.synthesize(r.transcript, r.language, r.voice), dtype=np.float32)
                dur = len(wav) / SAMPLE_RATE_HZ
                if not (params.min_duration_s <= dur <= params.max_duration_s):
                    raise UnistError(f"TTS duration {dur:.2f} s outside [{params.min_duration_s}, {params.max_duration_s}]")
                audio.append(flac_bytes(wav)), durs.append(dur), ok.append(True), reasons.append("")
            except Exception as e:  # noqa: BLE001 - quarantined with the reason
                audio.append(None), durs.append(None), ok.append(False), reasons.append(f"tts failed: {type(e).__name__}: {e}")
        full = chunk.assign(audio=audio, duration_s=durs)
        mask = np.array(ok, dtype=bool)
        return (full[mask].reset_index(drop=True)[SOURCE_COLUMNS],
                drop_rows(full[~mask].reset_index(drop=True), "source", [x for x, k in zip(reasons, ok) if not k]))

    kept, dropped = [], []
    for ch in tqdm(chunks(text, params.chunk_rows), desc=f"source TTS ({size})", unit="chunk"):
        k, d = cache.run("source", cfg, ch, speak)
        kept.append(k), dropped.append(d)
    if real_pairs:
        from uniss.unist.real import gcin_records

        recs, bad = gcin_records(real_pairs)
        real_src, real_q = records_to_table(recs, min_duration_s=params.min_duration_s,
                                            max_duration_s=params.max_duration_s)
        kept.append(real_src)
        bad_q = pd.DataFrame(bad, columns=["id", "reason"]).assign(step="source")
        dropped += [real_q, bad_q]
    table = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=SOURCE_COLUMNS)
    quarantine = pd.concat([d for d in dropped if len(d)], ignore_index=True) if any(len(d) for d in dropped) else pd.DataFrame()
    md5 = write_table(table, out / "source.parquet")
    write_table(quarantine, out / "quarantine.parquet")

    real_rows = 0
    real_records: list[SourceRecord] = []
    if preset.librivox and LIBRIVOX_DIR.exists():
        real_records += read_librivox()
    if preset.asterisk:
        from uniss.unist.real import read_asterisk

        real_records += read_asterisk(preset.asterisk)
    if real_records:
        real, real_q = records_to_table(real_records)
        write_table(real, out / "real_speech.parquet")
        real_rows = len(real)
        if len(real_q):
            quarantine = pd.concat([quarantine, real_q], ignore_index=True)
            write_table(quarantine, out / "quarantine.parquet")

    align_rows = 0
    if preset.alignment_speech or preset.alignment_text:
        from uniss.unist.alignment import ALIGNMENT, build_alignment, default_speakers

        align, align_q = build_alignment(preset.alignment_speech, preset.alignment_text, seed=params.seed,
                                         speak=default_speakers(params.tts_threads),
                                         min_duration_s=params.min_duration_s, max_duration_s=params.max_duration_s,
                                         progress=True)
        write_table(align, out / ALIGNMENT)
        align_rows = len(align)
        if len(align_q):
            quarantine = pd.concat([quarantine, align_q], ignore_index=True)
            write_table(quarantine, out / "quarantine.parquet")

    counts: dict[str, int] = {}
    for (lang, tgt, split), n in table.groupby(["language", "tgt_lang", "split"]).size().items():
        counts[f"{lang}-{tgt}/{split}"] = int(n)
    for vset, n in table.groupby("voice_set").size().items():
        counts[f"voice_set/{vset}"] = int(n)
    summary = {
        "size": size, "seed": params.seed, "rows": int(len(table)), "dropped": int(len(quarantine)),
        "real_speech_rows": real_rows, "alignment_rows": align_rows, "counts": counts, "voices": voices, "heldout_voices": heldout, "md5": md5,
        "tts": engine_id(tts), "cache": cache.stats.to_dict(),
        "timings": {"source_s": round(time.perf_counter() - t0, 3)},
    }
    (out / "source.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


def write_source(records: list[SourceRecord], out_dir: str | Path, *, params: DataParams) -> dict[str, Any]:
    """Write an ingested corpus (records from the readers above) as a source folder.

    Returns:
        summary dict like :func:`build_demo_source`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table, q = records_to_table(records, min_duration_s=params.min_duration_s, max_duration_s=params.max_duration_s)
    md5 = write_table(table, out / "source.parquet")
    write_table(q, out / "quarantine.parquet")
    summary = {"size": "external", "rows": int(len(table)), "dropped": int(len(q)), "md5": md5,
               "source_md5": md5, "voices": {}}
    (out / "source.json").write_text(json.dumps(summary, indent=2))
    return summary


def source_table_md5(source_dir: str | Path) -> str:
    """md5 of ``SOURCE/source.parquet``."""
    return file_md5(Path(source_dir) / "source.parquet")
