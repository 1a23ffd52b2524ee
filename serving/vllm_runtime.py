"""GPU decoding through vLLM with the UniSS stage constraint (issue 17, item 3). UNTESTED ON A GPU.

The official UniSS code serves through vLLM on GPUs. This module maps a decoding program
(``serving.engine.decoding_program``: ``("span", family, terminator, budget, min_len)`` /
``("force", id)`` steps) onto vLLM's request API, keeping the rule of
:class:`serving.engine.StageConstraint` (the CPU runtimes' constraint):

* :func:`sampling_kwargs` -> keyword arguments of ``vllm.SamplingParams``: ``temperature``,
  ``top_p``, ``repetition_penalty``, ``seed`` (per request), ``max_tokens``,
  ``stop_token_ids=[<|im_end|>]``, ``allowed_token_ids`` (the union of every id the program can
  emit: vLLM's static per-request mask, a cheap first cut) and ``extra_args={"uniss_program":
  [...]}`` (the program, JSON-serialisable, read by the logits processor below);
* :class:`StageLogits` -> the per-request logits function ``(output_token_ids, logits (V,)) ->
  logits`` that vLLM's ``AdapterLogitsProcessor`` calls every step: it advances a
  :class:`serving.decoder.ProgramCursor` over the ids generated since its last call and sets every
  logit outside the current stage's allowed ids to ``-inf`` (so temperature/top-p only ever see
  the allowed family);
* :func:`logits_processor_class` -> the ``vllm.v1.sample.logits_processor.AdapterLogitsProcessor``
  subclass (built on demand, so importing this module never imports vllm) whose
  ``new_req_logits_processor(params)`` returns a :class:`StageLogits` for requests that carry
  ``extra_args["uniss_program"]`` and ``None`` otherwise; ``is_argmax_invariant`` is False (it
  changes greedy picks);
* :class:`VllmRuntime` -> ``vllm.LLM(model=<HF dir>, skip_tokenizer_init=True,
  logits_processors=[that class])``, prompts given as token ids (``TokensPrompt``).

vLLM API read for this mapping (vLLM docs "Custom Logits Processors" and the source of
``vllm/v1/sample/logits_processor/__init__.py``): per-request processors are wrapped by
``AdapterLogitsProcessor`` in the V1 model runner; vLLM >= 0.32 defaults to "Model Runner V2",
whose custom logits processor interface differs, so the runtime sets
``VLLM_USE_V2_MODEL_RUNNER=0`` before building the engine (target: vLLM 0.33). None of this has
run on a GPU here: the unit tests cover the pure mapping (:func:`sampling_kwargs`,
:class:`StageLogits`, :func:`program_from_json`) with a fake of the vLLM classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from serving.decoder import AllowedIds, ProgramCursor, merge_word_logits
from uniss.errors import UnissError
from uniss.vocab import SpeechVocab

__all__ = ["PROGRAM_KEY", "StageLogits", "VllmRuntime", "VllmUnavailableError", "logits_processor_class", "program_from_json",
           "program_ids", "sampling_kwargs"]

#: ``SamplingParams.extra_args`` key holding the decoding program.
PROGRAM_KEY = "uniss_program"


class VllmUnavailableError(UnissError, RuntimeError):
    """``vllm`` is not installed (or cannot start) here: use the ``continuous`` runtime on CPU."""


def program_to_json(program: Sequence[tuple]) -> list[list]:
    """A decoding program as JSON-serialisable lists (``extra_args`` travel between vLLM processes)."""
    return [[s[0], [list(w) for w in s[1]], *s[2:]] if s[0] == "words" else list(s) for s in program]


def program_from_json(raw: Any) -> list[tuple]:
    """Inverse of :func:`program_to_json`, validated.

    Raises:
        ValueError: not a list of ``["span", "text"|"semantic"|"linguistic"|"spoken", int, int, int]`` /
            ``["words", [[int, ...], ...], int, int, int]`` / ``["force", int]``
            steps (vLLM turns a ``ValueError`` from ``validate_params`` into a rejected request).
    """
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ValueError(f"{PROGRAM_KEY}: expected a non-empty list of steps")
    out: list[tuple] = []
    for i, s in enumerate(raw):
        if isinstance(s, (list, tuple)) and len(s) == 2 and s[0] == "force" and isinstance(s[1], int):
            out.append(("force", int(s[1])))
        elif (isinstance(s, (list, tuple)) and len(s) == 5 and s[0] == "words" and isinstance(s[1], (list, tuple))
              and all(isinstance(w, (list, tuple)) and w and all(isinstance(x, int) for x in w) for w in s[1])
              and all(isinstance(x, int) for x in s[2:]) and s[3] >= 0 and s[4] >= 0):
            out.append(("words", tuple(tuple(int(x) for x in w) for w in s[1]), int(s[2]), int(s[3]), int(s[4])))
        elif (isinstance(s, (list, tuple)) and len(s) == 5 and s[0] == "span" and s[1] in ("text", "semantic", "linguistic", "spoken")
              and all(isinstance(x, int) for x in s[2:]) and s[3] >= 0 and s[4] >= 0):
            out.append(("span", s[1], int(s[2]), int(s[3]), int(s[4])))
        else:
            raise ValueError(f"{PROGRAM_KEY}[{i}]: bad step {s!r}")
    return out


def program_ids(program: Sequence[tuple], allowed: AllowedIds, eos_id: int) -> list[int]:
    """Every id the program can emit (sorted): the families of its spans, their terminators,
    forced ids and ``eos_id``. Used as vLLM's static ``allowed_token_ids``."""
    ids: set[int] = {int(eos_id)}
    for s in program:
        if s[0] == "force":
            ids.add(int(s[1]))
        elif s[0] == "words":  # every text id: merge_word_logits folds their probability into the next word
            ids.update(allowed.get(("merge_ids", int(s[2]), True)).tolist())
            ids.update(int(x) for w in s[1] for x in w)
        else:
            ids.update(allowed.get((s[1], int(s[2]), True)).tolist())
    return sorted(ids)


