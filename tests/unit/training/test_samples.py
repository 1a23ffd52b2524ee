"""Sample builders: all 7 formats, prompt masked with -100, labels decode to the continuation;
phase mixtures (2:1 replay, HQ only); the w/o-linguistic ablation."""

import numpy as np
import pytest

from training.packing import pack_samples
from training.samples import (
    IGNORE_INDEX,
    SampleError,
    build_phase_samples,
    build_sample,
    corrupt_speech_history,
    row_samples,
)
from uniss.prompts import Task, build_continuation, build_prompt

FORMATS = ["quality", "performance", "direct", "asr", "s2tt", "tts", "mt"]


def _codecs(text):
    enc = lambda s: text.encode(s, add_special_tokens=False)  # noqa: E731
    dec = lambda ids: text.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)  # noqa: E731
    return enc, dec


def _expected(vocab, row, task, side="src"):
    other = "tgt" if side == "src" else "src"
    t = Task(task)
    if t.is_s2st:
        p = build_prompt(vocab, t, tgt=row["tgt_lang"], speaker=row["src_speaker"], linguistic=row["src_linguistic"], speed_ratio=row["ratio"])
        c = build_continuation(vocab, t, tgt=row["tgt_lang"], transcript=row["src_text"], translation=row["tgt_text"],
                               semantic=row["tgt_semantic"], speed_ratio=row["ratio"])
    elif t is Task.ASR:
        p = build_prompt(vocab, t, src=row[f"{side}_lang"], speaker=row[f"{side}_speaker"], linguistic=row[f"{side}_linguistic"])
        c = build_continuation(vocab, t, transcript=row[f"{side}_text"])
    elif t is Task.S2TT:
        p = build_prompt(vocab, t, tgt=row[f"{other}_lang"], speaker=row[f"{side}_speaker"], linguistic=row[f"{side}_linguistic"])
        c = build_continuation(vocab, t, translation=row[f"{other}_text"])
    elif t is Task.TTS:
        p = build_prompt(vocab, t, src=row[f"{side}_lang"], speaker=row[f"{side}_speaker"], text=row[f"{side}_text"])
        c = build_continuation(vocab, t, semantic=row[f"{side}_semantic"])
    else:
        p = build_prompt(vocab, t, tgt=row[f"{other}_lang"], text=row[f"{side}_text"])
        c = build_continuation(vocab, t, translation=row[f"{other}_text"])
    return p, c


@pytest.mark.parametrize("task", FORMATS)
@pytest.mark.parametrize("side", ["src", "tgt"])
def test_each_format_masks_prompt_and_labels_decode_to_continuation(toks, rows, task, side):
    text, _, vocab = toks
    enc, dec = _codecs(text)
    row = rows[1]
    s = build_sample(vocab, enc, row, task, side=side)
    p_exp, c_exp = _expected(vocab, row, task, "src" if Task(task).is_s2st else side)
    n_prompt = int((s.labels == IGNORE_INDEX).sum())
    # the prompt is a prefix fully masked; the rest is labelled with exactly the input ids
    assert (s.labels[:n_prompt] == IGNORE_INDEX).all() and (s.labels[n_prompt:] != IGNORE_INDEX).all()
    assert np.array_equal(s.labels[n_prompt:], s.input_ids[n_prompt:])
    assert vocab.decode(s.input_ids[:n_prompt], dec) == p_exp
    assert vocab.decode(s.labels[n_prompt:], dec) == c_exp
    assert c_exp.endswith("<|im_end|>") and s.input_ids[-1] == vocab.eos_id
    assert s.input_ids.max() < vocab.total and s.input_ids.dtype == np.int64


def test_ids_equal_the_expanded_hf_tokenizer(toks, rows):
    text, model_tok, vocab = toks
    enc, _ = _codecs(text)
    s = build_sample(vocab, enc, rows[0], "quality")
    p, c = _expected(vocab, rows[0], "quality")
    assert s.input_ids.tolist() == model_tok.encode(p, add_special_tokens=False) + model_tok.encode(c, add_special_tokens=False)


