"""Source corpora for UniST (paper §4: "source speech with transcripts") in one schema.

Readers for standard manifests (CoVoST 2 / CVSS TSV, LibriSpeech-style folders, CSV / JSONL) return
:class:`SourceRecord` lists; :func:`build_demo_source` makes a real-speech corpus offline: the
seeded bilingual generator of :mod:`uniss.unist.lexicon` spoken by several TTS voices per language,
both directions (EN->ZH sources are English speech, ZH->EN sources Mandarin speech), with the
reference translation carried.

Real recorded speech: the 5 LibriVox clips of Debian ``pocketsphinx-testdata`` (one English
speaker, ~25 s). No Chinese translation of them exists offline and no EN->ZH MT model can be had
here (FACTS.md), so they are **not** training pairs: they are written to ``real_speech.parquet`` as
held-out real English speech (evaluation of ASR / speaker similarity / serving smoke tests on real
audio). When an MT engine is configured, :func:`records_to_table` rows with a translation can be fed
to synthesis like any other source.

A source table (``SOURCE/source.parquet``) has one row per utterance with columns
``id, split, language, tgt_lang, transcript, translation, speaker, voice, origin, audio (FLAC bytes),
duration_s``.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from tqdm.auto import tqdm

from uniss.audio import MIN_SPEECH_S, SAMPLE_RATE_HZ, require_speech
from uniss.unist import lexicon
from uniss.unist.cache import StepCache, chunks, drop_rows, engine_id
from uniss.unist.errors import ManifestError, UnistError
from uniss.unist.io import file_md5, flac_bytes, write_table
from uniss.unist.params import LANGUAGES, DataParams

Split = Literal["train", "dev", "test"]

#: Columns of a source table, in order.
SOURCE_COLUMNS = ["id", "split", "language", "tgt_lang", "transcript", "translation", "speaker", "voice",
                  "origin", "voice_set", "audio", "duration_s"]

#: ``voice_set`` values: a synthetic voice used in training, a synthetic voice kept out of training
#: (speaker-disjoint test rows), recorded speech (evaluation slices of ``evaluation.scoring``).
VOICE_SETS = ("seen", "heldout", "real")

#: Debian ``pocketsphinx-testdata`` LibriVox folder (5 clips, one speaker, 16 kHz).
LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")

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


class SourceRecord(BaseModel):
    """One source utterance (paper §4 input: speech + transcript).

    Attributes:
        id: unique id.
        audio: path to an audio file, or the audio bytes (any format libsndfile reads).
        transcript: what is said.
        language: ``en`` | ``zh``.
        speaker: speaker id (corpus speaker, or the TTS voice id).
        translation: reference translation into ``tgt_lang`` (optional).
        tgt_lang: target language (default: the other language of the pair).
        split: ``train`` | ``dev`` | ``test``.
        voice: TTS voice id for synthesized sources (``None`` for recorded speech).
        origin: corpus name (``demo``, ``librivox``, ``covost2``, ``librispeech``, ``manifest``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    id: str
    audio: str | bytes
    transcript: str
    language: str
    speaker: str = "unknown"
    translation: str | None = None
    tgt_lang: str | None = None
    split: Split = "train"
    voice: str | None = None
    origin: str = "manifest"

    @field_validator("id", "transcript")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v or not v.strip():
            raise ValueError("must be non-empty")
        return v.strip()

    @field_validator("language", "tgt_lang")
    @classmethod
    def _lang(cls, v: str | None) -> str | None:
        if v is not None and v not in LANGUAGES:
            raise ValueError(f"unknown language {v!r}; expected one of {list(LANGUAGES)}")
        return v

    def target_language(self) -> str:
        """``tgt_lang`` or the other language of the (en, zh) pair."""
        return self.tgt_lang or ("zh" if self.language == "en" else "en")


def _record(src: str, line: int, **fields: Any) -> SourceRecord:
    """Build a record, turning a validation error into a :class:`ManifestError` naming the field."""
    try:
        return SourceRecord(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        field_name = ".".join(str(x) for x in err["loc"]) or "?"
        raise ManifestError(f"{src}:{line}: field {field_name!r}: {err['msg']}") from None


def _resolve(base: Path, p: str) -> str:
    q = Path(p)
    return str(q if q.is_absolute() else base / q)


def read_covost_tsv(path: str | Path, *, audio_dir: str | Path, src_lang: str, tgt_lang: str,
                    split: Split = "train") -> list[SourceRecord]:
    """CoVoST 2 TSV (header ``path  sentence  translation  client_id``; Wang et al. 2020 release).

    Args:
        path: the TSV file.
        audio_dir: folder of the Common Voice clips named in ``path``.
        src_lang / tgt_lang: ``en`` | ``zh``.
        split: split of every row.

    Raises:
        ManifestError: missing header column, empty field, unknown language (names line and field).
    """
    path = Path(path)
    rows = _read_delimited(path, "\t", required=("path", "sentence"))
    return [
        _record(str(path), line, id=Path(r["path"]).stem, audio=_resolve(Path(audio_dir), r["path"]),
                transcript=r["sentence"], language=src_lang, tgt_lang=tgt_lang,
                translation=(r.get("translation") or None), speaker=r.get("client_id") or "unknown",
                split=split, origin="covost2")
        for line, r in rows
    ]


def read_cvss_tsv(path: str | Path, *, covost: list[SourceRecord], tgt_lang: str) -> list[SourceRecord]:
    """CVSS TSV (no header: ``file_name  translation_text``; Jia et al. 2022): attach its
    translations to CoVoST records by id (CVSS file names are the Common Voice clip names).

    Raises:
        ManifestError: a line without two fields, or a file name not among ``covost``.
    """
    path = Path(path)
    by_id = {r.id: r for r in covost}
    out = []
    with path.open(encoding="utf-8", newline="") as f:
        for line, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            parts = raw.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[1].strip():
                raise ManifestError(f"{path}:{line}: field 'translation': expected 'file_name<TAB>text'")
            key = Path(parts[0]).stem.removesuffix(".mp3")
            if key not in by_id:
                raise ManifestError(f"{path}:{line}: field 'file_name': {parts[0]!r} not in the CoVoST manifest")
            out.append(by_id[key].model_copy(update={"translation": parts[1].strip(), "tgt_lang": tgt_lang}))
    return out


def read_librispeech(root: str | Path, *, language: str = "en", split: Split = "train",
                     audio_ext: str = ".flac") -> list[SourceRecord]:
    """LibriSpeech-style folder: ``ROOT/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` with lines
    ``<utt-id> <TRANSCRIPT>`` and audio ``<utt-id><audio_ext>`` beside it (Panayotov et al. 2015).

    Raises:
        ManifestError: a transcript line without text, or a missing audio file.
        UnistError: no ``*.trans.txt`` under ``root``.
    """
    root = Path(root)
    files = sorted(root.rglob("*.trans.txt"))
    if not files:
        raise UnistError(f"no *.trans.txt files under {root}")
    out = []
    for tf in files:
        for line, raw in enumerate(tf.read_text(encoding="utf-8").splitlines(), start=1):
            if not raw.strip():
                continue
            utt, _, text = raw.strip().partition(" ")
            if not text.strip():
                raise ManifestError(f"{tf}:{line}: field 'transcript': empty for {utt!r}")
            audio = tf.parent / f"{utt}{audio_ext}"
            if not audio.exists():
                raise ManifestError(f"{tf}:{line}: field 'audio': {audio} does not exist")
            out.append(_record(str(tf), line, id=utt, audio=str(audio), transcript=text.lower(),
                               language=language, speaker=utt.split("-")[0], split=split, origin="librispeech"))
    return out


def _read_delimited(path: Path, delimiter: str, required: Iterable[str]) -> list[tuple[int, dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise ManifestError(f"{path}:1: field {missing[0]!r}: missing from header {header}")
        rows = []
        for r in reader:
            line = reader.line_num
            if None in r or any(v is None for v in r.values()):
                raise ManifestError(f"{path}:{line}: field {'<extra>' if None in r else '<row>'!r}: "
                                    f"expected {len(header)} columns")
            rows.append((line, {k: v.strip() for k, v in r.items()}))
        return rows


#: Fields of a CSV/JSONL manifest.
MANIFEST_FIELDS = ("id", "audio", "transcript", "language", "speaker", "translation", "tgt_lang", "split")


def read_manifest(path: str | Path) -> list[SourceRecord]:
    """Plain CSV (header row) or JSONL manifest with fields ``id, audio, transcript, language``
    (required) and ``speaker, translation, tgt_lang, split`` (optional). Relative audio paths are
    resolved against the manifest's folder.

    Raises:
        ManifestError: bad JSON, missing/empty required field, unknown language or split, unknown
            field, duplicate id (message: ``file:line: field 'name': why``).
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest does not exist")
    items: list[tuple[int, dict[str, Any]]] = []
    if path.suffix in (".jsonl", ".json"):
        for line, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{line}: field '<json>': {e.msg}") from None
            if not isinstance(obj, dict):
                raise ManifestError(f"{path}:{line}: field '<json>': expected an object")
            items.append((line, obj))
    elif path.suffix in (".csv", ".tsv"):
        items = _read_delimited(path, "," if path.suffix == ".csv" else "\t",
                                required=("id", "audio", "transcript", "language"))
    else:
        raise ManifestError(f"{path}: unsupported manifest type {path.suffix!r} (use .csv, .tsv or .jsonl)")
    out, seen = [], set()
    for line, obj in items:
        unknown = sorted(set(obj) - set(MANIFEST_FIELDS))
        if unknown:
            raise ManifestError(f"{path}:{line}: field {unknown[0]!r}: unknown (allowed: {list(MANIFEST_FIELDS)})")
        for req in ("id", "audio", "transcript", "language"):
            if obj.get(req) in (None, ""):
                raise ManifestError(f"{path}:{line}: field {req!r}: missing or empty")
        fields = {k: v for k, v in obj.items() if v not in (None, "")}
        fields["audio"] = _resolve(path.parent, str(fields["audio"]))
        rec = _record(str(path), line, origin="manifest", **fields)
        if rec.id in seen:
            raise ManifestError(f"{path}:{line}: field 'id': duplicate id {rec.id!r}")
        seen.add(rec.id)
        out.append(rec)
    return out


def read_librivox(path: Path = LIBRIVOX_DIR) -> list[SourceRecord]:
    """The Debian ``pocketsphinx-testdata`` LibriVox clips (real English speech, one speaker).

    Transcripts come from the package's ``transcription`` file (``TEXT (utt-id)`` per line).

    Raises:
        UnistError: the package is not installed (``apt-get install pocketsphinx-testdata``).
    """
    tf = path / "transcription"
    if not tf.exists():
        raise UnistError(f"{tf} not found: install the Debian package pocketsphinx-testdata")
    out = []
    for line, raw in enumerate(tf.read_text().splitlines(), start=1):
        if not raw.strip():
            continue
        text, _, utt = raw.rstrip(")").rpartition("(")
        wav = path / f"{utt.strip()}.wav"
        if not wav.exists():
            raise ManifestError(f"{tf}:{line}: field 'audio': {wav} does not exist")
        text = re.sub(r"</?s>", " ", text)  # sentence markers of the pocketsphinx transcription format
        out.append(_record(str(tf), line, id=f"librivox-{utt.strip().rsplit('-', 1)[-1]}", audio=str(wav),
                           transcript=" ".join(text.split()).lower(), language="en", speaker="librivox-austen",
                           split="test", origin="librivox"))
    return out


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
    Asterisk prompts (real English without a translation).

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

    counts: dict[str, int] = {}
    for (lang, tgt, split), n in table.groupby(["language", "tgt_lang", "split"]).size().items():
        counts[f"{lang}-{tgt}/{split}"] = int(n)
    for vset, n in table.groupby("voice_set").size().items():
        counts[f"voice_set/{vset}"] = int(n)
    summary = {
        "size": size, "seed": params.seed, "rows": int(len(table)), "dropped": int(len(quarantine)),
        "real_speech_rows": real_rows, "counts": counts, "voices": voices, "heldout_voices": heldout, "md5": md5,
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
