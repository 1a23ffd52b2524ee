"""The MSLM recipe through the existing launcher: the prepared packs hold the two tasks at 3:1 with loss
only on unit tokens; a real 2-rank DeepSpeed ZeRO-3 CPU run (slow) whose loss falls and whose bundle
records its recipe."""

import json

import numpy as np
import pytest

from training.launch import run_phase
from training.metric_logging import read_jsonl
from training.workdir import PACKS_FILE, RUN_FILE, prepare_phase

SMALL = ["seq_len=512", "batch_tokens=1024"]


def test_prepared_packs_hold_both_tasks_three_to_one(tiny_data, tmp_path):
    from uniss.bundle import load_bundle_tokenizer

    wd = prepare_phase(1, "tiny_mslm.yaml", tiny_data, overrides=SMALL, work_dir=tmp_path / "w")
    run = json.loads((wd / RUN_FILE).read_text())
    # 24 rows x 2 directions: 3 translation copies + 1 generation sample each
    assert run["packing"]["task_counts"] == {"mslm_translate": 144, "mslm_generate": 48}
    assert run["packing"]["n_dropped"] == 0
    _, vocab = load_bundle_tokenizer(wd / "start")
    labels = np.load(wd / PACKS_FILE)["labels"]
    lab = labels[labels != -100]
    fam = vocab.family_of(lab)
    # loss on linguistic/semantic units, their end tokens and <|im_end|>: no text, speaker or speed token
    end_ids = {vocab.token_id("<|end_glm_token|>"), vocab.token_id("<|end_semantic_token|>")}
    assert set(np.unique(fam).tolist()) == {0, 2, 3, 5}
    assert set(lab[fam == 0].tolist()) == {vocab.eos_id} and set(lab[fam == 5].tolist()) == end_ids


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("mslm")
    out = run_phase(1, "tiny_mslm.yaml", tiny_data, root / "bundle", overrides=SMALL + ["max_steps=8", "optim.warmup_steps=2"],
                    nproc=2, work_dir=root / "work", timeout_s=600)
    return {"bundle": out, "work": root / "work"}


@pytest.mark.slow
def test_zero3_run_loss_falls_and_bundle_records_recipe(trained):
    from uniss.bundle import load_bundle

    losses = {r["step"]: r["loss"] for r in read_jsonl(trained["work"] / "metrics.jsonl") if r.get("kind") == "metrics" and "loss" in r}
    assert sorted(losses) == list(range(1, 9))
    assert (losses[7] + losses[8]) / 2 < (losses[1] + losses[2]) / 2 - 0.3
    b = load_bundle(trained["bundle"], with_codec=False)
    assert b.meta["recipe"] == "mslm" and b.meta["phase"] == 1 and b.meta["config"]["data"]["translation_upsample"] == 3
    assert b.meta["train_metrics"]["steps"] == 8


@pytest.mark.slow
def test_trained_bundle_translates_through_the_engine(trained, monkeypatch):
    """The exported bundle loads into ``TranslationEngine`` (same ``translate`` interface) and runs the
    two-stage MSLM program; the toy test codec stands in for the synthetic dataset's codec directory,
    which holds no weights."""
    import sys
    from pathlib import Path

    from serving.engine import TranslationEngine

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
    import tiny_model as tm

    codec = tm.ToyCodec()
    v = json.loads((trained["bundle"] / "vocab.json").read_text())
    codec.sizes = {k: v[f"{k}_size"] for k in ("speaker", "semantic", "linguistic")}  # the synthetic dataset's codebooks
    monkeypatch.setattr("uniss.codecs.load_codec", lambda d: codec)
    eng = TranslationEngine.load(trained["bundle"])
    assert eng.recipe == "mslm"
    res = eng.translate([tm.tone(1.0), tm.tone(0.7, 330)], target_language=["zh", "en"], seed=0, require_speech=False)
    for r in res:
        assert r.complete, r.reason
        assert r.target_text is None and r.wav.shape[0] == 320 * r.semantic.shape[0] > 0
