"""The UniSS language model: a Qwen2-architecture causal LM with the expanded speech vocabulary.

Source: paper §3.1 (UniSS = Qwen2.5-1.5B-Instruct backbone whose vocabulary gains the speaker,
semantic and linguistic speech tokens plus control tokens, 180,407 ids in all, §5.1);
ARCHITECTURE.md "Token layout" (the id order, and: resize the embeddings **before** DeepSpeed
ZeRO-3 initialises, because resizing a partitioned model breaks).

Written here (STYLE.md #13: only the difference to upstream): size builders over one generic
builder (STYLE.md #7), loading a local HF checkpoint with key/shape checks (STYLE.md #14), the
embedding expansion rule (new rows = mean of the old rows, rows padded to a multiple of 64) and the
tokenizers. The network itself is ``transformers.Qwen2ForCausalLM`` unchanged.

Shape legend: ``V`` = embedding rows (``vocab.total`` rounded up to a multiple of 64),
``D`` = hidden size. Embedding matrices are ``(V, D)`` float32 (or the checkpoint's dtype).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from uniss.errors import UnissError
from uniss.vocab import PAPER_SIZES, SpeechVocab

__all__ = [
    "EMBED_MULTIPLE",
    "SIZES",
    "TEXT_SPECIAL_TOKENS",
    "LMError",
    "build_lm",
    "build_paper_lm",
    "build_speech_tokenizer",
    "expand_vocab",
    "load_checked_model",
    "load_pretrained",
    "load_text_tokenizer",
    "padded_rows",
    "save_released",
    "train_text_tokenizer",
    "uniss_lm",
    "uniss_lm_0_5b",
    "uniss_lm_1_5b",
    "uniss_lm_tiny",
    "vocab_for",
]

#: Embedding rows are padded to a multiple of this (tensor-core friendly; Qwen2.5 itself ships
#: 151,936 = 2,374 x 64 rows for 151,665 tokens).
EMBED_MULTIPLE = 64

#: Qwen2.5 text special tokens that the UniSS prompts rely on, in Qwen2.5's id order
#: (``<|endoftext|>`` pad 151643, ``<|im_start|>`` 151644, ``<|im_end|>`` 151645 = end of decoding).
#: The tiny corpus BPE puts them first (ids 0, 1, 2).
TEXT_SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


class LMError(UnissError, ValueError):
    """Bad model size, a checkpoint whose keys/shapes do not match, or a tokenizer that does not
    agree with the token layout."""


#: Architecture shapes per size. ``0_5b``/``1_5b`` are the published Qwen2.5-0.5B/1.5B(-Instruct)
#: ``config.json`` values (hf.co/Qwen/Qwen2.5-1.5B-Instruct); ``tiny`` is this platform's CPU size
#: (about 6 M parameters with a ~10 k vocabulary) chosen so that three phases on demo data
#: finish in minutes on 2 CPU cores.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=8192, rope_theta=10_000.0,
                 rms_norm_eps=1e-6, tie_word_embeddings=True),
    "0_5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1_000_000.0,
                 rms_norm_eps=1e-6, tie_word_embeddings=True),
    "1_5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1_000_000.0,
                 rms_norm_eps=1e-6, tie_word_embeddings=True),
}


def padded_rows(n: int, multiple: int = EMBED_MULTIPLE) -> int:
    """``n`` rounded up to a multiple of ``multiple`` (embedding rows for ``n`` ids)."""
    return int(math.ceil(n / multiple) * multiple)


def uniss_lm(size: str, vocab_size: int, *, attn_implementation: str = "sdpa", **overrides: Any):
    """Generic builder: a randomly initialised ``Qwen2ForCausalLM`` of a named size.

    Args:
        size: key of :data:`SIZES` (``tiny``, ``0_5b``, ``1_5b``).
        vocab_size: number of ids to embed; rows are padded to a multiple of 64.
        attn_implementation: ``sdpa`` (default) or ``eager``; both support packed sequences through
            position ids (see ``training/packing.py``).
        overrides: any ``Qwen2Config`` field (e.g. ``num_hidden_layers=2`` in tests).

    Returns:
        ``transformers.Qwen2ForCausalLM`` in float32, train mode off (``eval()`` is the caller's call).

    Raises:
        LMError: unknown size.
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if size not in SIZES:
        raise LMError(f"unknown model size {size!r}; expected one of {sorted(SIZES)}")
    shape = dict(SIZES[size])
    shape.update(overrides)
    theta = float(shape.pop("rope_theta"))
    cfg = Qwen2Config(
        vocab_size=padded_rows(vocab_size),
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        use_sliding_window=False,
        use_cache=False,
        **shape,
    )
    cfg._attn_implementation = attn_implementation  # noqa: SLF001 - documented HF switch
    return Qwen2ForCausalLM(cfg)


def uniss_lm_tiny(vocab_size: int, **overrides: Any):
    """CPU size: hidden 256, 4 layers, 4 heads (2 KV), intermediate 768, tied embeddings."""
    return uniss_lm("tiny", vocab_size, **overrides)


def uniss_lm_0_5b(vocab_size: int, **overrides: Any):
    """Qwen2.5-0.5B shapes: hidden 896, 24 layers, 14 heads (2 KV), intermediate 4864, tied."""
    return uniss_lm("0_5b", vocab_size, **overrides)


def uniss_lm_1_5b(vocab_size: int, **overrides: Any):
    """Qwen2.5-1.5B shapes (the paper's backbone, §5.1): hidden 1536, 28 layers, 12 heads (2 KV),
    intermediate 8960, tied."""
    return uniss_lm("1_5b", vocab_size, **overrides)


def build_lm(size: str, vocab_size: int, **overrides: Any):
    """Alias of :func:`uniss_lm` (name used by the trainer)."""
    return uniss_lm(size, vocab_size, **overrides)


# ---------------------------------------------------------------------------------- checkpoints
def _expected_keys(model) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_checked_model(path: str | Path, *, attn_implementation: str = "sdpa"):
    """Load a local HF ``Qwen2ForCausalLM`` directory (``config.json`` + ``*.safetensors``),
    checking every weight's key and shape against the config first (STYLE.md #14: never
    ``strict=False`` with missing keys only printed).

    Returns:
        ``Qwen2ForCausalLM`` in float32 with the KV cache off (training default).

    Raises:
        LMError: missing directory/files, not a qwen2 config, missing/unexpected/mis-shaped weights.
    """
    import torch
    from safetensors.torch import load_file
    from transformers import Qwen2Config, Qwen2ForCausalLM

    p = Path(path)
    if not (p / "config.json").is_file():
        raise LMError(f"{p} is not a HF checkpoint directory (no config.json)")
    cfg_d = json.loads((p / "config.json").read_text())
    if cfg_d.get("model_type") != "qwen2":
        raise LMError(f"{p}: model_type {cfg_d.get('model_type')!r} is not 'qwen2'")
    files = sorted(p.glob("*.safetensors"))
    if not files:
        raise LMError(f"{p}: no *.safetensors weights")
    cfg = Qwen2Config.from_pretrained(p)
    cfg.use_cache = False
    cfg._attn_implementation = attn_implementation  # noqa: SLF001 - documented HF switch
    with torch.device("meta"):
        skeleton = Qwen2ForCausalLM(cfg)
    expected = _expected_keys(skeleton)
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    tied = bool(cfg.tie_word_embeddings)
    missing = [k for k in expected if k not in state and not (tied and k == "lm_head.weight")]
    unexpected = [k for k in state if k not in expected]
    bad = [f"{k}: {tuple(state[k].shape)} != {expected[k]}" for k in state if k in expected and tuple(state[k].shape) != expected[k]]
    if missing or unexpected or bad:
        raise LMError(
            f"{p}: checkpoint does not match its config: missing={missing[:5]} ({len(missing)}), "
            f"unexpected={unexpected[:5]} ({len(unexpected)}), shape mismatches={bad[:5]}"
        )
    model = Qwen2ForCausalLM(cfg)
    res = model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=False)
    left = [k for k in res.missing_keys if not (tied and k == "lm_head.weight")]
    if left or res.unexpected_keys:
        raise LMError(f"{p}: load left missing={left} unexpected={res.unexpected_keys}")
    if tied:
        model.tie_weights()
    return model


