"""Batched UniSS speech-to-speech translation engine (KV cache, left padding, constrained decoding).

Size (~650 lines, over the house guide of ~500): prompt assembly, the decoding program, output
parsing and the three runtime adapters share one batch state. The decode loops live in
:mod:`serving.decoder` (continuous batching) and :mod:`serving.vllm_runtime` (GPU); the ``hf``
adapter (``generate`` + :class:`StageConstraint`) stays here as the benchmark baseline.

Pipeline per batch (paper §3.2 cross-modal chain of thought; ARCHITECTURE.md "Token layout"):

1. source waveforms ``(N_i,)`` float32 16 kHz -> codec speaker ``(32,)`` + linguistic ``(T_l,)``
   codes (12.5 tok/s) with ``codec.encode`` (batched);
2. ``uniss.prompts.build_prompt`` (Quality / Performance / Direct layout) -> ids through
   ``SpeechVocab.encode`` with the text tokenizer;
3. decoding by the engine's runtime (:data:`RUNTIMES`; default ``continuous``:
   :class:`serving.decoder.ContinuousDecoder`, rows leave the batch when done and waiting rows take
   their place), sampling with the paper's defaults (§5.2.4: temperature 0.7, top-p 0.8, repetition
   penalty 1.1) under a per-row decoding program (:func:`decoding_program`; :class:`StageConstraint`
   for ``generate``) that only allows the token family valid at each stage of the continuation (text until ``<|end_content|>``, the fixed Quality middle forced,
   semantic tokens until ``<|end_semantic_token|>``, then ``<|im_end|>``) with per-span token
   budgets derived from the source duration, so every row terminates and stays parseable;
4. ``uniss.prompts.parse_output`` -> texts and semantic codes ``(T_s,)`` (50 tok/s);
5. ``codec.decode(source speaker, semantic)`` -> target waveform ``(M,)`` float32 16 kHz (the
   *source* speaker tokens carry the voice, ARCHITECTURE.md "Output parsing").

A bundle of the MSLM-S2ST recipe (``bundle.json`` ``recipe: mslm``; issue 20, arXiv 2403.12408)
runs steps 2-4 as two decodes of the same model instead (:mod:`serving.mslm`): source linguistic
units -> target linguistic units, then target linguistic units + source speaker block -> semantic
tokens; step 5 is the same, and the results carry no text.

A bundle of the S2ST-Omni recipe (``recipe: s2st-omni``; issue 20, arXiv 2506.11160) has no codec
step (:mod:`serving.omni`): frozen Whisper states -> the bundle's speech adapter -> constrained S2TT
decoding (text only), then the platform's TTS speaks the translation in the voice nearest to the
source speaker; results carry ``target_text`` and that waveform.

Shape legend: ``B`` batch rows, ``T`` prompt length (tokens, left padded), ``V`` logit columns
(embedding rows, ``>= vocab.total``; padding rows are never allowed), ``N``/``M`` samples at
16 kHz.

Model sources accepted by :meth:`TranslationEngine.load` (local paths only): a platform model
bundle directory (docs/design.md "Model bundle") or a released-UniSS checkpoint directory (HF Qwen2
dir whose tokenizer holds all 180,407 ids, plus the BiCodec and GLM-4-Voice tokenizer directories)
loaded through the ``paper`` codec backend. A ``models:/NAME@ALIAS`` MLflow registry URI is
resolved to a bundle directory by the registry (``registry.models.resolve_model_source``) before
it gets here; this package never imports the registry.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.mslm import generation_program, span_bounds, translation_program
from uniss.audio import require_speech as require_speech_fn  # name clash with translate(require_speech=)
from uniss.audio import SAMPLE_RATE_HZ, check_waveform  # audio rate of every waveform in and out (Hz)
from uniss.bundle import BundleError, bundle_interleaves_words, bundle_recipe, bundle_uses_linguistic
from uniss.codecs.base import SEMANTIC_RATE_HZ  # 50 tok/s (paper §3.1.2), re-exported: the codecs' own constant
from uniss.errors import UnissError
from uniss.mslm import MslmTask, build_mslm_prompt, parse_units
from uniss.prompts import LANGUAGES, ParsedOutput, Task, build_prompt, other_language, parse_output, splice_semantic_input
from uniss.vocab import N_SPEAKER_TOKENS, SpeechVocab, speed_index

__all__ = [
    "DEFAULT_REPETITION_PENALTY",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_TOP_P",
    "RUNTIMES",
    "SEMANTIC_RATE_HZ",
    "EngineError",
    "ModelLoadError",
    "StageConstraint",
    "TranslationEngine",
    "TranslationResult",
    "decoding_program",
    "token_budgets",
]

#: Decoding runtimes of :class:`TranslationEngine` (step 3).
RUNTIMES = ("continuous", "hf", "vllm")

#: Sampling defaults of the paper (§5.2.4).
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.8
DEFAULT_REPETITION_PENALTY = 1.1

#: Duration window of the semantic span around the speed token's target duration
#: (``ratio x source_s x 50`` tokens): the span may not end before ``SPEED_WINDOW[0]`` x and must end
#: by ``SPEED_WINDOW[1]`` x that count. Inside SLC-0.2's band (paper App. C.1, output/source within
#: 1 +- 0.2 at ratio 1.0) with room for the model to place the end; the speed token (paper §4, the
#: target/source duration ratio) thereby sets the output duration at decoding time (issue 16).
SPEED_WINDOW = (0.85, 1.15)
#: Head-room of the text budget over :data:`TEXT_TOKENS_PER_S`.
TEXT_MARGIN = 1.5
#: Text budget per second of source speech (tokens/s). Speech runs at about 2.5-3 words/s in
#: English and 4-5 characters/s in Mandarin; Qwen2.5 BPE spends roughly 1.3 tokens per English word
#: and 1 token per 1-1.5 hanzi, so 8 tokens/s with the 1.5 margin is a generous cap.
TEXT_TOKENS_PER_S = 8.0
#: Minimum budget of a text span (tokens), so very short clips still get a sentence.
MIN_TEXT_TOKENS = 16


class EngineError(UnissError, ValueError):
    """Bad arguments to the engine: unknown mode or language, wrong waveform, bad sampling values."""


class ModelLoadError(UnissError):
    """A model source that cannot be loaded: missing dirs/files, inconsistent vocabulary, an
    unresolved ``models:/`` URI."""


@dataclass
class TranslationResult:
    """One translated utterance.

    Attributes:
        source_text: transcript of the source (Quality mode only, else ``None``; ``None`` for an
            MSLM bundle, which writes no text).
        target_text: translation text (Quality and Performance; ``None`` for Direct and MSLM; the
            S2TT output for S2ST-Omni, which the TTS engine then speaks).
        wav: ``(M,)`` float32 target speech at 16 kHz (empty when no semantic tokens came out).
        duration_s: target duration in seconds (``M / 16000``).
        source_duration_s: source duration in seconds.
        output_tokens: tokens generated for this row (``<|im_end|>`` included, padding excluded;
            MSLM: both stages together).
        timings: seconds per stage for the batch this row was in (``encode``, ``generate``,
            ``decode``, ``total``).
        complete: every delimiter was produced and the output ended with ``<|im_end|>``.
        reason: why it is incomplete (``None`` when complete).
        mode: ``quality`` / ``performance`` / ``direct``; target_language: ``en``/``zh``.
    """

    source_text: str | None
    target_text: str | None
    wav: np.ndarray
    duration_s: float
    source_duration_s: float
    output_tokens: int
    timings: dict[str, float]
    complete: bool
    reason: str | None
    mode: str = "quality"
    target_language: str = "zh"
    semantic: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


# ------------------------------------------------------------------------------- budgets / program
def token_budgets(source_duration_s: float, speed: float, *, max_duration_s: float | None = None) -> dict[str, int]:
    """Per-span token bounds derived from the source duration and the speed token's ratio.

    The semantic span holds ``[floor(lo x n), ceil(hi x n)]`` tokens with ``n = 50 tok/s x speed x
    source_s`` and ``(lo, hi) =`` :data:`SPEED_WINDOW` (the upper bound capped by ``max_duration_s`` x
    50, the lower bound never above it); text spans hold at most ``max(16, ceil(8 tok/s x source_s x
    1.5))``. Source: paper §3.1.2 (50 Hz semantic tokens) and §4 (the speed token encodes the
    target/source duration ratio; output length should follow it, App. C.1 SLC).

    Args:
        source_duration_s: seconds of source speech (> 0).
        speed: target/source duration ratio (0.1 .. 3.5).
        max_duration_s: optional hard cap of the output duration in seconds.

    Returns:
        ``{"text": int, "semantic": int, "semantic_min": int}`` token counts.
    """
    cap = None if max_duration_s is None else int(SEMANTIC_RATE_HZ * max_duration_s)
    sem, sem_min = span_bounds(SEMANTIC_RATE_HZ * speed * source_duration_s, SPEED_WINDOW, cap)
    text = max(MIN_TEXT_TOKENS, math.ceil(TEXT_TOKENS_PER_S * source_duration_s * TEXT_MARGIN))
    return {"text": int(text), "semantic": int(sem), "semantic_min": int(sem_min)}


#: A step of a decoding program: ``("span", family, terminator_id, budget, min_len)`` or ``("force", id)``.
Step = tuple


def row_modes(mode: str | Sequence[str], n: int) -> list[Task]:
    """The S2ST task of each of ``n`` rows from one mode for all rows or one mode per row.

    Args:
        mode: ``quality`` / ``performance`` / ``direct`` (paper §3.2), or a sequence of ``n`` of them.
        n: rows in the batch.

    Returns:
        ``n`` :class:`uniss.prompts.Task` members, all S2ST.

    Raises:
        EngineError: a list of the wrong length, or a mode that is not an S2ST mode.
    """
    modes = [mode] * n if isinstance(mode, str) else list(mode)
    if len(modes) != n:
        raise EngineError(f"mode list must have {n} entries, got {len(modes)}")
    tasks = []
    for m in modes:
        try:
            task = Task(m)
        except ValueError:
            task = None
        if task is None or not task.is_s2st:
            raise EngineError(f"unknown mode {m!r}; expected quality, performance or direct")
        tasks.append(task)
    return tasks


def decoding_program(vocab: SpeechVocab, mode: Task | str, *, tgt: str, speed: float, budgets: dict[str, int],
                     interleave_words: bool = False) -> list[Step]:
    """The stages the continuation of an S2ST prompt must go through (ARCHITECTURE.md prompts).

    Quality: ``text* <|end_content|>`` -> forced ``<|task_s2t_translation|>{tgt}{v}<|start_content|>``
    -> ``text* <|end_content|>`` -> forced ``<|start_semantic_token|>`` -> ``semantic*
    <|end_semantic_token|>`` -> forced ``<|im_end|>``. Performance starts at the second text span,
    Direct at the semantic span. With ``interleave_words`` (a bundle trained with
    ``data.interleave_words``, ``uniss.bundle.bundle_interleaves_words``) the speech span is a
    ``spoken`` span: text and semantic ids, its budget and min_len counted in semantic tokens.

    Returns:
        list of steps: ``("span", family, terminator_id, budget, min_len)`` or ``("force", token_id)``;
        a span's terminator is allowed only after ``min_len`` tokens and forced after ``budget``.

    Raises:
        EngineError: mode is not an S2ST mode.
    """
    t = Task(mode)
    if not t.is_s2st:
        raise EngineError(f"mode must be quality, performance or direct, got {mode!r}")
    tid = vocab.token_id
    end_c, end_s = tid("<|end_content|>"), tid("<|end_semantic_token|>")
    sem = [("span", "spoken" if interleave_words else "semantic", end_s, budgets["semantic"], budgets.get("semantic_min", 0)),
           ("force", vocab.eos_id)]
    translate = [("span", "text", end_c, budgets["text"], 0), ("force", tid("<|start_semantic_token|>"))] + sem
    if t is Task.DIRECT:
        return sem
    if t is Task.PERFORMANCE:
        return translate
    middle = [
        ("force", tid("<|task_s2t_translation|>")),
        ("force", tid(vocab.language_token(tgt))),
        ("force", tid(vocab.speed_token(speed))),
        ("force", tid("<|start_content|>")),
    ]
    return [("span", "text", end_c, budgets["text"], 0)] + middle + translate


class StageConstraint:
    """``transformers`` logits processor enforcing one :func:`decoding_program` per batch row.

    At each step the scores ``(B, V)`` of every token outside the current stage's allowed ids are
    set to ``-inf``. The stages and their rules are :class:`serving.decoder.ProgramCursor`'s (one
    cursor per row; the ids per stage from :class:`serving.decoder.AllowedIds`), so this runtime
    allows exactly what the continuous and vLLM runtimes allow: a text span allows the text ids
    except the tokenizer's special tokens, plus the span's terminator; a semantic span allows the
    semantic family plus ``<|end_semantic_token|>``; a forced step allows exactly one id; when a
    span's budget is spent only its terminator is allowed, and before its ``min_len`` (the speed
    token's duration window) the terminator is not; a ``words`` span follows its given words. After
    the program ends only ``<|im_end|>``/pad are allowed (``generate`` pads finished rows). It is
    placed by ``generate`` after the repetition penalty and before temperature/top-p (transformers
    ``_get_logits_processor``), so sampling never sees a disallowed token.

    Args:
        vocab: the layout; programs: one program per row; prompt_len: padded prompt length ``T``;
        n_logits: ``V``; text_exclude: text ids never allowed in a text span (tokenizer specials).

    Attributes:
        cursors: per row, its :class:`serving.decoder.ProgramCursor`.
    """

    def __init__(self, vocab: SpeechVocab, programs: list[list[Step]], prompt_len: int, n_logits: int, text_exclude: Sequence[int]) -> None:
        import torch

        from serving.decoder import AllowedIds, ProgramCursor

        self.programs = programs
        self.prompt_len = prompt_len
        self.cursors = [ProgramCursor(p, vocab.eos_id, vocab.range("semantic")) for p in programs]
        self.n_logits = n_logits
        self._allowed = AllowedIds(vocab, text_exclude)
        self._neg = torch.full((n_logits,), float("-inf"))
        self._bias: dict[tuple, torch.Tensor] = {}
        self._tail = sorted({vocab.eos_id, vocab.pad_id})

    def _advance(self, row: int, token: int) -> None:
        self.cursors[row].advance(token)

    def allowed(self, row: int):
        """Additive bias ``(V,)`` float32 (0 allowed, -inf not) for one row's current stage."""
        cur = self.cursors[row]
        key = ("tail",) if cur.done else cur.key()
        b = self._bias.get(key)
        if b is None:
            b = self._neg.clone()
            b[self._tail if cur.done else self._allowed.get(key)] = 0.0
            self._bias[key] = b
        return b

    def __call__(self, input_ids, scores):  # (B, T+t) int64, (B, V) float32 -> (B, V)
        import torch

        from serving.decoder import merge_word_logits

        if input_ids.shape[1] > self.prompt_len:
            last = input_ids[:, -1].tolist()
            for r, tok in enumerate(last):
                self._advance(r, int(tok))
        bias = torch.stack([self.allowed(r) for r in range(len(self.programs))]).to(scores.device, scores.dtype)  # (B, V)
        out = scores + bias
        for r, cur in enumerate(self.cursors):  # a words span: every word's probability goes to the next word
            key = None if cur.done else cur.key()
            if key is not None and key[0] == "merge":
                ids = self._allowed.get(key).to(scores.device)
                cols, target = self._allowed.merge_columns(key)
                out[r, ids] = merge_word_logits(scores[r, ids], cols, target)
        return out


