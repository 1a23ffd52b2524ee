"""Continuous batching over a ``transformers`` KV cache with per-row stage constraints (issue 17).

Why not transformers' own continuous batching: transformers 5.23's ``ContinuousBatchingManager``
(``generate_batch``, paged attention) builds its logits processors from the generation config
only (``model._get_logits_processor``) and hands each per-request processor one int32 argument per
token (``ContinuousBatchingLogitsProcessor.prepare_tensor_args``); a custom processor is called
with the packed ``(1, num_tokens)`` ids and cannot tell which request a row belongs to, so the
per-row decoding program (stage, count in span) has nowhere to live. It also samples every row with
one ``torch.multinomial`` on the global RNG (``model_runner._sample``), so a request's output would
depend on its batch-mates. Hence this module: row compaction over a ``DynamicCache`` written here.

Scheme (one :class:`ContinuousDecoder`, ``max_batch`` slots):

* **admission**: waiting requests (FIFO) fill the free slots; their prompts are prefilled together
  (left padded, position ids from the mask) into a fresh cache, which is merged into the running
  one by left-padding the shorter of the two along the time axis and concatenating rows;
* **step**: one forward of the last token of every active row ``(B, 1)`` with the 2-D mask
  ``(B, L + 1)`` and explicit position ids; the cache layers keep spare time steps, so the step
  writes its keys/values in place instead of re-concatenating the cache (``_growing_layer``);
* **sampling restricted to the allowed family**: each row's :class:`ProgramCursor` names the ids
  valid now (text ids, semantic ids, a terminator, one forced id). The step runs the model body
  only (``model.base_model``) and computes the output head per group of rows sharing an allowed
  set, over that set's rows of the head weight (:class:`_HeadSlice`: the family's contiguous id
  range as a view, plus the terminator row), so a step costs ``(g, D) x (D, k)`` per group instead
  of ``(B, D) x (D, V)``, and rows at a forced step (one allowed id) cost no head at all. The
  ``(g, k)`` logits (``k`` = family size, not the vocabulary) get the repetition
  penalty (HF ``RepetitionPenaltyLogitsProcessor`` rule over prompt + generated ids), then greedy
  argmax, or temperature + top-p (HF ``TopPLogitsWarper`` rule: keep the smallest prefix of the
  sorted distribution whose mass reaches ``top_p``) and an inverse-CDF draw with one uniform from
  the row's own ``torch.Generator`` (seeded per request: the draw never depends on batch-mates);
  forced steps and spent budgets (one allowed id) draw nothing;
* **compaction**: a finished row (program done, ``<|im_end|>``, or its ``max_new_tokens``) leaves at
  once: ``index_select`` of the kept rows on every layer's keys/values, mask, positions and the
  seen-token table; leading columns that became padding for every row are cut.

Under greedy decoding a row decodes the same tokens as alone (left padding is masked and positions
follow the mask), up to float reassociation in padded matmuls.

Shape legend: ``B`` active rows, ``L`` cached time steps (left padded), ``H`` KV heads, ``D`` head
dim, ``V`` logit columns, ``k`` ids allowed in a stage, ``g`` rows of a group (same allowed set).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from uniss.errors import UnissError
from uniss.vocab import SpeechVocab

__all__ = ["AllowedIds", "ContinuousDecoder", "DecodeRequest", "DecoderError", "ProgramCursor", "merge_word_logits",
           "restricted_pick"]


class DecoderError(UnissError, ValueError):
    """Bad decode request: empty prompt, non-positive budget, sampling values out of range."""


class AllowedIds:
    """The id sets a decoding program can allow, as sorted ``LongTensor`` s, built once per vocab.

    Keys: ``("text", terminator, open_end)``, ``("semantic", terminator, open_end)``,
    ``("linguistic", terminator, open_end)``, ``("spoken", terminator, open_end)`` (the family, plus
    the terminator when ``open_end``; the linguistic family is the MSLM recipe's translation span,
    serving/mslm.py; ``spoken`` = text and semantic ids, the speech span of a model trained with
    ``data.interleave_words``, ``uniss.prompts.interleave_words``), ``("one", id)``, and
    ``("merge", first_id, terminator, open_end)`` (a ``words`` span before its last word: text and
    semantic ids, whose text columns :func:`merge_word_logits` folds into ``first_id``).
    The text family excludes ``text_exclude`` (the tokenizer's special ids); no padding row past
    ``vocab.total`` is ever in a set. Source: ARCHITECTURE.md "Token layout".
    """

    def __init__(self, vocab: SpeechVocab, text_exclude: Sequence[int]) -> None:
        import torch

        self._torch = torch
        self.vocab = vocab
        excl = {int(i) for i in text_exclude}
        self.family: dict[str, list[int]] = {}
        for fam in ("text", "semantic", "linguistic"):
            a, z = vocab.range(fam)
            self.family[fam] = [i for i in range(a, z) if not (fam == "text" and i in excl)]
        self.family["spoken"] = sorted(self.family["text"] + self.family["semantic"])
        self._cache: dict[tuple, Any] = {}

    def get(self, key: tuple):
        """Sorted ``(k,)`` int64 ids of ``key`` (see class doc)."""
        t = self._cache.get(key)
        if t is None:
            if key[0] == "one":
                ids = [int(key[1])]
            elif key[0] == "merge":  # ("merge", next word's first id, terminator, open_end): a words span
                base = self.get(("merge_ids", int(key[2]), bool(key[3])))
                self._cache[key] = base
                return base
            elif key[0] == "merge_ids":
                ids = sorted(set(self.family["text"]) | set(self.family["semantic"]) | ({int(key[1])} if key[2] else set()))
            else:
                ids = list(self.family[key[0]])
                if key[2]:
                    ids = sorted(set(ids) | {int(key[1])})
            t = self._torch.as_tensor(ids, dtype=self._torch.long)
            self._cache[key] = t
        return t

    def merge_columns(self, key: tuple):
        """For a ``("merge", first_id, terminator, open_end)`` key: ``(text_cols, target)``, the
        ``(n_text,)`` long column indices of the text ids in :meth:`get`'s order and the column of
        ``first_id`` (see :func:`merge_word_logits`)."""
        t = self._cache.get(("cols",) + tuple(key))
        if t is None:
            ids = self.get(key)
            a, z = self.vocab.range("text")
            cols = ((ids >= a) & (ids < z)).nonzero().flatten()
            target = int((ids == int(key[1])).nonzero().flatten()[0])
            t = self._cache[("cols",) + tuple(key)] = (cols, target)
        return t


def merge_word_logits(logits, text_cols, target: int):
    """One decision "write the next word" out of every text id of a ``words`` span.

    A model trained with interleaved words (``data.interleave_words``) puts probability on the word
    it expects next, which may not be the translation's next word. The span treats writing *any*
    word as the decision to move on and writes the translation's next word
    (:class:`ProgramCursor`): the target column gets ``logsumexp`` of all text columns (their total
    probability) and the other text columns ``-inf``, before the repetition penalty, temperature and
    top-p (exactly "draw, then map any word to the next word" for plain sampling).

    Args:
        logits: ``(..., k)`` float logits over a key's allowed ids.
        text_cols: ``(n_text,)`` long column indices of the text ids; target: column of the next word's first id.

    Returns:
        A new ``(..., k)`` tensor.
    """
    import torch

    out = logits.clone()
    total = torch.logsumexp(logits.index_select(-1, text_cols.to(logits.device)), dim=-1)  # (...,)
    out[..., text_cols.to(logits.device)] = float("-inf")
    out[..., target] = total
    return out


def _append_steps(buf, n: int, x):
    """Write ``x`` ``(B, H, t, D)`` at time steps ``[n, n + t)`` of ``buf`` ``(B, H, cap, D)``,
    growing it (capacity doubled, at least 64 spare steps) when full. Returns (buffer, n + t)."""
    t = x.shape[2]
    if n + t > buf.shape[2]:
        grown = buf.new_empty(buf.shape[0], buf.shape[1], max(2 * buf.shape[2], n + t + 64), buf.shape[3])  # (B, H, cap', D)
        grown[:, :, :n] = buf[:, :, :n]
        buf = grown
    buf[:, :, n:n + t] = x
    return buf, n + t


def _growing_layer():
    """A ``transformers`` ``DynamicLayer`` that keeps keys/values ``(B, H, L, D)`` in buffers with
    spare time steps: a decode step writes its ``(B, H, 1, D)`` states in place (amortised O(1))
    where ``DynamicLayer.update`` concatenates, copying the whole layer cache every step (O(L)).
    ``keys``/``values`` read as views ``[:, :, :L]`` of the buffers; assigning a tensor (the
    decoder's merge and compaction) makes it the new buffer. Only the update path differs from
    the library class (transformers 5.23 ``cache_utils.DynamicLayer``)."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        def __init__(self) -> None:
            self._kb = self._vb = None  # (B, H, cap, D) buffers, or a non-4-D placeholder
            self._nk = self._nv = 0
            super().__init__()

        @property
        def keys(self):
            return self._kb[:, :, :self._nk] if self._kb is not None and self._kb.dim() == 4 else self._kb

        @keys.setter
        def keys(self, t) -> None:
            self._kb, self._nk = t, (t.shape[2] if t is not None and t.dim() == 4 else 0)

        @property
        def values(self):
            return self._vb[:, :, :self._nv] if self._vb is not None and self._vb.dim() == 4 else self._vb

        @values.setter
        def values(self, t) -> None:
            self._vb, self._nv = t, (t.shape[2] if t is not None and t.dim() == 4 else 0)

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            if self._kb is None or self._kb.dim() != 4 or self._nk == 0:
                self.keys, self.values = key_states, value_states
            else:
                self._kb, self._nk = _append_steps(self._kb, self._nk, key_states)
                self._vb, self._nv = _append_steps(self._vb, self._nv, value_states)
            return self.keys, self.values

    return GrowingLayer


def _range_family(key: tuple) -> str:
    """The family whose contiguous id range an :class:`AllowedIds` key's head slice views."""
    if key[0] == "merge":
        return "text"
    return "semantic" if key[0] == "spoken" else str(key[0])


class _HeadSlice:
    """Output-head rows of one allowed set: ``logits(h)`` = ``h @ W[ids].T (+ b[ids])`` with
    ``W`` ``(V, D)`` the model's output embedding and ``ids`` = :meth:`AllowedIds.get` (same
    column order), without copying the family's rows: the family range ``[a, z)`` is a view of
    ``W``; ids outside it (the terminator) are a small copied block; ids the family excludes
    (tokenizer specials inside the text range) are dropped by one ``index_select`` of the
    ``(g, z - a)`` product. Built once per key; the head weights must not change afterwards.
    """

    __slots__ = ("before", "family", "keep", "after", "bias")

    def __init__(self, weight, bias, ids, family_range: tuple[int, int]) -> None:
        a, z = family_range
        self.before = weight.index_select(0, ids[ids < a]) if bool((ids < a).any()) else None  # (k_b, D)
        self.after = weight.index_select(0, ids[ids >= z]) if bool((ids >= z).any()) else None  # (k_a, D)
        inside = ids[(ids >= a) & (ids < z)]
        self.family = weight[a:z] if inside.numel() else None  # (z - a, D) view
        self.keep = None if inside.numel() in (0, z - a) else inside - a  # (k_f,) columns of the range kept
        self.bias = None if bias is None else bias.index_select(0, ids)  # (k,)

    def logits(self, h):
        """``(g, D)`` hidden states -> ``(g, k)`` float32 logits of the allowed ids."""
        from torch import cat
        from torch.nn.functional import linear

        parts = []
        if self.before is not None:
            parts.append(linear(h, self.before))  # (g, k_b)
        if self.family is not None:
            f = linear(h, self.family)  # (g, z - a)
            parts.append(f if self.keep is None else f.index_select(1, self.keep))  # (g, k_f)
        if self.after is not None:
            parts.append(linear(h, self.after))  # (g, k_a)
        out = parts[0] if len(parts) == 1 else cat(parts, dim=1)  # (g, k)
        return (out if self.bias is None else out + self.bias).float()


class ProgramCursor:
    """Where one row stands in its decoding program (``serving.engine.decoding_program`` steps
    ``("span", family, terminator, budget, min_len)`` / ``("words", words, terminator, budget,
    min_len)`` / ``("force", id)``).

    A span allows its family; its terminator only once ``min_len`` tokens were written (the speed
    token's duration window) and alone once ``budget`` were (in a ``spoken`` span, semantic tokens
    only, with ``semantic_range`` given); a forced step allows its one id; after the program, only
    ``eos_id``.

    A ``words`` span is the speech span of a model trained with ``data.interleave_words`` once its
    translation is known (``words``: the token ids of each word of the translation, in order,
    ``serving.engine.TranslationEngine``): it opens with the first word; then the model writes units
    and decides when to move on: writing any word means the *next* word (the runtimes fold every
    text id's probability into that word's first id, :func:`merge_word_logits`), whose other ids are
    then forced, so the speech speaks the translation it wrote (ELLA-V inference follows its given
    phoneme sequence the same way, arXiv 2401.07333 §3). Its budget and min_len
    count units; the terminator opens once every word was written and min_len reached, and is
    forced when the budget is spent. The one rule for all runtimes (:class:`serving.engine.StageConstraint`,
    :class:`ContinuousDecoder`, ``serving.vllm_runtime``).
    """

    __slots__ = ("program", "step", "count", "eos_id", "semantic_range", "word", "rest")

    def __init__(self, program: Sequence[tuple], eos_id: int, semantic_range: tuple[int, int] | None = None) -> None:
        self.program = list(program)
        self.step = 0
        self.count = 0
        self.eos_id = int(eos_id)
        #: ``[lo, hi)`` semantic ids: in a ``spoken`` span only these count towards budget and
        #: min_len (the words between them do not); ``None`` counts every token
        self.semantic_range = semantic_range
        self.word = 0  # words span: index of the next word to write
        self.rest: list[int] = []  # words span: the forced remaining ids of the word being written

    @property
    def done(self) -> bool:
        """True once every step of the program was taken."""
        return self.step >= len(self.program)

    def key(self) -> tuple:
        """The :class:`AllowedIds` key of the ids allowed now."""
        if self.done:
            return ("one", self.eos_id)
        s = self.program[self.step]
        if s[0] == "force":
            return ("one", int(s[1]))
        if s[0] == "words":
            if self.rest:
                return ("one", int(self.rest[0]))
            if self.count >= s[3]:
                return ("one", int(s[2]))
            words = s[1]
            if self.word == 0 and words:
                return ("one", int(words[0][0]))  # the span opens with its first word
            if self.word < len(words):  # units, or any word = the next word (merge_word_logits)
                return ("merge", int(words[self.word][0]), int(s[2]), False)
            return ("semantic", int(s[2]), self.count >= s[4])
        if self.count >= s[3]:
            return ("one", int(s[2]))
        min_len = s[4] if len(s) > 4 else 0
        return (s[1], int(s[2]), self.count >= min_len)

    def advance(self, token: int) -> None:
        """Account for ``token`` having been generated in the current stage."""
        if self.done:
            return
        s = self.program[self.step]
        if s[0] == "words":
            if self.rest:
                self.rest.pop(0)
            elif token == s[2]:
                self.step += 1
                self.count = self.word = 0
            elif self.word < len(s[1]) and token == s[1][self.word][0]:
                self.rest = [int(i) for i in s[1][self.word][1:]]
                self.word += 1
            else:
                self.count += 1
        elif s[0] == "force" or token == s[2]:
            self.step += 1
            self.count = 0
        elif s[1] != "spoken" or self.semantic_range is None or self.semantic_range[0] <= token < self.semantic_range[1]:
            self.count += 1


@dataclass
class DecodeRequest:
    """One row to decode.

    Attributes:
        prompt: ``(T,)`` prompt ids.
        program: decoding program (``serving.engine.decoding_program``).
        max_new_tokens: cap on generated tokens (``<|im_end|>`` included).
        do_sample: False = greedy.
        temperature, top_p, repetition_penalty: sampling (paper §5.2.4 defaults 0.7 / 0.8 / 1.1).
        seed: seed of this row's own ``torch.Generator`` (``None``: drawn from torch's global RNG
            when the request is admitted).
        tag: anything the caller wants back with the result.
    """

    prompt: list[int]
    program: list[tuple]
    max_new_tokens: int
    do_sample: bool = True
    temperature: float = 0.7
    top_p: float = 0.8
    repetition_penalty: float = 1.1
    seed: int | None = None
    tag: Any = None
    tokens: list[int] = field(default_factory=list)

    def check(self) -> None:
        """Raises:
            DecoderError: empty prompt, ``max_new_tokens < 1`` or sampling values out of range."""
        if not self.prompt:
            raise DecoderError("empty prompt")
        if self.max_new_tokens < 1:
            raise DecoderError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature > 0 or not 0 < self.top_p <= 1 or not self.repetition_penalty > 0:
            raise DecoderError(f"bad sampling values temperature={self.temperature}, top_p={self.top_p}, "
                               f"repetition_penalty={self.repetition_penalty}")


#: Most probable ids examined before a full sort in :func:`restricted_pick`'s top-p step.
TOP_P_HEAD = 64


def restricted_pick(logits, seen, penalty, *, greedy, temperature, top_p, uniforms):
    """Pick one id index per row among ``k`` allowed ids.

    Args:
        logits: ``(g, k)`` float logits of the allowed ids only.
        seen: ``(g, k)`` bool, id already in the row's prompt or output (repetition penalty).
        penalty: ``(g, 1)`` repetition penalty (> 0; 1 = none). Rule of HF
            ``RepetitionPenaltyLogitsProcessor``: a seen logit ``x`` becomes ``x / p`` if ``x > 0``
            else ``x * p``.
        greedy: ``(g,)`` bool, argmax rows (first maximum, as ``torch.argmax``).
        temperature: ``(g, 1)`` > 0; top_p: ``(g, 1)`` in (0, 1] (HF ``TopPLogitsWarper`` rule:
            keep the most probable ids until their mass reaches ``top_p``, at least one).
        uniforms: ``(g,)`` floats in [0, 1), one draw per row (ignored for greedy rows).

    Returns:
        ``(g,)`` int64 indices into the ``k`` allowed ids.
    """
    import torch

    x = torch.where(seen, torch.where(logits > 0, logits / penalty, logits * penalty), logits)  # (g, k)
    pick = x.argmax(dim=-1)  # (g,)
    if bool(greedy.all()):
        return pick
    probs = torch.softmax(x / temperature, dim=-1)  # (g, k)
    # The top-p cut usually falls within the first few ids (demo model: 1-2 of ~4,000 in 95% of
    # steps), so look at the TOP_P_HEAD most probable ids first and sort everything only when
    # their mass is short of top_p for some row. Exact: an id past the head has at least the
    # head's mass (>= top_p) before it, so HF's rule drops it anyway, and the head's order and
    # prefix sums are those of the full sort (ties between equal probabilities aside).
    sp = None
    if probs.shape[1] > TOP_P_HEAD:
        sp, order = probs.topk(TOP_P_HEAD, dim=-1)  # (g, h) descending
        cum = sp.cumsum(dim=-1)
        if not bool((cum[:, -1] >= top_p.squeeze(1)).all()):
            sp = None
    if sp is None:
        sp, order = probs.sort(dim=-1, descending=True)  # (g, k)
        cum = sp.cumsum(dim=-1)
    keep = (cum - sp) < top_p  # mass before this id still short of top_p: keep it (first always kept)
    sp = sp * keep
    cum = sp.cumsum(dim=-1)  # (g, k)
    target = (uniforms.to(cum.dtype) * cum[:, -1]).unsqueeze(1)  # (g, 1)
    j = torch.searchsorted(cum, target, right=True).clamp_(max=cum.shape[1] - 1)  # (g, 1)
    # zero-mass tail ids sit after the cut; searchsorted never lands on them unless u*total == total
    sampled = order.gather(1, j).squeeze(1)  # (g,)
    return torch.where(greedy, pick, sampled)


class _Row:
    __slots__ = ("req", "cursor", "gen", "last", "pos")

    def __init__(self, req: DecodeRequest, cursor: ProgramCursor, gen: Any) -> None:
        self.req, self.cursor, self.gen = req, cursor, gen
        self.last = -1
        self.pos = 0


class ContinuousDecoder:
    """Continuous batching decoder (see the module docstring for the scheme).

    Args:
        model: ``transformers`` causal LM (``Qwen2ForCausalLM``) in eval mode.
        vocab: the token layout; text_exclude: text ids never allowed in a text span.
        max_batch: decode slots (rows decoded together).
        device: torch device string.
        lean_step: decode one-token steps with :class:`serving.qwen2_step.Qwen2DecodeStep` when the
            model supports it (same hidden states up to float reassociation; fewer, fused kernels).

    Use :meth:`add` then :meth:`run` (all at once), or :meth:`add` / :meth:`step` from a serving
    loop (new requests join between steps).
    """

    def __init__(self, model: Any, vocab: SpeechVocab, text_exclude: Sequence[int], *, max_batch: int = 8, device: str = "cpu",
                 lean_step: bool = True) -> None:
        import torch

        if max_batch < 1:
            raise DecoderError(f"max_batch must be >= 1, got {max_batch}")
        self._torch = torch
        self.model = model
        self.vocab = vocab
        self.allowed = AllowedIds(vocab, text_exclude)
        self.max_batch = int(max_batch)
        self.device = device
        head = model.get_output_embeddings()
        self.n_logits = int(head.weight.shape[0])
        # Body + restricted head (module docstring) where the logits are exactly lm_head(last hidden
        # state): a ``base_model`` distinct from the model and no logit soft-capping (Qwen2 has
        # none); otherwise the full forward and a column gather of its logits.
        base = getattr(model, "base_model", model)
        self._body = base if base is not model and getattr(model.config, "final_logit_softcapping", None) is None else None
        self._head_w = head.weight.detach()  # (V, D)
        self._head_b = None if getattr(head, "bias", None) is None else head.bias.detach()  # (V,)
        self._heads: dict[tuple, _HeadSlice] = {}
        self._layer_cls = _growing_layer()
        # One-token steps through the lean Qwen2 step where it applies (serving/qwen2_step.py);
        # prefill and other architectures use the library's forward.
        from serving.qwen2_step import Qwen2DecodeStep, unsupported_reason

        self._step = Qwen2DecodeStep(model) if self._body is not None and lean_step and unsupported_reason(model) is None else None
        self.waiting: deque[DecodeRequest] = deque()
        self.rows: list[_Row] = []
        self.cache = None  # DynamicCache with B rows, L steps
        self.mask = None  # (B, L) int64, 1 = real token
        self.seen = None  # (B, V) bool, ids in the row's prompt or output
        self.stats = {"steps": 0, "row_steps": 0, "admissions": 0, "compactions": 0}

    # ----------------------------------------------------------------------------- queue
    def add(self, req: DecodeRequest) -> None:
        """Queue a request (admitted at the next :meth:`step` with a free slot).

        Raises:
            DecoderError: see :meth:`DecodeRequest.check`.
        """
        req.check()
        self.waiting.append(req)

    @property
    def busy(self) -> bool:
        """True while a request is active or waiting."""
        return bool(self.rows or self.waiting)

    def run(self, requests: Iterable[DecodeRequest] = ()) -> list[DecodeRequest]:
        """Add ``requests`` and decode until nothing is left; finished requests in finishing order
        (each with ``.tokens`` filled)."""
        for r in requests:
            self.add(r)
        out: list[DecodeRequest] = []
        while self.busy:
            out.extend(self.step())
        return out

    # ----------------------------------------------------------------------------- cache ops
    def _layers(self, cache: Any) -> list:
        return cache.layers

    def _prefill(self, reqs: list[DecodeRequest]):
        """Prefill prompts ``(b, T)`` left padded -> (cache, mask (b, T), last logits (b, V))."""
        torch = self._torch
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        T = max(len(r.prompt) for r in reqs)
        ids = torch.full((len(reqs), T), self.vocab.pad_id, dtype=torch.long)  # (b, T)
        mask = torch.zeros((len(reqs), T), dtype=torch.long)  # (b, T)
        for i, r in enumerate(reqs):
            ids[i, T - len(r.prompt):] = torch.as_tensor(r.prompt, dtype=torch.long)
            mask[i, T - len(r.prompt):] = 1
        pos = (mask.cumsum(1) - 1).clamp_(min=0)  # (b, T)
        cache = DynamicCache(config=self.model.config)
        if all(type(layer) is DynamicLayer for layer in cache.layers):  # full attention only (no sliding window)
            cache.layers = [self._layer_cls() for _ in cache.layers]
        cache, last = self._forward(ids, mask, pos, cache)
        return cache, mask, last

    def _forward(self, ids, mask, pos, cache):
        """One forward ``(b, T)`` -> (cache, last-position output): the body's hidden states
        ``(b, D)`` (restricted head, :meth:`_group_logits`) or, without a body, logits ``(b, V)``."""
        if self._step is not None and ids.shape[1] == 1 and cache is not None:
            return cache, self._step(ids.to(self.device), mask.to(self.device), pos.to(self.device), cache)  # (b, D)
        kw = dict(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), position_ids=pos.to(self.device),
                  past_key_values=cache, use_cache=True)
        if self._body is not None:
            out = self._body(**kw)
            return out.past_key_values, out.last_hidden_state[:, -1, :]  # (b, D)
        out = self.model(**kw, logits_to_keep=1)
        return out.past_key_values, out.logits[:, -1, :].float()  # (b, V)

    def _group_logits(self, last, rows, key):
        """``(g, k)`` float32 logits of the ids allowed by ``key`` for rows ``rows`` (``(g,)`` long)
        of ``last`` (see :meth:`_forward`), in :meth:`AllowedIds.get` order."""
        sub = last.index_select(0, rows.to(last.device))  # (g, D) or (g, V)
        if self._body is None:
            return sub.index_select(1, self.allowed.get(key).to(sub.device)).cpu()  # (g, k)
        hkey = ("merge", None) + tuple(key[2:]) if key[0] == "merge" else key  # same ids whatever the next word
        hs = self._heads.get(hkey)
        if hs is None:
            hs = self._heads[hkey] = _HeadSlice(self._head_w, self._head_b, self.allowed.get(key).to(self._head_w.device),
                                               self.vocab.range(_range_family(key)))
        return hs.logits(sub).cpu()  # (g, k)

    def _merge(self, cache: Any, mask: Any) -> None:
        """Append rows (``cache`` with mask ``(b, T)``) to the running cache, left padding the shorter."""
        torch = self._torch
        if self.cache is None:
            self.cache, self.mask = cache, mask
            return
        La, Lb = self.mask.shape[1], mask.shape[1]
        L = max(La, Lb)

        def lpad(t, n):  # (b, H, l, D) -> (b, H, l + n, D)
            return t if n == 0 else torch.cat([t.new_zeros(t.shape[0], t.shape[1], n, t.shape[3]), t], dim=2)

        for la, lb in zip(self._layers(self.cache), self._layers(cache), strict=True):
            la.keys = torch.cat([lpad(la.keys, L - La), lpad(lb.keys, L - Lb)], dim=0)
            la.values = torch.cat([lpad(la.values, L - La), lpad(lb.values, L - Lb)], dim=0)
        self.mask = torch.cat([torch.nn.functional.pad(self.mask, (L - La, 0)), torch.nn.functional.pad(mask, (L - Lb, 0))], dim=0)

    def _keep(self, keep: list[int]) -> None:
        """Row compaction: keep rows ``keep`` (indices) of cache, mask and seen; cut all-padding columns."""
        torch = self._torch
        self.stats["compactions"] += 1
        if not keep:
            self.cache = self.mask = self.seen = None
            return
        idx = torch.as_tensor(keep, dtype=torch.long)
        self.mask = self.mask.index_select(0, idx)
        cols = self.mask.any(dim=0).nonzero()
        first = int(cols[0]) if cols.numel() else 0
        self.mask = self.mask[:, first:]
        dev_idx = idx.to(self.device)
        for layer in self._layers(self.cache):
            layer.keys = layer.keys.index_select(0, dev_idx)[:, :, first:, :]
            layer.values = layer.values.index_select(0, dev_idx)[:, :, first:, :]
        self.seen = self.seen.index_select(0, idx)

    # ----------------------------------------------------------------------------- step
    def _admit(self) -> tuple[list[_Row], Any]:
        torch = self._torch
        free = self.max_batch - len(self.rows)
        if free <= 0 or not self.waiting:
            return [], None
        reqs = [self.waiting.popleft() for _ in range(min(free, len(self.waiting)))]
        self.stats["admissions"] += 1
        cache, mask, logits = self._prefill(reqs)
        seen = torch.zeros((len(reqs), self.n_logits), dtype=torch.bool)  # (b, V)
        new = []
        for i, r in enumerate(reqs):
            seen[i, torch.as_tensor(r.prompt, dtype=torch.long)] = True
            seed = int(torch.randint(0, 2**62, (1,)).item()) if r.seed is None else int(r.seed)
            gen = torch.Generator().manual_seed(seed)
            row = _Row(r, ProgramCursor(r.program, self.vocab.eos_id, self.vocab.range("semantic")), gen)
            row.pos = len(r.prompt)
            r.tokens = []
            new.append(row)
        self._merge(cache, mask)
        self.seen = seen if self.seen is None else torch.cat([self.seen, seen], dim=0)
        self.rows.extend(new)
        return new, logits

    def _pick(self, rows: list[_Row], row_index: list[int], logits) -> list[int]:
        """Choose the next token of each of ``rows`` (their indices into ``self.seen``) from
        ``logits``: the last-position output of :meth:`_forward` (hidden states ``(len(rows), D)``
        or logits ``(len(rows), V)``)."""
        torch = self._torch
        groups: dict[tuple, list[int]] = {}
        for j, row in enumerate(rows):
            groups.setdefault(row.cursor.key(), []).append(j)
        out = [0] * len(rows)
        for key, js in groups.items():
            ids = self.allowed.get(key)  # (k,)
            if ids.numel() == 1:
                for j in js:
                    out[j] = int(ids[0])
                continue
            sub = self._group_logits(logits, torch.as_tensor(js, dtype=torch.long), key)  # (g, k)
            seen = self.seen.index_select(0, torch.as_tensor([row_index[j] for j in js], dtype=torch.long)).index_select(1, ids)  # (g, k)
            if key[0] == "merge":  # a words span: any word = the next word, never penalised as a repeat
                cols, target = self.allowed.merge_columns(key)
                sub = merge_word_logits(sub, cols, target)
                seen[:, cols] = False
            reqs = [rows[j].req for j in js]
            greedy = torch.as_tensor([not r.do_sample for r in reqs])
            u = torch.stack([torch.rand((), generator=rows[j].gen) if rows[j].req.do_sample else torch.zeros(()) for j in js])
            col = lambda vals: torch.as_tensor(vals, dtype=sub.dtype).unsqueeze(1)  # noqa: E731 - (g, 1)
            k = restricted_pick(sub, seen, col([r.repetition_penalty for r in reqs]), greedy=greedy,
                                temperature=col([r.temperature for r in reqs]), top_p=col([r.top_p for r in reqs]), uniforms=u)
            for j, kk in zip(js, k.tolist(), strict=True):
                out[j] = int(ids[kk])
        return out

    def _record(self, row: _Row, i: int, tok: int) -> bool:
        """Store ``tok`` for row ``i``; True when the row is finished."""
        row.req.tokens.append(tok)
        row.last = tok
        row.cursor.advance(tok)
        self.seen[i, tok] = True
        return tok == self.vocab.eos_id or len(row.req.tokens) >= row.req.max_new_tokens

    def step(self) -> list[DecodeRequest]:
        """Admit waiting requests into free slots, decode one token for every active row, and
        drop finished rows from the cache.

        Returns:
            requests finished at this step (``.tokens`` = generated ids, ``<|im_end|>`` included).
        """
        torch = self._torch
        done: list[int] = []
        with torch.inference_mode():
            old = [r for r in self.rows]
            if old:
                B = len(old)
                ids = torch.as_tensor([[r.last] for r in old], dtype=torch.long)  # (B, 1)
                pos = torch.as_tensor([[r.pos] for r in old], dtype=torch.long)  # (B, 1)
                self.mask = torch.cat([self.mask, torch.ones((B, 1), dtype=torch.long)], dim=1)  # (B, L + 1)
                self.cache, last = self._forward(ids, self.mask, pos, self.cache)  # last: (B, D) or (B, V)
                toks = self._pick(old, list(range(B)), last)
                for i, (row, tok) in enumerate(zip(old, toks, strict=True)):
                    row.pos += 1
                    if self._record(row, i, tok):
                        done.append(i)
                self.stats["steps"] += 1
                self.stats["row_steps"] += B
            if done:
                finished = [self.rows[i].req for i in done]
                keep = [i for i in range(len(self.rows)) if i not in set(done)]
                self._keep(keep)
                self.rows = [self.rows[i] for i in keep]
            else:
                finished = []
            new, logits = self._admit()
            if new:
                base = len(self.rows) - len(new)
                toks = self._pick(new, [base + j for j in range(len(new))], logits)
                gone = []
                for j, (row, tok) in enumerate(zip(new, toks, strict=True)):
                    if self._record(row, base + j, tok):
                        gone.append(base + j)
                if gone:
                    finished += [self.rows[i].req for i in gone]
                    keep = [i for i in range(len(self.rows)) if i not in set(gone)]
                    self._keep(keep)
                    self.rows = [self.rows[i] for i in keep]
        return finished
