"""Source manifest readers: CoVoST 2 / CVSS TSV, LibriSpeech folders, CSV / JSONL, LibriVox; malformed
manifests raise ManifestError naming the line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uniss.unist import sources
from uniss.unist.errors import ManifestError, UnistError
from uniss.unist.params import DataParams


def test_covost_and_cvss(tmp_path: Path):
    tsv = tmp_path / "covost_v2.en_zh-CN.dev.tsv"
    tsv.write_text("path\tsentence\ttranslation\tclient_id\n"
                   "common_voice_en_1.mp3\tHello there.\t你好。\tspk1\n"
                   "common_voice_en_2.mp3\tGood night.\t\tspk2\n")
    recs = sources.read_covost_tsv(tsv, audio_dir=tmp_path / "clips", src_lang="en", tgt_lang="zh", split="dev")
    assert [r.id for r in recs] == ["common_voice_en_1", "common_voice_en_2"]
    assert recs[0].translation == "你好。" and recs[1].translation is None
    assert recs[0].audio == str(tmp_path / "clips" / "common_voice_en_1.mp3") and recs[0].split == "dev"
    cvss = tmp_path / "cvss.tsv"
    cvss.write_text("common_voice_en_2.mp3.wav\tgood night\n")
    out = sources.read_cvss_tsv(cvss, covost=recs, tgt_lang="zh")
    assert out[0].id == "common_voice_en_2" and out[0].translation == "good night"


@pytest.mark.parametrize("body,match", [
    ("path\ttranslation\n", r":1: field 'sentence': missing from header"),
    ("path\tsentence\na.mp3\t   \n", r":2: field 'transcript': .*non-empty"),
    ("path\tsentence\na.mp3\thi\textra\n", r":2: field '<extra>'"),
])
def test_covost_malformed(tmp_path: Path, body: str, match: str):
    tsv = tmp_path / "bad.tsv"
    tsv.write_text(body)
    with pytest.raises(ManifestError, match=match) as e:
        sources.read_covost_tsv(tsv, audio_dir=tmp_path, src_lang="en", tgt_lang="zh")
    assert str(tsv) in str(e.value)


def test_librispeech_folder(tmp_path: Path):
    d = tmp_path / "19" / "198"
    d.mkdir(parents=True)
    (d / "19-198.trans.txt").write_text("19-198-0000 NORTHANGER ABBEY\n19-198-0001 THIS LITTLE WORK\n")
    (d / "19-198-0000.flac").write_bytes(b"x")
    (d / "19-198-0001.flac").write_bytes(b"x")
    recs = sources.read_librispeech(tmp_path)
    assert [(r.id, r.speaker, r.transcript) for r in recs] == [
        ("19-198-0000", "19", "northanger abbey"), ("19-198-0001", "19", "this little work")]
    (d / "19-198-0001.flac").unlink()
    with pytest.raises(ManifestError, match=r"19-198.trans.txt:2: field 'audio'"):
        sources.read_librispeech(tmp_path)
    with pytest.raises(UnistError, match="no \\*.trans.txt"):
        sources.read_librispeech(tmp_path / "nothing")


def test_csv_and_jsonl_manifests(tmp_path: Path):
    csv = tmp_path / "m.csv"
    csv.write_text("id,audio,transcript,language,translation\nu1,a.wav,hello,en,你好\nu2,/abs/b.wav,你好,zh,\n")
    recs = sources.read_manifest(csv)
    assert recs[0].audio == str(tmp_path / "a.wav") and recs[0].target_language() == "zh"
    assert recs[1].audio == "/abs/b.wav" and recs[1].translation is None and recs[1].target_language() == "en"
    jl = tmp_path / "m.jsonl"
    jl.write_text(json.dumps({"id": "u1", "audio": "a.wav", "transcript": "hi", "language": "en", "split": "test"}) + "\n")
    assert sources.read_manifest(jl)[0].split == "test"


@pytest.mark.parametrize("lines,match", [
    (['{"id": "u1", "audio": "a.wav", "transcript": "hi", "language": "en"}', '{"id": "u2", "audio": '],
     r":2: field '<json>'"),
    (['{"id": "u1", "audio": "a.wav", "transcript": "hi", "language": "fr"}'], r":1: field 'language': .*unknown language 'fr'"),
    (['{"id": "u1", "audio": "a.wav", "language": "en"}'], r":1: field 'transcript': missing"),
    (['{"id": "u1", "audio": "a.wav", "transcript": "hi", "language": "en", "lang": "x"}'], r":1: field 'lang': unknown"),
    (['{"id": "u1", "audio": "a.wav", "transcript": "hi", "language": "en"}'] * 2, r":2: field 'id': duplicate"),
    (['{"id": "u1", "audio": "a.wav", "transcript": "hi", "language": "en", "split": "val"}'], r":1: field 'split'"),
])
def test_malformed_jsonl_names_line_and_field(tmp_path: Path, lines, match):
    jl = tmp_path / "bad.jsonl"
    jl.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=match):
        sources.read_manifest(jl)


def test_malformed_csv_row(tmp_path: Path):
    csv = tmp_path / "bad.csv"
    csv.write_text("id,audio,transcript,language\nu1,a.wav,hi,en\nu2,b.wav,hi,en,EXTRA\n")
    with pytest.raises(ManifestError, match=r"bad.csv:3: field '<extra>'"):
        sources.read_manifest(csv)
    with pytest.raises(ManifestError, match="unsupported manifest type"):
        (tmp_path / "m.xml").write_text("<x/>")
        sources.read_manifest(tmp_path / "m.xml")


def test_librivox_clips():
    assert sources.LIBRIVOX_DIR.exists(), f"{sources.LIBRIVOX_DIR} missing: `make setup` installs Debian pocketsphinx-testdata"
    recs = sources.read_librivox()
    assert len(recs) == 5 and all(r.language == "en" and r.split == "test" and r.translation is None for r in recs)
    assert recs[0].id.startswith("librivox-") and len(recs[0].transcript.split()) > 3
    assert not any("<s>" in r.transcript or "</s>" in r.transcript for r in recs)  # format markers stripped


def test_demo_records_both_directions_with_references():
    p = DataParams()
    voices = {"en": ["flite:slt", "espeak:en-us"], "zh": ["espeak:cmn-latn-pinyin+m3"]}
    df, real = sources.demo_records("tiny", p, voices)
    preset = p.size("tiny")
    for d in ("en", "zh"):
        sub = df[df["language"] == d]
        assert len(sub) == preset.train + preset.dev + preset.test
        assert sub["translation"].notna().all() and set(sub["voice"]) <= set(voices[d])
    assert df["id"].is_unique and set(df["tgt_lang"]) == {"en", "zh"}
    assert set(df["voice_set"]) == {"seen"}  # no held-out voices given
    again, _ = sources.demo_records("tiny", p, voices)
    assert df.equals(again)
    with pytest.raises(UnistError, match="unknown data size"):
        sources.demo_records("huge", p, voices)


def test_demo_records_heldout_voices_only_on_half_the_test_split_and_real_pairs_aside():
    p = DataParams(sizes={"s": {"train": 6, "dev": 2, "test": 6, "real_test": 3}})
    voices = {"en": ["kokoro:a", "kokoro:b"], "zh": ["kokoro:a", "kokoro:b"]}
    heldout = {"en": ["kokoro:h"], "zh": ["kokoro:h"]}
    df, real = sources.demo_records("s", p, voices, heldout)
    assert set(df.loc[df["split"] != "test", "voice"]) <= {"kokoro:a", "kokoro:b"}
    for d in ("en", "zh"):
        test = df[(df["split"] == "test") & (df["language"] == d)]
        assert (test["voice_set"] == "heldout").sum() == 3 and (test["voice_set"] == "seen").sum() == 3
        assert set(test.loc[test["voice_set"] == "heldout", "voice"]) == {"kokoro:h"}
        assert set(test.loc[test["voice_set"] == "seen", "voice"]) <= {"kokoro:a", "kokoro:b"}
    # the real-voice pairs are extra test sentences: none is spoken by a TTS row of any split
    assert len(real) == 3 and all(r.split == "test" for r in real)
    spoken = set(df["transcript"])
    assert not ({r.zh for r in real} | {r.en for r in real}) & spoken


def test_split_voices_disjoint_and_kokoro_order():
    avail = list(sources.KOKORO_VOICE_ORDER)
    seen, held = sources.split_voices(avail, "en", 13, 2)
    assert len(seen) == 13 and len(held) == 2 and not set(seen) & set(held)
    assert held == list(sources.KOKORO_VOICE_ORDER[13:15])
    # the held-out mixes share no base pair with any seen mix
    pairs = lambda vs: {tuple(v.split("-")[1:3]) for v in vs if v.startswith("kokoro:mix-")}  # noqa: E731
    assert not pairs(seen) & pairs(held)
    with pytest.raises(UnistError, match="held-out"):
        sources.split_voices(["kokoro:a", "kokoro:b"], "en", 2, 1)
