"""The S2ST-Omni recipe through the existing launcher: prepared packs carry the adapter frames of
their placeholders; a real 2-rank DeepSpeed ZeRO-3 CPU run of both stages (slow): stage 1 updates
only the adapter (LM weights bit-identical), stage 2 both; bundles record their recipe and hold the
adapter."""

import json

import numpy as np
import pytest
import torch

from training.config import OMNI_FORMATS as CONFIG_OMNI_FORMATS
from training.config import ConfigError, load_config
from training.launch import run_phase
from training.metric_logging import read_jsonl
from training.synthetic import make_synthetic_dataset
from training.workdir import PACKS_FILE, RUN_FILE, prepare_phase
from uniss.omni import OMNI_FORMATS

STEPS = ["max_steps=8", "epochs=10", "optim.warmup_steps=2"]


def test_config_formats_agree_and_stage_rules():
    assert CONFIG_OMNI_FORMATS == OMNI_FORMATS
    assert load_config("tiny_omni_stage1").omni.train_lm is False and load_config("tiny_omni_stage2").omni.train_lm is True
    with pytest.raises(ConfigError, match="omni section"):
        load_config("tiny_phase1", ["omni={train_lm: true}"])
    with pytest.raises(ConfigError, match="s2st-omni"):
        load_config("tiny_phase1", ["data.formats=[omni_s2tt]"])
    with pytest.raises(ConfigError, match="two stages"):
        load_config("tiny_omni_stage1", ["phase=3"])


@pytest.fixture(scope="module")
def omni_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("omni")
    mp = pytest.MonkeyPatch()
    mp.setenv("UNISS_CHECKPOINT_ROOT", str(root / "ckpt"))  # the feature cache lives under it
    data = make_synthetic_dataset(root / "ds", 24, sizes={"speaker": 64, "semantic": 128, "linguistic": 64}, with_audio=True)
    yield {"root": root, "data": data}
    mp.undo()


def test_prepared_packs_hold_features_in_placeholder_order(omni_env, tmp_path):
    from uniss.bundle import load_bundle_tokenizer

    wd = prepare_phase(1, "tiny_omni_stage1.yaml", omni_env["data"], work_dir=tmp_path / "w")
    run = json.loads((wd / RUN_FILE).read_text())
    assert run["packing"]["task_counts"] == {"omni_s2tt": 48} and run["packing"]["n_dropped"] == 0  # 24 rows x 2 sides
    _, vocab = load_bundle_tokenizer(wd / "start")
    z = np.load(wd / PACKS_FILE)
    ph = vocab.token_id("<|audio_placeholder_1|>")
    n_ph = (z["input_ids"] == ph).sum(axis=1)
    assert np.array_equal(np.diff(z["feature_offsets"]), n_ph) and z["features"].shape == (n_ph.sum(), 1024)
    assert z["features"].dtype == np.float16 and np.isfinite(z["features"]).all() and z["features"].astype(np.float32).std() > 0
    lab = z["labels"][z["labels"] != -100]
    fam = vocab.family_of(lab)
    assert set(np.unique(fam).tolist()) <= {0, 5}  # loss on text, <|end_content|> and <|im_end|> only
    assert set(lab[fam == 5].tolist()) == {vocab.token_id("<|end_content|>")}
    assert not np.isin(z["labels"], [ph]).any()
    assert (wd / "start" / "adapter" / "adapter.safetensors").is_file()
    assert len(list((omni_env["root"] / "ckpt" / "omni_features").glob("*/*.npy"))) == 48


@pytest.fixture(scope="module")
def trained(omni_env):
    root, data = omni_env["root"], omni_env["data"]
    b1 = run_phase(1, "tiny_omni_stage1.yaml", data, root / "b1", overrides=STEPS, nproc=2, work_dir=root / "w1", timeout_s=600)
    b2 = run_phase(2, "tiny_omni_stage2.yaml", data, root / "b2", init_bundle=b1, overrides=STEPS, nproc=2, work_dir=root / "w2",
                   timeout_s=600)
    return {"b1": b1, "b2": b2, "w1": root / "w1", "w2": root / "w2"}