# ------------------------------------------------------------------------------------- engine
class TranslationEngine:
    """Batched S2ST inference over a UniSS model (docs/design.md "Serving engine").

    Args:
        model: ``transformers`` causal LM (``Qwen2ForCausalLM``) whose embedding rows cover
            ``vocab.total``.
        tokenizer: HF fast tokenizer (text ids; speech tokens may be added, they are not used:
            ``SpeechVocab.encode`` maps them).
        vocab: the token layout.
        codec: a ``uniss.codecs`` ``SpeechCodec`` (``encode(wavs, semantic=False) -> [CodecTokens]``,
            ``decode(speaker, semantic) -> wav``).
        meta: bundle metadata (``bundle.json``), shown by the predictor; ``model_dir`` (the HF
            model directory) is what the ``vllm`` runtime loads; ``recipe`` (``uniss`` when absent,
            ``uniss.bundle.bundle_recipe``) selects the decoding: ``mslm`` = the two-stage MSLM-S2ST
            program (:mod:`serving.mslm`), ``s2st-omni`` = adapter S2TT then TTS (:mod:`serving.omni`).
        device: torch device string.
        runtime: how step 3 decodes (:data:`RUNTIMES`): ``continuous`` (default,
            :class:`serving.decoder.ContinuousDecoder`: continuous batching with row compaction and
            sampling restricted to the allowed family), ``hf`` (one ``transformers`` ``generate``
            call per batch with :class:`StageConstraint`; the benchmark baseline), ``vllm``
            (:class:`serving.vllm_runtime.VllmRuntime`, GPU, where ``vllm`` is installed).
        max_batch: decode slots of the continuous runtime (rows decoded together).
        adapter: the speech adapter of an ``s2st-omni`` bundle (``uniss.omni.load_adapter``); such a
            bundle needs no codec (``codec=None``).
        voices: an ``s2st-omni`` bundle's :class:`serving.omni.VoiceMatcher` (default: built on first
            use over the Kokoro-82M engine, every voice).

    Raises:
        ModelLoadError: the model's embedding rows do not cover the vocabulary, the codec's
            sizes disagree with the vocabulary, ``meta`` names an unknown recipe, or an
            ``s2st-omni`` engine has no adapter (or one whose width is not the LM's).
        EngineError: an unknown runtime or ``max_batch < 1``.
    """

    def __init__(self, model: Any, tokenizer: Any, vocab: SpeechVocab, codec: Any, *, meta: dict | None = None, device: str = "cpu",
                 runtime: str = "continuous", max_batch: int = 8, adapter: Any | None = None, voices: Any | None = None) -> None:
        import torch

        if runtime not in RUNTIMES:
            raise EngineError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
        if int(max_batch) < 1:
            raise EngineError(f"max_batch must be >= 1, got {max_batch}")

        rows = int(model.get_input_embeddings().weight.shape[0])
        if rows < vocab.total:
            raise ModelLoadError(f"model has {rows} embedding rows but the vocabulary has {vocab.total} ids")
        sizes = getattr(codec, "sizes", None)
        if sizes:
            for fam in ("speaker", "semantic", "linguistic"):
                if fam in sizes and int(sizes[fam]) != vocab.sizes[fam]:
                    raise ModelLoadError(f"codec {fam} size {sizes[fam]} != vocabulary {fam} size {vocab.sizes[fam]}")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.codec = codec
        self.meta = dict(meta or {})
        try:
            self.recipe = bundle_recipe(self.meta)
            #: False for a "w/o linguistic tokens" ablation model: its prompts carry the source's
            #: semantic tokens in the linguistic slot, as in training (uniss.prompts.splice_semantic_input)
            self.use_linguistic = bundle_uses_linguistic(self.meta)
            #: True for a model trained with words interleaved in its speech span (data.interleave_words)
            self.interleave_words = bundle_interleaves_words(self.meta)
        except BundleError as e:
            raise ModelLoadError(str(e)) from None
        self.device = device
        self._torch = torch
        # Text ids that must never appear inside a text span: the text tokenizer's own specials
        # (<|endoftext|>, <|im_start|>, <|im_end|>, Qwen2.5's tool/vision tokens ...).
        excl = {vocab.pad_id, vocab.im_start_id, vocab.eos_id}
        for i in getattr(tokenizer, "added_tokens_decoder", {}) or {}:
            if int(i) < vocab.text_size:
                excl.add(int(i))
        self.text_exclude = sorted(excl)
        self.runtime = runtime
        self.max_batch = int(max_batch)
        self._decoder = None  # serving.decoder.ContinuousDecoder, built on first use
        self._vllm_runtime = None  # serving.vllm_runtime.VllmRuntime, built on first use
        self.last_stats: dict[str, int] = {}
        self.last_stages: list[list[list[int]]] = []  # MSLM: generated ids of each stage and row
        self.adapter = adapter
        self.voices = voices  # s2st-omni: serving.omni.VoiceMatcher, built on first use
        if self.recipe == "s2st-omni":
            if adapter is None or adapter.cfg.out_dim != model.config.hidden_size:
                raise ModelLoadError("an s2st-omni model needs its speech adapter (bundle adapter/) with out_dim = the LM hidden size")
            self.adapter = adapter.to(device).eval()

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, model: str | Path, *, device: str = "cpu", runtime: str = "continuous", max_batch: int = 8) -> TranslationEngine:
        """Load from a local bundle dir or a released-UniSS checkpoint dir (``runtime``/``max_batch``
        as in the constructor).

        Raises:
            ModelLoadError: the source does not exist or is not a recognised format; a released
                checkpoint lacks its BiCodec / GLM-4-Voice tokenizer directories; a ``models:/``
                URI (resolve it first with ``registry.models.resolve_model_source``).
        """
        src = str(model)
        if src.startswith("models:/"):
            raise ModelLoadError(f"{src} is a registry URI: resolve it to a bundle directory first "
                                 "(registry.models.resolve_model_source; the uniss CLI does)")
        path = Path(src).expanduser()
        if not path.exists():
            raise ModelLoadError(f"model path {path} does not exist")
        if runtime not in RUNTIMES:
            raise EngineError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
        if (path / "bundle.json").is_file():
            return cls._load_bundle(path, device=device, runtime=runtime, max_batch=max_batch)
        if (path / "config.json").is_file():
            return cls._load_released(path, device=device, runtime=runtime, max_batch=max_batch)
        raise ModelLoadError(
            f"{path} is neither a model bundle (bundle.json) nor a released UniSS checkpoint (config.json)"
        )

    @classmethod
    def _load_bundle(cls, path: Path, *, device: str, **kw: Any) -> TranslationEngine:
        from uniss.bundle import load_bundle, read_bundle_meta  # the bundle contract owner (docs/design.md)

        try:
            omni = bundle_recipe(read_bundle_meta(path)) == "s2st-omni"
        except BundleError as e:
            raise ModelLoadError(str(e)) from None
        b = load_bundle(path, device=device, with_codec=not omni)  # S2ST-Omni speaks through a TTS engine, no codec
        adapter = None
        if omni:
            from uniss.omni import ADAPTER_DIR, OmniError, load_adapter

            try:
                adapter = load_adapter(path / ADAPTER_DIR, device=device)
            except OmniError as e:
                raise ModelLoadError(f"s2st-omni bundle {path}: {e}") from None
        return cls(b.model, b.tokenizer, b.vocab, b.codec, meta={**b.meta, "model_dir": str(path / "model")}, device=device,
                   adapter=adapter, **kw)

    @classmethod
    def _load_released(cls, path: Path, *, device: str, **kw: Any) -> TranslationEngine:
        """The released UniSS layout: ``path`` is the HF Qwen2 dir with the expanded 180,407-id
        tokenizer; the codec dirs are ``path/BiCodec`` (with ``path/wav2vec2-large-xlsr-53``) and
        ``path/glm-4-voice-tokenizer`` (or listed in ``path/codec.json``). ``codec.json`` may
        instead name a lite codec (``{"backend": "lite", "codec_dir": DIR}``, as
        ``uniss.lm.save_released`` writes for a checkpoint without BiCodec/GLM-4-Voice weights):
        its codes are written with the released token spellings, so its codebooks must have the
        paper sizes (4,096 / 8,192 / 16,384)."""
        codec_json = path / "codec.json"
        if codec_json.is_file():
            cfg = json.loads(codec_json.read_text())
        else:
            cfg = {"backend": "paper", "bicodec_dir": str(path / "BiCodec"), "glm_tokenizer_dir": str(path / "glm-4-voice-tokenizer")}
        vocab = SpeechVocab.paper()
        if cfg.get("backend") == "lite":
            from uniss.codecs import load_codec

            cdir = Path(cfg.get("codec_dir", ""))
            if not cdir.is_dir():
                raise ModelLoadError(f"released UniSS checkpoint {path}: codec.json names lite codec_dir={cdir}, which does not exist")
            codec = load_codec(cdir)
            differ = {k: v for k, v in codec.sizes.items() if v != vocab.sizes[k]}
            if differ:  # checked before the 2 GB+ model load; the engine maps codes 1:1 onto the ranges
                raise ModelLoadError(f"{path}: lite codec {cdir} has codebook sizes {differ}; a released (180,407-id) "
                                     "checkpoint needs the paper's speaker 4096 / semantic 8192 / linguistic 16384")
        else:
            missing = [k for k in ("bicodec_dir", "glm_tokenizer_dir") if not Path(cfg.get(k, "")).is_dir()]
            if missing:
                raise ModelLoadError(
                    f"released UniSS checkpoint {path}: missing codec directories "
                    + ", ".join(f"{k}={cfg.get(k)}" for k in missing)
                    + " (put BiCodec/ and glm-4-voice-tokenizer/ next to the model, or list them in codec.json)"
                )
            from uniss.codecs.paper import PaperCodec

            codec = PaperCodec(cfg["bicodec_dir"], cfg["glm_tokenizer_dir"], device=device)
        from uniss.lm import load_pretrained

        lm, tok = load_pretrained(path)
        if len(tok) != vocab.total:
            raise ModelLoadError(f"{path}: tokenizer has {len(tok)} ids, the released layout needs {vocab.total}")
        return cls(lm, tok, vocab, codec,
                   meta={"format": "released-uniss", "path": str(path), "model_dir": str(path), "codec_backend": cfg.get("backend", "paper")},
                   device=device, **kw)

    # ------------------------------------------------------------------ helpers
    def _encode_text(self, s: str) -> list[int]:
        return list(self.tokenizer.encode(s, add_special_tokens=False))

    def _decode_text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def prompt_ids(self, speaker: np.ndarray, linguistic: np.ndarray, *, mode: str, tgt: str, speed: float,
                   semantic: np.ndarray | None = None) -> list[int]:
        """Prompt ids of one utterance: ``build_prompt`` then ``vocab.encode`` (``(T,)`` ids).

        Args:
            speaker: ``(32,)`` speaker codes; linguistic: ``(T_l,)`` codes at 12.5 tok/s.
            semantic: ``(T_s,)`` source semantic codes at 50 tok/s, for a model trained without
                linguistic tokens (``self.use_linguistic`` False): they replace ``linguistic``
                (``uniss.prompts.splice_semantic_input``, paper Table 4's ablation).
        """
        if semantic is None:
            text = build_prompt(self.vocab, mode, tgt=tgt, speaker=speaker, linguistic=linguistic, speed_ratio=speed)
        else:
            empty = np.zeros(0, dtype=np.int64)
            text = splice_semantic_input(self.vocab, build_prompt(self.vocab, mode, tgt=tgt, speaker=speaker, linguistic=empty,
                                                                  speed_ratio=speed), semantic)
        return self.vocab.encode(text, self._encode_text)

    # ------------------------------------------------------------------ translate
    def translate(
        self,
        wavs: Sequence[np.ndarray],
        *,
        target_language: str | Sequence[str],
        mode: str | Sequence[str] = "quality",
        speed: float | Sequence[float] = 1.0,
        temperature: float = DEFAULT_TEMPERATURE,
        top_p: float = DEFAULT_TOP_P,
        repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
        max_new_tokens: int | None = None,
        do_sample: bool = True,
        seed: int | Sequence[int | None] | None = None,
        max_duration_s: float | None = None,
        require_speech: bool = True,
    ) -> list[TranslationResult]:
        """Translate a batch of source utterances (decoded together by the engine's runtime).

        Args:
            wavs: ``B`` waveforms, each ``(N_i,)`` float32 mono 16 kHz (use ``uniss.audio.load_audio``).
            target_language: ``en``/``zh`` for all rows or one per row.
            mode: ``quality`` (transcribe, translate, speak), ``performance`` (translate, speak) or
                ``direct`` (speak) -- paper §3.2; one for all rows or one per row (rows of
                different modes decode together: each row has its own prompt and program). An MSLM
                bundle has one program (two stages, no text) for every mode, an S2ST-Omni bundle
                too (S2TT then TTS); the mode is only recorded on the result.
            speed: target/source duration ratio for the speed token (0.1 .. 3.5), scalar or per row
                (MSLM, whose prompts have no speed token: sizes the translated span, serving/mslm.py;
                S2ST-Omni: not used, the TTS speaks at its natural pace).
            temperature, top_p, repetition_penalty: sampling (paper §5.2.4 defaults 0.7/0.8/1.1).
            max_new_tokens: overall cap; default = the program's budgets (see :func:`token_budgets`);
                MSLM: the cap of each of its two stages; S2ST-Omni: of the S2TT output (text +
                ``<|end_content|><|im_end|>``), decoded one row at a time whatever the runtime.
            do_sample: ``False`` = greedy decoding.
            seed: sampler seed; row ``i`` samples from its own generator seeded ``seed + i`` (or
                ``seed[i]`` for a list), so its output does not depend on the other rows; the
                ``hf`` runtime seeds torch's global RNG with the first row's seed instead.
            max_duration_s: cap of the output speech duration (seconds).
            require_speech: check every row for speech with ``uniss.audio.require_speech``
                (silero-vad) before any codec or model work; ``False`` when the caller already did
                (the predictor's preprocess, ``uniss translate``) or feeds synthetic signals (tests).

        Returns:
            ``B`` :class:`TranslationResult` in input order.

        Raises:
            AudioError: a waveform that is not 1-D float, empty or non-finite (``uniss.audio.check_waveform``).
            NoSpeechAudioError: with ``require_speech``, a row without speech (silence, DC, noise).
            EngineError: empty batch, unknown mode/language, a seed/mode list of the wrong length,
                speed or sampling values out of range.
        """
        torch = self._torch
        t0 = time.perf_counter()
        if len(wavs) == 0:
            raise EngineError("empty batch: give at least one waveform")
        B = len(wavs)
        tgts = [target_language] * B if isinstance(target_language, str) else list(target_language)
        speeds = [float(speed)] * B if isinstance(speed, (int, float)) else [float(s) for s in speed]
        if len(tgts) != B or len(speeds) != B:
            raise EngineError(f"target_language/speed lists must have {B} entries")
        for t in tgts:
            if t not in LANGUAGES:
                raise EngineError(f"unknown target language {t!r}; supported: {', '.join(LANGUAGES)}")
        tasks = row_modes(mode, B)
        for s in speeds:
            speed_index(s)  # raises VocabError (a UnissError) outside [0.1, 3.5]
        if not temperature > 0 or not 0 < top_p <= 1 or not repetition_penalty > 0:
            raise EngineError(f"bad sampling values temperature={temperature}, top_p={top_p}, repetition_penalty={repetition_penalty}")
        check = require_speech_fn if require_speech else check_waveform
        arrays = [check(w, what=f"wavs[{i}]") for i, w in enumerate(wavs)]
        src_dur = [a.shape[0] / SAMPLE_RATE_HZ for a in arrays]
        seeds = _row_seeds(seed, B)
        sampling = dict(do_sample=do_sample, temperature=temperature, top_p=top_p, repetition_penalty=repetition_penalty)
        if self.recipe == "s2st-omni":  # no codec: adapter S2TT then TTS (serving/omni.py)
            return self._translate_omni(arrays, tgts, tasks, src_dur, seeds=seeds, sampling=sampling,
                                        max_new_tokens=max_new_tokens, t0=t0)

        # 1. speech tokens (batched codec call): the prompt holds the source's speaker and
        # linguistic tokens only (ARCHITECTURE.md prompts), so its semantic stream is skipped,
        # except for a model trained with semantic tokens in their place (Table 4 ablation)
        semantic_input = not self.use_linguistic and self.recipe == "uniss"
        toks = self.codec.encode(arrays, semantic=semantic_input)
        t1 = time.perf_counter()
        speakers = [np.asarray(c.speaker, dtype=np.int64) for c in toks]
        for i, s in enumerate(speakers):
            if s.shape != (N_SPEAKER_TOKENS,):
                raise EngineError(f"codec returned {s.shape} speaker tokens for wavs[{i}], expected ({N_SPEAKER_TOKENS},)")

        stages: list[list[list[int]]] = []
        if self.recipe == "mslm":  # 2-3 as two decodes (serving/mslm.py)
            stages = self._generate_mslm([np.asarray(t.linguistic) for t in toks], speakers, tgts, speeds, src_dur, seeds=seeds,
                                         sampling=sampling, max_new_tokens=max_new_tokens, max_duration_s=max_duration_s)
            rows = stages[-1]
        else:
            # 2. prompt ids (T_i,)
            prompts = [self.prompt_ids(speakers[i], np.asarray(toks[i].linguistic), mode=tasks[i].value, tgt=tgts[i], speed=speeds[i],
                                       semantic=np.asarray(toks[i].semantic) if semantic_input else None)
                       for i in range(B)]
            # 3. constrained, batched generation
            programs = [
                decoding_program(self.vocab, tasks[i], tgt=tgts[i], speed=speeds[i],
                                 budgets=token_budgets(src_dur[i], speeds[i], max_duration_s=max_duration_s),
                                 interleave_words=self.interleave_words)
                for i in range(B)
            ]
            if self.interleave_words:
                rows = self._decode_words(prompts, programs, tasks, tgts, max_new_tokens, seeds=seeds, sampling=sampling)
            else:
                rows = self._decode(prompts, programs, max_new_tokens, seeds=seeds, sampling=sampling)
        self.last_stages = stages
        t_max = max(1, max(len(r) for r in rows))
        gen = np.full((B, t_max), self.vocab.pad_id, dtype=np.int64)  # (B, t)
        for i, r in enumerate(rows):
            gen[i, : len(r)] = r
        t2 = time.perf_counter()

        # 4-5. parse, decode with the source speaker tokens
        results: list[TranslationResult] = []
        for i in range(B):
            if stages:
                parsed, n_out = self._parse_mslm([_cut_at(st[i], self.vocab.eos_id) for st in stages], tasks[i])
            else:
                row = _cut_at(rows[i], self.vocab.eos_id)
                n_out = len(row)
                parsed = parse_output(self.vocab, tasks[i], self.vocab.decode(row, self._decode_text))
            if parsed.semantic.size:
                wav = np.asarray(self.codec.decode(speakers[i], parsed.semantic), dtype=np.float32).reshape(-1)
            else:
                wav = np.zeros(0, dtype=np.float32)
            results.append(
                TranslationResult(
                    source_text=parsed.source_text,
                    target_text=parsed.target_text,
                    wav=wav,
                    duration_s=wav.shape[0] / SAMPLE_RATE_HZ,
                    source_duration_s=src_dur[i],
                    output_tokens=n_out,
                    timings={},
                    complete=parsed.complete,
                    reason=parsed.reason,
                    mode=tasks[i].value,
                    target_language=tgts[i],
                    semantic=parsed.semantic,
                )
            )
        t3 = time.perf_counter()
        timings = {"encode": t1 - t0, "generate": t2 - t1, "decode": t3 - t2, "total": t3 - t0}
        for r in results:
            r.timings = dict(timings)
        self.last_generated = gen  # (B, t) raw generated ids (MSLM: of the generation stage), for tests/benchmarks
        return results

    def _translate_omni(self, arrays: list[np.ndarray], tgts: list[str], tasks: list[Task], src_dur: list[float], *,
                        seeds: list[int | None], sampling: dict[str, Any], max_new_tokens: int | None,
                        t0: float) -> list[TranslationResult]:
        """The S2ST-Omni program (serving/omni.py) on checked ``(N_i,)`` float32 16 kHz waveforms:
        frozen Whisper states -> adapter S2TT (text only) -> TTS in the nearest voice. Timings:
        ``encode`` = encoder states, ``generate`` = S2TT, ``decode`` = voice choice + TTS. A row whose
        TTS fails (``TTSError``) keeps its text, gets an empty waveform and ``complete=False``."""
        from serving.omni import s2tt_decode, text_budget
        from uniss.engines.tts import TTSError
        from uniss.omni import adapter_inputs, build_omni_prompt, speech_features

        v, B = self.vocab, len(arrays)
        frames = [adapter_inputs(s, self.adapter.cfg) for s in speech_features(arrays)]  # (P_i, k * 512) each
        t1 = time.perf_counter()
        prompts = [v.encode(build_omni_prompt(v, tgt=tgts[i], n_frames=frames[i].shape[0]), self._encode_text) for i in range(B)]
        budgets = [text_budget(d) if max_new_tokens is None else min(text_budget(d), max(1, int(max_new_tokens) - 2)) for d in src_dur]
        rows = s2tt_decode(self.model, self.adapter, v, prompts, frames, budgets=budgets, text_exclude=self.text_exclude,
                           seeds=seeds, **sampling)
        self.last_generated = np.full((B, max(len(r) for r in rows)), v.pad_id, dtype=np.int64)  # (B, t)
        for i, r in enumerate(rows):
            self.last_generated[i, : len(r)] = r
        t2 = time.perf_counter()
        voices = self._voice_matcher()
        results: list[TranslationResult] = []
        for i in range(B):
            parsed = parse_output(v, Task.S2TT, v.decode(rows[i], self._decode_text))
            reason, wav = parsed.reason, np.zeros(0, dtype=np.float32)
            if parsed.target_text:
                try:
                    voice, _ = voices.pick(arrays[i], tgts[i])
                    wav = voices.speak(parsed.target_text, tgts[i], voice)
                except TTSError as e:
                    reason = "; ".join(x for x in (reason, f"tts: {e}") if x)
            else:
                reason = "; ".join(x for x in (reason, "empty translation") if x)
            results.append(TranslationResult(
                source_text=None, target_text=parsed.target_text, wav=wav, duration_s=wav.shape[0] / SAMPLE_RATE_HZ,
                source_duration_s=src_dur[i], output_tokens=len(rows[i]), timings={}, complete=reason is None and wav.size > 0,
                reason=reason, mode=tasks[i].value, target_language=tgts[i]))
        t3 = time.perf_counter()
        for r in results:
            r.timings = {"encode": t1 - t0, "generate": t2 - t1, "decode": t3 - t2, "total": t3 - t0}
        return results

    def _decode_words(self, prompts: list[list[int]], programs: list[list[Step]], tasks: list[Task], tgts: list[str],
                      max_new_tokens: int | None, *, seeds: list[int | None], sampling: dict[str, Any]) -> list[list[int]]:
        """Decoding for a model trained with ``data.interleave_words``: Quality and Performance rows
        are decoded up to ``<|start_semantic_token|>``; their translation (the last text span) is
        split into Whisper's words (:func:`uniss.engines.asr.whisper_words`, the split the
        training alignment used) and the speech span is decoded as a ``words`` span that speaks
        exactly those words (:class:`serving.decoder.ProgramCursor`). Direct rows have no
        translation to follow and keep their free ``spoken`` span. Returns each row's generated ids.

        Raises:
            EngineUnavailableError: no Whisper tokenizer installed (``make models``).
        """
        from uniss.engines.asr import whisper_words

        start_s = self.vocab.token_id("<|start_semantic_token|>")
        two = {i for i, t in enumerate(tasks) if t is not Task.DIRECT}
        rows = self._decode(prompts, [p[:-2] if i in two else p for i, p in enumerate(programs)], max_new_tokens,
                            seeds=seeds, sampling=sampling)
        for i in two:  # a finished program ends its row with <|im_end|>: the speech span comes next instead
            if len(rows[i]) >= 2 and rows[i][-1] == self.vocab.eos_id and rows[i][-2] == start_s:
                rows[i] = list(rows[i][:-1])
        again = [i for i in sorted(two) if rows[i] and rows[i][-1] == start_s]  # a row cut by max_new_tokens stops
        if not again:
            return rows
        second = []
        for i in again:
            translation = parse_output(self.vocab, tasks[i], self.vocab.decode(rows[i], self._decode_text)).target_text or ""
            words = [tuple(ids) for ids in (self._encode_text(w) for w in whisper_words(translation, tgts[i])) if ids]
            _, _, end, budget, min_len = programs[i][-2]
            second.append([("words", tuple(words), end, budget, min_len), programs[i][-1]])
        cap = None if max_new_tokens is None else max(1, int(max_new_tokens) - min(len(rows[i]) for i in again))
        more = self._decode([list(prompts[i]) + list(rows[i]) for i in again], second, cap,
                            seeds=[seeds[i] for i in again], sampling=sampling)
        for i, r in zip(again, more, strict=True):
            rows[i] = list(rows[i]) + list(r)
        return rows

    # ------------------------------------------------------------------ runtimes
    def _decode(self, prompts: list[list[int]], programs: list[list[Step]], max_new_tokens: int | None, *,
                seeds: list[int | None], sampling: dict[str, Any]) -> list[list[int]]:
        """Decode ``prompts`` under ``programs`` with the engine's runtime; each row gets at most its
        program's length (or ``max_new_tokens``) new tokens. Returns the generated ids of each row."""
        n_new = [_program_length(p) if max_new_tokens is None else min(int(max_new_tokens), _program_length(p)) for p in programs]
        if self.runtime == "hf":
            return self._generate_hf(prompts, programs, max(n_new), seed=seeds[0], **sampling)
        if self.runtime == "vllm":
            return self._vllm().generate(prompts, programs, n_new, seeds=seeds, **sampling)
        return self._generate_continuous(prompts, programs, n_new, seeds=seeds, **sampling)

    def _generate_mslm(self, linguistic: list[np.ndarray], speakers: list[np.ndarray], tgts: list[str], speeds: list[float],
                       src_dur: list[float], *, seeds: list[int | None], sampling: dict[str, Any], max_new_tokens: int | None,
                       max_duration_s: float | None) -> list[list[list[int]]]:
        """The MSLM-S2ST program (serving/mslm.py; prompts of ``uniss.mslm``): stage 1 translates each
        row's source linguistic units ``(T_l,)`` into target linguistic units, stage 2 generates semantic
        tokens from those units and the row's source speaker codes ``(32,)``. ``max_new_tokens`` caps
        each stage. Returns ``[stage-1 ids per row, stage-2 ids per row]``."""
        v, enc, B = self.vocab, self._encode_text, len(tgts)
        p1 = [v.encode(build_mslm_prompt(v, MslmTask.TRANSLATE, src=other_language(tgts[i]), tgt=tgts[i], linguistic=linguistic[i]), enc)
              for i in range(B)]
        g1 = [translation_program(v, src_dur[i], speeds[i], window=SPEED_WINDOW, max_duration_s=max_duration_s) for i in range(B)]
        rows1 = self._decode(p1, g1, max_new_tokens, seeds=seeds, sampling=sampling)
        units = [parse_units(v, MslmTask.TRANSLATE, _cut_at(r, v.eos_id)).codes for r in rows1]  # (T_l',) each
        p2 = [v.encode(build_mslm_prompt(v, MslmTask.GENERATE, tgt=tgts[i], speaker=speakers[i], linguistic=units[i]), enc)
              for i in range(B)]
        g2 = [generation_program(v, len(units[i]), window=SPEED_WINDOW, semantic_rate_hz=SEMANTIC_RATE_HZ, max_duration_s=max_duration_s)
              for i in range(B)]
        return [rows1, self._decode(p2, g2, max_new_tokens, seeds=seeds, sampling=sampling)]

    def _parse_mslm(self, stage_rows: list[list[int]], task: Task) -> tuple[ParsedOutput, int]:
        """One row's two MSLM stage outputs (cut after ``<|im_end|>``) -> (parsed output with the
        stage-2 semantic codes and no text, tokens generated in both stages)."""
        u1 = parse_units(self.vocab, MslmTask.TRANSLATE, stage_rows[0])
        u2 = parse_units(self.vocab, MslmTask.GENERATE, stage_rows[1])
        reasons = [f"{name}: {u.reason}" for name, u in (("translation", u1), ("generation", u2)) if u.reason]
        parsed = ParsedOutput(task=task, semantic=u2.codes, complete=u1.complete and u2.complete, reason="; ".join(reasons) or None)
        return parsed, sum(len(r) for r in stage_rows)

    def _generate_continuous(self, prompts: list[list[int]], programs: list[list[Step]], n_new: list[int], *, seeds: list[int | None],
                             do_sample: bool, temperature: float, top_p: float, repetition_penalty: float) -> list[list[int]]:
        """Decode with :class:`serving.decoder.ContinuousDecoder` (``max_batch`` slots; rows past
        it wait and take the place of finished ones). Returns the generated ids of each row."""
        from serving.decoder import ContinuousDecoder, DecodeRequest

        if self._decoder is None:
            self._decoder = ContinuousDecoder(self.model, self.vocab, self.text_exclude, max_batch=self.max_batch, device=self.device)
        reqs = [DecodeRequest(list(p), prog, n, do_sample=do_sample, temperature=temperature, top_p=top_p,
                              repetition_penalty=repetition_penalty, seed=s, tag=i)
                for i, (p, prog, n, s) in enumerate(zip(prompts, programs, n_new, seeds, strict=True))]
        self._decoder.stats = dict.fromkeys(self._decoder.stats, 0)
        self._decoder.run(reqs)
        self.last_stats = dict(self._decoder.stats)
        return [r.tokens for r in reqs]

    def _generate_hf(self, prompts: list[list[int]], programs: list[list[Step]], n_new: int, *, seed: int | None,
                     do_sample: bool, temperature: float, top_p: float, repetition_penalty: float) -> list[list[int]]:
        """One ``transformers`` ``generate`` call over the left-padded batch with
        :class:`StageConstraint` (the pre-issue-17 path, kept as the benchmark baseline). Rows are
        cut after ``<|im_end|>``."""
        torch = self._torch
        from transformers import GenerationConfig, LogitsProcessorList

        B, T = len(prompts), max(len(p) for p in prompts)
        input_ids = torch.full((B, T), self.vocab.pad_id, dtype=torch.long)  # (B, T)
        attn = torch.zeros((B, T), dtype=torch.long)  # (B, T)
        for i, p in enumerate(prompts):
            input_ids[i, T - len(p):] = torch.as_tensor(p, dtype=torch.long)
            attn[i, T - len(p):] = 1
        n_logits = int(self.model.get_output_embeddings().weight.shape[0])
        constraint = StageConstraint(self.vocab, programs, T, n_logits, self.text_exclude)
        gen_cfg = GenerationConfig(
            max_new_tokens=n_new,
            do_sample=do_sample,
            temperature=temperature if do_sample else None,
            top_p=top_p if do_sample else None,
            top_k=None,
            repetition_penalty=repetition_penalty,
            eos_token_id=self.vocab.eos_id,
            pad_token_id=self.vocab.pad_id,
            use_cache=True,
        )
        if seed is not None:
            torch.manual_seed(int(seed))
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attn.to(self.device),
                generation_config=gen_cfg,
                logits_processor=LogitsProcessorList([constraint]),
            )  # (B, T + t)
        rows = []
        for r in out[:, T:].cpu().tolist():
            rows.append(r[: r.index(self.vocab.eos_id) + 1] if self.vocab.eos_id in r else r)
        return rows

    def _vllm(self):
        """The :class:`serving.vllm_runtime.VllmRuntime` over this engine's model directory (built once).

        Raises:
            ModelLoadError: no model directory known, or ``vllm`` is not installed.
        """
        if self._vllm_runtime is None:
            from serving.vllm_runtime import VllmRuntime, VllmUnavailableError

            model_dir = self.meta.get("model_dir")
            if not model_dir:
                raise ModelLoadError("the vllm runtime needs the model loaded from a directory (TranslationEngine.load)")
            try:
                self._vllm_runtime = VllmRuntime(model_dir, self.vocab, self.text_exclude)
            except VllmUnavailableError as e:
                raise ModelLoadError(str(e)) from None
        return self._vllm_runtime

    def source_language(self, target_language: str) -> str:
        """The S2ST source language for a target (the other one of the EN<->ZH pair)."""
        return other_language(target_language)

    def prepare(self, target_languages: Sequence[str] = LANGUAGES) -> None:
        """Do now the one-time work a first request into ``target_languages`` would otherwise pay,
        so request latency (and evaluation RTF) measures translation only: for an ``s2st-omni``
        bundle, the TTS voice references of each language (:meth:`serving.omni.VoiceMatcher.references`:
        every candidate voice speaks one sentence, ~1-2 CPU min per language with Kokoro on 2 cores);
        nothing for the codec recipes (``uniss``, ``mslm``), whose first request only warms caches.

        Raises:
            EngineError: an unknown target language.
            uniss.engines.tts.TTSError: the TTS engine has no voice for a language.
        """
        for t in target_languages:
            if t not in LANGUAGES:
                raise EngineError(f"unknown target language {t!r}; supported: {', '.join(LANGUAGES)}")
        if self.recipe != "s2st-omni":
            return
        for t in target_languages:
            self._voice_matcher().references(t)

    def _voice_matcher(self):
        """The ``s2st-omni`` engine's :class:`serving.omni.VoiceMatcher` (Kokoro), built on first use
        (its voice references are built by :meth:`prepare` or the first request)."""
        if self.voices is None:
            from serving.omni import VoiceMatcher
            from uniss.engines.tts import make_tts

            self.voices = VoiceMatcher(make_tts("kokoro"))
        return self.voices


