"""The phase-1 speech-text alignment corpus (uniss.unist.alignment): built from train-split lexicon
sentences only, carried by synthesize, tokenized, gated and read by training."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.unit.unist.conftest import RateCodec, make_fake, make_params, make_source
from uniss.unist import lexicon, steps
from uniss.unist.alignment import ALIGNMENT, build_alignment, check_alignment, read_alignment
from uniss.unist.cache import StepCache
from uniss.unist.dataset import read_manifest
from uniss.unist.errors import DataIntegrityError, DataValidationError
from uniss.unist.io import read_table, write_table
from uniss.unist.tokenize import TOKEN_COLUMNS, WORD_COLUMNS, word_starts_in_frames

SR = 16000


def _tone(seconds_per_char: float):
    def speak(text: str) -> np.ndarray:
        n = int((0.3 + seconds_per_char * len(text)) * SR)
        return (0.2 * np.sin(2 * np.pi * 180 * np.arange(n) / SR)).astype(np.float32)
    return speak


def _speakers(fail_on: str | None = None):
    zh = _tone(0.2)

    def zh_or_fail(text: str) -> np.ndarray:
        if fail_on and fail_on in text:
            raise RuntimeError("no recording of that syllable")
        return zh(text)
    return {"en": _tone(0.05), "zh": zh_or_fail}


def test_build_speaks_train_sentences_on_both_sides_and_quarantines_failures():
    first = build_alignment(6, 4, seed=0, speak=_speakers(), min_duration_s=0.3, max_duration_s=12)[0]
    fail_on = first.loc[2, "tgt_text"][:3]
    df, q = build_alignment(6, 4, seed=0, speak=_speakers(fail_on), min_duration_s=0.3, max_duration_s=12)
    bad = first[first["tgt_text"].str.contains(fail_on, regex=False) & (first["kind"] == "speech")]["id"]
    assert sorted(q["id"]) == sorted(bad) and len(bad) >= 1 and q["reason"].str.contains("RuntimeError").all()
    assert q["step"].eq("alignment").all() and len(df) + len(q) == 10
    assert set(df["kind"]) == {"speech", "text"} and (df["split"] == "train").all()
    assert all(lexicon.split_of(t) == "train" for t in df["src_text"])  # never a dev/test sentence
    sp = df[df["kind"] == "speech"]
    assert sp["src_audio"].map(len).gt(0).all() and sp["tgt_duration_s"].gt(0).all()
    assert sp["src_voice"].eq("piper:en_US-joe-medium").all() and sp["tgt_voice"].eq("gcin-3").all()
    assert df[df["kind"] == "text"]["src_audio"].isna().all()
    again, _ = build_alignment(6, 4, seed=0, speak=_speakers(fail_on), min_duration_s=0.3, max_duration_s=12)
    assert again["src_text"].tolist() == df["src_text"].tolist()  # seeded
    too_long, q2 = build_alignment(2, 0, seed=0, speak=_speakers(), min_duration_s=0.3, max_duration_s=0.5)
    assert too_long.empty and q2["reason"].str.contains("outside").all()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tokenized dataset with an alignment corpus (test engines; RateCodec)."""
    tmp = tmp_path_factory.mktemp("align")
    eng, asr, tts, pairs = make_fake()
    src = tmp / "source"
    src.mkdir()
    write_table(make_source(pairs, tts), src / "source.parquet")
    align, _ = build_alignment(4, 3, seed=0, speak=_speakers(), min_duration_s=0.3, max_duration_s=12)
    write_table(align, src / ALIGNMENT)
    cache = StepCache(tmp / "cache")
    steps.synthesize(src, tmp / "synth", make_params(), engines=eng, cache=cache)
    steps.tokenize(tmp / "synth", None, tmp / "data", cache=cache, codec=RateCodec(), align_words=True)
    return tmp


def test_synthesize_carries_and_tokenize_tokenizes_the_corpus(built):
    m = read_manifest(built / "synth")
    assert m["alignment"]["rows"] == 7 and m["alignment"]["kinds"] == {"speech": 4, "text": 3}
    a = read_alignment(built / "data")
    assert read_manifest(built / "data")["alignment"]["md5"] != m["alignment"]["md5"]  # tokenized copy
    sp, tx = a[a["kind"] == "speech"], a[a["kind"] == "text"]
    assert sp["src_speaker"].map(len).eq(32).all() and sp["tgt_semantic"].map(len).gt(0).all()
    # RateCodec: 50 semantic tokens per second of the Mandarin side
    assert np.allclose(sp["tgt_semantic"].map(len), sp["tgt_duration_s"] * 50, atol=2)
    assert all(len(v) == 0 for c in TOKEN_COLUMNS for v in tx[c])
    # each side's words (Whisper forced alignment of the row's own text) and their unit starts
    for side in ("src", "tgt"):
        for text, words, starts, sem in zip(sp[f"{side}_text"], sp[f"{side}_words"], sp[f"{side}_word_starts"],
                                            sp[f"{side}_semantic"]):
            assert "".join(words).strip() == " ".join(text.split()) and len(starts) == len(words) > 0
            assert list(starts) == sorted(starts) and 0 <= starts[0] and starts[-1] <= len(sem)
    assert all(len(v) == 0 for c in WORD_COLUMNS for v in tx[c])


def test_word_starts_in_frames_rounds_clips_and_never_decreases():
    words = [(" a", -0.01, 0.2), (" b", 0.22, 0.4), (" c", 0.2, 0.5), (".", 9.0, 9.0)]
    assert word_starts_in_frames(words, 30, 50.0) == [0, 11, 11, 30]
    assert word_starts_in_frames([], 30, 50.0) == []


