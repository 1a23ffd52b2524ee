"""LocalChatMT (App. E.2 LLM translation through transformers): prompt in the chat template,
left-padded batches equal single-text generation, the reply cache, the typed not-installed error,
``data.mt`` selection and the clean-up/quarantine of its output.

The unit tests build a tiny Qwen2 from a config with a byte-level BPE tokenizer constructed here (no
checkpoint needed); one test uses the real Qwen2.5-Coder-0.5B-Instruct and is skipped with the
install command when it is absent.
"""

from __future__ import annotations

import pandas as pd
import pytest

from uniss.engines.llm_mt import (QWEN25_CHAT_TEMPLATE, QWEN_INSTALL_COMMAND, LocalChatMT, MTModelNotInstalledError,
                                  default_qwen_dir, make_mt)
from uniss.engines.mt import PROMPT_EN_TO_ZH, PROMPT_ZH_TO_EN, MixedScriptError, MTError, clean_translation

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_tokenizer():
    """Byte-level BPE without merges (every UTF-8 byte one token) + the three ChatML specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(SPECIALS)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    return tok


@pytest.fixture(scope="module")
def tiny():
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg).eval(), tok


def _engine(tiny, **kw) -> LocalChatMT:
    model, tok = tiny
    return LocalChatMT(model=model, tokenizer=tok, max_new_tokens=6, **kw)


def test_chat_prompt_is_app_e2_in_chatml(tiny):
    eng = _engine(tiny)
    enc = eng.chat_inputs(["我喜欢喝茶。"], "zh", "en")
    text = eng._tok.decode(enc["input_ids"][0])
    assert eng._tok.chat_template == QWEN25_CHAT_TEMPLATE  # the tiny tokenizer has none
    assert text == ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                    f"<|im_start|>user\n{PROMPT_ZH_TO_EN}\n我喜欢喝茶。<|im_end|>\n<|im_start|>assistant\n")
    assert PROMPT_EN_TO_ZH in eng._tok.decode(eng.chat_inputs(["Hi."], "en", "zh")["input_ids"][0])


def test_batch_is_left_padded_and_equals_single(tiny):
    eng = _engine(tiny, batch_size=4)
    texts = ["Hi.", "We will meet at the station tomorrow morning."]
    enc = eng.chat_inputs(texts, "en", "zh")
    assert int(enc["attention_mask"][0, 0]) == 0 and int(enc["attention_mask"][0, -1]) == 1  # padded on the left
    batched = eng.translate(texts, "en", "zh")
    singles = [_engine(tiny).translate([t], "en", "zh")[0] for t in texts]
    assert batched == singles
    assert eng.calls == 1


def test_cache_per_text_and_direction(tiny, tmp_path):
    eng = _engine(tiny, batch_size=2, cache_dir=tmp_path)
    a = eng.translate(["Hi.", "Bye.", "Hi."], "en", "zh")
    assert eng.calls == 1 and a[0] == a[2]  # duplicates generated once
    assert eng.translate([" Hi.", "Bye."], "en", "zh") == a[:2] and eng.calls == 1  # memory hits
    eng.translate(["Hi."], "zh", "en")  # other direction: a new key
    assert eng.calls == 2
    fresh = _engine(tiny, cache_dir=tmp_path)
    assert fresh.translate(["Bye.", "Hi."], "en", "zh") == [a[1], a[0]] and fresh.calls == 0  # disk hits
    assert len(list(tmp_path.rglob("*.json"))) == 3


def test_bad_input_typed(tiny, tmp_path):
    eng = _engine(tiny)
    with pytest.raises(MTError, match="empty"):
        eng.translate(["  "], "en", "zh")
    with pytest.raises(MTError, match="both"):
        eng.translate(["Hi."], "en", "en")
    with pytest.raises(MTError):
        LocalChatMT(model=tiny[0])
    with pytest.raises(MTError, match="unknown MT engine"):
        make_mt("gpt-9")


def test_not_installed_names_install_command(tmp_path, monkeypatch):
    with pytest.raises(MTModelNotInstalledError, match="--only qwen2.5-0.5b"):
        LocalChatMT(model_dir=tmp_path / "absent")
    from uniss.unist import synthesize
    from uniss.unist.params import DataParams

    monkeypatch.setattr("uniss.engines.llm_mt.default_qwen_dir", lambda: tmp_path / "absent")
    with pytest.raises(MTModelNotInstalledError, match=QWEN_INSTALL_COMMAND):
        synthesize.mt_engine(DataParams(mt="qwen2.5-0.5b"))
    assert type(synthesize.mt_engine(DataParams(), {"a": "b"})).__name__ == "ReferenceMT"
    with pytest.raises(ValueError):
        DataParams(mt="gpt-9")


@pytest.mark.parametrize("raw,tgt,want", [
    ("I like tea.", "en", "I like tea."),
    ("Sure! Here is the translation:\n\nI like tea.", "en", "I like tea."),
    ("他打开窗户，看着花园。", "zh", "他打开窗户，看着花园。"),
    ("以下是翻译：\n我们明天早上在车站见面。\n\n注：这是直译。", "zh", "我们明天早上在车站见面。"),
])
def test_cleanup_of_llm_style_replies(raw, tgt, want):
    assert clean_translation(raw, tgt) == want


@pytest.mark.parametrize("raw,tgt", [("我们在station见面。", "zh"), ("We meet at the 车站.", "en")])
def test_mixed_script_reply_dropped(raw, tgt):
    with pytest.raises(MixedScriptError):
        clean_translation(raw, tgt)


def test_mixed_script_llm_output_quarantined_in_synthesis(tiny):
    """``step_translate`` quarantines the row with the clean-up's reason (the existing rule)."""
    from uniss.unist.synthesize import Engines, step_translate

    class Fixed(LocalChatMT):
        def _generate(self, texts, src, tgt):  # the model's reply, fixed
            self.calls += 1
            return ["我们在station见面。" if "station" in t else "我喜欢茶。" for t in texts]

    eng = Engines(asr=None, tts=None, mt=Fixed(model=tiny[0], tokenizer=tiny[1]), error_rate=None,
                  clean_translation=clean_translation, voice_map=None, vad_trim=None)
    df = pd.DataFrame({"transcript": ["We meet at the station.", "I like tea."], "language": ["en", "en"],
                       "tgt_lang": ["zh", "zh"], "fail_step": ["", ""], "fail_reason": ["", ""], "tgt_text": [None, None]})
    out = step_translate(df, eng)
    assert list(out["fail_step"]) == ["translate", ""]
    assert out.at[0, "fail_reason"].startswith("MixedScriptError")
    assert out.at[1, "tgt_text"] == "我喜欢茶。"


@pytest.mark.skipif(not (default_qwen_dir() / "config.json").is_file(),
                    reason=f"Qwen2.5-Coder-0.5B-Instruct not installed ({QWEN_INSTALL_COMMAND})")
def test_real_qwen_translates_zh_en():
    eng = LocalChatMT(threads=1, max_new_tokens=32)
    out = eng.translate(["我喜欢喝茶。"], "zh", "en")
    assert "tea" in clean_translation(out[0], "en").lower()
