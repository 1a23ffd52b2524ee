"""Task prompts byte-identical to ARCHITECTURE.md; build/parse round-trips for every task."""

import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from uniss.prompts import PromptError, Task, build_continuation, build_prompt, parse_output
from uniss.vocab import SpeechVocab, TokenRangeError

PAPER = SpeechVocab.paper()
SPK = list(range(32))
G = "<|start_global_token|>" + "".join(f"<|bicodec_global_{i}|>" for i in range(32)) + "<|end_global_token|>"
L = "<|glm_semantic_5|><|glm_semantic_6|><|glm_semantic_7|>"


@pytest.mark.parametrize(
    "task,kwargs,expected",
    [
        ("quality", {"tgt": "zh"}, f"<|task_s2s_translation|><|slow_mode|><|cmn|>{G}{L}<|write_generate|><|task_asr|><|eng|><|speed_9|><|start_content|>"),
        ("performance", {"tgt": "en"}, f"<|task_s2s_translation|><|balance_mode|><|eng|>{G}{L}<|write_generate|><|task_s2t_translation|><|eng|><|speed_9|><|start_content|>"),
        ("direct", {"tgt": "zh"}, f"<|task_s2s_translation|><|fast_mode|><|cmn|>{G}{L}<|write_generate|><|fast_mode|><|cmn|><|speed_9|><|start_semantic_token|>"),
        ("asr", {"src": "en"}, f"<|task_asr|><|eng|>{G}{L}<|write_generate|><|eng|><|start_content|>"),
        ("s2tt", {"tgt": "zh"}, f"<|task_s2t_translation|><|cmn|>{G}{L}<|write_generate|><|cmn|><|start_content|>"),
    ],
)
def test_prompts_are_byte_identical_to_spec(task, kwargs, expected):
    assert build_prompt(PAPER, task, speaker=SPK, linguistic=[5, 6, 7], **kwargs) == expected


def test_tts_and_mt_prompts():
    assert build_prompt(PAPER, "tts", src="en", speaker=SPK, text="hello", speed_ratio=1.2) == (
        f"<|task_tts|><|eng|>{G}<|start_content|>hello<|end_content|><|write_generate|><|eng|><|speed_11|><|start_semantic_token|>"
    )
    assert build_prompt(PAPER, "mt", tgt="zh", text="hello") == (
        "<|task_t2t_translation|><|cmn|><|start_content|>hello<|end_content|><|write_generate|><|cmn|><|start_content|>"
    )


def test_quality_continuation_spec():
    c = build_continuation(PAPER, "quality", tgt="zh", transcript="a cat", translation="一只猫", semantic=[1, 2])
    assert c == (
        "a cat<|end_content|><|task_s2t_translation|><|cmn|><|speed_9|><|start_content|>一只猫<|end_content|>"
        "<|start_semantic_token|><|bicodec_semantic_1|><|bicodec_semantic_2|><|end_semantic_token|><|im_end|>"
    )


_text = st.text(alphabet=st.characters(blacklist_characters="<|>", blacklist_categories=("Cs", "Cc")), max_size=30).map(str.strip)


@settings(max_examples=60)
@given(task=st.sampled_from(list(Task)), src_text=_text, tgt_text=_text, sem=st.lists(st.integers(0, 8191), min_size=1, max_size=50))
def test_continuation_parse_roundtrip(task, src_text, tgt_text, sem):
    c = build_continuation(PAPER, task, tgt="zh", transcript=src_text, translation=tgt_text, semantic=sem)
    out = parse_output(PAPER, task, c)
    assert out.complete, out.reason
    if task in (Task.QUALITY, Task.ASR):
        assert out.source_text == src_text
    if task in (Task.QUALITY, Task.PERFORMANCE, Task.S2TT, Task.MT):
        assert out.target_text == tgt_text
    if task.speaks:
        np.testing.assert_array_equal(out.semantic, sem)


# Continuation layouts written out from ARCHITECTURE.md (tgt zh, speed 1.0), independent of
# build_continuation: (text before the speech, or the whole text), with the text fields' spans.
_E, _SS, _ES, _IM = "<|end_content|>", "<|start_semantic_token|>", "<|end_semantic_token|>", "<|im_end|>"
_MID = "<|task_s2t_translation|><|cmn|><|speed_9|><|start_content|>"


def _layout(task: Task, src: str, tgt: str, sem: list[int]) -> tuple[str, dict[str, tuple[int, int]], list[int]]:
    """(continuation, {field: (start, end)}, end offset of each semantic token)."""
    fields: dict[str, tuple[int, int]] = {}
    if task is Task.QUALITY:
        head = src + _E + _MID
        fields = {"source_text": (0, len(src)), "target_text": (len(head), len(head) + len(tgt))}
        head += tgt + _E + _SS
    elif task is Task.PERFORMANCE:
        fields, head = {"target_text": (0, len(tgt))}, tgt + _E + _SS
    elif task in (Task.DIRECT, Task.TTS):
        head = ""
    elif task is Task.ASR:
        return src + _E + _IM, {"source_text": (0, len(src))}, []
    else:  # S2TT, MT
        return tgt + _E + _IM, {"target_text": (0, len(tgt))}, []
    ends, pos = [], len(head)
    for x in sem:
        pos += len(f"<|bicodec_semantic_{x}|>")
        ends.append(pos)
    return head + "".join(f"<|bicodec_semantic_{x}|>" for x in sem) + _ES + _IM, fields, ends