def load_pretrained(path: str | Path, *, attn_implementation: str = "sdpa"):
    """Load a local HF Qwen2 checkpoint (``save_pretrained`` dir; e.g. Qwen2.5-1.5B-Instruct) and
    its text tokenizer, with key/shape checks (:func:`load_checked_model`).

    Returns:
        ``(model, tokenizer)``: ``Qwen2ForCausalLM`` (float32, cache off) and a
        ``PreTrainedTokenizerFast`` holding the three Qwen2.5 specials.

    Raises:
        LMError: see :func:`load_checked_model`; or a tokenizer without the Qwen2.5 specials.
    """
    model = load_checked_model(path, attn_implementation=attn_implementation)
    return model, load_text_tokenizer(path)


def load_text_tokenizer(path: str | Path):
    """A HF fast tokenizer from a local directory, checked for the three Qwen2.5 specials.

    Raises:
        LMError: cannot load, or ``<|endoftext|>``/``<|im_start|>``/``<|im_end|>`` missing.
    """
    from transformers import PreTrainedTokenizerFast

    try:
        tok = PreTrainedTokenizerFast.from_pretrained(str(path))
    except Exception as e:  # noqa: BLE001 - any load failure is a bad checkpoint for the user
        raise LMError(f"cannot load a fast tokenizer from {path}: {e}") from e
    _check_specials(tok)
    return tok


