"""MSLM-S2ST prompts on the UniSS token layout (issue 20; Peng et al. 2024, "MSLM-S2ST: A Multitask
Speech Language Model for Textless Speech-to-Speech Translation with Speaker Style Preservation",
arXiv 2403.12408).

The paper trains one decoder-only LM on two tasks told apart by task tokens (§3.4): *translation*
(``<trans>``: source semantic units -> target semantic units) and *generation* (``<gen>``: target
semantic units, conditioned on the source speech's acoustic units as a style prompt -> target
acoustic units). Translation data is upsampled 3x (§3.4: "the translation task [is] more difficult
to learn"; the upsampling lives in ``training/mslm.py``).

Mapping onto this platform's codec (ARCHITECTURE.md "Token layout"; shapes as in
``uniss.prompts``):

=====================  ==========================================  =====================================
paper                  here                                        why
=====================  ==========================================  =====================================
HuBERT semantic units  linguistic tokens ``L`` (12.5 tok/s)        the codec's content stream (paper
                                                                   codec: GLM-4-Voice = quantized Whisper
                                                                   encoder), like HuBERT units
EnCodec acoustic       semantic tokens ``S`` (50 tok/s)            the stream the codec decodes to speech
units (target)                                                     (with speaker tokens), like EnCodec
EnCodec acoustic       the source speaker block ``G`` (32 tokens)  the codec's voice stream: the decoder
units (style prompt)                                               takes the voice from these
``<trans>``            ``<|task_s2s|>``                            existing control tokens that UniSS's
``<gen>``              ``<|task_t2s_translation|>``                tasks leave unused: no id changes
``<src>``/``<tgt>``    ``<|eng|>`` / ``<|cmn|>``                   the layout's language tokens
=====================  ==========================================  =====================================

Where this differs from the paper:

* the style prompt is the 32 speaker (global) tokens of the source, not a span of the source's
  acoustic units: the platform's codec (BiCodec-like) separates the voice into a fixed-length
  global block and decodes ``S`` with it, so the content-bearing source semantic stream is not
  needed as a prompt;
* one acoustic stream, generated autoregressively to the end; the paper generates the first of 8
  EnCodec streams with the AR LM and the other 7 with a separate non-autoregressive LM, which this
  codec does not need;
* spans are delimited with the layout's start/end tokens and the sequence ends with ``<|im_end|>``,
  in UniSS's order (task token first, ``<|write_generate|>`` before the continuation), so packing,
  loss masking and the constrained decoder work unchanged.

Formats (``{x}`` = language token of ``x``; ``L_x``/``S_x`` = that side's linguistic/semantic
tokens wrapped as ``<|start_glm_token|>...<|end_glm_token|>``)::

    translation  prompt  <|task_s2s|>{src}<|start_glm_token|>L_src<|end_glm_token|><|write_generate|>{tgt}<|start_glm_token|>
                 cont.   L_tgt<|end_glm_token|><|im_end|>
    generation   prompt  <|task_t2s_translation|>{tgt}G_src<|start_glm_token|>L_tgt<|end_glm_token|><|write_generate|><|start_semantic_token|>
                 cont.   S_tgt<|end_semantic_token|><|im_end|>

Shapes: ``speaker`` ``(32,)``, ``linguistic`` ``(T_l,)`` and ``semantic`` ``(T_s,)`` int codes
(family-local, not global ids).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from uniss.codecs.base import LINGUISTIC_RATE_HZ, SEMANTIC_RATE_HZ
from uniss.prompts import IM_END, PromptError, global_block, language_token
from uniss.vocab import SpeechVocab

__all__ = [
    "GENERATE_TOKEN",
    "MSLM_FORMATS",
    "MslmTask",
    "ParsedUnits",
    "SEMANTIC_PER_LINGUISTIC",
    "TRANSLATE_TOKEN",
    "build_mslm_continuation",
    "build_mslm_prompt",
    "parse_units",
]

#: Task token of semantic-to-semantic translation (paper ``<trans>``); a control token UniSS leaves unused.
TRANSLATE_TOKEN = "<|task_s2s|>"
#: Task token of semantic-to-acoustic generation (paper ``<gen>``); a control token UniSS leaves unused.
GENERATE_TOKEN = "<|task_t2s_translation|>"
#: Semantic tokens per linguistic token of the same speech (50 / 12.5 tok/s, ``uniss.codecs.base``
#: rates, paper UniSS §3.1.2; both streams are fixed-rate views of one waveform), used to size the
#: generation span from the translated units.
SEMANTIC_PER_LINGUISTIC = round(SEMANTIC_RATE_HZ / LINGUISTIC_RATE_HZ)


class MslmTask(str, enum.Enum):
    """The two MSLM-S2ST tasks (paper §3.4); the value is the training format name."""

    TRANSLATE = "mslm_translate"
    GENERATE = "mslm_generate"


#: The recipe's sample formats, in the order a corpus row emits them (training configs name these).
MSLM_FORMATS: tuple[str, ...] = tuple(t.value for t in MslmTask)


def _glm_block(vocab: SpeechVocab, linguistic: Sequence[int] | np.ndarray | None) -> str:
    if linguistic is None:
        raise PromptError("MSLM prompts need linguistic codes")
    lin = np.asarray(linguistic)
    if lin.ndim != 1:
        raise PromptError(f"linguistic codes must be 1-D, got shape {tuple(lin.shape)}")
    return "<|start_glm_token|>" + vocab.tokens("linguistic", lin) + "<|end_glm_token|>"


def _task(task: MslmTask | str) -> MslmTask:
    try:
        return MslmTask(task)
    except ValueError:
        raise PromptError(f"unknown MSLM task {task!r}; expected one of {[t.value for t in MslmTask]}") from None


def build_mslm_prompt(
    vocab: SpeechVocab,
    task: MslmTask | str,
    *,
    src: str | None = None,
    tgt: str | None = None,
    linguistic: Sequence[int] | np.ndarray | None = None,
    speaker: Sequence[int] | np.ndarray | None = None,
) -> str:
    """The prompt of one MSLM task (layouts in the module docstring).

    Args:
        vocab: token layout.
        task: :class:`MslmTask` or its value.
        src: language of the input units (translation only): ``en``/``zh``.
        tgt: language of the output units (both tasks).
        linguistic: ``(T_l,)`` linguistic codes: the source's (translation) or the target's
            (generation).
        speaker: ``(32,)`` speaker codes of the *source* speech (generation only; the style prompt).

    Returns:
        The prompt string; the model continues it.

    Raises:
        PromptError: unknown task or language, missing argument, speaker not 32 codes.
        TokenRangeError: a code outside its family.
    """
    t = _task(task)
    if t is MslmTask.TRANSLATE:
        return (TRANSLATE_TOKEN + language_token(vocab, src, "source") + _glm_block(vocab, linguistic) + "<|write_generate|>"
                + language_token(vocab, tgt, "target") + "<|start_glm_token|>")
    if speaker is None:
        raise PromptError("the MSLM generation prompt needs the source speaker codes (the style prompt)")
    return (GENERATE_TOKEN + language_token(vocab, tgt, "target") + global_block(vocab, speaker) + _glm_block(vocab, linguistic)
            + "<|write_generate|>"
            + "<|start_semantic_token|>")


def build_mslm_continuation(
    vocab: SpeechVocab,
    task: MslmTask | str,
    *,
    linguistic: Sequence[int] | np.ndarray | None = None,
    semantic: Sequence[int] | np.ndarray | None = None,
) -> str:
    """What the model writes after :func:`build_mslm_prompt` (the training target; loss only on it).

    Args:
        linguistic: ``(T_l,)`` target linguistic codes (translation).
        semantic: ``(T_s,)`` target semantic codes (generation).

    Returns:
        ``L_tgt<|end_glm_token|><|im_end|>`` or ``S_tgt<|end_semantic_token|><|im_end|>``.

    Raises:
        PromptError: unknown task or the codes it needs are missing; TokenRangeError: a code
            outside its family.
    """
    t = _task(task)
    fam, codes, end = (("linguistic", linguistic, "<|end_glm_token|>") if t is MslmTask.TRANSLATE
                       else ("semantic", semantic, "<|end_semantic_token|>"))
    if codes is None:
        raise PromptError(f"the MSLM {t.value} continuation needs {fam} codes")
    return vocab.tokens(fam, np.asarray(codes)) + end + IM_END


@dataclass
class ParsedUnits:
    """Units recovered from one generated row.

    Attributes:
        codes: ``(T,)`` int64 family-local codes of every token of the family in the row.
        complete: the span's end token came and the row ended with ``<|im_end|>``.
        reason: why it is incomplete (``None`` when complete).
    """

    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    complete: bool = True
    reason: str | None = None


def parse_units(vocab: SpeechVocab, task: MslmTask | str, ids: Sequence[int] | np.ndarray) -> ParsedUnits:
    """The output units of one generated row (ids after the prompt). Total: never raises on model
    output, like ``uniss.prompts.parse_output``.

    Translation rows give linguistic codes, generation rows semantic codes; every id of that family
    in the row counts (as the released ``process_output`` takes every semantic token).

    Raises:
        PromptError: only for an unknown ``task`` (a programming error, not model output).
    """
    t = _task(task)
    fam, end = ("linguistic", "<|end_glm_token|>") if t is MslmTask.TRANSLATE else ("semantic", "<|end_semantic_token|>")
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    arr = arr[(arr >= 0) & (arr < vocab.total)]
    a, z = vocab.range(fam)
    codes = arr[(arr >= a) & (arr < z)] - a
    problems = []
    if codes.size == 0:
        problems.append(f"no {fam} tokens")
    if vocab.token_id(end) not in arr.tolist():
        problems.append(f"missing {end}")
    if arr.size == 0 or int(arr[-1]) != vocab.eos_id:
        problems.append("output does not end with <|im_end|> (truncated?)")
    return ParsedUnits(codes=codes.astype(np.int64), complete=not problems, reason="; ".join(problems) or None)
