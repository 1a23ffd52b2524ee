"""The phase-1 speech-text alignment corpus (paper §3.3 phase 1; issue "A demo model that speaks", item 3).

Why: the paper's phase 1 aligns speech and text on large ASR / TTS / S2TT / MT corpora *besides*
UniST (§3.3, App. B.1). The demo's UniST pairs are few (Kokoro costs ~2 CPU-s per audio second,
``params.yaml``), too few for a from-scratch LM to learn which words go with which speech units.
This corpus is the cheap stand-in for those corpora, built from the same aligned lexicon
(:mod:`uniss.unist.lexicon`) but only from **train-split sentences** (``lexicon.split_of`` hashes the
English text, so no dev/test sentence can appear here):

- ``speech`` rows: one sentence pair spoken on both sides by cheap voices: English by Piper
  ``en_US-joe-medium`` (~0.25 CPU-s per audio second, ``uniss.engines.kokoro.PiperTTS``), Mandarin
  by the real gcin-voice speaker ``gcin-3`` reading syllable by syllable (~0.01 CPU-s per audio second,
  :func:`uniss.unist.real.speak_gcin`). They feed ASR, S2TT, TTS and MT samples; the two sides are
  different voices, so these rows never feed S2ST samples (paper §4 asks targets in the source's voice).
- ``text`` rows: a sentence pair with no audio; MT samples only.

The table (``DATA/alignment.parquet``, listed in the manifest with its md5) has the UniST row
columns that :func:`training.samples.build_sample` reads: ``id, split ("train"), kind, src_lang,
tgt_lang, src_text, tgt_text, src_voice, tgt_voice, src_audio, tgt_audio`` (FLAC bytes, 16 kHz,
``None`` for text rows), ``src_duration_s, tgt_duration_s``; the tokenize step adds the six token
columns (empty lists on text rows). Sentences a voice cannot read (a syllable gcin-voice lacks, a
duration outside the accepted range) go to the quarantine with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uniss.audio import SAMPLE_RATE_HZ
from uniss.unist import lexicon
from uniss.unist.errors import UnistError
from uniss.unist.io import flac_bytes

__all__ = ["ALIGNMENT", "ALIGNMENT_COLUMNS", "ALIGNMENT_VOICES", "KINDS", "alignment_pairs", "build_alignment",
           "check_alignment", "default_speakers", "read_alignment"]

#: File name of the corpus inside a source folder and a dataset folder.
ALIGNMENT = "alignment.parquet"
#: Row kinds: spoken on both sides, or text only.
KINDS = ("speech", "text")
#: Voice per language of the ``speech`` rows (engine ids as in the UniST ``*_voice`` columns).
ALIGNMENT_VOICES: dict[str, str] = {"en": "piper:en_US-joe-medium", "zh": "gcin-3"}
#: Columns before tokenization, in order.
ALIGNMENT_COLUMNS = ["id", "split", "kind", "src_lang", "tgt_lang", "src_text", "tgt_text", "src_voice",
                     "tgt_voice", "src_audio", "tgt_audio", "src_duration_s", "tgt_duration_s"]
#: Seed offset so the corpus draws a different sentence stream than the UniST source corpus.
_SEED_OFFSET = 7919


def alignment_pairs(n: int, seed: int) -> list[lexicon.SentencePair]:
    """``n`` distinct train-split lexicon pairs, deterministic in ``seed``.

    Raises:
        ValueError: more pairs than the lexicon's train split holds (``lexicon.generate_pairs``).
    """
    return lexicon.generate_pairs({"train": int(n)}, seed=seed + _SEED_OFFSET) if n > 0 else []


def build_alignment(n_speech: int, n_text: int, *, seed: int, speak: dict[str, Any],
                    min_duration_s: float, max_duration_s: float,
                    progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the corpus: the first ``n_speech`` pairs spoken on both sides, the next ``n_text`` as text.

    Args:
        n_speech: sentence pairs spoken on both sides.
        n_text: further sentence pairs without audio.
        seed: data seed (``params.seed``).
        speak: ``{language: callable(text) -> (N,) float32 at 16 kHz}``, one per language of the pair
            (English = ``src``, Mandarin = ``tgt``); e.g. Piper and :func:`uniss.unist.real.speak_gcin`.
        min_duration_s / max_duration_s: accepted clip length (s), as for UniST speech.
        progress: show a tqdm bar over the spoken pairs.

    Returns:
        (table with :data:`ALIGNMENT_COLUMNS`, quarantine rows ``id, step, reason``).

    Raises:
        UnistError: no voice for one of the two languages.
    """
    missing = {"en", "zh"} - set(speak)
    if missing:
        raise UnistError(f"alignment corpus: no voice for {sorted(missing)}")
    pairs = alignment_pairs(n_speech + n_text, seed)
    rows, bad = [], []
    it = range(len(pairs))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="alignment corpus", unit="pair", total=len(pairs))
    for i in it:
        p = pairs[i]
        kind = "speech" if i < n_speech else "text"
        row: dict[str, Any] = {"id": f"align-{kind}-{i + 1:05d}", "split": "train", "kind": kind,
                               "src_lang": "en", "tgt_lang": "zh", "src_text": p.en, "tgt_text": p.zh,
                               "src_voice": None, "tgt_voice": None, "src_audio": None, "tgt_audio": None,
                               "src_duration_s": None, "tgt_duration_s": None}
        if kind == "speech":
            try:
                for side, lang, text in (("src", "en", p.en), ("tgt", "zh", p.zh)):
                    wav = np.asarray(speak[lang](text), dtype=np.float32)
                    dur = len(wav) / SAMPLE_RATE_HZ
                    if not (min_duration_s <= dur <= max_duration_s):
                        raise UnistError(f"{lang} duration {dur:.2f} s outside [{min_duration_s}, {max_duration_s}]")
                    row[f"{side}_audio"], row[f"{side}_duration_s"] = flac_bytes(wav), round(dur, 4)
                    row[f"{side}_voice"] = ALIGNMENT_VOICES[lang]
            except Exception as e:  # noqa: BLE001 - quarantined with the reason, never lost
                bad.append({"id": row["id"], "step": "alignment", "reason": f"{type(e).__name__}: {e}"})
                continue
        rows.append(row)
    return pd.DataFrame(rows, columns=ALIGNMENT_COLUMNS), pd.DataFrame(bad, columns=["id", "step", "reason"])


