"""Task prompts byte-identical to ARCHITECTURE.md; build/parse round-trips for every task."""

import numpy as np
import pytest
from hypothesis import given, settings
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


@pytest.mark.parametrize("garbage", ["", "<|im_end|>", "hello", "<|bicodec_semantic_99999|>", "a<|end_content|>b", "<|" * 50])
def test_parser_is_total_on_malformed_output(garbage):
    for task in Task:
        out = parse_output(PAPER, task, garbage)
        assert isinstance(out.complete, bool)
        if not out.complete:
            assert out.reason


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
