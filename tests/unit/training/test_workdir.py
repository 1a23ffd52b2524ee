"""Work directories (training/workdir.py): the phase mixture prepared from the data; the key
ignores the data path but not the config; the MLflow run id of a resumed phase."""

import json

from training.config import load_config
from training.workdir import prepare_phase, read_mlflow_run_id, work_dir_for

SMALL = ["seq_len=512", "batch_tokens=1024", "text_vocab_size=300"]


def test_phase_mixture_is_prepared_from_the_data(tiny_data, tmp_path):
    wd = prepare_phase(1, "tiny_phase1.yaml", tiny_data, overrides=SMALL, work_dir=tmp_path / "w")
    run = json.loads((wd / "run.json").read_text())
    assert set(run["packing"]["task_counts"]) == {"asr", "s2tt", "tts", "mt"}
    assert run["packing"]["useful_share"] > 0.9 and run["codec"]["sizes"]["semantic"] == 128
    assert (wd / "start" / "vocab.json").is_file()


def test_work_dir_is_keyed_by_inputs_not_data_path(tmp_path, monkeypatch):
    monkeypatch.setenv("UNISS_CHECKPOINT_ROOT", str(tmp_path))
    cfg = load_config("tiny_phase1")
    manifest = {"shards": [{"path": "a.parquet", "md5": "m1"}]}
    wd = work_dir_for(cfg, manifest, None, "/data/v1")
    assert wd.parent == tmp_path and wd.name.startswith("tiny_phase1_")
    assert work_dir_for(cfg, manifest, None, "/elsewhere") == wd
    assert work_dir_for(load_config("tiny_phase1", ["seed=7"]), manifest, None, "/data/v1") != wd
    assert work_dir_for(cfg, {"shards": [{"path": "a.parquet", "md5": "m2"}]}, None, "/data/v1") != wd


def test_mlflow_run_id_is_read_back(tmp_path):
    assert read_mlflow_run_id(tmp_path) is None
    (tmp_path / "mlflow_run_id").write_text("abc123\n")
    assert read_mlflow_run_id(tmp_path) == "abc123"


def test_work_dir_keys_of_before_are_kept(tmp_path, monkeypatch):
    """Optional ZeRO knobs left unset keep the work-dir keys of before (values computed at
    151cc13, before ``sub_group_size`` existed), so existing checkpoints still resume; set, they
    change the key."""
    monkeypatch.setenv("UNISS_CHECKPOINT_ROOT", str(tmp_path))
    manifest = {"shards": [{"path": "a.parquet", "md5": "m1"}]}
    # the shipped tiny configs changed since (alignment corpus; issue 16 recipe: smaller steps, LRs): their
    # values of then, given as overrides, still give the keys of then
    then = {"tiny_phase1": ["epochs=4", "data.alignment=false", "seq_len=1024", "batch_tokens=4096", "checkpoint_every=10",
                           "optim.lr=8e-4", "optim.warmup_steps=10", "text_vocab_size=4000"],
            "tiny_phase2": ["data.alignment=false", "seq_len=1024", "batch_tokens=4096", "epochs=2", "optim.lr=2e-4"],
            "tiny_phase3": ["seq_len=1024", "batch_tokens=4096", "optim.lr=2e-4", "optim.min_lr=2e-5"]}
    for name, key in (("tiny_phase1", "d132b64d6f09e04b"), ("tiny_phase2", "37d5536a39648120"),
                      ("tiny_phase3", "cbee274945509dfd"), ("0_5b_phase1", "19dee7c0152b8f43")):
        assert work_dir_for(load_config(name, then.get(name, [])), manifest, None, "/d").name == f"{name}_{key}"
    set_ = load_config("0_5b_phase1", ["zero.sub_group_size=10000000"])
    assert work_dir_for(set_, manifest, None, "/d").name != "0_5b_phase1_19dee7c0152b8f43"
    noisy = load_config("0_5b_phase1", ["data.speech_input_noise=0.3"])
    assert work_dir_for(noisy, manifest, None, "/d").name != "0_5b_phase1_19dee7c0152b8f43"
    weighted = load_config("0_5b_phase1", ["data.format_repeat.tts=2"])
    assert work_dir_for(weighted, manifest, None, "/d").name != "0_5b_phase1_19dee7c0152b8f43"


