"""Shards + manifest + reader + Great Expectations gate, built from a tiny corpus through the real
step functions (``uniss.unist.steps``) with the test engines of conftest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.unit.unist.conftest import RateCodec, make_fake, make_params, make_source
from uniss.unist import steps
from uniss.unist.cache import StepCache
from uniss.unist.dataset import load_samples, read_manifest
from uniss.unist.errors import DataNotValidatedError, DataValidationError
from uniss.unist.io import file_md5, read_table, write_table
from uniss.unist.shards import verify_md5s
from uniss.unist.tokenize import TOKEN_COLUMNS


@pytest.fixture(scope="module")
def built_once(tmp_path_factory):
    """A synthesized + tokenized (not yet validated) dataset dir, built once per module."""
    tmp_path = tmp_path_factory.mktemp("unist")
    eng, asr, tts, pairs = make_fake()
    params = make_params()
    src = tmp_path / "source"
    src.mkdir()
    write_table(make_source(pairs, tts), src / "source.parquet")
    write_table(pd.DataFrame({"id": ["bad-src"], "step": ["source"], "reason": ["tts failed: x"]}), src / "quarantine.parquet")
    cache = StepCache(tmp_path / "cache")
    steps.synthesize(src, tmp_path / "synth", params, engines=eng, cache=cache)
    import uniss.codecs.base as cb

    real = cb.load_codec
    cb.load_codec = lambda d: RateCodec()
    try:
        steps.tokenize(tmp_path / "synth", tmp_path / "codec", tmp_path / "data", cache=cache)
    finally:
        cb.load_codec = real
    return tmp_path


@pytest.fixture
def built(built_once, tmp_path, monkeypatch):
    """A fresh copy of the module's dataset (tests may corrupt it); ``tmp_path/synth`` beside it."""
    import uniss.codecs.base as cb

    monkeypatch.setattr(cb, "load_codec", lambda d: RateCodec())
    shutil.copytree(built_once / "data", tmp_path / "data")
    shutil.copytree(built_once / "synth", tmp_path / "synth")
    return tmp_path / "data"


def test_layout_manifest_and_reader(built: Path, params):
    m = read_manifest(built)
    assert (built / "quarantine.parquet").exists()
    assert sorted(p.name for p in (built / "plots").glob("*.png")) == ["duration_ratio.png", "durations.png", "wer.png"]
    assert m["codec_fingerprint"] == "rate-codec-1" and m["version"].startswith("sha-")
    assert sum(s["rows"] for s in m["shards"]) == 8 and all(s["rows"] <= params.rows_per_shard for s in m["shards"])
    assert all(verify_md5s(built).values())
    assert m["counts"]["source"]["rows"] == 8 and m["counts"]["steps"]["src_asr"]["in"] == 8
    q = read_table(built / "quarantine.parquet")
    assert list(q["id"]) == ["bad-src"]  # the source step's drop is carried into the dataset's quarantine
    assert set(m["voice_map"]) == {"flite:slt", "espeak:en-us", "espeak:cmn-latn-pinyin+m3", "espeak:cmn-latn-pinyin+f2"}
    with pytest.raises(DataNotValidatedError):
        load_samples(built)
    df = load_samples(built, split="all", require_validated=False)
    assert list(df.columns[:6]) == ["id", "split", "src_lang", "tgt_lang", "src_text", "tgt_text"]
    assert all(c in df for c in TOKEN_COLUMNS) and all(len(x) == 32 for x in df["src_speaker"])


def test_gate_passes_then_training_may_read(built: Path):
    r = steps.validate(built)
    # 17 core expectations (contamination and a test split per direction included) + 4 on the voice
    # columns (voice_preserved x2, voice_set, held-out disjoint)
    assert r["passed"] and r["failures"] == [] and r["expectations"] == 21
    assert read_manifest(built)["validation"]["passed"] is True
    hq = load_samples(built, split="all", subset="hq")
    assert hq["hq"].all() and len(hq) >= 1


def test_shards_are_byte_stable(built: Path, fake, params, tmp_path):
    """Re-writing the same samples gives identical shard files (md5-stable FLAC + Parquet)."""
    m1 = read_manifest(built)
    steps.tokenize(tmp_path / "synth", tmp_path / "codec", tmp_path / "data2", cache=StepCache(tmp_path / "cache"))
    m2 = read_manifest(tmp_path / "data2")
    assert [s["md5"] for s in m1["shards"]] == [s["md5"] for s in m2["shards"]]
    assert m1["version"] == m2["version"]