def _check_specials(tok) -> None:
    unk = tok.unk_token_id
    for s in TEXT_SPECIAL_TOKENS:
        i = tok.convert_tokens_to_ids(s)
        if i is None or (unk is not None and i == unk):
            raise LMError(f"text tokenizer lacks special token {s}")


# ---------------------------------------------------------------------------------- tokenizers
def train_text_tokenizer(texts: Iterable[str], vocab_size: int = 4000, *, min_frequency: int = 2):
    """Train the tiny configuration's byte-level BPE on corpus text (``tokenizers``) and wrap it as
    a ``transformers.PreTrainedTokenizerFast``.

    The specials ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` get ids 0, 1, 2 (the Qwen2.5
    roles: pad, chat start, end of decoding). No BOS/EOS is added on encode (the prompts carry
    their own delimiters). Byte-level, so any Chinese or English text encodes without unknowns.

    Args:
        texts: corpus sentences (both languages).
        vocab_size: target BPE size (specials and the 256 byte symbols included).

    Returns:
        ``PreTrainedTokenizerFast`` with ``pad_token`` = ``<|endoftext|>`` and
        ``eos_token`` = ``<|im_end|>``.

    Raises:
        LMError: no text given.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [t for t in texts if t and t.strip()]
    if not corpus:
        raise LMError("cannot train a text tokenizer on an empty corpus")
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(TEXT_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(corpus, trainer=trainer)
    for i, s in enumerate(TEXT_SPECIAL_TOKENS):
        if tk.token_to_id(s) != i:
            raise LMError(f"BPE trainer put {s} at {tk.token_to_id(s)}, expected {i}")
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
        clean_up_tokenization_spaces=False,
    )


def vocab_for(text_tok, sizes: dict[str, int], *, layout: str = "lite") -> SpeechVocab:
    """The :class:`SpeechVocab` for a text tokenizer and codec sizes.

    Args:
        text_tok: the text tokenizer (its ``len`` is the text range).
        sizes: codec sizes ``{"speaker", "semantic", "linguistic"}`` (``load_codec(dir).sizes``).
        layout: ``paper`` (BiCodec/GLM token spellings) or ``lite``.

    Raises:
        LMError: sizes lack a family or the tokenizer lacks the specials.
    """
    _check_specials(text_tok)
    try:
        kw = dict(text_size=len(text_tok), speaker_size=int(sizes["speaker"]),
                  semantic_size=int(sizes["semantic"]), linguistic_size=int(sizes["linguistic"]))
    except KeyError as e:
        raise LMError(f"codec sizes lack {e}; got {sorted(sizes)}") from None
    ids = {n: text_tok.convert_tokens_to_ids(s) for n, s in zip(("pad_id", "im_start_id", "eos_id"), TEXT_SPECIAL_TOKENS, strict=True)}
    return SpeechVocab(**kw, layout=layout, **ids)


def build_speech_tokenizer(text_tok, vocab: SpeechVocab):
    """The model tokenizer: the text tokenizer plus every ``vocab.speech_token_strings()`` token,
    added in id order as special tokens so that their ids equal the layout (asserted).

    Args:
        text_tok: ``PreTrainedTokenizerFast`` whose ``len`` equals ``vocab.text_size``.
        vocab: the layout.

    Returns:
        A new ``PreTrainedTokenizerFast`` with ``len == vocab.total``.

    Raises:
        LMError: text size mismatch, or an added token lands on an id other than its layout id.
    """
    import copy

    if len(text_tok) != vocab.text_size:
        raise LMError(f"text tokenizer has {len(text_tok)} tokens but the layout's text range is {vocab.text_size}")
    tok = copy.deepcopy(text_tok)
    new = list(vocab.speech_token_strings())
    tok.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    if len(tok) != vocab.total:
        raise LMError(f"tokenizer has {len(tok)} ids after adding speech tokens; layout total is {vocab.total}")
    start = vocab.text_size
    got = tok.convert_tokens_to_ids([new[0], new[len(new) // 2], new[-1]])
    want = [start, start + len(new) // 2, start + len(new) - 1]
    if got != want:
        raise LMError(f"speech token ids {got} do not match the layout {want}")
    return tok


def expand_vocab(model, vocab: SpeechVocab, *, tokenizer=None) -> int:
    """Resize the model's embeddings (and untied LM head) to ``vocab.total`` padded to a multiple
    of 64 rows; new rows = the mean of the old rows. Call **before** ``deepspeed.initialize``
    (ARCHITECTURE.md: resizing a ZeRO-3-partitioned model breaks).

    Args:
        model: ``Qwen2ForCausalLM`` with ``V_old`` rows.
        vocab: the layout to hold.
        tokenizer: optional model tokenizer; when given its ``len`` must equal ``vocab.total``.

    Returns:
        New row count ``V`` (>= vocab.total, multiple of 64).

    Raises:
        LMError: tokenizer size mismatch, or the model already has more real ids than the layout.
    """
    import torch

    if tokenizer is not None and len(tokenizer) != vocab.total:
        raise LMError(f"tokenizer has {len(tokenizer)} ids, layout total is {vocab.total}")
    emb = model.get_input_embeddings()
    old = emb.weight.shape[0]
    rows = padded_rows(vocab.total)
    if rows == old:
        return rows
    # Rows that hold real ids in the old model: a text checkpoint's tokens are the text range.
    n_real = min(old, vocab.text_size)
    with torch.no_grad():
        mean_in = emb.weight[:n_real].mean(dim=0)  # (D,)
        head = model.get_output_embeddings()
        tied = head is not None and head.weight.data_ptr() == emb.weight.data_ptr()
        mean_out = None if (head is None or tied) else head.weight[:n_real].mean(dim=0)
    model.resize_token_embeddings(rows, mean_resizing=False)
    with torch.no_grad():
        e = model.get_input_embeddings().weight
        e[n_real:] = mean_in
        if mean_out is not None:
            model.get_output_embeddings().weight[n_real:] = mean_out
    model.config.vocab_size = rows
    return rows


# ------------------------------------------------------------------ paper layout on a real Qwen2.5
def build_paper_lm(pretrained: str | Path, *, attn_implementation: str = "sdpa"):
    """A local Qwen2.5(-Instruct) checkpoint expanded to the released UniSS layout (paper §5.1):
    the real Qwen2.5 tokenizer (151,665 text ids) plus every speech/speed/control token of
    :meth:`SpeechVocab.paper` = exactly 180,407 ids; embeddings resized (new rows = mean of the
    text rows) to 180,416 rows (a multiple of 64).

    Args:
        pretrained: ``save_pretrained`` directory of a Qwen2.5 model whose tokenizer has exactly
            the 151,665 real text ids (``scripts/install_models.py --only qwen2.5-0.5b`` writes one;
            a GGUF-converted tokenizer's ``[PAD151665]`` .. ``[PAD151935]`` placeholders are not
            tokens and must be gone).

    Returns:
        ``(model, tokenizer, vocab)``: ``Qwen2ForCausalLM`` (float32), the model tokenizer with
        ``len == 180_407``, and ``SpeechVocab.paper()``.

    Raises:
        LMError: the checkpoint does not load (:func:`load_pretrained`), or its tokenizer is not
            the 151,665-id Qwen2.5 text range with ``<|endoftext|>``/``<|im_start|>``/``<|im_end|>``
            at 151643/151644/151645.
    """
    model, text_tok = load_pretrained(pretrained, attn_implementation=attn_implementation)
    want = SpeechVocab.paper()
    if len(text_tok) != want.text_size:
        raise LMError(f"{pretrained}: text tokenizer has {len(text_tok)} ids, the Qwen2.5 text range is {want.text_size} "
                      "(drop placeholder tokens such as [PAD151665]; scripts/install_models.py does)")
    sizes = {"speaker": PAPER_SIZES["speaker_size"], "semantic": PAPER_SIZES["semantic_size"],
             "linguistic": PAPER_SIZES["linguistic_size"]}
    vocab = vocab_for(text_tok, sizes, layout="paper")
    if vocab.to_dict() != want.to_dict():
        raise LMError(f"{pretrained}: special-token ids {vocab.pad_id}/{vocab.im_start_id}/{vocab.eos_id} differ from "
                      f"Qwen2.5's {want.pad_id}/{want.im_start_id}/{want.eos_id}")
    tok = build_speech_tokenizer(text_tok, vocab)
    expand_vocab(model, vocab, tokenizer=tok)
    return model, tok, vocab


def save_released(out: str | Path, model, tokenizer, *, codec: dict | None = None) -> Path:
    """Write the released UniSS checkpoint layout (what ``serving.engine`` loads from a directory
    with ``config.json``): the HF Qwen2 model (safetensors) and the expanded tokenizer in one
    directory, plus ``codec.json`` when ``codec`` is given (e.g. ``{"backend": "lite",
    "codec_dir": ...}``; without it the loader expects ``BiCodec/`` and ``glm-4-voice-tokenizer/``
    next to the model).

    Raises:
        LMError: the tokenizer length is not the model's layout (``SpeechVocab.paper().total``).
    """
    total = SpeechVocab.paper().total
    if len(tokenizer) != total:
        raise LMError(f"tokenizer has {len(tokenizer)} ids; the released layout has {total}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    if codec is not None:
        (out / "codec.json").write_text(json.dumps(codec, indent=2))
    return out
