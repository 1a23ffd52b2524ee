"""Training samples for the seven UniSS formats, and the phase mixtures as data.

Source: paper §3.2 (cross-modal CoT: Quality, Performance, Direct), §3.3 (phase 1 = ASR, S2TT,
TTS, MT; phase 2 = UniST General mixed with phase-1 data; phase 3 = High-Quality refinement);
ARCHITECTURE.md "Token layout" / "Progressive training". Prompts and continuations come from
``uniss.prompts`` (byte-identical to the released UniSS); ids from ``SpeechVocab.encode`` with
the text spans through the text tokenizer. Loss is only on the continuation: prompt positions
carry label -100 (the ``ignore_index`` of ``torch.nn.functional.cross_entropy``).

A corpus row is one UniST sample (docs/design.md "UniST data" columns): ``src_lang``, ``tgt_lang``,
``src_text``, ``tgt_text``, ``ratio``, and the family-local token streams ``src_speaker`` (32,),
``src_linguistic`` (T_l,), ``src_semantic`` (T_s,), and the same for ``tgt_``.

Choices not fixed by the paper (documented here): phase-1 TTS uses speed ratio 1.0 (natural pace);
S2ST samples use the row's measured duration ratio; with ``both_sides`` ASR/TTS use both the source
and the target speech and S2TT/MT run in both directions.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from uniss.errors import UnissError
from uniss.prompts import PromptError, Task, build_continuation, build_prompt, splice_semantic_input
from uniss.vocab import SpeechVocab

__all__ = ["IGNORE_INDEX", "Sample", "SampleError", "build_phase_samples", "build_sample", "corrupt_speech_history",
           "row_samples", "row_words"]

#: Label of positions that carry no loss (torch ``cross_entropy`` default ``ignore_index``).
IGNORE_INDEX = -100


class SampleError(UnissError, ValueError):
    """A corpus row that lacks a field a format needs, or an unknown format."""


@dataclass(frozen=True)
class Sample:
    """One training sequence.

    Attributes:
        input_ids: ``(T,)`` int64 ids (prompt then continuation).
        labels: ``(T,)`` int64; -100 on the prompt, the ids on the continuation.
        task: the format (``Task`` value string).
        row_id: the corpus row it came from.
    """

    input_ids: np.ndarray
    labels: np.ndarray
    task: str
    row_id: str

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def n_loss_tokens(self) -> int:
        """Number of positions with a label (the continuation)."""
        return int((self.labels != IGNORE_INDEX).sum())


def row_codes(row: Mapping[str, Any], key: str) -> np.ndarray:
    """``row[key]`` as ``(T,)`` int64 codes (every recipe's sample builders read rows with it).

    Raises:
        SampleError: the row has no such column or it is null.
    """
    if key not in row or row[key] is None:
        raise SampleError(f"row {row.get('id', '?')} has no {key}")
    return np.asarray(row[key], dtype=np.int64)


def row_text(row: Mapping[str, Any], key: str) -> str:
    """``row[key]`` as a non-blank string (a text or a language code).

    Raises:
        SampleError: the row has no such column, or it is null or blank.
    """
    v = row.get(key)
    if v is None or not str(v).strip():
        raise SampleError(f"row {row.get('id', '?')} has no {key}")
    return str(v)


def _understanding(vocab: SpeechVocab, row: Mapping[str, Any], side: str, use_linguistic: bool) -> dict[str, Any]:
    """Speaker + linguistic codes of one side; with ``use_linguistic=False`` the linguistic codes
    are empty and the semantic tokens are spliced in by ``uniss.prompts.splice_semantic_input``."""
    return {
        "speaker": row_codes(row, f"{side}_speaker"),
        "linguistic": row_codes(row, f"{side}_linguistic") if use_linguistic else np.zeros(0, dtype=np.int64),
    }


def row_words(row: Mapping[str, Any], side: str) -> dict[str, Any]:
    """The word alignment of one side's speech as :func:`uniss.prompts.build_continuation` keyword
    arguments (``words``, ``word_starts``), or ``{}`` when the row has none (a dataset tokenized
    before the ``{side}_words`` / ``{side}_word_starts`` columns, or a clip Whisper could not
    align): that sample keeps the plain speech span.
    """
    words = row.get(f"{side}_words")
    starts = row.get(f"{side}_word_starts")
    if words is None or starts is None or len(words) == 0 or len(words) != len(starts):
        return {}
    return {"words": [str(w) for w in words], "word_starts": np.asarray(starts, dtype=np.int64)}


def build_sample(
    vocab: SpeechVocab,
    encode_text: Callable[[str], list[int]],
    row: Mapping[str, Any],
    task: Task | str,
    *,
    side: str = "src",
    use_linguistic: bool = True,
    interleave_words: bool = False,
) -> Sample:
    """Build one sample of ``task`` from a corpus row.

    Args:
        vocab: the token layout.
        encode_text: text tokenizer (no BOS/EOS), ``str -> list[int]``.
        row: corpus row (mapping with the UniST columns).
        task: one of the seven formats.
        side: for ASR/TTS the speech side used (``src``/``tgt``); for S2TT/MT the *input* side
            (``src`` = source -> target direction, ``tgt`` = target -> source). S2ST formats
            always translate src -> tgt.
        use_linguistic: ``False`` = semantic tokens replace the linguistic tokens in understanding
            prompts (ablation).
        interleave_words: the speech span of speaking formats interleaves the spoken words with
            their semantic tokens (:func:`uniss.prompts.interleave_words`) where the row has a word
            alignment (:func:`row_words`).

    Returns:
        :class:`Sample` with labels -100 on every prompt position.

    Raises:
        SampleError: missing fields; ``PromptError`` (a ``VocabError``) on an unknown language.
    """
    t = Task(task) if not isinstance(task, Task) else task
    if side not in ("src", "tgt"):
        raise SampleError(f"side must be 'src' or 'tgt', got {side!r}")
    other = "tgt" if side == "src" else "src"
    lang = {s: row_text(row, f"{s}_lang") for s in ("src", "tgt")}
    splice = None
    if t.is_s2st:
        und = _understanding(vocab, row, "src", use_linguistic)
        ratio = float(row.get("ratio", 1.0))
        prompt = build_prompt(vocab, t, tgt=lang["tgt"], speed_ratio=ratio, **und)
        cont = build_continuation(vocab, t, tgt=lang["tgt"], transcript=row_text(row, "src_text"),
                                  translation=row_text(row, "tgt_text"), semantic=row_codes(row, "tgt_semantic"),
                                  speed_ratio=ratio, **(row_words(row, "tgt") if interleave_words else {}))
        splice = "src"
    elif t is Task.ASR:
        und = _understanding(vocab, row, side, use_linguistic)
        prompt = build_prompt(vocab, t, src=lang[side], **und)
        cont = build_continuation(vocab, t, transcript=row_text(row, f"{side}_text"))
        splice = side
    elif t is Task.S2TT:
        und = _understanding(vocab, row, side, use_linguistic)
        prompt = build_prompt(vocab, t, tgt=lang[other], **und)
        cont = build_continuation(vocab, t, translation=row_text(row, f"{other}_text"))
        splice = side
    elif t is Task.TTS:
        prompt = build_prompt(vocab, t, src=lang[side], speaker=row_codes(row, f"{side}_speaker"),
                              text=row_text(row, f"{side}_text"), speed_ratio=1.0)
        cont = build_continuation(vocab, t, semantic=row_codes(row, f"{side}_semantic"),
                                  **(row_words(row, side) if interleave_words else {}))
    else:  # MT
        prompt = build_prompt(vocab, t, tgt=lang[other], text=row_text(row, f"{side}_text"))
        cont = build_continuation(vocab, t, translation=row_text(row, f"{other}_text"))
    if splice is not None and not use_linguistic:
        try:
            prompt = splice_semantic_input(vocab, prompt, row_codes(row, f"{splice}_semantic"))
        except PromptError as e:
            raise SampleError(str(e)) from None
    p = vocab.encode(prompt, encode_text)
    c = vocab.encode(cont, encode_text)
    ids = np.asarray(p + c, dtype=np.int64)
    labels = np.concatenate([np.full(len(p), IGNORE_INDEX, dtype=np.int64), np.asarray(c, dtype=np.int64)])
    return Sample(input_ids=ids, labels=labels, task=t.value, row_id=str(row.get("id", "")))


def row_samples(
    vocab: SpeechVocab,
    encode_text: Callable[[str], list[int]],
    row: Mapping[str, Any],
    formats: Sequence[str],
    *,
    both_sides: bool = True,
    use_linguistic: bool = True,
    interleave_words: bool = False,
) -> list[Sample]:
    """All samples of the given formats from one row (both sides/directions for phase-1 formats
    when ``both_sides``; S2ST formats once, src -> tgt). A text-only row (``kind == "text"``, the
    alignment corpus of ``uniss.unist.alignment``) has no speech and gives its MT samples only."""
    out: list[Sample] = []
    text_only = row.get("kind") == "text"
    for f in formats:
        t = Task(f)
        if text_only and t is not Task.MT:
            continue
        sides = ("src",) if (t.is_s2st or not both_sides) else ("src", "tgt")
        for s in sides:
            out.append(build_sample(vocab, encode_text, row, t, side=s, use_linguistic=use_linguistic,
                                    interleave_words=interleave_words))
    return out


def build_phase_samples(
    vocab: SpeechVocab,
    encode_text: Callable[[str], list[int]],
    rows: Iterable[Mapping[str, Any]],
    *,
    formats: Sequence[str],
    replay_rows: Iterable[Mapping[str, Any]] | None = None,
    replay_formats: Sequence[str] = (),
    replay_ratio: float = 0.0,
    both_sides: bool = True,
    use_linguistic: bool = True,
    interleave_words: bool = False,
    format_repeat: Mapping[str, int] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[Sample]:
    """The sample list of one phase (the mixture as data; paper §3.3).

    Phase 1: ``formats = [asr, s2tt, tts, mt]`` on the General rows. Phase 2:
    ``formats = [quality, performance, direct]`` on General rows plus ``replay_ratio`` x that
    many phase-1 samples drawn (seeded) from ``replay_rows`` x ``replay_formats`` (0.5 = 2:1).
    Phase 3: ``formats = [quality, performance]`` on High-Quality rows, no replay.
    ``interleave_words`` as in :func:`build_sample`. ``format_repeat`` (``data.format_repeat``):
    ``{format: n}`` puts ``n`` copies of every main sample of that format in the list (a task's
    weight in the mixture; formats it leaves out keep one copy); replay is drawn against the
    repeated main list.

    Returns:
        list of :class:`Sample` in a seeded shuffled order.

    Raises:
        SampleError: a row lacks a field a format needs; a ``format_repeat`` count below 1 or for a
            format not in ``formats``.
    """
    repeat = dict(format_repeat or {})
    bad = {f: n for f, n in repeat.items() if f not in formats or int(n) < 1}
    if bad:
        raise SampleError(f"format_repeat {bad}: every key must be one of the formats {list(formats)} and every count >= 1")
    rng = random.Random(seed)
    it = rows
    if progress:
        from tqdm import tqdm

        it = tqdm(list(rows), desc="samples", unit="row", leave=False)
    main: list[Sample] = []
    for r in it:
        main.extend(row_samples(vocab, encode_text, r, formats, both_sides=both_sides, use_linguistic=use_linguistic,
                                interleave_words=interleave_words))
    if repeat:
        main = [s for s in main for _ in range(int(repeat.get(s.task, 1)))]
    out = list(main)
    if replay_ratio > 0 and replay_formats:
        pool_rows = list(replay_rows if replay_rows is not None else [])
        n_replay = int(round(replay_ratio * len(main)))
        pool: list[Sample] = []
        order = list(range(len(pool_rows)))
        rng.shuffle(order)
        for i in order:
            if len(pool) >= n_replay:
                break
            pool.extend(row_samples(vocab, encode_text, pool_rows[i], replay_formats,
                                    both_sides=both_sides, use_linguistic=use_linguistic,
                                    interleave_words=interleave_words))
        rng.shuffle(pool)
        out.extend(pool[:n_replay])
    rng.shuffle(out)
    return out


def corrupt_speech_history(
    input_ids: np.ndarray,
    labels: np.ndarray,
    semantic_range: tuple[int, int],
    rate: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Replace a share of the teacher-forced semantic units *fed to* the model by random units.

    A semantic-unit target is also the next position's input (teacher forcing). At generation the
    model is fed its own units, which are wrong about a third of the time on the demo data (issue 16,
    session 13: teacher-forced frame accuracy 0.68, free-running 0.17), and a model trained only on
    true histories learns to continue the unit sequence from its neighbours rather than from the
    text, then drifts to another sentence. Corrupting the history, while every label keeps the true
    unit, makes neighbours an unreliable cue, so the text must carry the prediction (input-side
    noise against exposure bias; scheduled sampling, Bengio et al. 2015, is the costlier variant that
    feeds the model's own predictions). Prompt positions (label ``-100``, e.g. the spliced source units
    of the "w/o linguistic" ablation) and every non-semantic token are never changed. Measured on the
    tiny demo model (issue 16, 2026-12-04, ``training/configs/tiny_phase1.yaml``): 0.3 gave no
    Speech-BLEU gain beyond chance and cost ~10 Text-BLEU in Quality mode, so the shipped configs keep it off.

    Args:
        input_ids: ``(B, L)`` or ``(L,)`` integer ids (a batch of packs).
        labels: same shape; ``-100`` on prompts and padding, the ids on continuations.
        semantic_range: ``[lo, hi)`` ids of the semantic family (``SpeechVocab.range("semantic")``).
        rate: probability in ``[0, 1)`` that a continuation semantic input is replaced by a unit
            drawn uniformly from the family (0 = unchanged).
        rng: numpy generator; the caller seeds it from the data position so a resumed run draws
            the same noise.

    Returns:
        A new int64 array of ``input_ids``' shape; ``labels`` is untouched.

    Raises:
        SampleError: shapes differ, ``rate`` outside ``[0, 1)`` or an empty semantic range.
    """
    ids = np.array(input_ids, dtype=np.int64, copy=True)
    lab = np.asarray(labels)
    if ids.shape != lab.shape:
        raise SampleError(f"input_ids {ids.shape} and labels {lab.shape} differ in shape")
    if not 0.0 <= rate < 1.0:
        raise SampleError(f"speech input noise rate must lie in [0, 1), got {rate}")
    lo, hi = int(semantic_range[0]), int(semantic_range[1])
    if hi <= lo:
        raise SampleError(f"empty semantic range [{lo}, {hi})")
    if rate == 0.0:
        return ids
    target = (lab >= lo) & (lab < hi)
    hit = target & (rng.random(ids.shape) < rate)
    ids[hit] = rng.integers(lo, hi, size=int(hit.sum()))
    return ids