def _drop_partial_token(text: str) -> str:
    """Remove an unclosed ``<|...`` fragment left at the end of a truncated text field."""
    return re.sub(r"<(\|[^|>]*\|?)?$", "", text).strip()


@settings(max_examples=25, deadline=None)
@given(task=st.sampled_from(list(Task)), src_text=_text, tgt_text=_text, sem=st.lists(st.integers(0, 8191), min_size=1, max_size=8))
@example(task=Task.QUALITY, src_text="the cat sat", tgt_text="猫 坐着", sem=[5, 8191, 0])
@example(task=Task.PERFORMANCE, src_text="", tgt_text="a dog", sem=[12, 3])
@example(task=Task.ASR, src_text="hello there", tgt_text="", sem=[1])
@example(task=Task.S2TT, src_text="", tgt_text="你好 世界", sem=[1])
def test_truncated_output_is_incomplete_and_keeps_what_it_has(task, src_text, tgt_text, sem):
    """Cut a valid continuation at every position: never raises, ``complete=False`` with a reason
    naming the missing ``<|im_end|>``; the text fields are the received prefix of the true text and
    the semantic codes are exactly those whose token arrived whole."""
    full, fields, ends = _layout(task, src_text, tgt_text, sem)
    assert build_continuation(PAPER, task, tgt="zh", transcript=src_text, translation=tgt_text, semantic=sem) == full
    for k in range(len(full)):
        cut = full[:k]
        out = parse_output(PAPER, task, cut)
        assert out.complete is False, (k, cut)
        assert out.reason and "im_end" in out.reason, (k, out.reason)
        if task.speaks:
            n = sum(e <= k for e in ends)
            np.testing.assert_array_equal(out.semantic, sem[:n], err_msg=f"cut at {k}: {cut!r}")
            if n == 0:
                assert "no semantic tokens" in out.reason
        else:
            assert out.semantic.size == 0
        for name in ("source_text", "target_text"):
            got = getattr(out, name)
            if name not in fields:
                assert got is None, (name, got)
                continue
            a, b = fields[name]
            if task is Task.QUALITY and name == "target_text" and k < len(src_text) + len(_E):
                assert got is None, (k, got)  # the transcript's <|end_content|> has not arrived yet
                continue
            truth = (src_text if name == "source_text" else tgt_text)[: max(0, min(k, b) - a)].strip()
            assert got is not None and _drop_partial_token(got) == truth, (k, cut, name, got)
    assert parse_output(PAPER, task, full).complete


@pytest.mark.parametrize(
    "task,output,reason,expect",
    [
        # Quality with the translation's <|end_content|> lost: one delimiter, translation still recovered
        ("quality", f"a cat{_E}{_MID}一只猫{_SS}<|bicodec_semantic_1|>{_ES}{_IM}", "expected 2 <|end_content|>, found 1",
         {"source_text": "a cat", "target_text": "一只猫", "semantic": [1]}),
        # an out-of-range semantic code (>= 8192, the paper semantic codebook) is dropped, the rest kept
        ("performance", f"hi{_E}{_SS}<|bicodec_semantic_3|><|bicodec_semantic_8192|><|bicodec_semantic_4|>{_ES}{_IM}",
         "1 semantic codes >= 8192 dropped", {"target_text": "hi", "semantic": [3, 4]}),
        ("direct", f"<|bicodec_semantic_7|><|bicodec_semantic_9|>{_IM}", "missing <|end_semantic_token|>", {"semantic": [7, 9]}),
        ("tts", f"{_ES}{_IM}", "no semantic tokens", {"semantic": []}),
        ("asr", f"hello world{_IM}", "expected 1 <|end_content|>, found 0", {"source_text": "hello world"}),
        ("mt", f"<|bicodec_semantic_5|>你好{_E}{_IM}", None, {"target_text": "你好", "semantic": []}),
        # a garbled token text is not a semantic token and is not a delimiter
        ("s2tt", f"你好<|end_contnt|>{_IM}", "expected 1 <|end_content|>, found 0", {"target_text": "你好"}),
        ("direct", f"<|bicodec_semantic_x|><|bicodec_semantic_-1|>{_ES}{_IM}", "no semantic tokens", {"semantic": []}),
    ],
)
def test_corrupted_output_expected_results(task, output, reason, expect):
    out = parse_output(PAPER, task, output)
    assert out.complete is (reason is None)
    if reason is None:
        assert out.reason is None
    else:
        assert reason in out.reason
    for name, value in expect.items():
        if name == "semantic":
            np.testing.assert_array_equal(out.semantic, value)
        else:
            assert getattr(out, name) == value


