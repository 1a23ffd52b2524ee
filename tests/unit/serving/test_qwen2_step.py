"""The lean Qwen2 decode step computes the library forward's hidden states (fused and unfused
projections), refuses architectures it does not implement, and the decoder decodes the same
greedy tokens with it as with the library forward."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_model as tm  # noqa: E402

from serving.decoder import ContinuousDecoder, DecodeRequest  # noqa: E402
from serving.engine import decoding_program, token_budgets  # noqa: E402
from serving.qwen2_step import Qwen2DecodeStep, unsupported_reason  # noqa: E402


@pytest.fixture(scope="module")
def engine():
    return tm.tiny_engine(seed=3)


def _prefilled(model, torch):
    """A left-padded batch of 3 prompts prefilled by the library forward: (ids, mask, positions, cache)."""
    from transformers import DynamicCache

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, :4] = 0  # row 0: 5 real tokens, left padded
    mask[2, :1] = 0
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    model.base_model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
    return ids, mask, pos, cache


@pytest.mark.parametrize("fuse_limit", [1 << 40, 0])
def test_step_matches_library_forward(engine, fuse_limit):
    import torch

    model = engine.model
    step = Qwen2DecodeStep(model, fuse_limit_bytes=fuse_limit)
    assert step.fused is (fuse_limit > 0)
    with torch.inference_mode():
        ids, mask, pos, c_lib = _prefilled(model, torch)
        _, _, _, c_lean = _prefilled(model, torch)
        for t in range(3):  # three steps: the cache grows on both sides
            new = ids[:, t:t + 1]
            mask = torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], dim=1)
            p = pos[:, -1:] + 1 + t
            ref = model.base_model(input_ids=new, attention_mask=mask, position_ids=p, past_key_values=c_lib,
                                   use_cache=True).last_hidden_state[:, -1]  # (3, D)
            got = step(new, mask, p, c_lean)
            assert got.shape == ref.shape
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
        assert c_lean.get_seq_length() == c_lib.get_seq_length() == 12


def test_unsupported_models_are_refused():
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    assert unsupported_reason(gpt2) == "not a Qwen2 model"
    with pytest.raises(ValueError, match="not a Qwen2 model"):
        Qwen2DecodeStep(gpt2)
    small = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    sliding = Qwen2ForCausalLM(Qwen2Config(**small, use_sliding_window=True, sliding_window=8, max_window_layers=0))
    assert unsupported_reason(sliding) == "sliding-window attention"
    scaled = Qwen2ForCausalLM(Qwen2Config(**small, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}))
    assert unsupported_reason(scaled) == "RoPE type linear"
    assert unsupported_reason(Qwen2ForCausalLM(Qwen2Config(**small))) is None


def test_decoder_tokens_equal_with_and_without_the_lean_step(engine):
    reqs = []
    for i, d in enumerate([0.5, 1.2, 0.8]):
        t = engine.codec.encode([tm.tone(d, 170 + 50 * i)])[0]
        tgt = "zh" if i % 2 == 0 else "en"
        prompt = engine.prompt_ids(np.asarray(t.speaker), np.asarray(t.linguistic), mode="performance", tgt=tgt, speed=1.0)
        prog = decoding_program(engine.vocab, "performance", tgt=tgt, speed=1.0, budgets=token_budgets(d, 1.0))
        reqs.append((prompt, prog))
    out = {}
    for lean in (True, False):
        dec = ContinuousDecoder(engine.model, engine.vocab, engine.text_exclude, max_batch=2, lean_step=lean)
        assert (dec._step is not None) is lean
        rs = [DecodeRequest(p, g, 10_000, do_sample=False) for p, g in reqs]
        dec.run(rs)
        out[lean] = [r.tokens for r in rs]
    assert out[True] == out[False]
    assert all(len(t) > 3 for t in out[True])
