"""Readers of source corpora into one schema (paper §4: "source speech with transcripts").

CoVoST 2 / CVSS TSVs, LibriSpeech-style folders, CSV / JSONL manifests and the Debian LibriVox clips
become :class:`SourceRecord` lists; :mod:`uniss.unist.sources` turns records into source tables and
builds the demo corpus. Every malformed line is a :class:`uniss.unist.errors.ManifestError` naming
file, line and field.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from uniss.unist.errors import ManifestError, UnistError
from uniss.unist.params import LANGUAGES

Split = Literal["train", "dev", "test"]

#: Debian ``pocketsphinx-testdata`` LibriVox folder (5 clips, one speaker, 16 kHz).
LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")


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

    Translations (this project's extension; LibriSpeech has none): an optional
    ``<speaker>-<chapter>.trans.<tgt>.txt`` beside a transcript file (``tgt`` = the other language,
    e.g. ``.trans.zh.txt``) with lines ``<utt-id> <TRANSLATION>`` gives those utterances a reference
    translation.

    Raises:
        ManifestError: a transcript line without text, a missing audio file, or a translation line
            whose utterance is not in the transcript file.
        UnistError: no ``*.trans.txt`` under ``root``.
    """
    root = Path(root)
    files = sorted(root.rglob("*.trans.txt"))
    if not files:
        raise UnistError(f"no *.trans.txt files under {root}")
    out = []
    tgt = "zh" if language == "en" else "en"
    for tf in files:
        trans = _librispeech_translations(tf.with_name(tf.name.replace(".trans.txt", f".trans.{tgt}.txt")))
        utts = set()
        for line, raw in enumerate(tf.read_text(encoding="utf-8").splitlines(), start=1):
            if not raw.strip():
                continue
            utt, _, text = raw.strip().partition(" ")
            if not text.strip():
                raise ManifestError(f"{tf}:{line}: field 'transcript': empty for {utt!r}")
            audio = tf.parent / f"{utt}{audio_ext}"
            if not audio.exists():
                raise ManifestError(f"{tf}:{line}: field 'audio': {audio} does not exist")
            utts.add(utt)
            out.append(_record(str(tf), line, id=utt, audio=str(audio), transcript=text.lower(),
                               language=language, speaker=utt.split("-")[0], split=split, origin="librispeech",
                               translation=trans.get(utt, (0, None))[1], tgt_lang=tgt))
        for utt, (line, _) in trans.items():
            if utt not in utts:
                raise ManifestError(f"{tf.with_name(tf.name.replace('.trans.txt', f'.trans.{tgt}.txt'))}:{line}: "
                                    f"field 'utt-id': {utt!r} is not in {tf.name}")
    return out


def _librispeech_translations(path: Path) -> dict[str, tuple[int, str]]:
    """``<utt-id> <TRANSLATION>`` lines -> ``{utt: (line, translation)}`` (``{}`` when the file is absent).

    Raises:
        ManifestError: a line without a translation.
    """
    if not path.exists():
        return {}
    out: dict[str, tuple[int, str]] = {}
    for line, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        utt, _, text = raw.strip().partition(" ")
        if not text.strip():
            raise ManifestError(f"{path}:{line}: field 'translation': empty for {utt!r}")
        out[utt] = (line, text.strip())
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


__all__ = ["Split", "LIBRIVOX_DIR", "SourceRecord", "MANIFEST_FIELDS", "read_covost_tsv", "read_cvss_tsv",
           "read_librispeech", "read_manifest", "read_librivox"]
