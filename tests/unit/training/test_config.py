"""Configs: every shipped YAML loads; overrides; unknown keys and bad values are rejected."""

import pytest
from pydantic import ValidationError

from training.config import ConfigError, config_names, deepspeed_config, load_config


@pytest.mark.parametrize("name", config_names())
def test_every_shipped_config_loads(name):
    cfg = load_config(name)
    expected = {"mslm": f"{cfg.size}_mslm.yaml", "s2st-omni": f"{cfg.size}_omni_stage{cfg.phase}.yaml"}
    assert name == expected.get(cfg.recipe, f"{cfg.size}_phase{cfg.phase}.yaml")
    assert cfg.optim.weight_decay == 0.1 and cfg.optim.betas == (0.9, 0.95)
    assert cfg.zero.stage == 3
    ds = deepspeed_config(cfg, 2, bf16=False)
    assert ds["train_batch_size"] == ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * 2
    assert ds["zero_optimization"]["stage"] == 3


def test_paper_learning_rates():
    p1, p2, p3 = (load_config(f"1_5b_phase{i}") for i in (1, 2, 3))
    assert (p1.optim.lr, p1.optim.schedule) == (8e-4, "constant") and p1.optim.warmup_steps > 0
    assert (p2.optim.lr, p2.optim.schedule, p2.optim.warmup_frac) == (2e-4, "constant", 0.05)
    assert (p3.optim.lr, p3.optim.min_lr, p3.optim.schedule, p3.optim.warmup_steps) == (5e-5, 5e-6, "cosine", 0)
    assert p1.seq_len == 18432
    assert p2.data.replay_ratio == 0.5 and set(p2.data.formats) == {"quality", "performance", "direct"}
    assert p3.data.subset == "hq" and "direct" not in p3.data.formats and p3.data.replay_ratio == 0
    assert all(p.data.speech_input_noise == 0 for p in (p1, p2, p3))  # not in the paper: its configs keep it off


def test_overrides_nested_and_typed():
    cfg = load_config("tiny_phase1.yaml", ["optim.lr=1e-3", "data.use_linguistic=false", "max_steps=7", "optim.betas=[0.8, 0.9]"])
    assert cfg.optim.lr == 1e-3 and cfg.data.use_linguistic is False and cfg.max_steps == 7
    assert cfg.optim.betas == (0.8, 0.9)
    with pytest.raises(ValidationError, match="frozen"):
        cfg.optim = None  # frozen
    assert cfg.optim.lr == 1e-3


@pytest.mark.parametrize("ovr,needle", [
    (["optimizer.lr=1"], "optimizer"),
    (["optim.lrr=1"], "optim.lrr"),
    (["optim.lr=-1"], "optim.lr"),
    (["phase=4"], "phase"),
    (["nokey"], "key=value"),
    (["pretrained=/x"], "phase 1 only"),
    (["data.speech_input_noise=1.0"], "data.speech_input_noise"),
])
def test_bad_config_is_a_clear_error(ovr, needle):
    o = ovr if needle != "phase 1 only" else ovr
    name = "tiny_phase2.yaml" if needle == "phase 1 only" else "tiny_phase1.yaml"
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(name, o)


def test_missing_config_names_the_shipped_ones():
    with pytest.raises(ConfigError, match="tiny_phase1.yaml"):
        load_config("nope.yaml")


def test_grad_accum_from_token_batch():
    cfg = load_config("tiny_phase1", ["batch_tokens=16384", "seq_len=2048"])
    assert cfg.grad_accum(2) == 4 and cfg.grad_accum(1) == 8


def test_zero3_sub_group_size_is_opt_in():
    """Unset: DeepSpeed's default (absent from the JSON); set: passed through (bounds the AdamW
    temporaries of a ZeRO-3 rank, benchmarks/bench_qwen05_zero3.py)."""
    assert "sub_group_size" not in deepspeed_config(load_config("0_5b_phase1"), 2, bf16=False)["zero_optimization"]
    cfg = load_config("0_5b_phase1", ["zero.sub_group_size=10000000"])
    assert deepspeed_config(cfg, 2, bf16=False)["zero_optimization"]["sub_group_size"] == 10_000_000
    with pytest.raises(ConfigError, match="sub_group_size"):
        load_config("0_5b_phase1", ["zero.sub_group_size=0"])
