"""Real recorded speech from Debian packages (uniss.unist.real): Asterisk prompts, gcin-voice sentences."""

from __future__ import annotations

import re

import numpy as np
import pytest

from uniss.audio import SAMPLE_RATE_HZ
from uniss.unist import lexicon, real
from uniss.unist.errors import UnistError


def test_zhuyin_syllables_map_tones_to_gcin_folders():
    # 你 ni3, 好 hao3, clause break, 妈 ma1 (bare folder name), 吗 neutral tone -> 1, 是 shi4, 学 xue2
    assert real.zhuyin_syllables("你好，妈吗是学。") == ["ㄋㄧ3", "ㄏㄠ3", None, "ㄇㄚ", "ㄇㄚ1", "ㄕ4", "ㄒㄩㄝ2"]
    assert real.zhuyin_syllables("abc 123") == []


def _need(path, package):
    assert path.exists(), f"{path} missing: `make setup` installs the Debian package {package}"


def test_speak_gcin_reads_a_sentence_in_both_real_voices():
    _need(real.GCIN_DIR, "gcin-voice")
    for spk in real.GCIN_SPEAKERS:
        wav = real.speak_gcin("我们的邻居今天在公园。", spk)
        assert wav.dtype == np.float32 and wav.ndim == 1
        # 10 syllables: more than 0.15 s each, and silence only between them
        assert 1.5 < len(wav) / SAMPLE_RATE_HZ < 10
        assert np.abs(wav).max() > 0.05
    a, b = (real.speak_gcin("老师", s) for s in real.GCIN_SPEAKERS)
    assert len(a) != len(b) or not np.allclose(a, b)  # two different recordings
    with pytest.raises(UnistError, match="unknown gcin-voice speaker"):
        real.speak_gcin("老师", "gcin-9")
    with pytest.raises(UnistError, match="no Mandarin syllable"):
        real.speak_gcin("hello", "gcin-3")


def test_gcin_records_are_zh_en_test_pairs_and_bad_text_is_quarantined():
    _need(real.GCIN_DIR, "gcin-voice")
    pairs = lexicon.generate_pairs({"test": 2}, seed=5)
    bad = lexicon.SentencePair(en="ok", zh="OK!", key="x", split="test")
    recs, dropped = real.gcin_records([*pairs, bad], speakers=tuple(real.GCIN_SPEAKERS))
    assert len(recs) == 2 and [d["id"] for d in dropped] == ["zhen-test-real-00003"]
    assert "no Mandarin syllable" in dropped[0]["reason"]
    assert {r.speaker for r in recs} == set(real.GCIN_SPEAKERS)
    assert all(r.language == "zh" and r.tgt_lang == "en" and r.voice is None and r.origin == "gcin" for r in recs)
    assert [r.translation for r in recs] == [p.en for p in pairs]


def test_read_asterisk_plain_word_prompts_with_audio():
    _need(real.ASTERISK_TRANSCRIPTS, "asterisk-core-sounds-en")
    _need(real.ASTERISK_DIR, "asterisk-core-sounds-en-wav")
    recs = real.read_asterisk()
    assert len(recs) > 150
    assert all(r.origin == "asterisk" and r.split == "test" and r.voice is None for r in recs)
    assert all("[" not in r.transcript and not any(c.isdigit() for c in r.transcript) for r in recs)
    assert all(3 <= len(re.findall(r"[a-z']+", r.transcript.lower())) <= 14 for r in recs)
    assert [r.id for r in real.read_asterisk(5)] == [r.id for r in recs[:5]]


def test_read_asterisk_missing_package_is_a_typed_error(tmp_path):
    with pytest.raises(UnistError, match="asterisk-core-sounds-en"):
        real.read_asterisk(audio_dir=tmp_path, transcripts=tmp_path / "none.txt.gz")


def test_gcin_missing_syllable_is_a_typed_error(tmp_path):
    (tmp_path / "ㄋㄧ3").mkdir()
    with pytest.raises(UnistError, match="no recording of syllable 'ㄋㄧ3'"):
        real.speak_gcin("你好", "gcin-3", gcin_dir=tmp_path)
