"""MSLM-S2ST recipe samples (training/mslm.py, uniss/mslm.py): the exact ids and loss mask of one
sample of each task on the released layout, the 3x translation upsampling, the recipe's config."""

import numpy as np
import pytest

from training.config import ConfigError, load_config
from training.mslm import TRANSLATION_UPSAMPLE, build_mslm_sample, build_mslm_samples, mslm_row_samples
from training.samples import IGNORE_INDEX, SampleError
from uniss.mslm import MSLM_FORMATS, build_mslm_continuation, build_mslm_prompt
from uniss.prompts import PromptError
from uniss.vocab import SpeechVocab

PAPER = SpeechVocab.paper()
M = IGNORE_INDEX
# Ids of the released layout (ARCHITECTURE.md "Token layout"): control = 180372 + position.
TASK_S2S, TASK_T2S, ENG, CMN = 180377, 180378, 180373, 180372
START_GLM, END_GLM, WRITE, START_SEM, END_SEM, START_G, END_G = 180389, 180393, 180396, 180388, 180392, 180387, 180391
IM_END = 151645
SPK0, SEM0, LIN0 = 151665, 155761, 163953  # first speaker / semantic / linguistic id

ROW = {
    "id": "r0", "src_lang": "en", "tgt_lang": "zh", "src_text": "a cat", "tgt_text": "一只猫",
    "src_speaker": list(range(32)), "src_linguistic": [5, 6, 7], "src_semantic": [9, 9, 8, 8, 7],
    "tgt_speaker": [1] * 32, "tgt_linguistic": [1, 2], "tgt_semantic": [3, 4, 5, 6],
}


def _only_im_end(s: str) -> list[int]:
    """The text tokenizer as the paper layout sees it; MSLM formats carry no text but ``<|im_end|>``."""
    assert s == "<|im_end|>", f"text reached the text tokenizer: {s!r}"
    return [IM_END]


def test_translation_sample_exact_ids_and_loss_mask():
    s = build_mslm_sample(PAPER, _only_im_end, ROW, "mslm_translate")
    prompt = [TASK_S2S, ENG, START_GLM, LIN0 + 5, LIN0 + 6, LIN0 + 7, END_GLM, WRITE, CMN, START_GLM]
    cont = [LIN0 + 1, LIN0 + 2, END_GLM, IM_END]
    assert s.input_ids.tolist() == prompt + cont
    assert s.labels.tolist() == [M] * 10 + cont
    assert s.task == "mslm_translate" and s.row_id == "r0" and s.n_loss_tokens == 4
    assert s.input_ids.dtype == np.int64 and s.labels.dtype == np.int64


def test_generation_sample_exact_ids_and_loss_mask():
    s = build_mslm_sample(PAPER, _only_im_end, ROW, "mslm_generate")
    prompt = ([TASK_T2S, CMN, START_G] + [SPK0 + i for i in range(32)] + [END_G]
              + [START_GLM, LIN0 + 1, LIN0 + 2, END_GLM, WRITE, START_SEM])
    cont = [SEM0 + 3, SEM0 + 4, SEM0 + 5, SEM0 + 6, END_SEM, IM_END]
    assert s.input_ids.tolist() == prompt + cont
    assert s.labels.tolist() == [M] * 42 + cont
    assert s.n_loss_tokens == 6


def test_reverse_direction_swaps_sides():
    """side=tgt: zh -> en translation; generation of the source speech in the target side's voice."""
    t = build_mslm_sample(PAPER, _only_im_end, ROW, "mslm_translate", side="tgt")
    assert t.input_ids.tolist() == [TASK_S2S, CMN, START_GLM, LIN0 + 1, LIN0 + 2, END_GLM, WRITE, ENG, START_GLM,
                                    LIN0 + 5, LIN0 + 6, LIN0 + 7, END_GLM, IM_END]
    g = build_mslm_sample(PAPER, _only_im_end, ROW, "mslm_generate", side="tgt")
    assert g.input_ids[:3].tolist() == [TASK_T2S, ENG, START_G] and g.input_ids[3:35].tolist() == [SPK0 + 1] * 32
    assert g.labels[g.labels != M].tolist() == [SEM0 + 9, SEM0 + 9, SEM0 + 8, SEM0 + 8, SEM0 + 7, END_SEM, IM_END]