def test_without_linguistic_semantic_tokens_replace_linguistic(toks, rows):
    text, _, vocab = toks
    enc, dec = _codecs(text)
    row = rows[0]
    s = build_sample(vocab, enc, row, "asr", use_linguistic=False)
    fam, codes = vocab.split_ids(s.input_ids)
    assert not (fam == 3).any()  # no linguistic family tokens left
    n_prompt = int((s.labels == IGNORE_INDEX).sum())
    sem_in_prompt = codes[:n_prompt][fam[:n_prompt] == 2]
    assert sem_in_prompt.tolist() == list(row["src_semantic"])


def test_missing_field_is_a_typed_error(toks, rows):
    text, _, vocab = toks
    enc, _ = _codecs(text)
    row = dict(rows[0])
    del row["tgt_semantic"]
    with pytest.raises(SampleError, match="tgt_semantic"):
        build_sample(vocab, enc, row, "performance")


def test_phase_mixtures(toks, rows):
    text, _, vocab = toks
    enc, _ = _codecs(text)
    p1 = row_samples(vocab, enc, rows[0], ["asr", "s2tt", "tts", "mt"])
    assert sorted(s.task for s in p1) == ["asr", "asr", "mt", "mt", "s2tt", "s2tt", "tts", "tts"]
    p2 = build_phase_samples(vocab, enc, rows[:6], formats=["quality", "performance", "direct"], replay_rows=rows,
                             replay_formats=["asr", "s2tt", "tts", "mt"], replay_ratio=0.5, seed=3)
    n_s2st = sum(Task(s.task).is_s2st for s in p2)
    assert n_s2st == 18 and len(p2) - n_s2st == 9  # 2 : 1
    again = build_phase_samples(vocab, enc, rows[:6], formats=["quality", "performance", "direct"], replay_rows=rows,
                                replay_formats=["asr", "s2tt", "tts", "mt"], replay_ratio=0.5, seed=3)
    assert [s.input_ids.tolist() for s in again] == [s.input_ids.tolist() for s in p2]  # seeded


def test_format_repeat_weighs_tasks_and_keeps_the_replay_ratio(toks, rows):
    """``format_repeat={"quality": 2}``: two copies of every Quality sample, the other formats once,
    replay drawn against the repeated main list (still 2 : 1); a bad key or count is a SampleError."""
    text, _, vocab = toks
    enc, _ = _codecs(text)
    kw = dict(formats=["quality", "performance", "direct"], replay_rows=rows, replay_formats=["asr", "s2tt", "tts", "mt"],
              replay_ratio=0.5, seed=3)
    got = build_phase_samples(vocab, enc, rows[:6], format_repeat={"quality": 2}, **kw)
    tasks = [s.task for s in got]
    assert tasks.count("quality") == 12 and tasks.count("performance") == 6 and tasks.count("direct") == 6
    assert len(got) - 24 == 12  # replay: half the 24 main samples
    plain = build_phase_samples(vocab, enc, rows[:6], **kw)
    q = sorted(s.input_ids.tolist() for s in plain if s.task == "quality")
    assert sorted(s.input_ids.tolist() for s in got if s.task == "quality") == sorted(q + q)
    for bad in ({"tts": 2}, {"quality": 0}):
        with pytest.raises(SampleError, match="format_repeat"):
            build_phase_samples(vocab, enc, rows[:6], format_repeat=bad, **kw)


def test_text_only_alignment_row_gives_mt_samples_only(toks, rows):
    """A text row of the phase-1 alignment corpus has no speech: ASR/S2TT/TTS are skipped, MT runs both ways."""
    text, _, vocab = toks
    enc, dec = _codecs(text)
    row = {k: rows[0][k] for k in ("id", "src_lang", "tgt_lang", "src_text", "tgt_text")} | {"kind": "text"}
    got = row_samples(vocab, enc, row, ["asr", "s2tt", "tts", "mt"])
    assert [s.task for s in got] == ["mt", "mt"]
    n = int((got[1].labels == IGNORE_INDEX).sum())
    assert vocab.decode(got[1].labels[n:], dec) == build_continuation(vocab, Task.MT, translation=row["src_text"])
    with pytest.raises(SampleError):  # the same row without the text-only mark is a row missing its speech
        row_samples(vocab, enc, {k: v for k, v in row.items() if k != "kind"}, ["tts"])


