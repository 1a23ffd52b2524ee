"""Token-id layout of a UniSS model: text + speaker + semantic + linguistic + speed + control.

Source: ARCHITECTURE.md "Token layout"; paper §3.1 and §5.1 (total vocabulary 180,407 with
Qwen2.5 text tokens, BiCodec global/semantic tokens and GLM-4-Voice tokens); ids as in the
public training reproduction ``happyjin/UniSS-training-reproduction`` (``training/constants_uniss.py``).

Size (~540 lines, over the house guide of ~500): the layout, its token strings and their
encode/decode functions are kept in one module on purpose (one owner of every token id, STYLE.md
#8); splitting it would put id arithmetic in two places.

Ids are laid out in this order, each range sized by the tokenizer that fills it::

    [text | speaker (global) | semantic | linguistic | speed (35) | control (35)]

Shape legend used below: ``T`` = number of tokens in a sequence (any length, including 0).
Code arrays are integer numpy arrays or torch tensors of shape ``(T,)`` (or any shape: the
conversions are element-wise); ids come back as ``int64``.

Two layouts ship:

* ``paper``: Qwen2.5 text (151,665) + BiCodec global 4,096 + BiCodec semantic 8,192 +
  GLM-4-Voice 16,384 -> 180,407; token strings ``<|bicodec_global_N|>``,
  ``<|bicodec_semantic_N|>``, ``<|glm_semantic_N|>``.
* ``lite``: the same order with the sizes of the CPU "lite" codecs fitted by this platform and
  a small corpus BPE for text; token strings ``<|lite_global_N|>``, ``<|lite_semantic_N|>``,
  ``<|lite_linguistic_N|>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from uniss.errors import UnissError

__all__ = [
    "CONTROL_TOKENS",
    "FAMILIES",
    "LANGUAGE_TOKENS",
    "N_SPEED",
    "N_SPEAKER_TOKENS",
    "PAPER_SIZES",
    "SpeechVocab",
    "TokenRangeError",
    "UnknownLanguageError",
    "UnknownTokenError",
    "VocabError",
    "speed_index",
]


class VocabError(UnissError, ValueError):
    """Base class of every token-layout error (a ``ValueError``)."""


class UnknownLanguageError(VocabError):
    """A language code that has no language control token (see ``LANGUAGE_TOKENS``)."""


class TokenRangeError(VocabError):
    """A code or id outside the range of the family it was said to belong to."""


class UnknownTokenError(VocabError):
    """A ``<|...|>`` token string that this layout does not define."""


#: Number of speaker (global) tokens per utterance (paper §3.1.2: BiCodec global tokens).
N_SPEAKER_TOKENS = 32

#: Number of speed tokens: ratios 0.1 .. 3.5 in 0.1 steps (ARCHITECTURE.md, paper §4).
N_SPEED = 35

#: Control tokens in id order; id = first control id + position. Names in the released
#: UniSS tokenizer; the ones UniSS's tasks do not use are spelled by role (ARCHITECTURE.md).
CONTROL_TOKENS: tuple[str, ...] = (
    "<|cmn|>",
    "<|eng|>",
    "<|yue|>",
    "<|task_tts|>",
    "<|task_asr|>",
    "<|task_s2s|>",
    "<|task_t2s_translation|>",
    "<|task_s2s_translation|>",
    "<|task_s2t_translation|>",
    "<|task_t2t_translation|>",
    "<|task_streaming_tts|>",
    "<|task_streaming_asr|>",
    "<|task_streaming_s2st|>",
    "<|task_streaming_s2tt|>",
    "<|start_content|>",
    "<|start_global_token|>",
    "<|start_semantic_token|>",
    "<|start_glm_token|>",
    "<|end_content|>",
    "<|end_global_token|>",
    "<|end_semantic_token|>",
    "<|end_glm_token|>",
    "<|global_padding|>",
    "<|wait_read|>",
    "<|write_generate|>",
    "<|task_text_translation|>",
    "<|task_streaming_text_translation|>",
    "<|slow_mode|>",
    "<|balance_mode|>",
    "<|fast_mode|>",
    "<|dynamic_mode|>",
    "<|audio_placeholder_1|>",
    "<|audio_placeholder_2|>",
    "<|audio_placeholder_3|>",
    "<|streaming_mode|>",
)
assert len(CONTROL_TOKENS) == 35

#: ISO-639-1 language code -> language control token (ARCHITECTURE.md: zh -> <|cmn|>, en -> <|eng|>).
LANGUAGE_TOKENS: dict[str, str] = {"zh": "<|cmn|>", "en": "<|eng|>", "yue": "<|yue|>"}

#: Family names, in id order.
FAMILIES: tuple[str, ...] = ("text", "speaker", "semantic", "linguistic", "speed", "control")
_FAMILY_INDEX = {name: i for i, name in enumerate(FAMILIES)}

#: Token string prefixes per layout (``<|{prefix}{N}|>``) for the three speech families.
_PREFIXES: dict[str, dict[str, str]] = {
    "paper": {"speaker": "bicodec_global_", "semantic": "bicodec_semantic_", "linguistic": "glm_semantic_"},
    "lite": {"speaker": "lite_global_", "semantic": "lite_semantic_", "linguistic": "lite_linguistic_"},
}

#: Sizes of the released UniSS tokenizer (paper §5.1): Qwen2.5 text incl. its special tokens,
#: BiCodec global (4,096), BiCodec semantic (8,192), GLM-4-Voice (16,384).
PAPER_SIZES = {"text_size": 151_665, "speaker_size": 4_096, "semantic_size": 8_192, "linguistic_size": 16_384}

_SPECIAL_RE = re.compile(r"<\|[A-Za-z0-9_]+\|>")


def speed_index(ratio: float) -> int:
    """Speed-token index for a duration ratio (target duration / source duration).

    Rule (ARCHITECTURE.md, paper §4 "0.1 intervals"): ``N = round(ratio * 10) - 1``, so
    ratio 1.0 -> ``<|speed_9|>``. ``round`` (not the released code's truncation, which misplaces
    e.g. 0.7 and 1.2 by float error) is used.

    Args:
        ratio: duration ratio, dimensionless, must round into [0.1, 3.5].

    Returns:
        int in ``[0, 34]``.

    Raises:
        VocabError: ratio is not finite or rounds outside [0.1, 3.5].
    """
    r = float(ratio)
    if not np.isfinite(r):
        raise VocabError(f"speed ratio must be finite, got {ratio!r}")
    idx = int(round(r * 10)) - 1
    if not 0 <= idx < N_SPEED:
        raise VocabError(f"speed ratio {r:.3f} is outside the speed-token range [0.1, 3.5]")
    return idx


@dataclass(frozen=True)
class SpeechVocab:
    """The id layout of one UniSS model.

    Attributes:
        text_size: number of text ids (the text tokenizer's ``len``, its special tokens included).
        speaker_size: speaker/global codebook size (paper: 4,096).
        semantic_size: semantic codebook size, 50 tok/s (paper: 8,192).
        linguistic_size: linguistic codebook size, 12.5 tok/s (paper: 16,384).
        layout: ``"paper"`` or ``"lite"``: selects token-string spellings.
        pad_id: text id of ``<|endoftext|>`` (paper: 151643), used as padding.
        im_start_id: text id of ``<|im_start|>`` (paper: 151644).
        eos_id: text id of ``<|im_end|>`` (paper: 151645), which ends decoding.

    Raises:
        VocabError: on construction with a non-positive size, an unknown layout or text special
            ids outside the text range.
    """

    text_size: int
    speaker_size: int
    semantic_size: int
    linguistic_size: int
    layout: str = "paper"
    pad_id: int = 151_643
    im_start_id: int = 151_644
    eos_id: int = 151_645
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    # ------------------------------------------------------------------ construction
    def __post_init__(self) -> None:
        if self.layout not in _PREFIXES:
            raise VocabError(f"unknown layout {self.layout!r}; expected one of {sorted(_PREFIXES)}")
        sizes = self.sizes
        for name, n in sizes.items():
            if int(n) <= 0:
                raise VocabError(f"{name} size must be positive, got {n}")
        for name in ("pad_id", "im_start_id", "eos_id"):
            v = getattr(self, name)
            if not 0 <= v < self.text_size:
                raise VocabError(f"{name}={v} is outside the text range [0, {self.text_size})")
        starts = np.cumsum([0] + [sizes[f] for f in FAMILIES]).tolist()
        object.__setattr__(self, "_starts", tuple(int(s) for s in starts))

    @classmethod
    def paper(cls) -> SpeechVocab:
        """The released UniSS layout (paper §5.1): 180,407 ids."""
        return cls(**PAPER_SIZES, layout="paper")

    @classmethod
    def lite(
        cls,
        text_size: int,
        speaker_size: int,
        semantic_size: int,
        linguistic_size: int,
        *,
        pad_id: int,
        im_start_id: int,
        eos_id: int,
    ) -> SpeechVocab:
        """A layout for the CPU "lite" codecs and a small corpus text tokenizer."""
        return cls(
            text_size=text_size,
            speaker_size=speaker_size,
            semantic_size=semantic_size,
            linguistic_size=linguistic_size,
            layout="lite",
            pad_id=pad_id,
            im_start_id=im_start_id,
            eos_id=eos_id,
        )

    # ------------------------------------------------------------------ sizes and ranges
    @property
    def sizes(self) -> dict[str, int]:
        """Family name -> number of ids, in id order."""
        return {
            "text": self.text_size,
            "speaker": self.speaker_size,
            "semantic": self.semantic_size,
            "linguistic": self.linguistic_size,
            "speed": N_SPEED,
            "control": len(CONTROL_TOKENS),
        }

    @property
    def total(self) -> int:
        """Total number of ids (paper layout: 180,407)."""
        return self._starts[-1]

    def __len__(self) -> int:
        return self.total

    def range(self, family: str) -> tuple[int, int]:
        """Half-open id range ``[start, stop)`` of a family.

        Raises:
            VocabError: unknown family name.
        """
        i = self._family_index(family)
        return self._starts[i], self._starts[i + 1]

    @property
    def ranges(self) -> dict[str, tuple[int, int]]:
        """Family name -> half-open id range."""
        return {f: self.range(f) for f in FAMILIES}

    # ------------------------------------------------------------------ id <-> (family, code)
    def to_ids(self, family: str, codes: Any) -> Any:
        """Codes of one family -> global ids, element-wise.

        Args:
            family: one of ``FAMILIES``.
            codes: int array-like (numpy ``(T,)`` or torch tensor of any shape) or a Python int.

        Returns:
            Same kind and shape as ``codes``; numpy/torch inputs give ``int64``.

        Raises:
            TokenRangeError: a code is negative or >= the family size.
        """
        start, stop = self.range(family)
        size = stop - start
        if _is_torch(codes):
            import torch

            c = codes.to(torch.int64)
            if c.numel() and (int(c.min()) < 0 or int(c.max()) >= size):
                raise TokenRangeError(f"{family} code outside [0, {size}): min={int(c.min())}, max={int(c.max())}")
            return c + start
        if isinstance(codes, (int, np.integer)):
            if not 0 <= int(codes) < size:
                raise TokenRangeError(f"{family} code {int(codes)} outside [0, {size})")
            return int(codes) + start
        c = np.asarray(codes)
        if c.size and not np.issubdtype(c.dtype, np.integer):
            raise TokenRangeError(f"{family} codes must be integers, got dtype {c.dtype}")
        c = c.astype(np.int64)
        if c.size and (c.min() < 0 or c.max() >= size):
            raise TokenRangeError(f"{family} code outside [0, {size}): min={int(c.min())}, max={int(c.max())}")
        return c + start

    def to_codes(self, family: str, ids: Any) -> Any:
        """Global ids that must all belong to ``family`` -> codes (inverse of :meth:`to_ids`).

        Raises:
            TokenRangeError: an id is outside the family's range (the message names the family
                that id belongs to, if any).
        """
        start, stop = self.range(family)
        if _is_torch(ids):
            import torch

            i = ids.to(torch.int64)
            bad = (i < start) | (i >= stop)
            if bool(bad.any()):
                raise TokenRangeError(self._out_of_family_message(family, int(i[bad].flatten()[0])))
            return i - start
        if isinstance(ids, (int, np.integer)):
            if not start <= int(ids) < stop:
                raise TokenRangeError(self._out_of_family_message(family, int(ids)))
            return int(ids) - start
        i = np.asarray(ids, dtype=np.int64)
        bad = (i < start) | (i >= stop)
        if bad.any():
            raise TokenRangeError(self._out_of_family_message(family, int(i[bad].flat[0])))
        return i - start

    def family_of(self, ids: Any) -> np.ndarray:
        """Family index (position in ``FAMILIES``) of each id; ``(T,)`` int64.

        Raises:
            TokenRangeError: an id is negative or >= ``total``.
        """
        i = np.asarray(ids.cpu().numpy() if _is_torch(ids) else ids, dtype=np.int64)
        if i.size and (i.min() < 0 or i.max() >= self.total):
            raise TokenRangeError(f"id outside the vocabulary [0, {self.total}): min={int(i.min())}, max={int(i.max())}")
        return np.searchsorted(np.asarray(self._starts[1:]), i, side="right").astype(np.int64)

    def split_ids(self, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Ids -> ``(family_index, code)`` arrays, both ``(T,)`` int64 (code is the offset in its family)."""
        i = np.asarray(ids.cpu().numpy() if _is_torch(ids) else ids, dtype=np.int64)
        fam = self.family_of(i)
        return fam, i - np.asarray(self._starts, dtype=np.int64)[fam]

    def mask(self, family: str) -> np.ndarray:
        """Boolean mask over the whole vocabulary, ``(total,)``, True on the family's ids."""
        m = np.zeros(self.total, dtype=bool)
        a, b = self.range(family)
        m[a:b] = True
        return m

    # ------------------------------------------------------------------ token strings
    def token_string(self, token_id: int) -> str | None:
        """String of a non-text id (``<|bicodec_semantic_7|>`` ...); ``None`` for text ids.

        Raises:
            TokenRangeError: id outside the vocabulary.
        """
        fam, code = self.split_ids(np.asarray([token_id]))
        f, c = FAMILIES[int(fam[0])], int(code[0])
        if f == "text":
            return None
        if f == "speed":
            return f"<|speed_{c}|>"
        if f == "control":
            return CONTROL_TOKENS[c]
        return f"<|{_PREFIXES[self.layout][f]}{c}|>"

    def family_token(self, family: str, code: int) -> str:
        """Token string of code ``code`` in a speech family, speed or control.

        Raises:
            TokenRangeError: code outside the family.
        """
        return self.token_string(int(self.to_ids(family, int(code))))  # type: ignore[return-value]

    def tokens(self, family: str, codes: Sequence[int] | np.ndarray) -> str:
        """Concatenated token strings of a code sequence, e.g. the 32 speaker tokens.

        Raises:
            TokenRangeError: a code outside the family.
        """
        if family not in _PREFIXES[self.layout]:
            return "".join(self.family_token(family, int(c)) for c in codes)
        size = self.sizes[family]
        arr = np.asarray(codes, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= size):
            raise TokenRangeError(f"{family} code outside [0, {size}): min={int(arr.min())}, max={int(arr.max())}")
        prefix = _PREFIXES[self.layout][family]
        return "".join(f"<|{prefix}{c}|>" for c in arr.tolist())

    def speech_token_strings(self) -> Iterator[str]:
        """Every non-text token string in id order (``text_size`` .. ``total - 1``): what a text
        tokenizer must gain, in this order, to become the model's tokenizer."""
        for fam in ("speaker", "semantic", "linguistic"):
            prefix = _PREFIXES[self.layout][fam]
            for c in range(self.sizes[fam]):
                yield f"<|{prefix}{c}|>"
        for c in range(N_SPEED):
            yield f"<|speed_{c}|>"
        yield from CONTROL_TOKENS

    def token_id(self, token: str) -> int:
        """Id of one non-text ``<|...|>`` token string.

        Raises:
            UnknownTokenError: not a token of this layout.
            TokenRangeError: a speech/speed token whose number is outside its family.
        """
        ctrl = _CONTROL_INDEX.get(token)
        if ctrl is not None:
            return self.range("control")[0] + ctrl
        m = _NUMBERED_RE.fullmatch(token)
        if m:
            prefix, num = m.group(1), int(m.group(2))
            if prefix == "speed_":
                return int(self.to_ids("speed", num))
            for fam, p in _PREFIXES[self.layout].items():
                if p == prefix:
                    return int(self.to_ids(fam, num))
        raise UnknownTokenError(f"{token!r} is not a token of the {self.layout} layout")

    def speed_token(self, ratio: float) -> str:
        """``<|speed_N|>`` for a duration ratio; see :func:`speed_index`."""
        return f"<|speed_{speed_index(ratio)}|>"

    @staticmethod
    def language_token(lang: str) -> str:
        """Language control token for an ISO code (``zh`` -> ``<|cmn|>``, ``en`` -> ``<|eng|>``).

        Raises:
            UnknownLanguageError: the code has no token.
        """
        try:
            return LANGUAGE_TOKENS[lang]
        except KeyError:
            raise UnknownLanguageError(
                f"unknown language {lang!r}; supported: {', '.join(sorted(LANGUAGE_TOKENS))}"
            ) from None

    # ------------------------------------------------------------------ strings <-> ids
    def encode(self, text: str, encode_text: Callable[[str], list[int]]) -> list[int]:
        """A prompt/continuation string -> ids.

        ``<|...|>`` tokens of this layout map to their ids; every other span (plain text and the
        text tokenizer's own specials such as ``<|im_end|>``) goes through ``encode_text``
        (the text tokenizer, which must not add BOS/EOS). Equivalent to tokenizing with the
        model's expanded HF tokenizer, without the cost of matching 30k added tokens.

        Returns:
            list of ids.
        """
        out: list[int] = []
        pos = 0
        for m in _SPECIAL_RE.finditer(text):
            tok = m.group(0)
            try:
                tid = self.token_id(tok)
            except UnknownTokenError:
                continue  # a text-tokenizer special such as <|im_end|>: stays in the text span
            if m.start() > pos:
                out.extend(encode_text(text[pos : m.start()]))
            out.append(tid)
            pos = m.end()
        if pos < len(text):
            out.extend(encode_text(text[pos:]))
        return out

    def decode(self, ids: Sequence[int] | np.ndarray, decode_text: Callable[[list[int]], str]) -> str:
        """Ids -> string: non-text ids become their token strings, runs of text ids go through
        ``decode_text`` (which must keep special tokens)."""
        arr = np.asarray(ids, dtype=np.int64)
        fam = self.family_of(arr)
        parts: list[str] = []
        run: list[int] = []
        for tid, f in zip(arr.tolist(), fam.tolist(), strict=True):
            if f == 0:
                run.append(tid)
                continue
            if run:
                parts.append(decode_text(run))
                run = []
            parts.append(self.token_string(tid))  # type: ignore[arg-type]
        if run:
            parts.append(decode_text(run))
        return "".join(parts)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: sizes, special ids, ranges and total."""
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        d["ranges"] = {f: list(r) for f, r in self.ranges.items()}
        d["total"] = self.total
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpeechVocab:
        """Inverse of :meth:`to_dict`; checks ``total`` when present.

        Raises:
            VocabError: missing keys or an inconsistent total.
        """
        keys = ("text_size", "speaker_size", "semantic_size", "linguistic_size", "layout", "pad_id", "im_start_id", "eos_id")
        missing = [k for k in keys if k not in d]
        if missing:
            raise VocabError(f"vocab description lacks {missing}")
        v = cls(**{k: d[k] for k in keys})
        if "total" in d and int(d["total"]) != v.total:
            raise VocabError(f"vocab description says total {d['total']} but its sizes give {v.total}")
        return v

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, s: str) -> SpeechVocab:
        return cls.from_dict(json.loads(s))

    # ------------------------------------------------------------------ helpers
    def _family_index(self, family: str) -> int:
        try:
            return _FAMILY_INDEX[family]
        except KeyError:
            raise VocabError(f"unknown token family {family!r}; expected one of {FAMILIES}") from None

    def _out_of_family_message(self, family: str, bad_id: int) -> str:
        if 0 <= bad_id < self.total:
            actual = FAMILIES[int(self.family_of(np.asarray([bad_id]))[0])]
            return f"id {bad_id} is a {actual} token, not a {family} token (range {self.range(family)})"
        return f"id {bad_id} is outside the vocabulary [0, {self.total})"


_CONTROL_INDEX = {t: i for i, t in enumerate(CONTROL_TOKENS)}
_NUMBERED_RE = re.compile(r"<\|([A-Za-z_]+?_)(\d+)\|>")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")