def sampling_kwargs(program: Sequence[tuple], allowed: AllowedIds, eos_id: int, *, max_tokens: int, seed: int | None,
                    do_sample: bool, temperature: float, top_p: float, repetition_penalty: float) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one request (see the module docstring).

    Greedy (``do_sample=False``) maps to ``temperature=0`` (vLLM's greedy switch) with ``top_p=1``.

    Raises:
        ValueError: ``max_tokens < 1`` or sampling values out of range.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not temperature > 0 or not 0 < top_p <= 1 or not repetition_penalty > 0:
        raise ValueError(f"bad sampling values temperature={temperature}, top_p={top_p}, repetition_penalty={repetition_penalty}")
    return {
        "n": 1,
        "temperature": float(temperature) if do_sample else 0.0,
        "top_p": float(top_p) if do_sample else 1.0,
        "repetition_penalty": float(repetition_penalty),
        "seed": None if seed is None else int(seed),
        "max_tokens": int(max_tokens),
        "stop_token_ids": [int(eos_id)],
        "allowed_token_ids": program_ids(program, allowed, eos_id),
        "skip_special_tokens": False,
        "detokenize": False,
        "extra_args": {PROGRAM_KEY: program_to_json(program)},
    }


class StageLogits:
    """Per-request vLLM logits function enforcing one decoding program.

    Called as ``fn(output_token_ids, logits)`` with the ids generated so far (vLLM passes the live
    list) and the request's ``(V,)`` logits row; returns the row with every id outside the current
    stage's allowed ids set to ``-inf``. The cursor advances over the ids appended since the
    previous call, so each step costs O(new ids), and a preempted request whose output list was
    rebuilt from scratch is replayed.
    """

    def __init__(self, program: Sequence[tuple], allowed: AllowedIds, eos_id: int) -> None:
        self.program = list(program)
        self.allowed = allowed
        self.eos_id = int(eos_id)
        self.semantic_range = allowed.vocab.range("semantic")
        self.cursor = ProgramCursor(self.program, self.eos_id, self.semantic_range)
        self.seen = 0

    def __call__(self, output_token_ids: Sequence[int], logits):
        import torch

        if len(output_token_ids) < self.seen:  # replayed from scratch (preemption + recompute)
            self.cursor, self.seen = ProgramCursor(self.program, self.eos_id, self.semantic_range), 0
        for tok in output_token_ids[self.seen:]:
            self.cursor.advance(int(tok))
        self.seen = len(output_token_ids)
        key = self.cursor.key()
        ids = self.allowed.get(key).to(logits.device)
        out = torch.full_like(logits, float("-inf"))
        out[ids] = logits[ids]
        if key[0] == "merge":  # a words span: every word's probability goes to the next word
            cols, target = self.allowed.merge_columns(key)
            out[ids] = merge_word_logits(logits[ids], cols, target)
        return out


def logits_processor_class(vocab: SpeechVocab, text_exclude: Sequence[int], base: type | None = None) -> type:
    """The vLLM batch-level logits processor class carrying :class:`StageLogits` per request.

    Args:
        vocab, text_exclude: as :class:`serving.decoder.AllowedIds`.
        base: the ``AdapterLogitsProcessor`` class to subclass (default: imported from
            ``vllm.v1.sample.logits_processor``; tests pass a fake).

    Raises:
        VllmUnavailableError: ``base`` not given and vllm not importable.
    """
    if base is None:
        try:
            from vllm.v1.sample.logits_processor import AdapterLogitsProcessor as base  # noqa: N813
        except ImportError as e:
            raise VllmUnavailableError(f"vllm is not installed ({e}); the vllm runtime needs a GPU image with vllm") from None
    allowed = AllowedIds(vocab, text_exclude)
    eos = vocab.eos_id

    class UnissStageLogitsProcessor(base):  # type: ignore[misc, valid-type]
        """UniSS stage constraint (serving.vllm_runtime)."""

        @classmethod
        def validate_params(cls, params: Any) -> None:
            raw = (getattr(params, "extra_args", None) or {}).get(PROGRAM_KEY)
            if raw is not None:
                program_from_json(raw)

        def is_argmax_invariant(self) -> bool:
            return False

        def new_req_logits_processor(self, params: Any):
            raw = (getattr(params, "extra_args", None) or {}).get(PROGRAM_KEY)
            return None if raw is None else StageLogits(program_from_json(raw), allowed, eos)

    return UnissStageLogitsProcessor


class VllmRuntime:
    """Decode UniSS prompts with vLLM on a GPU (UNTESTED ON A GPU; see the module docstring).

    Args:
        model_dir: HF Qwen2 directory (a bundle's ``model/`` or a released checkpoint).
        vocab, text_exclude: the layout and the text ids never allowed in a text span.
        llm_kwargs: extra ``vllm.LLM`` arguments (``gpu_memory_utilization``, ``dtype`` ...).

    Raises:
        VllmUnavailableError: vllm is not installed.
    """

    def __init__(self, model_dir: str, vocab: SpeechVocab, text_exclude: Sequence[int], **llm_kwargs: Any) -> None:
        try:
            import vllm
        except ImportError as e:
            raise VllmUnavailableError(f"vllm is not installed ({e}); the vllm runtime needs a GPU image with vllm") from None
        os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")  # AdapterLogitsProcessor is the V1 runner's interface
        self._vllm = vllm
        self.vocab = vocab
        self.allowed = AllowedIds(vocab, text_exclude)
        proc = logits_processor_class(vocab, text_exclude)
        self.llm = vllm.LLM(model=str(model_dir), skip_tokenizer_init=True, logits_processors=[proc], **llm_kwargs)

    def generate(self, prompts: list[list[int]], programs: list[list[tuple]], n_new: list[int], *, seeds: list[int | None],
                 do_sample: bool, temperature: float, top_p: float, repetition_penalty: float) -> list[list[int]]:
        """Generated ids per prompt (``<|im_end|>`` included when reached), in input order."""
        from vllm.inputs import TokensPrompt

        params = [self._vllm.SamplingParams(**sampling_kwargs(prog, self.allowed, self.vocab.eos_id, max_tokens=n, seed=s,
                                                             do_sample=do_sample, temperature=temperature, top_p=top_p,
                                                             repetition_penalty=repetition_penalty))
                  for prog, n, s in zip(programs, n_new, seeds, strict=True)]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)
        rows = []
        for o in outs:
            ids = list(o.outputs[0].token_ids)
            if o.outputs[0].finish_reason == "stop" and (not ids or ids[-1] != self.vocab.eos_id):
                ids.append(self.vocab.eos_id)  # the stop token may be left out of token_ids: keep the output parseable
            rows.append(ids)
        return rows
