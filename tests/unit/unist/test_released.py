"""The released UniST (issue 19 item 2): a small Parquet file written here in the schema the public
reproduction documents becomes a gated token-only dataset in the paper layout; training builds
phase-2 samples from it in the 180,407-id layout and a tiny model takes one optimizer step on them;
evaluation refuses it with a typed error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uniss.unist import steps
from uniss.unist.errors import DataValidationError, ManifestError
from uniss.unist.io import read_table, write_table
from uniss.unist.params import DataParams
from uniss.unist.released import build_released, read_unist_parquet

PAIRS = [("the weather is nice today", "今天天气很好", "en", "zh"), ("my friend buys a book", "我朋友买一本书", "en", "zh"),
         ("我妈妈喜欢喝茶", "my mother likes tea", "zh", "en"), ("老师想要一个苹果", "the teacher wants an apple", "zh", "en"),
         ("the doctor reads a letter", "医生读一封信", "en", "zh"), ("学生明天去学校", "the student goes to school tomorrow", "zh", "en")]


def _write_unist(path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i, (src, tgt, sl, tl) in enumerate(PAIRS):
        n = 12 + 3 * i
        rows.append({"id": f"unist-{i:03d}", "transcription": src, "translation": tgt,
                     "src_lang": {"en": "eng", "zh": "cmn"}[sl], "tgt_lang": tl,
                     "source_glm": rng.integers(0, 16384, n // 4 + 1).tolist(),
                     "target_bicodec": rng.integers(0, 8192, n).tolist(),
                     "bicodec_global": rng.integers(0, 4096, 32).tolist(),
                     "source_bicodec": rng.integers(0, 8192, n).tolist(),
                     "dataset_name": "test", "split": "test" if i >= 4 else "train",
                     "duration_ratio": [1.0, 1.2, 0.7, None, 1.4, 0.9][i]})
    pd.DataFrame(rows).to_parquet(path)
    return path


@pytest.fixture
def released(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    s = build_released(_write_unist(tmp_path / "unist-00000.parquet"), out, params=DataParams())
    assert s["rows"] == 6 and s["counts"] == {"en-zh/test": 1, "en-zh/train": 2, "zh-en/test": 1, "zh-en/train": 2}
    return out


def test_reader_maps_the_schema(tmp_path: Path):
    df = read_unist_parquet(_write_unist(tmp_path / "u.parquet"))
    r = df.iloc[2]
    assert (r.src_lang, r.tgt_lang, r.src_text, r.tgt_text) == ("zh", "en", "我妈妈喜欢喝茶", "my mother likes tea")
    assert (r.ratio, r.speed_index) == (0.7, 6) and df.iloc[3].ratio == 1.0  # absent ratio: <|speed_9|>
    assert len(r.src_speaker) == 32 and r.tgt_speaker == r.src_speaker and r.tgt_linguistic == []
    bad = tmp_path / "bad.parquet"
    pd.read_parquet(tmp_path / "u.parquet").drop(columns=["source_glm"]).to_parquet(bad)
    with pytest.raises(ManifestError, match="field 'source_glm': missing"):
        read_unist_parquet(bad)


def test_token_only_dataset_is_gated_and_refused_by_evaluation(released: Path):
    from evaluation.common import TokenOnlyDataError
    from evaluation.evaluate import _load_rows
    from uniss.codecs.base import CodecError, read_manifest as codec_manifest
    from uniss.codecs.paper import PaperCodec, is_token_only
    from uniss.unist.dataset import read_manifest

    r = steps.validate(released)
    assert r["passed"] and r["suite"] == "unist_samples_token_only" and r["expectations"] == 12
    m = read_manifest(released)
    assert m["token_only"] and m["validation"]["passed"] and m["version"].startswith("sha-")
    assert codec_manifest(released / "codec").backend == "paper" and is_token_only(released / "codec")
    with pytest.raises(CodecError, match="token-only"):
        PaperCodec.load(released / "codec")
    with pytest.raises(TokenOnlyDataError, match="token-only dataset"):
        _load_rows(str(released), "test")


def test_token_only_gate_names_bad_rows(released: Path):
    from uniss.unist.dataset import read_manifest

    p = released / read_manifest(released)["shards"][0]["path"]
    df = read_table(p)
    df = df.set_index("id", drop=False)
    df.at["unist-000", "tgt_semantic"] = [9000]  # outside BiCodec's 8,192 codes
    df.at["unist-004", "src_text"] = df.at["unist-000", "src_text"].upper() + "."  # test text seen in training
    df = df.reset_index(drop=True)
    write_table(df, p)
    with pytest.raises(DataValidationError) as e:
        steps.validate(released)
    by = {f["column"]: f["row_ids"] for f in e.value.failures}
    assert by["chk_token_range"] == ["unist-000"] and by["chk_no_contamination"] == ["unist-004"]


def test_phase2_samples_in_the_paper_layout_and_one_step(released: Path):
    """Phase-2 formats (Quality, Performance, Direct) from the gated rows in the 180,407-id layout,
    then one AdamW step of a tiny Qwen2 with that vocabulary on them."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from training.data import check_dataset, codec_info, load_rows
    from training.packing import pack_samples
    from training.samples import build_phase_samples
    from uniss.vocab import SpeechVocab

    steps.validate(released)
    check_dataset(released)
    assert codec_info(released / "codec")["backend"] == "paper"
    vocab = SpeechVocab.paper()
    assert vocab.total == 180_407
    enc = lambda text: [b % 151_000 for b in text.encode()]  # noqa: E731 - a stand-in text tokenizer (ids < text range)
    rows = load_rows(released, split="train", subset="general")
    samples = build_phase_samples(vocab, enc, rows, formats=["quality", "performance", "direct"], seed=0)
    assert sorted({s.task for s in samples}) == ["direct", "performance", "quality"] and len(samples) == 12
    assert max(int(s.input_ids.max()) for s in samples) < 180_407
    packs, _ = pack_samples(samples, 512, vocab.pad_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab.total, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.as_tensor(np.stack([p.input_ids for p in packs[:1]]), dtype=torch.long)  # (1, L)
    labels = torch.as_tensor(np.stack([p.labels for p in packs[:1]]), dtype=torch.long)  # (1, L)
    loss0 = model(input_ids=ids, labels=labels).loss
    loss0.backward()
    opt.step()
    loss1 = model(input_ids=ids, labels=labels).loss
    assert torch.isfinite(loss0) and float(loss1) < float(loss0)


def test_import_unist_cli(tmp_path: Path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    f = _write_unist(tmp_path / "u.parquet")
    r = CliRunner().invoke(app, ["data", "import-unist", str(f), "--out", str(tmp_path / "d"), "--no-register"],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "imported 6 token-only samples" in " ".join(r.output.split()) and "gate passed (12 expectations)" in r.output
    r = CliRunner().invoke(app, ["data", "import-unist", str(tmp_path / "missing.parquet"), "--no-register"])
    assert r.exit_code == 2 and "ManifestError" in r.output


@pytest.mark.slow
def test_phase2_trains_through_the_zero3_recipe_in_the_paper_layout(released: Path, tmp_path: Path):
    """The platform's own path, not a hand loop: ``run_phase(2, ...)`` (prepare -> torchrun ->
    DeepSpeed ZeRO-3 recipe -> export) on the token-only dataset, starting from a tiny Qwen2 whose
    tokenizer has Qwen2.5's 151,665 text ids, so every sample lives in the 180,407-id layout."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.unit.test_lm import _qwen_like_text_tokenizer
    from training.launch import run_phase
    from training.metric_logging import read_jsonl
    from uniss.bundle import load_bundle
    from uniss.bundle import save_bundle
    from uniss.lm import build_speech_tokenizer, expand_vocab, vocab_for
    from uniss.vocab import SpeechVocab

    steps.validate(released)
    text = _qwen_like_text_tokenizer()
    vocab = vocab_for(text, {"speaker": 4096, "semantic": 8192, "linguistic": 16384}, layout="paper")
    assert vocab == SpeechVocab.paper()
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(text), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                                         max_position_embeddings=1024))
    tok = build_speech_tokenizer(text, vocab)
    expand_vocab(model, vocab, tokenizer=tok)
    init = save_bundle(tmp_path / "phase1", model=model, tokenizer=tok, vocab=vocab, meta={"phase": 1, "size": "tiny"})
    out = run_phase(2, "tiny_phase2.yaml", released, tmp_path / "phase2", init_bundle=init, nproc=1,
                    overrides=["max_steps=2", "seq_len=512", "batch_tokens=512", "checkpoint_every=2"],
                    work_dir=tmp_path / "work", timeout_s=900)
    steps_logged = [r for r in read_jsonl(tmp_path / "work" / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in steps_logged][-1] == 2 and all(np.isfinite(r["loss"]) for r in steps_logged)
    mb = load_bundle(out, with_codec=False)
    assert mb.meta["phase"] == 2 and mb.vocab == SpeechVocab.paper() and mb.vocab.total == 180_407
    assert mb.model.get_input_embeddings().weight.shape[0] >= 180_407
