"""ContinuousDecoder: row compaction and admission give the tokens of one-at-a-time decoding
(greedy), restricted sampling, per-request seeded sampling."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_model as tm  # noqa: E402

from serving.decoder import AllowedIds, ContinuousDecoder, DecodeRequest, DecoderError, ProgramCursor, restricted_pick  # noqa: E402
from serving.engine import TranslationEngine, decoding_program, token_budgets  # noqa: E402


@pytest.fixture(scope="module")
def engine() -> TranslationEngine:
    return tm.tiny_engine(seed=0)


def _requests(engine, durations, *, mode="performance", do_sample=False, seed=None):
    """One request per source duration (seconds); prompts from tones, programs from the budgets."""
    reqs = []
    for i, d in enumerate(durations):
        w = tm.tone(d, 150 + 40 * i)
        t = engine.codec.encode([w])[0]
        tgt = "zh" if i % 2 == 0 else "en"
        prompt = engine.prompt_ids(np.asarray(t.speaker), np.asarray(t.linguistic), mode=mode, tgt=tgt, speed=1.0)
        prog = decoding_program(engine.vocab, mode, tgt=tgt, speed=1.0, budgets=token_budgets(d, 1.0))
        reqs.append(DecodeRequest(prompt, prog, 10_000, do_sample=do_sample, seed=None if seed is None else seed + i, tag=i))
    return reqs


def _alone(engine, reqs):
    out = []
    for r in reqs:
        d = ContinuousDecoder(engine.model, engine.vocab, engine.text_exclude, max_batch=1)
        one = DecodeRequest(r.prompt, r.program, r.max_new_tokens, do_sample=r.do_sample, seed=r.seed)
        d.run([one])
        out.append(one.tokens)
    return out


def test_rows_of_different_lengths_match_one_at_a_time_greedy(engine):
    reqs = _requests(engine, [0.4, 1.3, 0.7, 1.0])
    dec = ContinuousDecoder(engine.model, engine.vocab, engine.text_exclude, max_batch=4)
    finished = dec.run(reqs)
    assert {r.tag for r in finished} == {0, 1, 2, 3}
    lengths = [len(r.tokens) for r in reqs]
    assert len(set(lengths)) > 1  # rows really finish at different steps
    assert dec.stats["compactions"] >= 2  # finished rows left the batch
    assert dec.stats["row_steps"] < len(reqs) * max(lengths)  # no step spent on a finished row
    assert [r.tokens for r in reqs] == _alone(engine, reqs)
    for r in reqs:
        assert r.tokens[-1] == engine.vocab.eos_id


def test_waiting_requests_are_admitted_mid_run(engine):
    reqs = _requests(engine, [0.3, 1.2, 0.5, 0.9, 0.4, 1.1])
    dec = ContinuousDecoder(engine.model, engine.vocab, engine.text_exclude, max_batch=2)
    for r in reqs:
        dec.add(r)
    seen_batch = []
    while dec.busy:
        dec.step()
        seen_batch.append(len(dec.rows))
        assert len(dec.rows) <= 2
        if dec.rows:
            assert dec.mask.shape == (len(dec.rows), dec.cache.layers[0].keys.shape[2])
    assert dec.stats["admissions"] >= 3  # slots freed by finished rows were refilled
    assert [r.tokens for r in reqs] == _alone(engine, reqs)


def test_seeded_sampling_is_per_request(engine):
    reqs = _requests(engine, [0.5, 0.9, 0.6], mode="direct", do_sample=True, seed=11)
    ContinuousDecoder(engine.model, engine.vocab, engine.text_exclude, max_batch=3).run(reqs)
    # the same request alone, or next to other requests, samples the same tokens
    assert [r.tokens for r in reqs] == _alone(engine, reqs)
    again = _requests(engine, [0.5, 0.9, 0.6], mode="direct", do_sample=True, seed=11)
    ContinuousDecoder(engine.model, engine.vocab, engine.text_exclude, max_batch=2).run(again[::-1])
    assert [r.tokens for r in again] == [r.tokens for r in reqs]


def test_sampled_tokens_stay_in_the_allowed_family(engine):
    reqs = _requests(engine, [0.6, 1.0], mode="quality", do_sample=True, seed=3)
    ContinuousDecoder(engine.model, engine.vocab, engine.text_exclude, max_batch=2).run(reqs)
    allowed = AllowedIds(engine.vocab, engine.text_exclude)
    for r in reqs:
        cur = ProgramCursor(r.program, engine.vocab.eos_id)
        for tok in r.tokens:
            assert tok in set(allowed.get(cur.key()).tolist())
            cur.advance(tok)
        assert cur.done and r.tokens[-1] == engine.vocab.eos_id


def test_restricted_pick_greedy_penalty_and_top_p():
    import torch

    logits = torch.tensor([[1.0, 3.0, 2.0], [2.0, -1.0, 0.5]])
    none = torch.zeros_like(logits, dtype=torch.bool)
    one = torch.ones((2, 1))
    greedy = torch.tensor([True, True])
    assert restricted_pick(logits, none, one, greedy=greedy, temperature=one, top_p=one, uniforms=torch.zeros(2)).tolist() == [1, 0]
    # repetition penalty 4 on the seen best id: 3/4 < 2 -> id 2 wins; a negative seen logit gets lower (x * p)
    seen = torch.tensor([[False, True, False], [False, False, False]])
    p = torch.full((2, 1), 4.0)
    assert restricted_pick(logits, seen, p, greedy=greedy, temperature=one, top_p=one, uniforms=torch.zeros(2)).tolist() == [2, 0]
    # top_p small keeps only the most probable id whatever the uniform draw
    sample = torch.tensor([False, False])
    tiny_p = torch.full((2, 1), 0.01)
    for u in (0.0, 0.5, 0.999):
        got = restricted_pick(logits, none, one, greedy=sample, temperature=one, top_p=tiny_p, uniforms=torch.full((2,), u))
        assert got.tolist() == [1, 0]
    # top_p 1: the inverse CDF walks the sorted distribution (probabilities of [3, 2, 1] logits)
    pr = torch.softmax(torch.tensor([3.0, 2.0, 1.0]), 0)
    row = torch.tensor([[1.0, 3.0, 2.0]])
    pick = lambda u: int(restricted_pick(row, none[:1], one[:1], greedy=sample[:1], temperature=one[:1], top_p=one[:1],  # noqa: E731
                                          uniforms=torch.tensor([u]))[0])
    assert pick(float(pr[0]) - 0.01) == 1 and pick(float(pr[0]) + 0.01) == 2 and pick(0.999) == 0


def test_restricted_pick_top_p_head_equals_full_sort(monkeypatch):
    """The topk head of the top-p step picks what a full sort picks, for peaked rows (cut inside
    the head) and flat rows (cut past it: falls back to the sort)."""
    import torch

    import serving.decoder as dec

    g = torch.Generator().manual_seed(0)
    k = 500
    peaked = torch.randn((3, k), generator=g) * 8.0  # a few ids hold the mass
    flat = torch.randn((3, k), generator=g) * 0.1  # mass spread over hundreds of ids
    for logits in (peaked, flat):
        seen = torch.rand((3, k), generator=g) < 0.1
        pen = torch.full((3, 1), 1.1)
        kw = dict(greedy=torch.zeros(3, dtype=torch.bool), temperature=torch.full((3, 1), 0.7),
                  top_p=torch.full((3, 1), 0.8))
        for u in (0.0, 0.3, 0.77, 0.999):
            uni = torch.full((3,), u)
            monkeypatch.setattr(dec, "TOP_P_HEAD", 64)
            head = restricted_pick(logits, seen, pen, uniforms=uni, **kw)
            monkeypatch.setattr(dec, "TOP_P_HEAD", 10**9)  # never take the head: always the full sort
            full = restricted_pick(logits, seen, pen, uniforms=uni, **kw)
            assert head.tolist() == full.tolist()


def test_bad_requests_raise(engine):
    dec = ContinuousDecoder(engine.model, engine.vocab, engine.text_exclude)
    prog = [("force", engine.vocab.eos_id)]
    with pytest.raises(DecoderError, match="empty prompt"):
        dec.add(DecodeRequest([], prog, 4))
    with pytest.raises(DecoderError, match="max_new_tokens"):
        dec.add(DecodeRequest([1], prog, 0))
    with pytest.raises(DecoderError, match="sampling"):
        dec.add(DecodeRequest([1], prog, 4, top_p=0.0))
    with pytest.raises(DecoderError, match="max_batch"):
        ContinuousDecoder(engine.model, engine.vocab, engine.text_exclude, max_batch=0)


def test_engine_runtimes_agree_greedy(engine):
    wavs = [tm.tone(0.5, 200), tm.tone(1.1, 260), tm.tone(0.8, 140)]
    hf = TranslationEngine(engine.model, engine.tokenizer, engine.vocab, engine.codec, runtime="hf")
    cb = TranslationEngine(engine.model, engine.tokenizer, engine.vocab, engine.codec, runtime="continuous", max_batch=2)
    kw = dict(target_language=["zh", "en", "zh"], mode="performance", do_sample=False, require_speech=False)
    for a, b in zip(hf.translate(wavs, **kw), cb.translate(wavs, **kw), strict=True):
        np.testing.assert_array_equal(a.semantic, b.semantic)
        assert a.target_text == b.target_text and a.output_tokens == b.output_tokens


def test_spoken_span_counts_only_semantic_tokens(engine):
    """A model trained with interleaved words (data.interleave_words): the speech span allows text
    and semantic ids, and its budget / min_len count the units only, in both decoders."""
    from serving.engine import StageConstraint

    v = engine.vocab
    prog = decoding_program(v, "direct", tgt="en", speed=1.0, budgets={"text": 4, "semantic": 3, "semantic_min": 2},
                            interleave_words=True)
    assert prog[0][1] == "spoken"
    allowed = AllowedIds(v, engine.text_exclude)
    lo, _ = v.range("semantic")
    word = next(i for i in range(*v.range("text")) if i not in set(engine.text_exclude))
    end_s = v.token_id("<|end_semantic_token|>")
    cur = ProgramCursor(prog, v.eos_id, v.range("semantic"))
    hf = StageConstraint(v, [prog], prompt_len=0, n_logits=v.total, text_exclude=engine.text_exclude)
    ids = set(allowed.get(cur.key()).tolist())
    assert word in ids and lo in ids and end_s not in ids  # words and units, no end before min_len
    for tok in (word, lo, word, lo):  # two units, two words
        cur.advance(tok)
        hf._advance(0, tok)
    assert cur.count == 2 and hf.cursors[0].count == 2  # words did not count
    assert end_s in set(allowed.get(cur.key()).tolist())  # min_len reached
    cur.advance(lo)
    assert allowed.get(cur.key()).tolist() == [end_s]  # budget of 3 units spent: the end alone


@pytest.mark.parametrize("runtime", ["continuous", "hf"])
def test_interleaved_bundle_decodes_words_and_units(runtime):
    """A bundle trained with data.interleave_words is decoded with a spoken span: the untrained
    tiny model writes words among its units, and the units alone stay inside the speed window."""
    model, tok, vocab, codec = tm.build_tiny(0)
    eng = TranslationEngine(model, tok, vocab, codec, meta={"name": "tiny-test", "config": {"data": {"interleave_words": True}}},
                            runtime=runtime)
    assert eng.interleave_words
    d = 0.8
    res = eng.translate([tm.tone(d, 220)], target_language="en", mode="direct", do_sample=True, seed=1, require_speech=False)[0]
    b = token_budgets(d, 1.0)
    assert b["semantic_min"] <= res.semantic.size <= b["semantic"]
    assert res.output_tokens > res.semantic.size + 2  # words were written between the units


def test_words_span_speaks_its_words_in_order(engine):
    """A ``words`` span (a Quality/Performance row of an interleave_words model once its translation
    is known): it opens with the first word, any word the model writes becomes the next word (the
    rest of its ids forced), units alone count, and it ends only after the last word and min_len."""
    v = engine.vocab
    lo, _ = v.range("semantic")
    text = [i for i in range(*v.range("text")) if i not in set(engine.text_exclude)]
    w1, w2 = (text[5], text[6]), (text[7],)
    end_s = v.token_id("<|end_semantic_token|>")
    prog = [("words", (w1, w2), end_s, 4, 2), ("force", v.eos_id)]
    allowed = AllowedIds(v, engine.text_exclude)
    cur = ProgramCursor(prog, v.eos_id, v.range("semantic"))
    assert cur.key() == ("one", w1[0])  # opens with the first word
    cur.advance(w1[0])
    assert cur.key() == ("one", w1[1])  # the rest of the word is forced
    cur.advance(w1[1])
    key = cur.key()
    assert key[0] == "merge" and key[1] == w2[0]
    ids = set(allowed.get(key).tolist())
    assert {lo, text[0], w2[0]} <= ids and end_s not in ids  # units or a word; no end before the last word
    cur.advance(lo)
    cur.advance(w2[0])  # the model wrote the next word
    assert cur.key() == ("semantic", end_s, False)  # every word written, 1 unit < min_len 2
    cur.advance(lo)
    assert cur.key() == ("semantic", end_s, True)
    cur.advance(lo)
    cur.advance(lo)
    assert cur.count == 4 and cur.key() == ("one", end_s)  # 4 units: the budget forces the end
    cur.advance(end_s)
    assert cur.key() == ("one", v.eos_id)


def test_merge_word_logits_gives_the_next_word_every_words_probability():
    import torch

    from serving.decoder import merge_word_logits

    logits = torch.tensor([[0.5, 1.0, -2.0, 3.0, 0.0]])  # columns 0-2 text ids, 3-4 units
    out = merge_word_logits(logits, torch.tensor([0, 1, 2]), 1)
    p, q = logits.softmax(-1), out.softmax(-1)
    assert torch.isclose(q[0, 1], p[0, :3].sum()) and q[0, 0] == 0 and q[0, 2] == 0
    assert torch.allclose(q[0, 3:], p[0, 3:])  # the units keep their probability


@pytest.mark.parametrize("runtime", ["continuous", "hf"])
def test_interleaved_performance_speaks_the_translation_it_wrote(runtime, monkeypatch):
    """Two passes: the translation, then a words span over its Whisper words; the speech span of the
    output holds exactly those words, in order, between units."""
    from uniss.engines.asr import whisper_words

    model, tok, vocab, codec = tm.build_tiny(0)
    eng = TranslationEngine(model, tok, vocab, codec, meta={"name": "tiny-test", "config": {"data": {"interleave_words": True}}},
                            runtime=runtime)
    outs = []
    real = eng._decode

    def spy(*a, **k):
        rows = real(*a, **k)
        outs.append([list(r) for r in rows])
        return rows

    monkeypatch.setattr(eng, "_decode", spy)
    res = eng.translate([tm.tone(1.2, 220)], target_language="en", mode="performance", do_sample=True, seed=2,
                        require_speech=False)[0]
    assert len(outs) == 2  # translation first, then the speech span
    first, second = outs[0][0], outs[1][0]
    first = first[:-1] if first[-1] == vocab.eos_id else first  # a finished program may add <|im_end|>
    assert first[-1] == vocab.token_id("<|start_semantic_token|>") and second[-1] == vocab.eos_id
    lo, hi = vocab.range("semantic")
    words = [w for w in whisper_words(res.target_text or "", "en") if eng._encode_text(w)]
    written = [i for i in second if i < lo and i not in (vocab.eos_id,) and i != vocab.token_id("<|end_semantic_token|>")]
    expect = [i for w in words for i in eng._encode_text(w)]
    assert written == expect[: len(written)] and (len(written) == len(expect) or res.semantic.size >= token_budgets(1.2, 1.0)["semantic"])
    assert res.semantic.size == sum(lo <= i < hi for i in second)
