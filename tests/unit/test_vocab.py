"""Token layout: paper ids (ARCHITECTURE.md), round-trips (hypothesis), bad input."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from uniss.vocab import (
    CONTROL_TOKENS,
    FAMILIES,
    SpeechVocab,
    TokenRangeError,
    UnknownLanguageError,
    UnknownTokenError,
    VocabError,
    speed_index,
)

PAPER = SpeechVocab.paper()
LITE = SpeechVocab.lite(300, 64, 128, 96, pad_id=0, im_start_id=1, eos_id=2)


def test_paper_total_and_ranges_match_released_tokenizer():
    assert PAPER.total == 180_407 == len(PAPER)
    assert PAPER.ranges == {
        "text": (0, 151_665),
        "speaker": (151_665, 155_761),
        "semantic": (155_761, 163_953),
        "linguistic": (163_953, 180_337),
        "speed": (180_337, 180_372),
        "control": (180_372, 180_407),
    }


@pytest.mark.parametrize(
    "token,expected",
    [
        ("<|task_s2s_translation|>", 180_379),
        ("<|task_s2t_translation|>", 180_380),
        ("<|task_t2t_translation|>", 180_381),
        ("<|start_content|>", 180_386),
        ("<|end_content|>", 180_390),
        ("<|write_generate|>", 180_396),
        ("<|slow_mode|>", 180_399),
        ("<|streaming_mode|>", 180_406),
        ("<|cmn|>", 180_372),
        ("<|bicodec_global_0|>", 151_665),
        ("<|bicodec_semantic_0|>", 155_761),
        ("<|glm_semantic_16383|>", 180_336),
        ("<|speed_9|>", 180_346),
    ],
)
def test_paper_token_ids(token, expected):
    assert PAPER.token_id(token) == expected
    assert PAPER.token_string(expected) == token


def test_speech_token_strings_cover_non_text_range_in_order():
    toks = list(LITE.speech_token_strings())
    assert len(toks) == LITE.total - LITE.text_size
    assert [LITE.token_id(t) for t in toks] == list(range(LITE.text_size, LITE.total))
    assert toks[-len(CONTROL_TOKENS):] == list(CONTROL_TOKENS)


@given(
    family=st.sampled_from(["speaker", "semantic", "linguistic", "speed", "control"]),
    data=st.data(),
)
def test_codes_ids_roundtrip(family, data):
    size = LITE.sizes[family]
    codes = np.asarray(data.draw(st.lists(st.integers(0, size - 1), max_size=40)), dtype=np.int64)
    ids = LITE.to_ids(family, codes)
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(LITE.to_codes(family, ids), codes)
    fam, back = LITE.split_ids(ids)
    assert set(fam.tolist()) <= {FAMILIES.index(family)}
    np.testing.assert_array_equal(back, codes)
    t = torch.as_tensor(codes)
    assert torch.equal(LITE.to_codes(family, LITE.to_ids(family, t)), t)


@given(ids=st.lists(st.integers(0, PAPER.total - 1), max_size=30))
def test_encode_decode_roundtrip_of_non_text_ids(ids):
    ids = [i for i in ids if i >= PAPER.text_size]
    s = PAPER.decode(ids, decode_text=lambda run: "")
    assert PAPER.encode(s, encode_text=lambda text: []) == ids


def test_encode_mixes_text_and_special_tokens():
    enc = lambda t: [ord(c) % 200 + 3 for c in t]  # noqa: E731 - a toy byte tokenizer
    s = "<|task_asr|><|eng|>hi<|lite_semantic_5|><|im_end|>"
    ids = LITE.encode(s, enc)
    c0 = LITE.range("control")[0]
    assert ids[:2] == [c0 + 4, c0 + 1]
    assert ids[2:4] == enc("hi")
    assert ids[4] == LITE.range("semantic")[0] + 5
    assert ids[5:] == enc("<|im_end|>")  # a text-tokenizer special stays text


@pytest.mark.parametrize("ratio,idx", [(1.0, 9), (0.1, 0), (3.5, 34), (0.7, 6), (1.2, 11), (1.24, 11), (1.26, 12)])
def test_speed_index_rounds(ratio, idx):
    assert speed_index(ratio) == idx


@pytest.mark.parametrize("ratio", [0.04, 3.56, float("nan"), float("inf")])
def test_speed_index_rejects_out_of_range(ratio):
    with pytest.raises(VocabError, match="speed ratio"):
        speed_index(ratio)


def test_bad_input_errors_name_the_problem():
    with pytest.raises(TokenRangeError, match="semantic code outside"):
        LITE.to_ids("semantic", [0, 128])
    with pytest.raises(TokenRangeError, match="is a text token, not a speaker token"):
        LITE.to_codes("speaker", [5])
    with pytest.raises(UnknownLanguageError, match="unknown language 'fr'"):
        LITE.language_token("fr")
    with pytest.raises(UnknownTokenError):
        PAPER.token_id("<|lite_semantic_3|>")
    with pytest.raises(VocabError, match="unknown token family"):
        LITE.range("phoneme")
    with pytest.raises(VocabError, match="outside the text range"):
        SpeechVocab.lite(10, 4, 4, 4, pad_id=10, im_start_id=1, eos_id=2)


def test_dict_roundtrip_checks_total():
    assert SpeechVocab.from_dict(LITE.to_dict()) == LITE
    bad = PAPER.to_dict() | {"total": 5}
    with pytest.raises(VocabError, match="total"):
        SpeechVocab.from_dict(bad)
