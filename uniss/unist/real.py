"""Real recorded speech from Debian packages, for the ``real`` evaluation slice (issue "Voice-preserving,
intelligible bilingual UniST", item 3).

Two offline sources besides the LibriVox clips of :func:`uniss.unist.sources.read_librivox`:

- **Asterisk English prompts** (Debian ``asterisk-core-sounds-en-wav`` + ``asterisk-core-sounds-en``,
  CC-BY-SA 3.0): ~360 telephone prompts read by one professional speaker (Allison Smith), 8 kHz WAV,
  with their transcripts in ``core-sounds-en.txt``. No Chinese translation of them exists offline, so
  :func:`read_asterisk` returns them as held-out real English speech (``real_speech.parquet``), like
  the LibriVox clips.
- **gcin-voice Mandarin syllables** (Debian ``gcin-voice``): every Mandarin syllable with its tone,
  recorded by two real speakers (``3.ogg``: Edward Der-Hua Liu, GPL-3/LGPL-3; ``5.ogg``: Chu Lo,
  CC-BY-3), in folders named by Zhuyin (bopomofo) + tone digit (no digit = tone 1). :func:`speak_gcin`
  reads a Mandarin sentence syllable by syllable in one of these real voices (pypinyin ``BOPOMOFO``
  style gives each character's Zhuyin), so sentences of the demo lexicon, whose English reference
  translations are known, become real-voice ZH->EN pairs (:func:`gcin_records`).

Audio is returned as ``(N,)`` float32 mono at :data:`uniss.audio.SAMPLE_RATE_HZ` (16 kHz).
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from uniss.audio import SAMPLE_RATE_HZ, load_audio
from uniss.unist import lexicon
from uniss.unist.errors import UnistError
from uniss.unist.io import flac_bytes
from uniss.unist.readers import SourceRecord

#: Asterisk prompt audio (the ``en`` alternative points at the installed English voice).
ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en")
#: Asterisk prompt transcripts: ``name: text`` per line (``;`` comments, ``[...]`` for non-speech).
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
#: gcin-voice syllable recordings: ``OGG_DIR/<zhuyin><tone digit>/<speaker>.ogg``.
GCIN_DIR = Path("/usr/share/gcin-voice/ogg")
#: gcin-voice speakers: speaker id -> recording file name (package copyright file).
GCIN_SPEAKERS: dict[str, str] = {"gcin-3": "3.ogg", "gcin-5": "5.ogg"}
#: Speakers that read the demo corpus's real test pairs. Whisper-base CER of 8 demo sentences
#: (2026-12-02, params.yaml): gcin-3 median 0.11 (7/8 within the 0.3 filter); gcin-5 0.30-3.1 (its
#: syllables are clipped short; 42 of 1,200 are missing), so its sentences would only feed the
#: quarantine after paying for target TTS.
GCIN_DEMO_SPEAKERS: tuple[str, ...] = ("gcin-3",)

#: Pause between syllables of one word-run and at punctuation (s). 40 ms keeps syllables apart
#: without the sing-song gaps of isolated reading; 200 ms marks a clause break.
SYLLABLE_GAP_S = 0.04
CLAUSE_GAP_S = 0.2
#: Edge-trim threshold relative to the syllable's peak (about -30 dB): the recordings carry leading
#: and trailing silence of 0.1-0.3 s that would make sentences drag.
TRIM_REL = 0.03

_TONE_DIGIT = {"ˊ": "2", "ˇ": "3", "ˋ": "4", "˙": "1"}
_CJK = re.compile(r"[\u4e00-\u9fff]")
_CLAUSE_PUNCT = set("，。！？；：、,.!?;:")
_WORD = re.compile(r"[a-z']+")


def read_asterisk(limit: int | None = None, *, min_words: int = 3, max_words: int = 14,
                  audio_dir: Path = ASTERISK_DIR, transcripts: Path = ASTERISK_TRANSCRIPTS) -> list[SourceRecord]:
    """Asterisk prompts with a plain-word transcript, sorted by prompt name.

    Prompts whose transcript is a bracketed non-speech note (``[beep tone]``), holds digits, or has
    fewer than ``min_words`` / more than ``max_words`` words are skipped (Whisper-based filters score
    words; long IVR menus exceed one clip).

    Args:
        limit: at most this many records (``None``: all).

    Returns:
        records with ``language="en"``, ``split="test"``, ``origin="asterisk"``,
        ``speaker="asterisk-allison"``, ``voice=None`` (recorded speech).

    Raises:
        UnistError: the Debian packages are not installed (names them).
    """
    if not transcripts.exists() or not audio_dir.is_dir():
        raise UnistError(f"{transcripts} / {audio_dir} not found: install the Debian packages "
                         "asterisk-core-sounds-en and asterisk-core-sounds-en-wav")
    out = []
    lines = gzip.open(transcripts, "rt", encoding="utf-8", errors="replace").read().splitlines()
    for raw in sorted(lines):
        name, sep, text = raw.partition(":")
        text = text.strip()
        if not sep or raw.startswith(";") or "/" in name or not text or "[" in text or re.search(r"\d", text):
            continue
        words = _WORD.findall(text.lower())
        wav = audio_dir / f"{name.strip()}.wav"
        if not (min_words <= len(words) <= max_words) or not wav.exists():
            continue
        out.append(SourceRecord(id=f"asterisk-{name.strip()}", audio=str(wav), transcript=text, language="en",
                                speaker="asterisk-allison", split="test", origin="asterisk"))
        if limit is not None and len(out) >= limit:
            break
    return out


def zhuyin_syllables(text: str) -> list[str | None]:
    """gcin-voice folder name (Zhuyin + tone digit, tone 1 bare) of every CJK character of ``text``;
    ``None`` marks a clause break (punctuation). Other characters are skipped.

    Tone marks (pypinyin ``Style.BOPOMOFO``): ˊ -> 2, ˇ -> 3, ˋ -> 4, ˙ (neutral) -> 1.
    """
    from pypinyin import Style, pinyin

    out: list[str | None] = []
    for ch in text:
        if ch in _CLAUSE_PUNCT:
            if out and out[-1] is not None:
                out.append(None)
            continue
        if not _CJK.match(ch):
            continue
        zy = pinyin(ch, style=Style.BOPOMOFO, heteronym=False)[0][0]
        tone = ""
        if zy and zy[-1] in _TONE_DIGIT:
            tone = _TONE_DIGIT[zy[-1]]
            zy = zy[:-1]
        elif zy and zy[0] == "˙":
            tone, zy = "1", zy[1:]
        out.append(zy + tone)
    while out and out[-1] is None:
        out.pop()
    return out


@lru_cache(maxsize=4096)
def _syllable(folder: str, speaker_file: str, gcin_dir: Path) -> np.ndarray:
    """One syllable recording, 16 kHz float32, edge-trimmed; tone fallbacks when the exact one is absent."""
    base = folder.rstrip("1234")
    for cand in (folder, base, *(base + t for t in "4321")):
        p = gcin_dir / cand / speaker_file
        if p.exists():
            wav = load_audio(str(p))
            env = np.abs(wav)
            thr = TRIM_REL * float(env.max() or 1.0)
            idx = np.flatnonzero(env > thr)
            return wav[idx[0]: idx[-1] + 1] if len(idx) else wav
    raise UnistError(f"gcin-voice has no recording of syllable {folder!r} for {speaker_file}")


def speak_gcin(text: str, speaker: str, *, gcin_dir: Path = GCIN_DIR) -> np.ndarray:
    """Read a Mandarin sentence in a real gcin-voice speaker's voice, one recorded syllable per character.

    Args:
        text: Mandarin text (simplified or traditional; non-CJK characters are skipped).
        speaker: a key of :data:`GCIN_SPEAKERS`.

    Returns:
        ``(N,)`` float32, 16 kHz: syllables joined with :data:`SYLLABLE_GAP_S` of silence,
        :data:`CLAUSE_GAP_S` at punctuation.

    Raises:
        UnistError: unknown speaker, package not installed, no CJK character, or a syllable without
            a recording.
    """
    if speaker not in GCIN_SPEAKERS:
        raise UnistError(f"unknown gcin-voice speaker {speaker!r}; known: {sorted(GCIN_SPEAKERS)}")
    if not gcin_dir.is_dir():
        raise UnistError(f"{gcin_dir} not found: install the Debian package gcin-voice")
    sylls = zhuyin_syllables(text)
    if not any(s is not None for s in sylls):
        raise UnistError(f"no Mandarin syllable to read in {text!r}")
    gap = np.zeros(int(SYLLABLE_GAP_S * SAMPLE_RATE_HZ), np.float32)
    pause = np.zeros(int(CLAUSE_GAP_S * SAMPLE_RATE_HZ), np.float32)
    parts: list[np.ndarray] = [pause]
    for s in sylls:
        parts.append(pause if s is None else _syllable(s, GCIN_SPEAKERS[speaker], gcin_dir))
        parts.append(gap)
    parts.append(pause)
    return np.concatenate(parts).astype(np.float32)


def gcin_records(pairs: list[lexicon.SentencePair], *, speakers: tuple[str, ...] = GCIN_DEMO_SPEAKERS,
                 gcin_dir: Path = GCIN_DIR) -> tuple[list[SourceRecord], list[dict]]:
    """Real-voice ZH->EN test pairs: the Mandarin side of each demo-lexicon pair (drawn together with the
    corpus splits, so none repeats a training sentence) read by the gcin-voice speakers in turn, with
    the English side as reference translation.

    Args:
        pairs: sentence pairs (``lexicon.generate_pairs``).
        speakers: gcin-voice speakers, used in turn (default :data:`GCIN_DEMO_SPEAKERS`).

    Returns:
        (records with FLAC-bytes audio, ``origin="gcin"``, ``voice=None``, ``split="test"``;
        rows ``{"id", "reason"}`` for sentences that could not be read — quarantined, never lost).
    """
    recs, bad = [], []
    for i, p in enumerate(pairs):
        spk = speakers[i % len(speakers)]
        rid = f"zhen-test-real-{i + 1:05d}"
        try:
            wav = speak_gcin(p.zh, spk, gcin_dir=gcin_dir)
        except UnistError as e:
            bad.append({"id": rid, "reason": f"{type(e).__name__}: {e}"})
            continue
        recs.append(SourceRecord(id=rid, audio=flac_bytes(wav), transcript=p.zh, language="zh", tgt_lang="en",
                                 translation=p.en, speaker=spk, split="test", origin="gcin"))
    return recs, bad


__all__ = ["ASTERISK_DIR", "ASTERISK_TRANSCRIPTS", "GCIN_DIR", "GCIN_SPEAKERS", "GCIN_DEMO_SPEAKERS", "read_asterisk", "zhuyin_syllables",
           "speak_gcin", "gcin_records"]