_pieces = st.sampled_from(["<|", "|>", "<", "|", ">", _E, _SS, _ES, _IM, _MID, "<|bicodec_semantic_", "<|bicodec_semantic_12|>",
                           "<|bicodec_semantic_99999|>", "<|glm_semantic_3|>", "12", "a", " ", "猫", "<|end_content"])


@pytest.mark.parametrize("garbage", ["", "<|im_end|>", "hello", "<|bicodec_semantic_99999|>", "a<|end_content|>b", "<|" * 50])
def test_parser_is_total_on_malformed_output(garbage):
    """Malformed output: no task accepts it as complete, and each says why."""
    for task in Task:
        out = parse_output(PAPER, task, garbage)
        assert out.complete is False, (task, garbage)
        assert out.reason, (task, garbage)
        assert all(0 <= int(x) < 8192 for x in out.semantic)


@settings(max_examples=200, deadline=None)
@given(task=st.sampled_from(list(Task)), output=st.lists(_pieces, max_size=30).map("".join))
def test_parser_never_raises_and_reports_consistently(task, output):
    """On any mix of token pieces: no exception; ``complete`` iff no reason; complete output ends
    with ``<|im_end|>``; only in-range semantic codes present in the output, only for speaking tasks;
    text fields only for the tasks that have them."""
    out = parse_output(PAPER, task, output)
    assert out.complete == (out.reason is None)
    if out.complete:
        assert output.rstrip().endswith(_IM)
    codes = [int(x) for x in re.findall(r"<\|bicodec_semantic_(\d+)\|>", output)]
    if task.speaks:
        np.testing.assert_array_equal(out.semantic, [x for x in codes if x < 8192])
    else:
        assert out.semantic.size == 0
    assert (out.source_text is not None) == (task in (Task.QUALITY, Task.ASR))
    assert (out.target_text is not None) == (task in (Task.PERFORMANCE, Task.S2TT, Task.MT)
                                             or (task is Task.QUALITY and output.count(_E) >= 1))


def test_truncated_quality_output_recovers_transcript():
    out = parse_output(PAPER, "quality", "the cat sat<|end_content|><|task_s2t_translation|><|cmn|><|speed_9|><|start_content|>猫")
    assert not out.complete and out.source_text == "the cat sat" and out.target_text == "猫"
    assert "im_end" in out.reason


def test_bad_prompt_arguments():
    with pytest.raises(PromptError, match="32 codes"):
        build_prompt(PAPER, "quality", tgt="zh", speaker=[1, 2], linguistic=[1])
    with pytest.raises(PromptError, match="unknown language 'fr'"):
        build_prompt(PAPER, "quality", tgt="fr", speaker=SPK, linguistic=[1])
    with pytest.raises(PromptError, match="needs linguistic"):
        build_prompt(PAPER, "s2tt", tgt="zh", speaker=SPK)
    with pytest.raises(PromptError, match="unknown task"):
        build_prompt(PAPER, "summarise", tgt="zh")
    with pytest.raises(TokenRangeError):
        build_prompt(PAPER, "asr", src="en", speaker=SPK, linguistic=[16384])


def test_strip_special_drops_byte_fallback_replacement_characters():
    """A tiny byte-level BPE model can write half of a multi-byte character; decoding gives U+FFFD,
    which must not reach the target text (Text-BLEU, TTS)."""
    from uniss.prompts import strip_special

    assert strip_special("<|start_content|>我妈妈今天\ufffd一本新书。<|end_content|> ") == "我妈妈今天一本新书。"
    assert strip_special(" hello\ufffd\ufffd world ") == "hello world"


def test_interleave_words_puts_each_word_before_its_units():
    from uniss.prompts import interleave_words

    sem = [7, 7, 8, 9, 9, 3]
    span = interleave_words(PAPER, sem, [" The", " cat", "."], [1, 3, 5])
    # units before the first start follow the first word; every unit once, in order
    assert span == (" The" + PAPER.tokens("semantic", [7, 7, 8]) + " cat" + PAPER.tokens("semantic", [9, 9])
                    + "." + PAPER.tokens("semantic", [3]))
    cont = build_continuation(PAPER, "tts", semantic=sem, words=[" The", " cat", "."], word_starts=[1, 3, 5])
    assert cont == span + "<|end_semantic_token|><|im_end|>"
    parsed = parse_output(PAPER, "tts", cont)
    assert parsed.semantic.tolist() == sem and parsed.complete  # the parser reads the units through the words
    # Performance: the translation text is the first span only, the interleaved words are not text
    perf = build_continuation(PAPER, "performance", translation="A cat.", semantic=sem, words=[" A", " cat."], word_starts=[0, 2])
    assert parse_output(PAPER, "performance", perf).target_text == "A cat."


@pytest.mark.parametrize("words,starts", [([], []), ([" a", " b"], [0]), ([" a", " b"], [3, 1]), ([" a"], [9])])
def test_interleave_words_rejects_bad_alignments(words, starts):
    from uniss.prompts import interleave_words

    with pytest.raises(PromptError):
        interleave_words(PAPER, [1, 2, 3], words, starts)
