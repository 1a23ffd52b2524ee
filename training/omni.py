"""Training samples, frozen features and the model wrapper of the S2ST-Omni recipe (issue 20;
arXiv 2506.11160 §2.2-2.3). Prompt, adapter and splicing: ``uniss.omni``.

One format, S2TT: the source speech's frozen Whisper states go through the adapter into
``<|audio_placeholder_1|>`` positions of the UniSS S2TT prompt, and the LM writes
``{translation}<|end_content|><|im_end|>``. Ids and the loss mask follow ``training.samples``
exactly (ids through ``SpeechVocab.encode``, label -100 on every prompt position, loss only on the
continuation), samples pack with ``training.packing`` and train with the same ZeRO-3 recipe
(training/recipe.py builds :class:`OmniLM` for ``recipe: s2st-omni``).

**Frozen features are precomputed.** The encoder is frozen in both stages (paper §2.3), so its
states are a pure function of the audio: they are computed once per clip before training
(:func:`row_features`, the Whisper-base encoder of ``uniss.omni.speech_features``), cached on disk
keyed by the sha256 of the clip's encoded bytes and the encoder weights' sha256, and stored with the
packs (``features`` ``(P_total, k * 512)`` float16 + ``feature_offsets`` ``(N + 1,)``, pack ``i``'s
frames being rows ``offsets[i]:offsets[i + 1]`` in placeholder order). Running the encoder inside
the ZeRO-3 loop would redo the same frozen computation every epoch on every rank. float16 storage
halves the packs (the encoder itself runs int8 on CPU); the trainer casts to float32.

A corpus row is one UniST row (``training.samples``); the recipe reads ``src_lang``, ``tgt_lang``,
``src_text``, ``tgt_text`` and the encoded audio ``src_audio`` / ``tgt_audio`` (FLAC bytes). Per row:
the ``src -> tgt`` sample and, with ``both_sides``, ``tgt -> src`` (target speech -> source text;
UniST holds speech on both sides). Text-only rows (``kind == "text"``) give no samples.

Deviations from the paper (§2.3, §3.1.2):

* Stage 2 fine-tunes the whole LM (and the adapter) instead of LoRA on ``q_proj``/``v_proj``: the
  tiny LM is trained from random init (no pretrained knowledge for LoRA to protect), the exported
  bundle stays a plain HF model that every runtime loads, and no PEFT dependency is added. A
  LoRA variant would only change which LM parameters stage 2 unfreezes.
* The stages run for the configs' step budgets, not 100k steps each; AdamW as UniSS's configs.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.samples import IGNORE_INDEX, Sample, SampleError, row_text
from uniss.omni import (
    FEATURE_DIM,
    OMNI_FORMAT,
    OmniError,
    SpeechAdapter,
    build_omni_continuation,
    build_omni_prompt,
    splice_adapter,
    stack_frames,
)
from uniss.vocab import SpeechVocab

__all__ = ["OmniLM", "OmniSample", "batch_features", "build_omni_sample", "build_omni_samples", "omni_model", "pack_features",
           "row_features", "start_adapter"]

FeatureKey = tuple[str, str]  # (row id, side)


@dataclass(frozen=True)
class OmniSample(Sample):
    """A :class:`training.samples.Sample` plus the adapter input frames of its placeholders.

    Attributes:
        features: ``(P, k * 512)`` float32 stacked encoder states, one row per
            ``<|audio_placeholder_1|>`` of ``input_ids`` in order.
    """

    features: np.ndarray


def build_omni_sample(
    vocab: SpeechVocab,
    encode_text: Callable[[str], list[int]],
    row: Mapping[str, Any],
    states: np.ndarray,
    *,
    side: str = "src",
    frame_stack: int = 2,
) -> OmniSample:
    """One S2TT sample: the ``side`` speech's states -> the other side's text.

    Args:
        vocab: the token layout.
        encode_text: text tokenizer (no BOS/EOS), ``str -> list[int]``.
        row: corpus row with ``{side}_lang``/``{other}_lang`` and ``{other}_text``.
        states: ``(T_f, 512)`` frozen encoder states of the ``side`` speech at 12.5 Hz.
        side: ``src`` (source speech -> target text) or ``tgt`` (target speech -> source text).
        frame_stack: states per adapter frame ``k``.

    Returns:
        :class:`OmniSample`: ``input_ids``/``labels`` ``(T,)`` int64 (labels -100 on the prompt),
        ``features`` ``(P, k * 512)`` float32, ``task`` = ``omni_s2tt``.

    Raises:
        SampleError: bad ``side`` or a missing column; OmniError: states not ``(T_f, 512)``;
        PromptError: unknown language.
    """
    if side not in ("src", "tgt"):
        raise SampleError(f"side must be 'src' or 'tgt', got {side!r}")
    x = np.asarray(states, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != FEATURE_DIM or x.shape[0] < 1:
        raise OmniError(f"row {row.get('id', '?')}: encoder states must be (T_f >= 1, {FEATURE_DIM}), got {tuple(x.shape)}")
    other = "tgt" if side == "src" else "src"
    frames = stack_frames(x, frame_stack)  # (P, k * 512)
    prompt = build_omni_prompt(vocab, tgt=row_text(row, f"{other}_lang"), n_frames=frames.shape[0])
    cont = build_omni_continuation(vocab, translation=row_text(row, f"{other}_text"))
    p = vocab.encode(prompt, encode_text)
    c = vocab.encode(cont, encode_text)
    ids = np.asarray(p + c, dtype=np.int64)
    labels = np.concatenate([np.full(len(p), IGNORE_INDEX, dtype=np.int64), np.asarray(c, dtype=np.int64)])
    return OmniSample(input_ids=ids, labels=labels, task=OMNI_FORMAT, row_id=str(row.get("id", "")), features=frames)


def _sides(both_sides: bool) -> tuple[str, ...]:
    return ("src", "tgt") if both_sides else ("src",)


def build_omni_samples(
    vocab: SpeechVocab,
    encode_text: Callable[[str], list[int]],
    rows: Iterable[Mapping[str, Any]],
    features: Mapping[FeatureKey, np.ndarray],
    *,
    frame_stack: int = 2,
    both_sides: bool = True,
    seed: int = 0,
) -> list[OmniSample]:
    """The sample list of an S2ST-Omni stage: :func:`build_omni_sample` of every speech row and side,
    in a seeded shuffled order (both stages train on the same samples, paper §2.3).

    Args:
        features: ``{(row id, side): (T_f, 512) states}`` (:func:`row_features`).

    Raises:
        SampleError: a row/side without features or a missing column.
    """
    out: list[OmniSample] = []
    for r in rows:
        if r.get("kind") == "text":
            continue
        for s in _sides(both_sides):
            key = (str(r.get("id", "")), s)
            if key not in features:
                raise SampleError(f"row {key[0]} has no {s} speech features")
            out.append(build_omni_sample(vocab, encode_text, r, features[key], side=s, frame_stack=frame_stack))
    random.Random(seed).shuffle(out)
    return out


def row_features(
    rows: Sequence[Mapping[str, Any]],
    *,
    both_sides: bool = True,
    cache_dir: str | Path | None = None,
    encoder: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None,
    encoder_id: str | None = None,
) -> dict[FeatureKey, np.ndarray]:
    """Frozen encoder states of every speech row's ``src_audio`` (and ``tgt_audio``), cached.

    Args:
        rows: corpus rows with the encoded audio columns (``training.data.load_rows(keep_audio=True)``).
        both_sides: also the target speech.
        cache_dir: where ``<encoder id>/<sha256 of the audio bytes>.npy`` files live (``None`` = no cache).
        encoder: ``list of (N,) float32 16 kHz -> list of (T_f, 512)`` (default
            ``uniss.omni.speech_features``, the frozen Whisper-base encoder).
        encoder_id: cache namespace (default: the first 16 hex of the Whisper weights' sha256).

    Returns:
        ``{(row id, side): (T_f, 512) float32}``.

    Raises:
        SampleError: a speech row without audio bytes; AudioError: undecodable audio.
    """
    from uniss.audio import load_audio

    if encoder is None:
        from uniss.codecs.lite.features import whisper_states
        from uniss.omni import speech_features

        encoder = speech_features
        encoder_id = encoder_id or whisper_states().sha256()[:16]
    cache = Path(cache_dir) / (encoder_id or "encoder") if cache_dir is not None else None
    out: dict[FeatureKey, np.ndarray] = {}
    todo: dict[str, list[FeatureKey]] = {}
    blobs: dict[str, bytes] = {}
    for r in rows:
        if r.get("kind") == "text":
            continue
        for s in _sides(both_sides):
            b = r.get(f"{s}_audio")
            if not b:
                raise SampleError(f"row {r.get('id', '?')} has no {s}_audio (S2ST-Omni needs the speech itself)")
            h = hashlib.sha256(bytes(b)).hexdigest()
            key = (str(r.get("id", "")), s)
            if cache is not None and (cache / f"{h}.npy").is_file():
                out[key] = np.load(cache / f"{h}.npy")
            else:
                todo.setdefault(h, []).append(key)
                blobs[h] = bytes(b)
    if todo:
        hashes = sorted(todo)
        states = encoder([load_audio(blobs[h], min_duration_s=0.0) for h in hashes])
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
        for h, st in zip(hashes, states, strict=True):
            st = np.asarray(st, dtype=np.float32)  # (T_f, 512)
            if cache is not None:
                tmp = cache / f"{h}.tmp.npy"
                np.save(tmp, st)
                tmp.rename(cache / f"{h}.npy")
            for key in todo[h]:
                out[key] = st
    return out


def pack_features(packs: Sequence[Any], samples: Sequence[OmniSample]) -> tuple[np.ndarray, np.ndarray]:
    """The adapter frames of every pack, in the order of its placeholder positions.

    Args:
        packs: ``training.packing.Pack`` list with ``members`` (indices into ``samples``).
        samples: the samples that were packed.

    Returns:
        ``(features, offsets)``: ``(P_total, k * 512)`` float16 and ``(len(packs) + 1,)`` int64;
        pack ``i``'s frames are ``features[offsets[i]:offsets[i + 1]]``.

    Raises:
        OmniError: a pack without members (packed by an old ``Pack``).
    """
    chunks: list[np.ndarray] = []
    offsets = [0]
    for p in packs:
        if not p.members:
            raise OmniError("a pack records no members; cannot place its speech features")
        for i in p.members:
            chunks.append(samples[i].features)
        offsets.append(offsets[-1] + sum(samples[i].features.shape[0] for i in p.members))
    feats = np.concatenate(chunks).astype(np.float16) if chunks else np.zeros((0, 0), dtype=np.float16)
    return feats, np.asarray(offsets, dtype=np.int64)


class OmniLM(torch.nn.Module):
    """The trained S2TT model: the LM and the adapter as one module (what DeepSpeed wraps).

    ``forward`` embeds ``input_ids`` with the LM's own embedding, replaces the placeholder rows by
    ``adapter(features)`` (``uniss.omni.splice_adapter``) and runs the LM on ``inputs_embeds`` with
    the packed position ids (training/packing.py: attention never crosses samples).

    Args:
        lm: ``Qwen2ForCausalLM``.
        adapter: :class:`uniss.omni.SpeechAdapter` with ``out_dim`` = the LM hidden size.
        placeholder_id: id of ``<|audio_placeholder_1|>``.
        train_lm: ``False`` = stage 1: every LM parameter is frozen (``requires_grad = False``).

    Raises:
        OmniError: adapter width != LM hidden size.
    """

    def __init__(self, lm: Any, adapter: SpeechAdapter, placeholder_id: int, *, train_lm: bool) -> None:
        super().__init__()
        if adapter.cfg.out_dim != lm.config.hidden_size:
            raise OmniError(f"adapter out_dim {adapter.cfg.out_dim} != LM hidden size {lm.config.hidden_size}")
        self.lm = lm
        self.adapter = adapter
        self.placeholder_id = int(placeholder_id)
        lm.requires_grad_(bool(train_lm))

    def forward(self, input_ids, features, position_ids=None, labels=None, **kw):
        """``input_ids`` ``(B, L)`` int64, ``features`` ``(P_total, k * 512)`` float (placeholders in
        row-major order), ``position_ids``/``labels`` ``(B, L)`` -> the LM's output (``.loss``)."""
        emb = self.lm.get_input_embeddings()(input_ids)  # (B, L, H)
        x = splice_adapter(emb, input_ids, self.placeholder_id, self.adapter(features))  # (B, L, H)
        return self.lm(inputs_embeds=x, position_ids=position_ids, labels=labels, **kw)


def start_adapter(cfg: Any, lm: Any, init_bundle: Path | None, start_dir: Path) -> Path:
    """Write ``start_dir/adapter``: the init bundle's adapter when it has one (stage 2 continues
    stage 1's), else a new one (seeded with ``cfg.seed``) sized by ``cfg.omni`` and the LM hidden size.

    Args:
        cfg: the phase's ``TrainConfig`` (``recipe: s2st-omni``).
        lm: the start LM (``config.hidden_size``).
        init_bundle: the bundle the phase starts from, or ``None``.
        start_dir: the (temporary) start directory being written.

    Returns:
        the adapter directory.

    Raises:
        TrainError: stage 2 (phase 2) without an init adapter, or an init adapter whose
            ``frame_stack`` / layers / hidden width disagree with ``cfg.omni`` or whose output width
            is not the LM hidden size.
    """
    from training.workdir import TrainError
    from uniss.omni import ADAPTER_DIR, AdapterConfig, load_adapter, save_adapter

    o = cfg.omni
    hidden = int(lm.config.hidden_size)
    src = Path(init_bundle) / ADAPTER_DIR if init_bundle is not None else None
    if src is not None and src.is_dir():
        ad = load_adapter(src)
        want = {"frame_stack": o.frame_stack, "n_layers": o.adapter_layers, "hidden_dim": o.adapter_hidden, "out_dim": hidden}
        have = {k: getattr(ad.cfg, k) for k in want}
        if have != want:
            raise TrainError(f"init adapter {src} has {have}; the config and the LM ask for {want}")
    elif cfg.phase > 1:
        raise TrainError("S2ST-Omni stage 2 starts from a stage-1 bundle with an adapter/ (run stage 1 first, --init)")
    else:
        torch.manual_seed(cfg.seed)
        ad = SpeechAdapter(AdapterConfig(out_dim=hidden, frame_stack=o.frame_stack, hidden_dim=o.adapter_hidden,
                                         n_layers=o.adapter_layers))
    return save_adapter(ad, Path(start_dir) / ADAPTER_DIR)


def omni_model(lm: Any, start_dir: Path, *, train_lm: bool) -> OmniLM:
    """The :class:`OmniLM` a rank trains: ``lm`` plus ``start_dir/adapter``, placeholder id from
    ``start_dir/vocab.json``.

    Raises:
        OmniError: a missing or inconsistent adapter directory.
    """
    from uniss.omni import ADAPTER_DIR, PLACEHOLDER_TOKEN, load_adapter

    vocab = SpeechVocab.from_json((Path(start_dir) / "vocab.json").read_text())
    return OmniLM(lm, load_adapter(Path(start_dir) / ADAPTER_DIR), vocab.token_id(PLACEHOLDER_TOKEN), train_lm=train_lm)


def batch_features(data: Mapping[str, np.ndarray], rows: Sequence[int]) -> torch.Tensor:
    """The adapter frames of packs ``rows`` (one micro-batch), concatenated in row order, as
    ``(P_total, k * 512)`` float32 (the order :func:`uniss.omni.splice_adapter` fills)."""
    off, f = data["feature_offsets"], data["features"]
    return torch.from_numpy(np.concatenate([f[off[r]:off[r + 1]] for r in rows]).astype(np.float32))