def test_corrupted_shard_fails_gate_with_row_ids(built: Path):
    """Bad ratio, duplicate id, truncated audio -> DataValidationError naming each expectation and row."""
    m = read_manifest(built)
    p = built / m["shards"][0]["path"]
    df = read_table(p)
    ids = list(df["id"])
    df.loc[0, "ratio"] = 5.0                                   # bad ratio (and now inconsistent speed token)
    df.loc[1, "id"] = ids[2]                                   # duplicate id
    df.at[3, "tgt_audio"] = df.at[3, "tgt_audio"][: len(df.at[3, "tgt_audio"]) // 3]  # truncated FLAC
    write_table(df, p)
    with pytest.raises(DataValidationError) as e:
        steps.validate(built)
    msg = str(e.value)
    by = {(f["expectation"], f["column"]): f for f in e.value.failures}
    assert by[("expect_column_values_to_be_between", "ratio")]["row_ids"] == [ids[0]]
    assert by[("expect_column_values_to_be_unique", "id")]["row_ids"] == [ids[2]]
    assert by[("expect_column_values_to_be_in_set", "chk_audio")]["row_ids"] == [ids[3]]
    assert by[("expect_column_values_to_be_in_set", "chk_speed")]["row_ids"] == [ids[0]]
    assert by[("shard_md5_matches_manifest", None)]["shards"] == [m["shards"][0]["path"]]
    assert ids[0] in msg and ids[3] in msg
    v = read_manifest(built)["validation"]
    assert v["passed"] is False and len(v["failures"]) == 5
    with pytest.raises(DataNotValidatedError):
        load_samples(built)
    # nothing silently dropped: the corrupted rows are still in the shard, untouched by validation
    assert len(read_table(p)) == len(ids)


@pytest.mark.parametrize("col,bad,expectation", [
    ("src_lang", "fr", "src_lang"), ("src_wer", 0.9, "chk_src_wer"), ("tgt_semantic", [1, 2, 3], "chk_tokens"),
    ("src_speaker", [0] * 31, "chk_speaker32"), ("hq_ratio", 1.9, "chk_hq_ratio"),
])
def test_each_expectation_catches_its_defect(built: Path, col, bad, expectation):
    from uniss.unist.expectations import validate_samples
    from uniss.unist.params import DataParams

    df = load_samples(built, split="all", require_validated=False)
    # a training row: moving the only en-zh test row to another language would also (rightly) leave
    # en-zh without test rows, and chk_direction_heldout would name every en-zh row
    i = int(df.index[df["hq"] & (df["split"] == "train")][0])
    df.at[i, col] = bad
    r = validate_samples(df, DataParams(**read_manifest(built)["params"]))
    assert not r["passed"]
    got = [(f["column"], f["row_ids"]) for f in r["failures"]]
    assert (expectation, [df.at[i, "id"]]) in got
    assert all(ids == [df.at[i, "id"]] for _, ids in got)  # only the defective row is named


def test_cli_validate_exit_codes(built: Path):
    """`uniss data validate` prints the failing expectations and row ids on one line, exit code 2."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["data", "validate", str(built)])
    assert r.exit_code == 0 and "passed 21 expectations" in r.output
    p = built / read_manifest(built)["shards"][0]["path"]
    df = read_table(p)
    df.loc[1, "ratio"] = 0.1
    write_table(df, p)
    r = runner.invoke(app, ["data", "validate", str(built)])
    assert r.exit_code == 2
    out = " ".join(r.output.split())
    assert "DataValidationError" in out and "expect_column_values_to_be_between(ratio): 1 rows: " + df.at[1, "id"] in out
    assert "Traceback" not in r.output


def test_heldout_voice_in_training_fails_gate(built: Path):
    """A held-out voice that also speaks a training row breaks speaker-disjointness: the gate names the row."""
    m = read_manifest(built)
    p = built / m["shards"][0]["path"]
    df = read_table(p)
    test_rows = df.index[df["split"] == "test"]
    train_rows = df.index[df["split"] == "train"]
    assert len(test_rows) and len(train_rows)
    df.loc[test_rows[0], "voice_set"] = "heldout"
    df.loc[train_rows[0], "src_voice"] = df.loc[test_rows[0], "src_voice"]
    df.loc[train_rows[1], "voice_set"] = "no-such-slice"
    write_table(df, p)
    with pytest.raises(DataValidationError) as e:
        steps.validate(built)
    by = {(f["expectation"], f["column"]): f for f in e.value.failures}
    held = df.loc[test_rows[0], "src_voice"]
    leaking = sorted(df.loc[(df["split"] != "test") & (df["src_voice"] == held), "id"])
    assert df.loc[train_rows[0], "id"] in leaking
    assert by[("expect_column_values_to_be_in_set", "chk_heldout_disjoint")]["row_ids"] == leaking
    assert by[("expect_column_values_to_be_in_set", "voice_set")]["row_ids"] == [df.loc[train_rows[1], "id"]]


def test_test_text_in_train_split_fails_contamination_gate(built: Path):
    """A test row whose normalised source text (case and punctuation aside) is a training text of the
    same direction is contamination; the same text in the other direction is not."""
    m = read_manifest(built)
    p = built / m["shards"][0]["path"]
    df = read_table(p)
    train = df[df["split"] == "train"]
    test_rows = df.index[df["split"] == "test"]
    tr = train.iloc[0]
    same = [i for i in test_rows if (df.at[i, "src_lang"], df.at[i, "tgt_lang"]) == (tr.src_lang, tr.tgt_lang)]
    other = [i for i in test_rows if (df.at[i, "src_lang"], df.at[i, "tgt_lang"]) != (tr.src_lang, tr.tgt_lang)]
    assert same and other
    df.loc[same[0], "src_text"] = tr.src_text.upper() + " !"
    df.loc[other[0], "tgt_text"] = tr.src_text  # other direction: not contamination
    write_table(df, p)
    with pytest.raises(DataValidationError) as e:
        steps.validate(built)
    by = {(f["expectation"], f["column"]): f for f in e.value.failures}
    assert by[("expect_column_values_to_be_in_set", "chk_no_contamination")]["row_ids"] == [df.loc[same[0], "id"]]


def test_validate_cli_names_contaminated_dev_row_and_shared_heldout_speaker(built: Path):
    """Issue 19 item 4: a dev row whose normalised target text is a training target of its direction,
    and a recorded held-out test speaker who also speaks a training row: ``uniss data validate``
    exits 2 and names exactly those rows under the two expectations."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    m = read_manifest(built)
    p = built / m["shards"][0]["path"]
    df = read_table(p)
    train = df.index[df["split"] == "train"]
    test = df.index[df["split"] == "test"]
    tr = df.loc[train[0]]
    same = next(i for i in test if (df.at[i, "src_lang"], df.at[i, "tgt_lang"]) == (tr.src_lang, tr.tgt_lang))
    df.loc[same, "split"] = "dev"
    df.loc[same, "tgt_text"] = "  " + tr.tgt_text.upper() + "!!"  # same text after App. C.1 normalisation
    spk = next(i for i in test if i != same)
    df.loc[[spk, train[1]], "voice_set"] = "real"
    df.loc[[spk, train[1]], "src_voice"] = "recorded-speaker-7"  # held-out speaker also in training
    write_table(df, p)
    r = CliRunner().invoke(app, ["data", "validate", str(built)], env={"COLUMNS": "400"})
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert f"expect_column_values_to_be_in_set(chk_no_contamination): 1 rows: {df.at[same, 'id']}" in out
    leak = ", ".join(sorted([df.at[spk, "id"], df.at[train[1], "id"]]))
    assert f"expect_column_values_to_be_in_set(chk_heldout_disjoint): 2 rows: {leak}" in out
    assert "Traceback" not in r.output


def test_direction_without_test_rows_fails_gate_naming_direction_and_counts(built: Path):
    """Every test row of one direction gone (here moved to dev; with real data the source re-ASR filter
    dropped them): the gate stops the data step, before any training, naming the direction and its
    split counts; the other direction's rows are not blamed."""
    m = read_manifest(built)
    victim = ("en", "zh")
    n_train = n_test = 0
    ids: list[str] = []
    for s in m["shards"]:
        p = built / s["path"]
        df = read_table(p)
        mine = (df["src_lang"] == victim[0]) & (df["tgt_lang"] == victim[1])
        ids += list(df.loc[mine, "id"])
        n_train += int((mine & (df["split"] == "train")).sum())
        n_test += int((mine & (df["split"] == "test")).sum())
        df.loc[mine & (df["split"] == "test"), "split"] = "dev"
        write_table(df, p)
    assert n_train and n_test  # the fixture had both before
    with pytest.raises(DataValidationError) as e:
        steps.validate(built)
    msg = f"direction en-zh has {n_train} train rows but 0 test rows"
    assert f"expect_column_values_to_be_in_set(chk_direction_heldout): {msg}" in str(e.value)
    by = {(f["expectation"], f["column"]): f for f in e.value.failures}
    f = by[("expect_column_values_to_be_in_set", "chk_direction_heldout")]
    assert f["message"] == msg and f["row_ids"] == sorted(ids)  # the en-zh rows only


def test_direction_heldout_rule_on_small_tables():
    """:func:`missing_heldout` / :func:`heldout_present`: a direction with train rows needs test rows
    (dev only when asked for); a direction without train rows and a complete one pass."""
    from uniss.unist.expectations import heldout_present, missing_heldout, split_counts

    df = pd.DataFrame({"id": [f"r{i}" for i in range(7)],
                       "src_lang": ["en", "en", "en", "zh", "zh", "zh", "zh"],
                       "tgt_lang": ["zh", "zh", "zh", "en", "en", "en", "en"],
                       "split": ["train", "train", "test", "train", "train", "train", "dev"]})
    assert split_counts(df) == {"en-zh": {"train": 2, "test": 1}, "zh-en": {"train": 3, "dev": 1}}
    assert missing_heldout(df) == ["direction zh-en has 3 train rows but 0 test rows"]
    assert heldout_present(df) == [True, True, True, False, False, False, False]
    assert missing_heldout(df, ("dev", "test")) == ["direction en-zh has 2 train rows but 0 dev rows",
                                                    "direction zh-en has 3 train rows but 0 test rows"]
    ok = df.assign(split=["train", "test", "dev", "train", "test", "dev", "test"])
    assert missing_heldout(ok, ("dev", "test")) == [] and all(heldout_present(ok, ("dev", "test")))
    only_eval = df[df["src_lang"] == "zh"].assign(split="test")  # no train rows: nothing to require
    assert missing_heldout(only_eval) == [] and all(heldout_present(only_eval))
