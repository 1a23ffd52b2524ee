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


#: Asterisk prompts of the small real corpus with Chinese reference translations written for this
#: project (issue 19; no Chinese translation of them ships offline). Speaker ``asterisk-allison``.
ASTERISK_ZH: dict[str, str] = {
    "agent-loginok": "座席已登录。",
    "all-circuits-busy-now": "现在所有线路都忙。",
    "cannot-complete-as-dialed": "您拨打的电话无法接通。",
    "check-number-dial-again": "请检查号码后重新拨打。",
    "conf-extended": "会议已经延长。",
    "conf-full": "那个会议已满。",
    "conf-getpin": "请输入会议密码。",
    "conf-leaderhasleft": "主持人已经离开会议。",
    "conf-locked": "这个会议已锁定！",
    "conf-noempty": "目前没有空闲的会议。",
    "conf-now-muted": "会议现在已静音。",
    "conf-now-recording": "会议现在正在录音。",
    "conf-now-unmuted": "会议现在已取消静音。",
    "conf-placeintoconf": "现在将把您接入会议。",
    "conf-waitforleader": "主持人到达后会议将开始。",
    "confbridge-conf-end": "会议已经结束。",
}
#: LibriVox clips (Debian ``pocketsphinx-testdata``, speaker ``librivox-austen``) of the small real
#: corpus with Chinese reference translations written for this project: a second English speaker,
#: so the speaker split can hold one out.
LIBRIVOX_ZH: dict[str, str] = {
    "0880": "他并不是一个心肠不好的年轻人。",
    "0890": "除非说有点冷漠和自私就算心肠不好。",
    "0930": "他甚至自己也可能变得和蔼可亲。",
}
#: Mandarin sentences per gcin-voice speaker in the small real corpus (ZH->EN, demo-lexicon pairs).
REAL_CORPUS_GCIN: dict[str, int] = {"gcin-3": 8, "gcin-5": 3}


def real_corpus_records(*, seed: int = 19, gcin_dir: Path = GCIN_DIR, per_speaker: int | None = None) -> list[SourceRecord]:
    """A small corpus of real recordings with reference translations, both directions (issue 19):

    - EN->ZH: the :data:`ASTERISK_ZH` prompts (speaker ``asterisk-allison``) and the
      :data:`LIBRIVOX_ZH` LibriVox clips (speaker ``librivox-austen``);
    - ZH->EN: demo-lexicon sentences (seeded, at most 12 hanzi) read syllable by syllable by the
      gcin-voice speakers (:func:`speak_gcin`; :data:`REAL_CORPUS_GCIN` sentences each), with the
      English side as reference translation.

    Every record has ``split="train"`` (the speaker split of ``uniss.unist.ingest`` decides).
    ``per_speaker`` keeps at most that many records per speaker (the first by id; ``None`` = all):
    a smaller corpus with the same four speakers, two per language.

    Returns:
        records with audio paths (Asterisk, LibriVox) or FLAC bytes (gcin), sorted by id.

    Raises:
        UnistError: a Debian package is missing (asterisk-core-sounds-en(-wav), pocketsphinx-testdata,
            gcin-voice), or a prompt/clip/syllable is absent.
    """
    from uniss.unist.readers import LIBRIVOX_DIR, read_librivox

    ast = {r.id.removeprefix("asterisk-"): r for r in read_asterisk(None, min_words=1, max_words=20)}
    missing = sorted(set(ASTERISK_ZH) - set(ast))
    if missing:
        raise UnistError(f"Asterisk prompts {missing} not found under {ASTERISK_DIR}")
    out = [ast[k].model_copy(update={"translation": zh, "tgt_lang": "zh", "split": "train"})
           for k, zh in ASTERISK_ZH.items()]
    lv = {r.id.removeprefix("librivox-"): r for r in read_librivox(LIBRIVOX_DIR)}
    out += [lv[k].model_copy(update={"translation": zh, "tgt_lang": "zh", "split": "train"})
            for k, zh in LIBRIVOX_ZH.items()]
    want = sum(REAL_CORPUS_GCIN.values())
    pairs = [p for p in lexicon.generate_pairs({"train": 4 * want}, seed=seed) if len(_CJK.findall(p.zh)) <= 12][:want]
    i = 0
    for spk, n in REAL_CORPUS_GCIN.items():
        for p in pairs[i:i + n]:
            i += 1
            wav = speak_gcin(p.zh, spk, gcin_dir=gcin_dir)
            out.append(SourceRecord(id=f"{spk}-{i:03d}", audio=flac_bytes(wav), transcript=p.zh, language="zh",
                                    tgt_lang="en", translation=p.en, speaker=spk, split="train", origin="gcin"))
    out = sorted(out, key=lambda r: r.id)
    if per_speaker is not None:
        if per_speaker < 1:
            raise UnistError(f"per_speaker must be >= 1, got {per_speaker}")
        count: dict[str, int] = {}
        keep = []
        for r in out:
            count[r.speaker] = count.get(r.speaker, 0) + 1
            if count[r.speaker] <= per_speaker:
                keep.append(r)
        out = keep
    return out