def test_the_corpus_is_part_of_the_data_version(built, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(built / "data", d)
    m = read_manifest(d)
    before = m["version"]
    steps._stamp_version(d, {**m, "alignment": {**m["alignment"], "md5": "0" * 32}})
    changed = read_manifest(d)["version"]
    steps._stamp_version(d, {k: v for k, v in m.items() if k != "alignment"})
    assert len({before, changed, read_manifest(d)["version"]}) == 3


def test_gate_passes_and_catches_contamination_and_tampering(built, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(built / "data", d)
    assert steps.validate(d, raise_on_fail=False)["passed"]
    # a dev/test sentence inside the corpus is contamination
    held = steps.read_all(d)
    test_text = held[held["split"] == "test"]["src_text"].iloc[0]
    a = read_table(d / ALIGNMENT)
    a.loc[0, "src_text"] = test_text
    fails = check_alignment(a, {test_text}, ("en", "zh"))
    assert [(f["expectation"], f["row_ids"]) for f in fails] == [("alignment_not_in_dev_test", [a.loc[0, "id"]])]
    write_table(a, d / ALIGNMENT)  # written behind the manifest's back
    with pytest.raises(DataIntegrityError):
        read_alignment(d)
    m = read_manifest(d)
    m["alignment"] = steps._alignment_entry(d)
    steps.write_manifest(d, m)
    with pytest.raises(DataValidationError, match="alignment_not_in_dev_test"):
        steps.validate(d)
    # a speech row without audio, a text row with some
    b = read_table(built / "data" / ALIGNMENT)
    b.loc[b["kind"] == "text", "kind"] = "speech"
    fails = {f["expectation"] for f in check_alignment(b, set(), ("en", "zh"))}
    assert {"alignment_audio_matches_kind", "alignment_speaker_tokens"} <= fails


def test_training_reads_the_corpus(built):
    from training.data import DataError, load_alignment_rows

    steps.validate(built / "data")
    rows = load_alignment_rows(built / "data")
    assert len(rows) == 7 and "src_audio" not in rows[0]
    with pytest.raises(DataError, match="no phase-1 alignment corpus"):
        load_alignment_rows(_without_alignment(built))


def _without_alignment(built):
    d = built / "data_noalign"
    if not d.exists():
        shutil.copytree(built / "data", d)
        m = read_manifest(d)
        m.pop("alignment")
        steps.write_manifest(d, m)
    return d


def test_fit_codec_fits_on_the_train_split_and_the_corpus_speech(built, tmp_path, monkeypatch):
    """The codec fit sees every train-split clip (source and target) and both sides of the alignment
    corpus's first speech rows, and nothing of dev/test; the corpus and the preset's config are part
    of the fit's cache key."""
    import uniss.codecs.lite as lite

    seen: list[int] = []

    class _Saved:
        def save(self, out):
            out.mkdir(parents=True, exist_ok=True)

        def fingerprint(self):
            return "f"

    pairs: list[list[int]] = []

    def fake_fit(wavs, cfg, partners=None):
        seen.append(len(list(wavs)))
        pairs.append(list(partners))
        return _Saved()

    monkeypatch.setattr(lite, "fit_lite_codec", fake_fit)
    synth = built / "synth"
    train = steps.read_all(synth).query("split == 'train'")
    n_speech = int((read_alignment(synth)["kind"] == "speech").sum())
    steps.fit_codec(synth, tmp_path / "codec", preset="tiny", cache=StepCache(tmp_path / "c1"))
    assert seen == [2 * len(train) + 2 * n_speech] and n_speech == 4
    n = len(train)  # each UniST clip is paired with its row's other side; the corpus clips with none
    assert pairs[0] == list(range(n, 2 * n)) + list(range(n)) + [-1] * (2 * n_speech)
    # without the corpus: the train clips only, and another cache entry
    bare = tmp_path / "bare"
    shutil.copytree(synth, bare)
    m = read_manifest(bare)
    (bare / "manifest.json").write_text(json.dumps({k: v for k, v in m.items() if k != "alignment"}))
    cache = StepCache(tmp_path / "c2")
    steps.fit_codec(synth, tmp_path / "codec2", preset="tiny", cache=cache)
    steps.fit_codec(bare, tmp_path / "codec3", preset="tiny", cache=cache)
    assert seen[1:] == [2 * len(train) + 8, 2 * len(train)] and cache.stats.misses["fit_codec"] == 2
    # at most CODEC_CORPUS_ROWS corpus rows, so the corpus's two voices do not drown the UniST ones
    monkeypatch.setattr(steps, "CODEC_CORPUS_ROWS", 3)
    steps.fit_codec(synth, tmp_path / "codec4", preset="tiny", cache=StepCache(tmp_path / "c3"))
    assert seen[-1] == 2 * len(train) + 6
    # a preset whose config changed (same name) is refitted, not served from the cache
    cache = StepCache(tmp_path / "c4")
    steps.fit_codec(synth, tmp_path / "codec5", preset="tiny", cache=cache)
    changed = lite.LiteCodecConfig.tiny(crop_frames=7)
    monkeypatch.setattr(lite.LiteCodecConfig, "preset", classmethod(lambda cls, name, **o: changed))
    steps.fit_codec(synth, tmp_path / "codec6", preset="tiny", cache=cache)
    assert cache.stats.misses["fit_codec"] == 2 and "fit_codec" not in cache.stats.hits