def _with_alignment(tiny_data, tmp_path):
    """A copy of the synthetic dataset with a 6-row alignment corpus (4 speech, 2 text) in its manifest."""
    import shutil

    import pandas as pd

    from training.data import load_rows
    from uniss.unist.io import file_md5

    d = tmp_path / "ds"
    shutil.copytree(tiny_data, d)
    rows = load_rows(d, split="train", subset="general")[:6]
    a = pd.DataFrame([{**r, "id": f"align-{i}", "kind": "speech" if i < 4 else "text"} for i, r in enumerate(rows)])
    for c in ("src_speaker", "src_linguistic", "src_semantic", "tgt_speaker", "tgt_linguistic", "tgt_semantic"):
        a[c] = [v if k == "speech" else [] for v, k in zip(a[c], a["kind"])]
    a.to_parquet(d / "alignment.parquet", index=False)
    m = json.loads((d / "manifest.json").read_text())
    m["alignment"] = {"path": "alignment.parquet", "md5": file_md5(d / "alignment.parquet"), "rows": 6}
    (d / "manifest.json").write_text(json.dumps(m))
    return d


def test_alignment_corpus_joins_phase1_and_the_phase2_replay_pool(tiny_data, tmp_path):
    d = _with_alignment(tiny_data, tmp_path)
    packing = {}
    for name, data, extra in (("off", d, ["data.alignment=false"]), ("on", d, ["data.alignment=true"]),
                              ("absent", tiny_data, ["data.alignment=true"])):
        wd = prepare_phase(1, "tiny_phase1.yaml", data, overrides=SMALL + extra, work_dir=tmp_path / name)
        packing[name] = json.loads((wd / "run.json").read_text())["packing"]
    assert packing["off"]["alignment_rows"] == 0 and packing["absent"]["alignment_rows"] == 0
    assert packing["on"]["alignment_rows"] == 6
    off, on = packing["off"]["task_counts"], packing["on"]["task_counts"]
    # 4 speech rows: 2 samples of each format; 2 text rows: 2 MT samples each
    assert {t: on[t] - off[t] for t in on} == {"asr": 8, "s2tt": 8, "tts": 8, "mt": 12}
    assert packing["absent"]["task_counts"] == off


def test_work_dir_key_follows_the_alignment_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("UNISS_CHECKPOINT_ROOT", str(tmp_path))
    cfg = load_config("tiny_phase1", ["data.alignment=true"])
    m = {"shards": [{"path": "a.parquet", "md5": "m1"}], "alignment": {"md5": "a1"}}
    keys = {work_dir_for(cfg, m, None, "/d").name, work_dir_for(cfg, {**m, "alignment": {"md5": "a2"}}, None, "/d").name}
    assert len(keys) == 2


def test_interleave_words_needs_word_aligned_data(tiny_data, tmp_path):
    """tiny_data was tokenized without --align-words: asking for interleaved words is a typed error
    that names the fix, before any compute."""
    import pytest

    from training.workdir import TrainError

    with pytest.raises(TrainError, match="--align-words"):
        prepare_phase(1, "tiny_phase1.yaml", tiny_data, overrides=SMALL + ["data.interleave_words=true"], work_dir=tmp_path / "w")


def test_format_repeat_weighs_a_task_in_the_prepared_mixture(tiny_data, tmp_path):
    """``data.format_repeat.tts=3`` puts three copies of every TTS sample in phase 1, the other tasks
    unchanged; a key outside ``data.formats`` is a ConfigError before any compute."""
    import pytest

    from training.config import ConfigError

    counts = {}
    for name, extra in (("plain", []), ("tts3", ["data.format_repeat.tts=3"])):
        wd = prepare_phase(1, "tiny_phase1.yaml", tiny_data, overrides=SMALL + extra, work_dir=tmp_path / name)
        counts[name] = json.loads((wd / "run.json").read_text())["packing"]["task_counts"]
    assert counts["plain"]["tts"] > 0
    assert counts["tts3"] == {**counts["plain"], "tts": 3 * counts["plain"]["tts"]}
    with pytest.raises(ConfigError, match="format_repeat"):
        load_config("tiny_phase1", ["data.format_repeat.quality=2"])
