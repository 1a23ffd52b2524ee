"""TranslationEngine on a tiny random-init bundle: shapes, constrained decoding, batching, loading."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_model as tm  # noqa: E402

from serving.engine import (  # noqa: E402
    EngineError,
    ModelLoadError,
    StageConstraint,
    TranslationEngine,
    decoding_program,
    token_budgets,
)
from uniss.audio import AudioError  # noqa: E402
from uniss.errors import UnissError  # noqa: E402
from uniss.vocab import FAMILIES  # noqa: E402


@pytest.fixture(scope="module")
def engine() -> TranslationEngine:
    return tm.tiny_engine(seed=0)


@pytest.fixture(scope="module")
def wavs() -> list[np.ndarray]:
    return [tm.tone(1.0, 220), tm.tone(0.6, 330), tm.tone(1.4, 150)]


def _walk(engine: TranslationEngine, program, ids: list[int]) -> None:
    """Assert every generated id is allowed by the program stage it was generated in."""
    v = engine.vocab
    text_ok = set(range(*v.range("text"))) - set(engine.text_exclude)
    sem_ok = set(range(*v.range("semantic")))
    i, count = 0, 0
    for pos, tok in enumerate(ids):
        if i >= len(program):
            assert tok in (v.eos_id, v.pad_id), f"token {tok} after the program ended (pos {pos})"
            continue
        step = program[i]
        if step[0] == "force":
            assert tok == step[1], f"pos {pos}: expected forced {step[1]}, got {tok}"
            i += 1
            continue
        allowed = (text_ok if step[1] == "text" else sem_ok) | {step[2]}
        fam = FAMILIES[int(v.family_of([tok])[0])]
        assert tok in allowed, f"pos {pos}: {fam} token {tok} inside a {step[1]} span"
        if tok == step[2]:
            i, count = i + 1, 0
        else:
            count += 1
            assert count <= step[3]
    assert i == len(program), "program not finished: output truncated"


@pytest.mark.parametrize("mode", ["quality", "performance", "direct"])
def test_constrained_decoding_never_leaves_the_family(engine, wavs, mode):
    tgts = ["zh", "en", "zh"]
    res = engine.translate(wavs, target_language=tgts, mode=mode, seed=1, require_speech=False)
    gen = engine.last_generated
    assert gen.shape[0] == 3
    for k, r in enumerate(res):
        prog = decoding_program(engine.vocab, mode, tgt=tgts[k], speed=1.0, budgets=token_budgets(r.source_duration_s, 1.0))
        _walk(engine, prog, gen[k].tolist())
        assert r.complete and r.reason is None
        assert r.wav.dtype == np.float32 and r.wav.ndim == 1
        # The toy codec renders 320 samples (20 ms at 16 kHz) per semantic token.
        assert r.wav.shape[0] == 320 * r.semantic.shape[0] > 0
        assert r.duration_s == pytest.approx(r.wav.shape[0] / 16000)
        assert r.source_duration_s == pytest.approx(wavs[k].shape[0] / 16000)
        assert (r.source_text is not None) == (mode == "quality")
        assert (r.target_text is not None) == (mode != "direct")
        assert set(r.timings) == {"encode", "generate", "decode", "total"}


def test_quality_middle_is_forced_with_target_and_speed(engine, wavs):
    engine.translate(wavs[:1], target_language="en", mode="quality", speed=1.2, seed=3, require_speech=False)
    text = engine.vocab.decode(engine.last_generated[0].tolist(), engine._decode_text)
    assert "<|end_content|><|task_s2t_translation|><|eng|><|speed_11|><|start_content|>" in text
    assert re.search(r"<\|end_content\|><\|start_semantic_token\|>(<\|lite_semantic_\d+\|>)+<\|end_semantic_token\|><\|im_end\|>", text)


def test_semantic_window_follows_duration_and_speed():
    b1 = token_budgets(2.0, 1.0)
    b2 = token_budgets(2.0, 2.0)
    assert (b1["semantic_min"], b1["semantic"]) == (85, 115)  # [floor(0.85 * 100), ceil(1.15 * 100)]
    assert (b2["semantic_min"], b2["semantic"]) == (170, 230)
    capped = token_budgets(2.0, 1.0, max_duration_s=1.0)
    assert (capped["semantic_min"], capped["semantic"]) == (50, 50)
    assert b1["text"] == 24 and token_budgets(0.2, 1.0)["text"] == 16


def test_semantic_span_cannot_end_before_its_minimum(engine):
    import torch

    v = engine.vocab
    prog = decoding_program(v, "direct", tgt="zh", speed=1.0, budgets={"text": 2, "semantic": 4, "semantic_min": 2})
    n = v.total
    end = v.token_id("<|end_semantic_token|>")
    c = StageConstraint(v, [prog], prompt_len=4, n_logits=n, text_exclude=engine.text_exclude)
    a, _ = v.range("semantic")
    out = c(torch.zeros((1, 4), dtype=torch.long), torch.zeros((1, n)))
    assert not torch.isfinite(out[0, end])  # 0 tokens so far
    out = c(torch.tensor([[0, 0, 0, 0, a]]), torch.zeros((1, n)))
    assert not torch.isfinite(out[0, end])  # 1 token
    out = c(torch.tensor([[0, 0, 0, 0, a, a]]), torch.zeros((1, n)))
    assert torch.isfinite(out[0, end]) and torch.isfinite(out[0, a])  # 2 = min: may end or go on


def test_output_duration_follows_the_speed_token(engine, wavs):
    res = engine.translate(wavs[:2], target_language="en", mode="direct", speed=[1.0, 1.5], seed=0, require_speech=False)
    for r, speed in zip(res, (1.0, 1.5), strict=True):
        ratio = r.duration_s / r.source_duration_s
        assert 0.85 * speed - 0.03 <= ratio <= 1.15 * speed + 0.03, (speed, ratio)


def test_batch_of_three_equals_one_by_one_greedy(engine, wavs):
    tgts = ["zh", "en", "zh"]
    batch = engine.translate(wavs, target_language=tgts, mode="performance", do_sample=False, require_speech=False)
    singles = [engine.translate([w], target_language=t, mode="performance", do_sample=False, require_speech=False)[0] for w, t in zip(wavs, tgts, strict=True)]
    for b, s in zip(batch, singles, strict=True):
        assert b.target_text == s.target_text
        np.testing.assert_array_equal(b.semantic, s.semantic)
        np.testing.assert_allclose(b.wav, s.wav)


def test_rows_of_different_modes_decode_together(engine, wavs):
    """One batch may mix Quality, Performance and Direct rows (the predictor sends them together);
    each row equals its mode decoded alone (greedy)."""
    modes = ["quality", "performance", "direct"]
    batch = engine.translate(wavs, target_language="zh", mode=modes, do_sample=False, require_speech=False)
    for w, m, b in zip(wavs, modes, batch, strict=True):
        s = engine.translate([w], target_language="zh", mode=m, do_sample=False, require_speech=False)[0]
        assert b.mode == m and b.source_text == s.source_text and b.target_text == s.target_text
        np.testing.assert_array_equal(b.semantic, s.semantic)


def test_seeded_sampling_is_reproducible(engine, wavs):
    a = engine.translate(wavs[:2], target_language="zh", mode="direct", seed=7, require_speech=False)
    b = engine.translate(wavs[:2], target_language="zh", mode="direct", seed=7, require_speech=False)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.semantic, y.semantic)


def test_max_new_tokens_truncates_and_reports(engine, wavs):
    r = engine.translate(wavs[:1], target_language="zh", mode="quality", max_new_tokens=5, seed=0, require_speech=False)[0]
    assert not r.complete and "im_end" in r.reason
    assert r.output_tokens == 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(target_language="fr"), "unknown target language"),
        (dict(target_language="zh", mode="fast"), "unknown mode"),
        (dict(target_language="zh", speed=9.0), "speed"),
        (dict(target_language="zh", top_p=0.0), "sampling"),
        (dict(target_language=["zh"]), "entries"),
        (dict(target_language="zh", mode=["quality"]), "entries"),
        (dict(target_language="zh", mode=["quality", "fast"]), "unknown mode"),
    ],
)
def test_bad_arguments_raise_typed_errors(engine, wavs, kwargs, match):
    with pytest.raises(UnissError, match=match):
        engine.translate(wavs[:2], **kwargs, require_speech=False)


def test_bad_waveforms(engine):
    with pytest.raises(EngineError, match="empty batch"):
        engine.translate([], target_language="zh")
    with pytest.raises(AudioError, match=r"wavs\[0\]"):
        engine.translate([np.zeros((2, 100), dtype=np.float32)], target_language="zh")
    with pytest.raises(AudioError, match=r"wavs\[0\]"):
        engine.translate([np.zeros(0, dtype=np.float32)], target_language="zh")


def test_stage_constraint_masks_padding_rows(engine):
    import torch

    v = engine.vocab
    prog = decoding_program(v, "direct", tgt="zh", speed=1.0, budgets={"text": 2, "semantic": 2})
    n = v.total + 10  # embedding rows padded past the vocabulary
    c = StageConstraint(v, [prog], prompt_len=4, n_logits=n, text_exclude=engine.text_exclude)
    out = c(torch.zeros((1, 4), dtype=torch.long), torch.zeros((1, n)))
    ok = torch.isfinite(out[0]).nonzero().flatten().tolist()
    a, z = v.range("semantic")
    assert ok == list(range(a, z)) + [v.token_id("<|end_semantic_token|>")]
    # two semantic tokens spend the budget: only the terminator is left, then <|im_end|>
    ids = torch.tensor([[0, 0, 0, 0, a]])
    c(ids, torch.zeros((1, n)))
    out = c(torch.cat([ids, torch.tensor([[a + 1]])], 1), torch.zeros((1, n)))
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [v.token_id("<|end_semantic_token|>")]
    out = c(torch.tensor([[0, 0, 0, 0, a, a + 1, v.token_id("<|end_semantic_token|>")]]), torch.zeros((1, n)))
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [v.eos_id]


def test_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        TranslationEngine.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="neither a model bundle"):
        TranslationEngine.load(tmp_path / "empty")
    rel = tmp_path / "UniSS"
    rel.mkdir()
    (rel / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    with pytest.raises(ModelLoadError, match="missing codec directories.*BiCodec"):
        TranslationEngine.load(rel)
    (rel / "codec.json").write_text(json.dumps({"backend": "lite", "codec_dir": str(tmp_path / "no-codec")}))
    with pytest.raises(ModelLoadError, match="lite codec_dir=.*no-codec"):  # released weights + lite codec (issue 18)
        TranslationEngine.load(rel)
    with pytest.raises(ModelLoadError, match="registry URI: resolve it"):  # serving never imports registry
        TranslationEngine.load("models:/uniss-s2st@champion")


def test_engine_rejects_vocab_model_mismatch():
    model, tok, vocab, codec = tm.build_tiny(0)
    import dataclasses

    bigger = dataclasses.replace(vocab, semantic_size=vocab.semantic_size + 1000)
    with pytest.raises(ModelLoadError, match="embedding rows"):
        TranslationEngine(model, tok, bigger, codec)
    codec.sizes = dict(codec.sizes, semantic=999)
    with pytest.raises(ModelLoadError, match="codec semantic size"):
        TranslationEngine(model, tok, vocab, codec)


@pytest.mark.parametrize("use_linguistic", [True, False])
def test_engine_prompts_a_model_the_way_its_recipe_trained_it(wavs, use_linguistic):
    """A bundle trained with ``data.use_linguistic=false`` (paper Table 4's "w/o linguistic tokens")
    reads the source's semantic tokens where the linguistic ones would be; the engine must prompt it
    with exactly the prompt training built for the same codec tokens (it once always sent linguistic
    tokens, ids that model never saw as input)."""
    from training.samples import IGNORE_INDEX, build_sample

    model, tok, vocab, codec = tm.build_tiny(0)
    eng = TranslationEngine(model, tok, vocab, codec, meta={"config": {"data": {"use_linguistic": use_linguistic}}})
    sent: list[list[int]] = []
    decode = eng._decode

    def capture(prompts, *a, **k):
        sent.extend(prompts)
        return decode(prompts, *a, **k)

    eng._decode = capture
    eng.translate([wavs[0]], target_language="zh", mode="quality", do_sample=False, require_speech=False, max_new_tokens=4)

    c = codec.encode([wavs[0]])[0]
    row = {"id": "r", "src_lang": "en", "tgt_lang": "zh", "src_text": "a b", "tgt_text": "c d", "ratio": 1.0,
           "src_speaker": c.speaker, "src_linguistic": c.linguistic, "src_semantic": c.semantic, "tgt_semantic": c.semantic}
    s = build_sample(vocab, lambda t: list(tok.encode(t, add_special_tokens=False)), row, "quality", use_linguistic=use_linguistic)
    assert sent == [list(s.input_ids[: int((s.labels == IGNORE_INDEX).sum())])]
    ids = np.asarray(sent[0])
    lo, hi = vocab.range("linguistic")
    slo, shi = vocab.range("semantic")
    n_ling, n_sem = int(((ids >= lo) & (ids < hi)).sum()), int(((ids >= slo) & (ids < shi)).sum())
    assert (n_ling, n_sem) == ((len(c.linguistic), 0) if use_linguistic else (0, len(c.semantic)))
    assert n_ling + n_sem > 0


def test_a_bundle_with_a_malformed_use_linguistic_is_refused():
    model, tok, vocab, codec = tm.build_tiny(0)
    with pytest.raises(ModelLoadError, match="use_linguistic"):
        TranslationEngine(model, tok, vocab, codec, meta={"config": {"data": {"use_linguistic": "no"}}})
