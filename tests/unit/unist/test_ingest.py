"""Your own data (issue 19 item 1): ``KIND:PATH`` sources, direction filter, per-direction limit,
the deterministic speaker split, the CLI options (typer.BadParameter, exit 2) and the pipeline
parameter; the recorded-speaker part of the held-out gate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from uniss.unist.errors import ManifestError, UnistError
from uniss.unist.expectations import heldout_disjoint
from uniss.unist.ingest import IngestSpec, ingest_spec, parse_source, read_source, select_records, speaker_split
from uniss.unist.readers import SourceRecord, read_librispeech

runner = CliRunner()


def _rec(i: int, speaker: str, lang: str = "en") -> SourceRecord:
    return SourceRecord(id=f"{speaker}-{i:03d}", audio="x.wav", transcript=f"text {i} {speaker}", language=lang,
                        speaker=speaker, translation="译文" if lang == "en" else "text")


def test_parse_source_kinds_and_paths(tmp_path: Path):
    f = tmp_path / "m.csv"
    f.write_text("id,audio,transcript,language\n")
    assert parse_source(f"manifest:{f}").path == str(f.resolve())
    assert parse_source(f"librispeech:{tmp_path}").kind == "librispeech"
    assert str(parse_source("demo")) == "demo" and parse_source("demo:tiny").path == "tiny"
    for bad, match in [("wav2vec:/x", "unknown source kind 'wav2vec'"), ("manifest", "has no path"),
                       ("manifest:", "has no path"), (f"manifest:{tmp_path}/nope.csv", "does not exist"),
                       (f"manifest:{tmp_path}", "must be a file"), (f"librispeech:{f}", "must be a folder")]:
        with pytest.raises(UnistError, match=match):
            parse_source(bad)


def test_speaker_split_is_deterministic_and_speaker_disjoint():
    recs = ([_rec(i, "big") for i in range(16)] + [_rec(i, "small") for i in range(3)]
            + [_rec(i, f"zh{k}", "zh") for k in range(5) for i in range(4)] + [_rec(0, "solo-en-zh", "en")])
    out = speaker_split(recs, dev_share=0.1, test_share=0.2, seed=0)
    assert out == speaker_split(recs, dev_share=0.1, test_share=0.2, seed=0)
    by = {}
    for r in out:
        by.setdefault((r.language, r.speaker), set()).add(r.split)
    assert all(len(s) == 1 for s in by.values()), by  # a speaker is in one split only
    # en: the 3-utterance speaker fits the test share (ceil(0.2 * 20) = 4), the big one trains
    assert by[("en", "small")] == {"test"} and by[("en", "big")] == {"train"}
    zh = [r for r in out if r.language == "zh"]
    assert {r.split for r in zh} == {"train", "test"} and sum(r.split == "test" for r in zh) == 4
    # one speaker: no held-out speaker possible, all training
    solo = speaker_split([_rec(i, "one") for i in range(5)], dev_share=0.1, test_share=0.2)
    assert {r.split for r in solo} == {"train"}
    # two equal speakers that both exceed the share: the smaller-by-hash one is held out anyway
    two = speaker_split([_rec(i, s) for s in ("a", "b") for i in range(5)], dev_share=0.0, test_share=0.1)
    assert sorted(r.split for r in {(r.speaker, r.split): r for r in two}.values()) == ["test", "train"]


def test_select_records_directions_limit_and_duplicates():
    recs = [_rec(i, f"s{i % 4}") for i in range(12)] + [_rec(i, f"z{i % 3}", "zh") for i in range(9)]
    spec = IngestSpec(sources=[parse_source("demo")], directions=("zh-en",), limit=5)
    out = select_records(recs, spec)
    assert len(out) == 5 and {r.language for r in out} == {"zh"}
    assert out == select_records(recs, spec)
    with pytest.raises(UnistError, match="duplicate utterance id"):
        select_records(recs + recs[:1], spec)
    with pytest.raises(UnistError, match="no utterance of directions"):
        select_records(recs[:3], spec)
    with pytest.raises(UnistError, match="directions must be"):
        ingest_spec({"sources": ["demo"], "directions": ["en-fr"]})
    assert ingest_spec({}) is None and ingest_spec({"sources": ["demo"]}).is_demo


def test_covost2_and_cvss_sources(tmp_path: Path):
    tsv = tmp_path / "covost_v2.zh-CN_en.test.tsv"
    tsv.write_text("path\tsentence\ttranslation\tclient_id\ncommon_voice_zh-CN_1.mp3\t你好。\tHello.\tspk1\n")
    (tmp_path / "test.tsv").write_text("common_voice_zh-CN_1.mp3.wav\thello there\n")
    r = read_source(parse_source(f"covost2:{tsv}"))
    assert (r[0].language, r[0].target_language(), r[0].split, r[0].translation) == ("zh", "en", "test", "Hello.")
    assert r[0].audio == str(tmp_path / "clips" / "common_voice_zh-CN_1.mp3")
    c = read_source(parse_source(f"cvss:{tmp_path}"))
    assert c[0].translation == "hello there"  # CVSS's translation replaces CoVoST's
    bad = tmp_path / "other.tsv"
    bad.write_text("path\tsentence\n")
    with pytest.raises(UnistError, match="covost_v2.<src>_<tgt>.<split>.tsv"):
        read_source(parse_source(f"covost2:{bad}"))


def test_librispeech_translation_files(tmp_path: Path):
    d = tmp_path / "7" / "1"
    d.mkdir(parents=True)
    (d / "7-1.trans.txt").write_text("7-1-0000 HELLO WORLD\n7-1-0001 GOOD NIGHT\n")
    (d / "7-1.trans.zh.txt").write_text("7-1-0001 晚安\n")
    for u in ("7-1-0000", "7-1-0001"):
        (d / f"{u}.flac").write_bytes(b"x")
    recs = read_librispeech(tmp_path)
    assert [(r.translation, r.target_language()) for r in recs] == [(None, "zh"), ("晚安", "zh")]
    (d / "7-1.trans.zh.txt").write_text("7-1-0009 多余\n")
    with pytest.raises(ManifestError, match=r"7-1.trans.zh.txt:1: field 'utt-id'"):
        read_librispeech(tmp_path)


def test_gate_recorded_heldout_speaker_in_training_fails():
    df = pd.DataFrame({"id": ["a", "b", "c", "d"], "split": ["train", "train", "test", "dev"],
                       "voice_set": ["real", "real", "real", "real"], "src_voice": ["s1", "s2", "s3", "s1"]})
    assert heldout_disjoint(df) == [False, True, True, False]  # s1 speaks a training and a dev row
    df.loc[3, "src_voice"] = "s4"
    assert all(heldout_disjoint(df))


def test_build_source_from_real_manifest(tmp_path: Path):
    """The real recordings of this machine, as a CSV manifest -> a speaker-split source table."""
    from uniss.unist import steps
    from uniss.unist.io import read_table
    from uniss.unist.real import write_real_corpus

    m = write_real_corpus(tmp_path / "corpus", "csv")
    s = steps.build_source("tiny", tmp_path / "src", sources={"sources": [f"manifest:{m}"], "directions": ["en-zh"]})
    t = read_table(tmp_path / "src" / "source.parquet")
    assert s["rows"] == len(t) == 19 and set(t["language"]) == {"en"} and set(t["voice_set"]) == {"real"}
    assert set(t.loc[t["split"] == "test", "speaker"]) == {"librivox-austen"}
    assert set(t.loc[t["split"] == "train", "speaker"]) == {"asterisk-allison"}
    assert s["speakers"]["test"] == ["librivox-austen"] and s["counts"] == {"en-zh/test": 3, "en-zh/train": 16}


def _cli(*args: str):
    from pipelines.cli import app

    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.mark.parametrize("cmd", [["data", "build"], ["retrain"]])
def test_cli_rejects_bad_sources_with_exit_2(cmd, tmp_path: Path):
    r = _cli(*cmd, "--source", "wav2vec:/x")
    assert r.exit_code == 2 and "--source" in r.output and "unknown source kind 'wav2vec'" in r.output
    r = _cli(*cmd, "--source", f"manifest:{tmp_path}/missing.csv")
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output
    f = tmp_path / "m.csv"
    f.write_text("id,audio,transcript,language\n")
    r = _cli(*cmd, "--source", f"manifest:{f}", "--direction", "en-fr")
    assert r.exit_code == 2 and "--direction" in r.output and "unknown direction 'en-fr'" in r.output


def test_retrain_passes_sources_as_pipeline_parameter(monkeypatch, tmp_path: Path):
    import pipelines.cli.pipeline as cli_pipeline

    calls = []
    monkeypatch.setattr(cli_pipeline, "submit", lambda name, host, args, **kw: calls.append(args) or "run-1")
    d = tmp_path / "ls"
    d.mkdir()
    r = _cli("retrain", "--cluster", "--host", "http://kfp.invalid", "--size", "tiny", "--source", f"librispeech:{d}",
             "--direction", "en-zh", "--limit", "50")
    assert r.exit_code == 0, r.output
    args = calls[0]
    assert args["sources"] == {"sources": [f"librispeech:{d.resolve()}"], "directions": ["en-zh"], "split": "speaker",
                               "limit": 50, "test_share": 0.2, "dev_share": 0.1}
    assert args["eval_directions"] == ["en-zh"]
    _cli("retrain", "--cluster", "--host", "http://kfp.invalid", "--size", "tiny")
    assert "sources" not in calls[1] and "eval_directions" not in calls[1]  # the demo corpus: pipeline defaults


def test_real_corpus_per_speaker_keeps_every_speaker(tmp_path: Path):
    from uniss.unist.errors import UnistError
    from uniss.unist.real import real_corpus_records

    full = real_corpus_records()
    small = real_corpus_records(per_speaker=4)
    count = lambda recs: {s: sum(r.speaker == s for r in recs) for s in {r.speaker for r in recs}}  # noqa: E731
    assert count(full) == {"asterisk-allison": 16, "librivox-austen": 3, "gcin-3": 8, "gcin-5": 3}
    assert count(small) == {"asterisk-allison": 4, "librivox-austen": 3, "gcin-3": 4, "gcin-5": 3}
    assert [r.id for r in small] == sorted(r.id for r in small) and {r.id for r in small} <= {r.id for r in full}
    with pytest.raises(UnistError, match="per_speaker"):
        real_corpus_records(per_speaker=0)
