"""Training samples of the MSLM-S2ST recipe (issue 20; arXiv 2403.12408 §3.4): one decoder-only
LM, two tasks, translation data upsampled 3x.

Prompts and continuations come from ``uniss.mslm`` (where the mapping onto the platform's codec
is documented: linguistic tokens play HuBERT's units, semantic tokens EnCodec's, the source speaker
block the style prompt). Ids and the loss mask follow ``training.samples`` exactly: ids through
``SpeechVocab.encode``, label -100 on every prompt position, loss only on the continuation, which
ends with ``<|im_end|>``; samples pack with ``training.packing`` and train with the same ZeRO-3
recipe.

A corpus row is one UniST row (``training.samples``): the recipe reads ``src_lang``, ``tgt_lang``,
``src_linguistic``, ``tgt_linguistic``, ``src_speaker``, ``tgt_speaker``, ``src_semantic``,
``tgt_semantic``; it never reads the texts (the paper's model is textless). Text-only rows
(``kind == "text"``) give no samples.

Per row and direction (``src -> tgt``; with ``both_sides`` also ``tgt -> src``, the paper's model is
bidirectional, §3.4): ``upsample`` identical translation samples (paper: 3) and one generation
sample, whose target speech is generated in the voice of the direction's *source* speaker (UniST
synthesizes the target in the source voice, ARCHITECTURE.md "UniST synthesis").
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from training.samples import IGNORE_INDEX, Sample, SampleError, row_codes, row_text
from uniss.mslm import MSLM_FORMATS, MslmTask, build_mslm_continuation, build_mslm_prompt
from uniss.vocab import SpeechVocab

__all__ = ["MSLM_FORMATS", "TRANSLATION_UPSAMPLE", "build_mslm_sample", "build_mslm_samples", "mslm_row_samples"]

#: Copies of every translation sample (paper §3.4: "we upsample the translation data by 3 times").
TRANSLATION_UPSAMPLE = 3


def build_mslm_sample(
    vocab: SpeechVocab,
    encode_text: Callable[[str], list[int]],
    row: Mapping[str, Any],
    task: MslmTask | str,
    *,
    side: str = "src",
) -> Sample:
    """One sample of an MSLM task from a corpus row.

    Args:
        vocab: the token layout.
        encode_text: text tokenizer (no BOS/EOS), ``str -> list[int]``; only ``<|im_end|>``
            reaches it (every other token of these formats is a layout token).
        row: corpus row with the UniST columns.
        task: ``mslm_translate`` or ``mslm_generate``.
        side: the direction's input side: ``src`` = source -> target (the row's direction),
            ``tgt`` = target -> source. Translation: ``L_side`` -> ``L_other``; generation:
            ``L_other`` with the ``side`` speaker block -> ``S_other``.

    Returns:
        :class:`training.samples.Sample` (``input_ids``/``labels`` ``(T,)`` int64, labels -100 on
        the prompt), ``task`` = the format name.

    Raises:
        SampleError: a missing column or bad ``side``; ``PromptError`` (a ``VocabError``) for an
            unknown task or language; ``TokenRangeError`` for a code outside its family.
    """
    t = MslmTask(task) if not isinstance(task, MslmTask) else task
    if side not in ("src", "tgt"):
        raise SampleError(f"side must be 'src' or 'tgt', got {side!r}")
    other = "tgt" if side == "src" else "src"
    if t is MslmTask.TRANSLATE:
        prompt = build_mslm_prompt(vocab, t, src=row_text(row, f"{side}_lang"), tgt=row_text(row, f"{other}_lang"),
                                   linguistic=row_codes(row, f"{side}_linguistic"))
        cont = build_mslm_continuation(vocab, t, linguistic=row_codes(row, f"{other}_linguistic"))
    else:
        prompt = build_mslm_prompt(vocab, t, tgt=row_text(row, f"{other}_lang"), speaker=row_codes(row, f"{side}_speaker"),
                                   linguistic=row_codes(row, f"{other}_linguistic"))
        cont = build_mslm_continuation(vocab, t, semantic=row_codes(row, f"{other}_semantic"))
    p = vocab.encode(prompt, encode_text)
    c = vocab.encode(cont, encode_text)
    ids = np.asarray(p + c, dtype=np.int64)
    labels = np.concatenate([np.full(len(p), IGNORE_INDEX, dtype=np.int64), np.asarray(c, dtype=np.int64)])
    return Sample(input_ids=ids, labels=labels, task=t.value, row_id=str(row.get("id", "")))


def mslm_row_samples(
    vocab: SpeechVocab,
    encode_text: Callable[[str], list[int]],
    row: Mapping[str, Any],
    formats: Sequence[str] = MSLM_FORMATS,
    *,
    both_sides: bool = True,
    upsample: int = TRANSLATION_UPSAMPLE,
) -> list[Sample]:
    """The samples of one row: per direction ``upsample`` copies of the translation sample and one
    generation sample (module docstring). A text-only row gives none.

    Raises:
        SampleError: ``upsample < 1``, an unknown format, or a missing column.
    """
    if upsample < 1:
        raise SampleError(f"upsample must be >= 1, got {upsample}")
    unknown = [f for f in formats if f not in MSLM_FORMATS]
    if unknown:
        raise SampleError(f"unknown MSLM formats {unknown}; expected among {list(MSLM_FORMATS)}")
    if row.get("kind") == "text":
        return []
    out: list[Sample] = []
    for f in formats:
        t = MslmTask(f)
        for s in ("src", "tgt") if both_sides else ("src",):
            sample = build_mslm_sample(vocab, encode_text, row, t, side=s)
            out.extend([sample] * (upsample if t is MslmTask.TRANSLATE else 1))
    return out


def build_mslm_samples(
    vocab: SpeechVocab,
    encode_text: Callable[[str], list[int]],
    rows: Iterable[Mapping[str, Any]],
    *,
    formats: Sequence[str] = MSLM_FORMATS,
    both_sides: bool = True,
    upsample: int = TRANSLATION_UPSAMPLE,
    seed: int = 0,
) -> list[Sample]:
    """The sample list of an MSLM run (the counterpart of ``training.samples.build_phase_samples``):
    :func:`mslm_row_samples` of every row, in a seeded shuffled order.

    Raises:
        SampleError: see :func:`mslm_row_samples`.
    """
    out: list[Sample] = []
    for r in rows:
        out.extend(mslm_row_samples(vocab, encode_text, r, formats, both_sides=both_sides, upsample=upsample))
    random.Random(seed).shuffle(out)
    return out