def _weights(d):
    from safetensors.torch import load_file

    return load_file(str(next(d.glob("*.safetensors"))))


def _losses(work):
    return {r["step"]: r["loss"] for r in read_jsonl(work / "metrics.jsonl") if r.get("kind") == "metrics" and "loss" in r}


@pytest.mark.slow
def test_stage1_trains_only_the_adapter_stage2_both(trained):
    from uniss.bundle import load_bundle

    start_lm, b1_lm, b2_lm = (_weights(p / "model") for p in (trained["w1"] / "start", trained["b1"], trained["b2"]))
    assert all(torch.equal(start_lm[k], b1_lm[k]) for k in start_lm)  # stage 1: the LM is frozen
    assert any(not torch.equal(b1_lm[k], b2_lm[k]) for k in b1_lm)  # stage 2: the LM moves
    a0, a1, a2 = (_weights(p / "adapter") for p in (trained["w1"] / "start", trained["b1"], trained["b2"]))
    assert all(not torch.equal(a0[k], a1[k]) for k in a0) and any(not torch.equal(a1[k], a2[k]) for k in a1)
    l1, l2 = _losses(trained["w1"]), _losses(trained["w2"])
    assert sorted(l1) == sorted(l2) == list(range(1, 9))
    assert (l1[7] + l1[8]) / 2 < (l1[1] + l1[2]) / 2  # the adapter alone lowers the loss a little
    assert (l2[7] + l2[8]) / 2 < (l2[1] + l2[2]) / 2 - 0.3 and l2[8] < l1[8]
    for k, b in (("b1", 1), ("b2", 2)):
        bun = load_bundle(trained[k], with_codec=False)
        assert bun.meta["recipe"] == "s2st-omni" and bun.meta["phase"] == b and bun.meta["train_metrics"]["steps"] == 8
        assert bun.meta["config"]["omni"]["train_lm"] is (b == 2)
    print({"stage1_loss": [l1[1], l1[8]], "stage2_loss": [l2[1], l2[8]]})


@pytest.mark.slow
def test_trained_bundle_translates_through_the_engine(trained, omni_env):
    """The stage-2 bundle loads into ``TranslationEngine`` (same ``translate`` interface, no codec) and
    runs S2TT then TTS; a model trained for 16 tiny steps writes rough text, so the TTS step may refuse
    it: then the row keeps its text and says why."""
    from serving.engine import TranslationEngine
    from serving.omni import VoiceMatcher
    from training.data import load_rows
    from uniss.audio import load_audio
    from uniss.engines.kokoro import KokoroTTS

    eng = TranslationEngine.load(trained["b2"])
    assert eng.recipe == "s2st-omni" and eng.codec is None
    eng.voices = VoiceMatcher(KokoroTTS(threads=2), voices={"en": ["kokoro:jf_alpha"], "zh": ["kokoro:jf_alpha"]})
    row = next(r for r in load_rows(omni_env["data"], split="dev", subset="general", keep_audio=True) if r["tgt_lang"] == "en")
    (res,) = eng.translate([load_audio(row["src_audio"])], target_language="en", do_sample=False, require_speech=False)
    v = eng.vocab
    gen = [int(t) for t in eng.last_generated[0] if t != v.pad_id]
    assert gen[-2:] == [v.token_id("<|end_content|>"), v.eos_id] and all(t < v.text_size for t in gen[:-2])
    assert isinstance(res.target_text, str) and res.target_text
    if res.complete:
        assert res.wav.dtype == np.float32 and res.wav.shape[0] > 0
    else:
        assert res.reason.startswith("tts:") and res.wav.size == 0
    print({"reference": row["tgt_text"], "translation": res.target_text, "complete": res.complete, "wav_s": res.duration_s})
