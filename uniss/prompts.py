"""Task prompts, training continuations and output parsers for the seven UniSS formats.

Source: ARCHITECTURE.md "Token layout" (prompts byte-identical to the released UniSS
``process_input``; parsing as its ``process_output``), paper §3.2 (cross-modal chain-of-thought:
Quality = listen -> translate -> speak, Performance = translate -> speak, Direct = speak) and
§3.3 (phase-1 tasks ASR, S2TT, TTS, MT).

Notation (ARCHITECTURE.md): ``G`` = ``<|start_global_token|>`` + 32 speaker tokens +
``<|end_global_token|>``; ``L`` = linguistic tokens (12.5 tok/s); ``S`` = semantic tokens
(50 tok/s); ``v`` = speed token; ``src``/``tgt`` = language tokens.

Shapes: ``speaker`` is ``(32,)`` int codes; ``linguistic`` ``(T_l,)`` and ``semantic``
``(T_s,)`` int codes (family-local codes, not global ids).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from uniss.vocab import N_SPEAKER_TOKENS, SpeechVocab, VocabError

__all__ = [
    "LANGUAGES",
    "ParsedOutput",
    "PromptError",
    "Task",
    "build_continuation",
    "build_prompt",
    "global_block",
    "interleave_words",
    "language_token",
    "other_language",
    "parse_output",
    "splice_semantic_input",
    "strip_special",
]

#: The language pair UniSS translates between (paper §5: EN<->ZH).
LANGUAGES: tuple[str, ...] = ("en", "zh")

IM_END = "<|im_end|>"
_ANY_SPECIAL = re.compile(r"<\|[^|>]*\|>")


class PromptError(VocabError):
    """Bad arguments to a prompt builder (wrong speaker length, unknown language, bad task)."""


class Task(str, enum.Enum):
    """The seven formats. ``quality``/``performance``/``direct`` are the S2ST modes (paper §3.2)."""

    QUALITY = "quality"
    PERFORMANCE = "performance"
    DIRECT = "direct"
    ASR = "asr"
    S2TT = "s2tt"
    TTS = "tts"
    MT = "mt"

    @property
    def is_s2st(self) -> bool:
        return self in (Task.QUALITY, Task.PERFORMANCE, Task.DIRECT)

    @property
    def speaks(self) -> bool:
        """Whether the continuation carries semantic tokens."""
        return self in (Task.QUALITY, Task.PERFORMANCE, Task.DIRECT, Task.TTS)


_MODE_TOKEN = {Task.QUALITY: "<|slow_mode|>", Task.PERFORMANCE: "<|balance_mode|>", Task.DIRECT: "<|fast_mode|>"}


def other_language(lang: str) -> str:
    """The other language of the EN<->ZH pair (the released code derives the S2ST source
    language from the target this way).

    Raises:
        PromptError: ``lang`` is not in ``LANGUAGES``.
    """
    if lang not in LANGUAGES:
        raise PromptError(f"unknown language {lang!r}; supported: {', '.join(LANGUAGES)}")
    return LANGUAGES[1 - LANGUAGES.index(lang)]


def language_token(vocab: SpeechVocab, lang: str | None, role: str = "") -> str:
    """The layout's token of ``lang`` (``<|eng|>`` / ``<|cmn|>``, ARCHITECTURE.md control tokens),
    for every recipe's prompts.

    Raises:
        PromptError: ``lang`` is not in ``LANGUAGES`` (the message names ``role``, e.g. "source").
    """
    if lang not in LANGUAGES:
        raise PromptError(f"unknown {role + ' ' if role else ''}language {lang!r}; supported: {', '.join(LANGUAGES)}")
    return vocab.language_token(lang)


def global_block(vocab: SpeechVocab, speaker: Sequence[int] | np.ndarray) -> str:
    """``<|start_global_token|>`` + the 32 speaker tokens + ``<|end_global_token|>`` (the ``G`` block
    of ARCHITECTURE.md prompts) from ``(32,)`` family-local speaker codes.

    Raises:
        PromptError: not 32 codes in one dimension; TokenRangeError: a code outside the family.
    """
    spk = np.asarray(speaker)
    if spk.ndim != 1 or spk.shape[0] != N_SPEAKER_TOKENS:
        raise PromptError(f"speaker tokens must be {N_SPEAKER_TOKENS} codes, got shape {tuple(spk.shape)}")
    return "<|start_global_token|>" + vocab.tokens("speaker", spk) + "<|end_global_token|>"


def _task(task: Task | str) -> Task:
    try:
        return Task(task)
    except ValueError:
        raise PromptError(f"unknown task {task!r}; expected one of {[t.value for t in Task]}") from None


def build_prompt(
    vocab: SpeechVocab,
    task: Task | str,
    *,
    tgt: str | None = None,
    src: str | None = None,
    speaker: Sequence[int] | np.ndarray | None = None,
    linguistic: Sequence[int] | np.ndarray | None = None,
    text: str | None = None,
    speed_ratio: float = 1.0,
) -> str:
    """The inference prompt of one task, as the released UniSS ``process_input`` writes it.

    Args:
        vocab: token layout (``paper`` for the released checkpoint's token strings).
        task: one of :class:`Task`.
        tgt: target language (``en``/``zh``): S2ST, S2TT, MT.
        src: source/spoken language: ASR and TTS (for S2ST it is derived from ``tgt``).
        speaker: ``(32,)`` speaker codes (all speech tasks).
        linguistic: ``(T_l,)`` linguistic codes at 12.5 tok/s (S2ST, ASR, S2TT).
        text: TTS text to speak / MT source text.
        speed_ratio: target/source duration ratio for the speed token (S2ST, TTS); 1.0 ->
            ``<|speed_9|>``.

    Returns:
        The prompt string; the model continues it.

    Raises:
        PromptError: unknown task/language, missing argument, speaker not 32 long.
        TokenRangeError: a code outside its family; VocabError: speed ratio outside [0.1, 3.5].
    """
    t = _task(task)

    def need(name: str, value: object) -> None:
        if value is None:
            raise PromptError(f"task {t.value} needs {name}")

    if t.is_s2st:
        need("tgt", tgt)
        need("speaker", speaker)
        need("linguistic", linguistic)
        tg = language_token(vocab, tgt)  # type: ignore[arg-type]
        sr = language_token(vocab, other_language(tgt))  # type: ignore[arg-type]
        v = vocab.speed_token(speed_ratio)
        head = (
            "<|task_s2s_translation|>" + _MODE_TOKEN[t] + tg + global_block(vocab, speaker)  # type: ignore[arg-type]
            + vocab.tokens("linguistic", linguistic) + "<|write_generate|>"  # type: ignore[arg-type]
        )
        if t is Task.QUALITY:
            return head + "<|task_asr|>" + sr + v + "<|start_content|>"
        if t is Task.PERFORMANCE:
            return head + "<|task_s2t_translation|>" + tg + v + "<|start_content|>"
        return head + "<|fast_mode|>" + tg + v + "<|start_semantic_token|>"
    if t in (Task.ASR, Task.S2TT):
        # ASR speaks back the source language, S2TT writes the target one; same layout otherwise.
        lang_arg, lang = ("src", src) if t is Task.ASR else ("tgt", tgt)
        need(lang_arg, lang)
        need("speaker", speaker)
        need("linguistic", linguistic)
        lt = language_token(vocab, lang)  # type: ignore[arg-type]
        task_tok = "<|task_asr|>" if t is Task.ASR else "<|task_s2t_translation|>"
        return (
            task_tok + lt + global_block(vocab, speaker) + vocab.tokens("linguistic", linguistic)  # type: ignore[arg-type]
            + "<|write_generate|>" + lt + "<|start_content|>"
        )
    if t is Task.TTS:
        need("src", src)
        need("speaker", speaker)
        need("text", text)
        s = language_token(vocab, src)  # type: ignore[arg-type]
        return (
            "<|task_tts|>" + s + global_block(vocab, speaker) + "<|start_content|>" + text  # type: ignore[arg-type,operator]
            + "<|end_content|><|write_generate|>" + s + vocab.speed_token(speed_ratio) + "<|start_semantic_token|>"
        )
    # MT
    need("tgt", tgt)
    need("text", text)
    tg = language_token(vocab, tgt)  # type: ignore[arg-type]
    return "<|task_t2t_translation|>" + tg + "<|start_content|>" + text + "<|end_content|><|write_generate|>" + tg + "<|start_content|>"  # type: ignore[operator]


def splice_semantic_input(vocab: SpeechVocab, prompt: str, semantic: Sequence[int] | np.ndarray) -> str:
    """The "w/o linguistic tokens" ablation's input (paper §5.3, Table 4): the source's semantic
    tokens stand where its linguistic tokens would, right after the speaker block.

    Training (``training.samples``) and inference (``serving.engine``) both build their prompts with
    it, so a model trained with ``data.use_linguistic=false`` is prompted the way it was trained.

    Args:
        vocab: token layout.
        prompt: a :func:`build_prompt` string (S2ST, ASR or S2TT) built with an empty ``linguistic``.
        semantic: ``(T_s,)`` int semantic codes at 50 tok/s (paper §3.1.2).
    Returns:
        The prompt with ``semantic`` spliced between ``<|end_global_token|>`` and ``<|write_generate|>``.
    Raises:
        PromptError: the prompt has no empty linguistic slot (another task, or linguistic codes present).
        TokenRangeError: a code outside the semantic family.
    """
    anchor = "<|end_global_token|><|write_generate|>"
    if anchor not in prompt:
        raise PromptError("prompt has no empty linguistic slot to splice semantic tokens into")
    return prompt.replace(anchor, "<|end_global_token|>" + vocab.tokens("semantic", semantic) + "<|write_generate|>", 1)


def interleave_words(
    vocab: SpeechVocab,
    semantic: Sequence[int] | np.ndarray,
    words: Sequence[str],
    word_starts: Sequence[int] | np.ndarray,
) -> str:
    """The speech span with each spoken word written right before its semantic tokens.

    Not in the UniSS paper, whose speech span is semantic tokens only (§3.2); it follows the
    phoneme/unit interleaving of ELLA-V (Song et al. 2024, arXiv 2401.07333) and the word-aligned
    spans of VALL-E R (arXiv 2406.07855), for a model too small to learn the text-to-unit alignment
    by attention alone (issue 16: the tiny demo LM ignored the text, ``benchmarks/bench_lm_text_use.py``).
    Word ``i`` is followed by ``semantic[word_starts[i]:word_starts[i + 1]]``; units before the first
    start follow the first word, so every unit appears once and in order.

    Args:
        vocab: token layout.
        semantic: ``(T_s,)`` int semantic codes at 50 tok/s.
        words: ``W`` words as spoken, in order, with their leading spaces (``"".join(words).strip()``
            is the transcript; :meth:`uniss.engines.asr.WhisperASR.align_words`).
        word_starts: ``(W,)`` int start of each word in semantic-token frames (50 per second),
            non-decreasing.

    Returns:
        The speech span string (without ``<|start_semantic_token|>`` / ``<|end_semantic_token|>``).

    Raises:
        PromptError: no words, lengths differ, or starts decreasing or outside ``[0, T_s]``.
        TokenRangeError: a code outside the semantic family.
    """
    sem = np.asarray(semantic)
    st = np.asarray(word_starts, dtype=np.int64)
    if len(words) == 0 or st.ndim != 1 or st.shape[0] != len(words):
        raise PromptError(f"need one start per word, got {len(words)} words and starts of shape {tuple(st.shape)}")
    if (np.diff(st) < 0).any() or st.min() < 0 or st.max() > sem.shape[0]:
        raise PromptError(f"word starts must be non-decreasing within [0, {sem.shape[0]}], got {st.tolist()}")
    cuts = [0, *st[1:].tolist(), int(sem.shape[0])]
    return "".join(w + vocab.tokens("semantic", sem[a:b]) for w, a, b in zip(words, cuts[:-1], cuts[1:]))


def build_continuation(
    vocab: SpeechVocab,
    task: Task | str,
    *,
    tgt: str | None = None,
    src: str | None = None,
    transcript: str | None = None,
    translation: str | None = None,
    semantic: Sequence[int] | np.ndarray | None = None,
    speed_ratio: float = 1.0,
    words: Sequence[str] | None = None,
    word_starts: Sequence[int] | np.ndarray | None = None,
) -> str:
    """What the model must write after :func:`build_prompt` (the training target; loss only
    on it). Every continuation ends with ``<|im_end|>`` (ARCHITECTURE.md).

    Args:
        transcript: source-language text (Quality, ASR).
        translation: target-language text (Quality, Performance, S2TT, MT).
        semantic: ``(T_s,)`` target semantic codes at 50 tok/s (Quality, Performance, Direct, TTS).
        tgt, speed_ratio: as in :func:`build_prompt` (Quality repeats them mid-continuation).
        words, word_starts: the spoken words of ``semantic`` and their starts in semantic frames;
            when given, the speech span interleaves them (:func:`interleave_words`).

    Raises:
        PromptError: missing argument, unknown task/language, or bad word starts.
    """
    t = _task(task)

    def need(name: str, value: object) -> None:
        if value is None:
            raise PromptError(f"task {t.value} continuation needs {name}")

    def speech() -> str:
        need("semantic", semantic)
        if words is not None and word_starts is not None:
            return interleave_words(vocab, semantic, words, word_starts)  # type: ignore[arg-type]
        return vocab.tokens("semantic", semantic)  # type: ignore[arg-type]

    if t is Task.QUALITY:
        need("tgt", tgt)
        need("transcript", transcript)
        need("translation", translation)
        return (
            f"{transcript}<|end_content|><|task_s2t_translation|>{language_token(vocab, tgt)}{vocab.speed_token(speed_ratio)}"  # type: ignore[arg-type]
            f"<|start_content|>{translation}<|end_content|><|start_semantic_token|>{speech()}<|end_semantic_token|>{IM_END}"
        )
    if t is Task.PERFORMANCE:
        need("translation", translation)
        return f"{translation}<|end_content|><|start_semantic_token|>{speech()}<|end_semantic_token|>{IM_END}"
    if t in (Task.DIRECT, Task.TTS):
        return f"{speech()}<|end_semantic_token|>{IM_END}"
    if t is Task.ASR:
        need("transcript", transcript)
        return f"{transcript}<|end_content|>{IM_END}"
    need("translation", translation)  # S2TT, MT
    return f"{translation}<|end_content|>{IM_END}"


def strip_special(text: str) -> str:
    """Remove every ``<|...|>`` token and surrounding whitespace (released ``process_output``), and
    every U+FFFD replacement character: byte-level BPE decodes a model's incomplete or invalid UTF-8
    byte run (e.g. half of a Chinese character) as U+FFFD, which is not text to score or speak."""
    return _ANY_SPECIAL.sub("", text).replace("\ufffd", "").strip()


@dataclass
class ParsedOutput:
    """What could be recovered from a model continuation.

    Attributes:
        task: the task the continuation answers.
        source_text: transcript (Quality, ASR), else ``None``.
        target_text: translation (Quality, Performance, S2TT, MT), else ``None``.
        semantic: ``(T_s,)`` int64 semantic codes found anywhere in the output (speaking tasks).
        complete: the continuation had every expected delimiter and ended with ``<|im_end|>``.
        reason: why it is incomplete (``None`` when complete).
    """

    task: Task
    source_text: str | None = None
    target_text: str | None = None
    semantic: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    complete: bool = True
    reason: str | None = None


def parse_output(vocab: SpeechVocab, task: Task | str, output: str) -> ParsedOutput:
    """Parse a generated continuation. Total: never raises on model output.

    Quality splits the text on the two ``<|end_content|>`` (transcript, then translation);
    text is stripped of every ``<|...|>`` token; speech is every semantic-family token in
    the output (decoded later with the *source* speaker tokens). Source: ARCHITECTURE.md,
    released ``process_output``.

    Raises:
        PromptError: only for an unknown ``task`` (a programming error, not model output).
    """
    t = _task(task)
    res = ParsedOutput(task=t)
    problems: list[str] = []
    if not output.rstrip().endswith(IM_END):
        problems.append("output does not end with <|im_end|> (truncated?)")
    sem_prefix = vocab.family_token("semantic", 0)[:-3].rstrip("0123456789")  # e.g. "<|bicodec_semantic_"
    if t.speaks:
        codes = re.findall(re.escape(sem_prefix) + r"(\d+)\|>", output)
        sem = np.asarray([int(c) for c in codes], dtype=np.int64)
        size = vocab.semantic_size
        if sem.size and (sem >= size).any():
            problems.append(f"{int((sem >= size).sum())} semantic codes >= {size} dropped")
            sem = sem[sem < size]
        res.semantic = sem
        if sem.size == 0:
            problems.append("no semantic tokens")
        if "<|end_semantic_token|>" not in output:
            problems.append("missing <|end_semantic_token|>")
    if t in (Task.QUALITY, Task.PERFORMANCE, Task.ASR, Task.S2TT, Task.MT):
        parts = output.split("<|end_content|>")
        n_needed = 2 if t is Task.QUALITY else 1
        if len(parts) - 1 < n_needed:
            problems.append(f"expected {n_needed} <|end_content|>, found {len(parts) - 1}")
        if t is Task.QUALITY:
            res.source_text = strip_special(parts[0])
            res.target_text = strip_special(parts[1]) if len(parts) > 1 else None
        elif t is Task.ASR:
            res.source_text = strip_special(parts[0])
        else:
            res.target_text = strip_special(parts[0])
    res.complete = not problems
    res.reason = "; ".join(problems) or None
    return res