def write_real_corpus(out_dir: str | Path, fmt: str = "csv", *, seed: int = 19, per_speaker: int | None = None) -> Path:
    """Write :func:`real_corpus_records` as a corpus the readers take (audio as 16 kHz FLAC files).

    Args:
        out_dir: folder (created).
        fmt: ``csv`` / ``jsonl`` (``OUT/manifest.<fmt>``, every record, both directions) or
            ``librispeech`` (``OUT/<speaker>/1/<speaker>-1.trans.txt`` + ``.trans.zh.txt``
            translations, English records only: LibriSpeech is an English layout).
        per_speaker: at most this many records per speaker (:func:`real_corpus_records`).

    Returns:
        the path to give as ``--source``: the manifest file, or the LibriSpeech root folder.

    Raises:
        UnistError: unknown format, or a missing Debian package (:func:`real_corpus_records`).
    """
    import csv
    import json

    import soundfile as sf

    if fmt not in ("csv", "jsonl", "librispeech"):
        raise UnistError(f"real corpus format must be csv, jsonl or librispeech, got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recs = real_corpus_records(seed=seed, per_speaker=per_speaker)

    def audio_file(r: SourceRecord, path: Path) -> None:
        wav = load_audio(r.audio) if isinstance(r.audio, str) else load_audio(r.audio)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), wav, SAMPLE_RATE_HZ, format="FLAC")

    if fmt == "librispeech":
        by_spk: dict[str, list[SourceRecord]] = {}
        for r in recs:
            if r.language == "en":
                by_spk.setdefault(r.speaker.replace("-", "_"), []).append(r)
        for spk, rs in by_spk.items():
            d = out / spk / "1"
            lines, zh = [], []
            for j, r in enumerate(rs):
                utt = f"{spk}-1-{j:04d}"
                audio_file(r, d / f"{utt}.flac")
                lines.append(f"{utt} {' '.join(_WORD.findall(r.transcript.lower())).upper()}")
                zh.append(f"{utt} {r.translation}")
            (d / f"{spk}-1.trans.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
            (d / f"{spk}-1.trans.zh.txt").write_text("\n".join(zh) + "\n", encoding="utf-8")
        return out
    rows = []
    for r in recs:
        rel = Path("audio") / f"{r.id}.flac"
        audio_file(r, out / rel)
        rows.append({"id": r.id, "audio": str(rel), "transcript": r.transcript, "language": r.language,
                     "speaker": r.speaker, "translation": r.translation, "tgt_lang": r.target_language()})
    path = out / f"manifest.{fmt}"
    if fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows), encoding="utf-8")
    return path


__all__ = ["ASTERISK_DIR", "ASTERISK_TRANSCRIPTS", "GCIN_DIR", "GCIN_SPEAKERS", "GCIN_DEMO_SPEAKERS", "read_asterisk", "zhuyin_syllables",
           "speak_gcin", "gcin_records", "ASTERISK_ZH", "LIBRIVOX_ZH", "REAL_CORPUS_GCIN", "real_corpus_records",
           "write_real_corpus"]