def default_speakers(tts_threads: int = 1) -> dict[str, Any]:
    """The voices of :data:`ALIGNMENT_VOICES` as ``{language: text -> (N,) float32 16 kHz}``.

    Piper runs with zero sampling noise (``noise_scale = noise_w_scale = 0``) so the same sentence always
    gives the same audio (reproducible data versions).

    Raises:
        EngineUnavailableError: Piper is not installed (``make models``).
        UnistError: gcin-voice is not installed (raised when a sentence is read).
    """
    from uniss.engines.kokoro import PiperTTS
    from uniss.unist.real import speak_gcin

    piper = PiperTTS(threads=tts_threads, noise_scale=0.0, noise_w_scale=0.0)
    return {"en": lambda t: piper.synthesize(t, "en", PiperTTS.VOICE),
            "zh": lambda t: speak_gcin(t, ALIGNMENT_VOICES["zh"])}


def check_alignment(df: pd.DataFrame, heldout_texts: set[str], languages: tuple[str, ...]) -> list[dict[str, Any]]:
    """Expectations on the corpus (run by the data gate beside the UniST suite).

    Checks: unique ids; split ``train`` only; kind in :data:`KINDS`; languages known; texts non-empty;
    ``speech`` rows carry audio on both sides, ``text`` rows none; no text equal to a dev/test text of
    the UniST dataset (contamination, issue "Your own data"); once tokenized, ``speech`` rows have
    32 speaker tokens and non-empty linguistic / semantic tokens on both sides.

    Args:
        df: the corpus table (tokenized or not).
        heldout_texts: dev/test source and target texts of the UniST dataset (stripped).
        languages: allowed language codes.

    Returns:
        failures, each ``{"expectation", "column", "unexpected_count", "row_ids"}`` (empty = passed).
    """
    fails: list[dict[str, Any]] = []

    def fail(name: str, column: str | None, mask: Any) -> None:
        m = np.asarray(mask, dtype=bool)
        if m.any():
            fails.append({"expectation": f"alignment_{name}", "column": column,
                          "unexpected_count": int(m.sum()), "row_ids": df.loc[m, "id"].astype(str).tolist()[:20]})

    if len(df) == 0:
        return fails
    fail("id_unique", "id", df["id"].duplicated(keep=False))
    fail("split_train", "split", df["split"] != "train")
    fail("kind_known", "kind", ~df["kind"].isin(KINDS))
    for side in ("src", "tgt"):
        fail("lang_known", f"{side}_lang", ~df[f"{side}_lang"].isin(languages))
        text = df[f"{side}_text"].fillna("").astype(str).str.strip()
        fail("text_present", f"{side}_text", text == "")
        fail("not_in_dev_test", f"{side}_text", text.isin(heldout_texts))
        has = df[f"{side}_audio"].map(lambda b: isinstance(b, (bytes, bytearray)) and len(b) > 0)
        fail("audio_matches_kind", f"{side}_audio", has != (df["kind"] == "speech"))
        if f"{side}_speaker" in df.columns:
            sp = df["kind"] == "speech"
            fail("speaker_tokens", f"{side}_speaker", sp & df[f"{side}_speaker"].map(lambda t: t is None or len(t) != 32))
            for fam in ("linguistic", "semantic"):
                fail(f"{fam}_tokens", f"{side}_{fam}", sp & df[f"{side}_{fam}"].map(lambda t: t is None or len(t) == 0))
    return fails


def read_alignment(data_dir: str | Path) -> pd.DataFrame | None:
    """``DATA/alignment.parquet`` (md5 checked against the manifest), or ``None`` when the dataset has none.

    Raises:
        DataIntegrityError: the file's md5 differs from the manifest's.
    """
    from uniss.unist.errors import DataIntegrityError
    from uniss.unist.io import file_md5, read_table
    from uniss.unist.shards import read_manifest

    d = Path(data_dir)
    entry = read_manifest(d).get("alignment")
    if not entry:
        return None
    p = d / entry["path"]
    if not p.exists() or file_md5(p) != entry["md5"]:
        raise DataIntegrityError(f"{p}: missing or its md5 does not match the manifest")
    return read_table(p)