def test_prompt_strings():
    assert build_mslm_prompt(PAPER, "mslm_translate", src="en", tgt="zh", linguistic=[5]) == (
        "<|task_s2s|><|eng|><|start_glm_token|><|glm_semantic_5|><|end_glm_token|><|write_generate|><|cmn|><|start_glm_token|>")
    assert build_mslm_continuation(PAPER, "mslm_generate", semantic=[2]) == "<|bicodec_semantic_2|><|end_semantic_token|><|im_end|>"


def test_translation_upsampled_three_times():
    assert TRANSLATION_UPSAMPLE == 3
    got = mslm_row_samples(PAPER, _only_im_end, ROW)
    assert [s.task for s in got] == ["mslm_translate"] * 6 + ["mslm_generate"] * 2  # 2 directions
    assert all(np.array_equal(got[i].input_ids, got[0].input_ids) for i in range(3))  # identical copies
    assert not np.array_equal(got[3].input_ids, got[0].input_ids)  # then the reverse direction
    one_way = mslm_row_samples(PAPER, _only_im_end, ROW, both_sides=False)
    assert [s.task for s in one_way] == ["mslm_translate"] * 3 + ["mslm_generate"]
    assert len(mslm_row_samples(PAPER, _only_im_end, ROW, upsample=1, both_sides=False)) == 2
    assert mslm_row_samples(PAPER, _only_im_end, {**ROW, "kind": "text"}) == []  # textless recipe


def test_corpus_samples_on_the_lite_layout(toks, rows):
    """On the synthetic corpus: 3 translation samples per generation sample, ids equal to the expanded
    HF tokenizer's, seeded order."""
    text, model_tok, vocab = toks
    enc = lambda s: text.encode(s, add_special_tokens=False)  # noqa: E731
    got = build_mslm_samples(vocab, enc, rows[:4], seed=1)
    n_t = sum(s.task == "mslm_translate" for s in got)
    assert (n_t, len(got) - n_t) == (24, 8)
    assert [s.input_ids.tolist() for s in build_mslm_samples(vocab, enc, rows[:4], seed=1)] == [s.input_ids.tolist() for s in got]
    s = build_mslm_sample(vocab, enc, rows[0], "mslm_generate")
    p = build_mslm_prompt(vocab, "mslm_generate", tgt=rows[0]["tgt_lang"], speaker=rows[0]["src_speaker"],
                          linguistic=rows[0]["tgt_linguistic"])
    c = build_mslm_continuation(vocab, "mslm_generate", semantic=rows[0]["tgt_semantic"])
    assert s.input_ids.tolist() == model_tok.encode(p, add_special_tokens=False) + model_tok.encode(c, add_special_tokens=False)
    assert s.input_ids[-1] == vocab.eos_id


def test_bad_rows_and_formats_are_typed_errors():
    with pytest.raises(SampleError, match="tgt_linguistic"):
        build_mslm_sample(PAPER, _only_im_end, {k: v for k, v in ROW.items() if k != "tgt_linguistic"}, "mslm_translate")
    with pytest.raises(SampleError, match="unknown MSLM formats"):
        mslm_row_samples(PAPER, _only_im_end, ROW, ["quality"])
    with pytest.raises(SampleError, match="upsample"):
        mslm_row_samples(PAPER, _only_im_end, ROW, upsample=0)
    with pytest.raises(PromptError, match="32 codes"):
        build_mslm_sample(PAPER, _only_im_end, {**ROW, "src_speaker": [1, 2]}, "mslm_generate")
    with pytest.raises(PromptError, match="language"):
        build_mslm_sample(PAPER, _only_im_end, {**ROW, "src_lang": "fr"}, "mslm_translate")


def test_recipe_config():
    cfg = load_config("tiny_mslm")
    assert cfg.recipe == "mslm" and tuple(cfg.data.formats) == MSLM_FORMATS and cfg.data.translation_upsample == 3
    assert load_config("tiny_phase1").recipe == "uniss"
    with pytest.raises(ConfigError, match="recipe mslm trains formats"):
        load_config("tiny_mslm", ["data.formats=[mslm_translate, asr]"])
    with pytest.raises(ConfigError, match="set recipe: mslm"):
        load_config("tiny_phase1", ["data.formats=[mslm_generate]"])
    with pytest.raises(ConfigError, match="recipe mslm only"):
        load_config("tiny_phase1", ["data.translation_upsample=3"])
    with pytest.raises(ConfigError, match="one phase"):
        load_config("tiny_mslm", ["data.alignment=true"])