def _packed_batch(toks, rows):
    """Two packs of Quality, TTS and w/o-linguistic ASR samples (spliced semantic units in the prompt)."""
    text, _, vocab = toks
    enc, _ = _codecs(text)
    samples = [build_sample(vocab, enc, r, t, use_linguistic=(t != "asr")) for r in rows[:4] for t in ("quality", "tts", "asr")]
    packs, _ = pack_samples(samples, max(len(s) for s in samples) * 3, vocab.pad_id)
    return vocab, np.stack([p.input_ids for p in packs]), np.stack([p.labels for p in packs])


def test_speech_history_noise_replaces_only_continuation_semantic_inputs(toks, rows):
    vocab, ids, labels = _packed_batch(toks, rows)
    lo, hi = vocab.range("semantic")
    labels_before = labels.copy()
    got = corrupt_speech_history(ids, labels, (lo, hi), 0.5, np.random.default_rng(7))
    assert np.array_equal(labels, labels_before) and got.shape == ids.shape and got.dtype == np.int64
    changed = got != ids
    target = (labels >= lo) & (labels < hi)
    assert target.sum() > 200 and changed.any()
    assert not (changed & ~target).any()  # prompts (the spliced source units), text and control tokens untouched
    prompt_sem = (labels == IGNORE_INDEX) & (ids >= lo) & (ids < hi)
    assert prompt_sem.sum() > 0 and np.array_equal(got[prompt_sem], ids[prompt_sem])
    assert ((got[changed] >= lo) & (got[changed] < hi)).all()  # replaced by units of the same family
    share = changed.sum() / target.sum()
    assert 0.4 < share < 0.5 + 0.05  # rate 0.5, less the draws that hit the true unit (1 / semantic size)
    again = corrupt_speech_history(ids, labels, (lo, hi), 0.5, np.random.default_rng(7))
    assert np.array_equal(again, got)  # seeded: a resumed run draws the same noise
    assert np.array_equal(corrupt_speech_history(ids, labels, (lo, hi), 0.0, np.random.default_rng(7)), ids)


def test_speech_history_noise_rejects_bad_arguments(toks, rows):
    vocab, ids, labels = _packed_batch(toks, rows)
    rng = np.random.default_rng(0)
    with pytest.raises(SampleError, match=r"\[0, 1\)"):
        corrupt_speech_history(ids, labels, vocab.range("semantic"), 1.0, rng)
    with pytest.raises(SampleError, match="shape"):
        corrupt_speech_history(ids, labels[:, :-1], vocab.range("semantic"), 0.3, rng)
    with pytest.raises(SampleError, match="empty semantic range"):
        corrupt_speech_history(ids, labels, (5, 5), 0.3, rng)


def test_interleaved_words_sit_before_their_units_and_fall_back_without_alignment(toks, rows):
    from training.samples import row_words

    text, tok, vocab = toks
    enc, dec = _codecs(text)
    row = dict(rows[0])
    n = len(row["tgt_semantic"])
    row["tgt_words"], row["tgt_word_starts"] = [" w1", " w2"], [0, n // 2]
    plain = build_sample(vocab, enc, row, "tts", side="tgt")
    inter = build_sample(vocab, enc, row, "tts", side="tgt", interleave_words=True)
    # same units in the same order, plus the words' text ids
    lo, hi = vocab.range("semantic")
    units = lambda s: [int(i) for i in s.labels if lo <= i < hi]  # noqa: E731
    assert units(inter) == units(plain) and len(inter) > len(plain)
    c = vocab.decode([int(i) for i in inter.labels if i != IGNORE_INDEX], dec)
    assert c.startswith(" w1" + vocab.tokens("semantic", row["tgt_semantic"][: n // 2]) + " w2")
    # the S2ST formats interleave the target side too
    q = build_sample(vocab, enc, row, "quality", interleave_words=True)
    assert " w2" + vocab.tokens("semantic", row["tgt_semantic"][n // 2:]) in vocab.decode(
        [int(i) for i in q.labels if i != IGNORE_INDEX], dec)
    # a row without an alignment (or an empty one) keeps the paper's plain span
    row["tgt_words"], row["tgt_word_starts"] = [], []
    assert row_words(row, "tgt") == {}
    assert build_sample(vocab, enc, row, "tts", side="tgt", interleave_words=True).input_ids.tolist() == plain.input_ids.tolist()
