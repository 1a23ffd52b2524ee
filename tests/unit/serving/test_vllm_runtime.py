"""The constraint-to-vLLM mapping (serving.vllm_runtime), without vllm installed (no GPU here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_model as tm  # noqa: E402

from serving.decoder import AllowedIds  # noqa: E402
from serving.engine import ModelLoadError, StageConstraint, TranslationEngine, decoding_program  # noqa: E402
from serving.vllm_runtime import (  # noqa: E402
    PROGRAM_KEY,
    StageLogits,
    VllmRuntime,
    VllmUnavailableError,
    logits_processor_class,
    program_from_json,
    sampling_kwargs,
)


@pytest.fixture(scope="module")
def parts():
    _, tok, vocab, _ = tm.build_tiny(0)
    eng_excl = sorted({vocab.pad_id, vocab.im_start_id, vocab.eos_id})
    return vocab, eng_excl, AllowedIds(vocab, eng_excl)


def _program(vocab):
    return decoding_program(vocab, "performance", tgt="zh", speed=1.0, budgets={"text": 3, "semantic": 4, "semantic_min": 2})


def test_module_does_not_import_vllm():
    assert "vllm" not in sys.modules


def test_sampling_kwargs(parts):
    vocab, _, allowed = parts
    prog = _program(vocab)
    kw = sampling_kwargs(prog, allowed, vocab.eos_id, max_tokens=20, seed=5, do_sample=True, temperature=0.7, top_p=0.8,
                         repetition_penalty=1.1)
    assert (kw["temperature"], kw["top_p"], kw["repetition_penalty"], kw["seed"], kw["max_tokens"]) == (0.7, 0.8, 1.1, 5, 20)
    assert kw["stop_token_ids"] == [vocab.eos_id] and kw["detokenize"] is False
    json.dumps(kw["extra_args"])  # crosses process boundaries
    assert program_from_json(kw["extra_args"][PROGRAM_KEY]) == prog
    ids = set(kw["allowed_token_ids"])
    a, z = vocab.range("semantic")
    assert set(range(a, z)) <= ids and vocab.eos_id in ids and vocab.token_id("<|start_semantic_token|>") in ids
    assert not ids & set(range(*vocab.range("speaker"))) and not ids & set(range(*vocab.range("linguistic")))
    assert vocab.pad_id not in ids
    greedy = sampling_kwargs(prog, allowed, vocab.eos_id, max_tokens=1, seed=None, do_sample=False, temperature=0.7, top_p=0.8,
                             repetition_penalty=1.0)
    assert greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0 and greedy["seed"] is None
    with pytest.raises(ValueError):
        sampling_kwargs(prog, allowed, vocab.eos_id, max_tokens=0, seed=None, do_sample=True, temperature=0.7, top_p=0.8, repetition_penalty=1.1)


def test_stage_logits_match_the_hf_constraint(parts):
    """Token by token, the vLLM per-request function allows exactly what StageConstraint allows."""
    import torch

    vocab, excl, allowed = parts
    prog = _program(vocab)
    a, _ = vocab.range("text")
    s0, _ = vocab.range("semantic")
    text_tok = next(i for i in range(a, a + 50) if i not in excl)
    out_ids = [text_tok, text_tok, vocab.token_id("<|end_content|>"), vocab.token_id("<|start_semantic_token|>"),
               s0, s0 + 1, s0 + 2, s0 + 3, vocab.token_id("<|end_semantic_token|>"), vocab.eos_id]
    n = vocab.total + 6  # padded embedding rows
    fn = StageLogits(prog, allowed, vocab.eos_id)
    hf = StageConstraint(vocab, [prog], prompt_len=2, n_logits=n, text_exclude=excl)
    live: list[int] = []  # vLLM hands the live output list
    for t in range(len(out_ids)):
        got = torch.isfinite(fn(live, torch.zeros(n)))
        want = torch.isfinite(hf(torch.tensor([[0, 0] + out_ids[:t]]), torch.zeros((1, n)))[0])
        assert torch.equal(got, want), f"step {t}"
        assert bool(got[out_ids[t]])
        live.append(out_ids[t])
    # a preempted request is recomputed from an empty output list: the cursor replays
    assert torch.isfinite(fn([], torch.zeros(n))).sum() == torch.isfinite(StageLogits(prog, allowed, vocab.eos_id)([], torch.zeros(n))).sum()


def test_stage_logits_keep_allowed_values(parts):
    import torch

    vocab, _, allowed = parts
    prog = [("force", vocab.token_id("<|start_semantic_token|>")), ("force", vocab.eos_id)]
    x = torch.randn(vocab.total)
    y = StageLogits(prog, allowed, vocab.eos_id)([], x)
    k = vocab.token_id("<|start_semantic_token|>")
    assert y[k] == x[k] and torch.isinf(y).sum() == vocab.total - 1


def test_processor_class_on_a_fake_adapter(parts):
    vocab, excl, _ = parts

    class FakeAdapter:  # the vllm AdapterLogitsProcessor surface this module relies on
        def __init__(self, vllm_config=None, device=None, is_pin_memory=False):
            pass

    class Params:
        def __init__(self, extra_args):
            self.extra_args = extra_args

    cls = logits_processor_class(vocab, excl, base=FakeAdapter)
    assert issubclass(cls, FakeAdapter)
    proc = cls(None, "cpu", False)
    assert proc.is_argmax_invariant() is False
    assert proc.new_req_logits_processor(Params(None)) is None  # requests without a program pass through
    prog = _program(vocab)
    kw = sampling_kwargs(prog, AllowedIds(vocab, excl), vocab.eos_id, max_tokens=5, seed=1, do_sample=True, temperature=0.7, top_p=0.8,
                         repetition_penalty=1.1)
    assert isinstance(proc.new_req_logits_processor(Params(kw["extra_args"])), StageLogits)
    cls.validate_params(Params(kw["extra_args"]))
    with pytest.raises(ValueError, match="bad step"):
        cls.validate_params(Params({PROGRAM_KEY: [["span", "speaker", 1, 2, 0]]}))


def test_without_vllm_the_runtime_says_so(parts):
    vocab, excl, _ = parts
    if "vllm" in sys.modules:
        pytest.skip("vllm installed")
    with pytest.raises(VllmUnavailableError, match="vllm is not installed"):
        VllmRuntime("/nonexistent", vocab, excl)
    with pytest.raises(VllmUnavailableError):
        logits_processor_class(vocab, excl)
    model, tok, vocab, codec = tm.build_tiny(0)
    eng = TranslationEngine(model, tok, vocab, codec, runtime="vllm", meta={"model_dir": "/nonexistent"})
    with pytest.raises(ModelLoadError, match="vllm is not installed"):
        eng.translate([tm.tone(0.5)], target_language="zh", require_speech=False)