def _row_seeds(seed: int | Sequence[int] | None, n: int) -> list[int | None]:
    """Per-row sampler seeds: ``seed + i`` for row ``i`` of a scalar seed (each row its own
    ``torch.Generator``, so a row's draw never depends on its batch-mates), a list as given (``None``
    entries allowed), or
    ``None`` (seeds drawn from torch's global RNG at admission)."""
    if seed is None:
        return [None] * n
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(n)]
    seeds = [None if s is None else int(s) for s in seed]
    if len(seeds) != n:
        raise EngineError(f"seed list must have {n} entries, got {len(seeds)}")
    return seeds


def _cut_at(row: Sequence[int], eos_id: int) -> list[int]:
    """``row`` up to and including its first ``eos_id`` (all of it when there is none)."""
    row = list(row)
    return row[: row.index(eos_id) + 1] if eos_id in row else row


def _program_length(program: list[Step]) -> int:
    """Most tokens a program can emit; a ``spoken`` span's words are bounded by as many tokens again,
    a ``words`` span's by its words' ids."""
    n = 0
    for s in program:
        if s[0] == "force":
            n += 1
        elif s[0] == "words":
            n += s[3] + sum(len(w) for w in s[1]) + 1
        else:
            n += (2 * s[3] if s[1] == "spoken" else s[3]) + 1
    return n
