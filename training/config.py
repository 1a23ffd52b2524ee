"""Typed, frozen training configuration: one YAML per size and phase (``<size>_phase<N>.yaml``).

Practice: STYLE.md #6 (torchtune ``recipes/configs``; nanoGPT ``configurator.py``): configs are
YAML loaded into frozen pydantic models that reject unknown keys, with ``key=value`` overrides
(nested keys with dots, values parsed as YAML scalars). DeepSpeed settings live in the same YAML
(``zero:`` section) and are turned into the DeepSpeed JSON config by :func:`deepspeed_config`.

Paper values (§3.3, §5.1, App. B.1): AdamW weight decay 0.1, betas (0.9, 0.95); phase 1 constant
LR 8e-4 with warm-up; phase 2 constant 2e-4 with 5% warm-up; phase 3 cosine 5e-5 -> 5e-6 without
warm-up; sequence packs of 18k tokens; batches counted in tokens.

Recipes: ``recipe: uniss`` (default; the seven UniSS formats, three phases) or ``recipe: mslm`` (the
MSLM-S2ST baseline of issue 20, arXiv 2403.12408: formats ``mslm_translate``/``mslm_generate`` built by
``training/mslm.py``, one phase, ``configs/<size>_mslm.yaml``) or ``recipe: s2st-omni`` (S2ST-Omni of
issue 20, arXiv 2506.11160: format ``omni_s2tt`` built by ``training/omni.py``, the paper's two
fine-tuning stages as phases 1 and 2, ``configs/<size>_omni_stage<N>.yaml`` with an ``omni:`` section).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from uniss.errors import UnissError
from uniss.mslm import MSLM_FORMATS

#: The S2ST-Omni formats (``uniss.omni.OMNI_FORMATS``, spelled here so loading a config does not
#: import torch; tests/unit/training/test_omni_train.py checks they agree).
OMNI_FORMATS: tuple[str, ...] = ("omni_s2tt",)

__all__ = [
    "CONFIG_DIR",
    "ClusterConfig",
    "ConfigError",
    "DataConfig",
    "OMNI_FORMATS",
    "OmniConfig",
    "OptimConfig",
    "TrainConfig",
    "ZeroConfig",
    "apply_overrides",
    "config_names",
    "deepspeed_config",
    "load_config",
    "resolve_config_path",
]

#: Directory of the shipped YAML configs.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(UnissError, ValueError):
    """Unknown key, bad value, bad override or missing config file."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptimConfig(_Frozen):
    """AdamW and LR schedule.

    Attributes:
        lr: peak learning rate (phase 1: 8e-4, phase 2: 2e-4, phase 3: 5e-5; paper App. B.1).
        min_lr: final LR of the cosine schedule (phase 3: 5e-6); ignored by ``constant``.
        schedule: ``constant`` (after warm-up) or ``cosine`` (from ``lr`` to ``min_lr``).
        warmup_steps: linear warm-up optimizer steps (used when ``warmup_frac`` is 0).
        warmup_frac: warm-up as a share of the phase's optimizer steps (phase 2: 0.05).
        weight_decay: AdamW decoupled weight decay (paper: 0.1).
        betas: AdamW betas (paper: (0.9, 0.95)).
        eps: AdamW epsilon.
        grad_clip: global gradient-norm clip (DeepSpeed ``gradient_clipping``), 0 = off.
    """

    lr: float = Field(gt=0)
    min_lr: float = Field(default=0.0, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)
    warmup_frac: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = Field(default=0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = Field(default=1.0, ge=0)


class DataConfig(_Frozen):
    """Which samples a phase trains on (the phase mixture as data; paper §3.3, ARCHITECTURE.md).

    Attributes:
        subset: UniST subset of the S2ST rows: ``general`` (phase 2) or ``hq`` (phase 3).
        formats: sample formats built from every row (``asr``, ``s2tt``, ``tts``, ``mt``,
            ``quality``, ``performance``, ``direct``; recipe mslm: ``mslm_translate``,
            ``mslm_generate``; recipe s2st-omni: ``omni_s2tt``).
        replay_formats: phase-1 formats mixed in as replay (phase 2: asr, s2tt, tts, mt).
        replay_ratio: replay samples per main sample (phase 2: 0.5, i.e. UniST : phase-1 = 2 : 1).
        both_sides: for ASR/TTS use the source and the target speech; for S2TT/MT both directions.
        use_linguistic: ``false`` = ablation "w/o linguistic": semantic tokens replace the
            linguistic tokens in understanding prompts (paper Table 4).
        translation_upsample: copies of every translation sample (``recipe: mslm`` only; paper
            arXiv 2403.12408 §3.4 upsamples translation data 3x); must stay 1 for UniSS.
        alignment: also build the phase-1 formats of this phase (``formats`` and ``replay_formats``
            among asr, s2tt, tts, mt) from the dataset's phase-1 alignment corpus
            (``uniss.unist.alignment``; paper §3.3: phase 1 trains on ASR/TTS/S2TT/MT data besides
            UniST). Its text-only rows give MT samples only. A dataset without one (own data, the
            released UniST) trains on its UniST rows alone; the packing stats record
            ``alignment_rows``.
        speech_input_noise: share of the teacher-forced semantic-unit *inputs* replaced by random
            units at every step, the labels unchanged (``training.samples.corrupt_speech_history``;
            not in the paper, whose 1.5B model reads the text from a pre-trained LLM; 0 = off).
        interleave_words: speaking formats write each spoken word right before its semantic
            tokens (``uniss.prompts.interleave_words``; ELLA-V style, not in the paper) where the
            dataset has a word alignment (``{side}_words`` / ``{side}_word_starts``, written by the
            tokenize step). The bundle records it and serving then allows text ids inside the speech
            span. Off in the paper's 0.5B/1.5B configs.
        format_repeat: copies of every main sample of a format, e.g. ``{tts: 2}`` (absent = 1): the
            weight of that task in the phase mixture without more passes over the others (issue 16
            recipe knob; not in the paper, whose phase 1 weighs tasks by their data). Keys must be
            among ``formats``; replay samples are drawn against the repeated main set, so the
            ``replay_ratio`` still holds in samples. Empty in every shipped config.
        max_rows: cap on the corpus rows read (``null`` = all), for smoke runs.
        split: corpus split to train on.
    """

    subset: Literal["general", "hq"] = "general"
    formats: tuple[Literal["asr", "s2tt", "tts", "mt", "quality", "performance", "direct",
                           "mslm_translate", "mslm_generate", "omni_s2tt"], ...]
    replay_formats: tuple[Literal["asr", "s2tt", "tts", "mt"], ...] = ()
    replay_ratio: float = Field(default=0.0, ge=0)
    both_sides: bool = True
    use_linguistic: bool = True
    translation_upsample: int = Field(default=1, ge=1)
    alignment: bool = False
    speech_input_noise: float = Field(default=0.0, ge=0, lt=1)
    interleave_words: bool = False
    format_repeat: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    max_rows: int | None = Field(default=None, gt=0)
    split: Literal["train", "dev", "test"] = "train"


class ZeroConfig(_Frozen):
    """DeepSpeed ZeRO settings (https://www.deepspeed.ai/docs/config-json/#zero-optimizations-for-fp16-training).

    Attributes:
        stage: ZeRO stage (this platform trains with 3: parameters, gradients and optimizer
            state partitioned across ranks).
        overlap_comm, contiguous_gradients, reduce_bucket_size, stage3_prefetch_bucket_size,
        stage3_param_persistence_threshold: passed through unchanged.
        stage3_max_live_parameters, stage3_max_reuse_distance: ZeRO-3 caps on gathered parameters
            kept alive (``null`` = DeepSpeed's default, 1e9 each, i.e. up to a whole 0.5B model
            gathered per rank; set ~1e7 where host memory is tight).
        sub_group_size: parameters per optimizer sub-group (``null`` = DeepSpeed's default, 1e9,
            i.e. one AdamW step over a rank's whole partition, whose temporaries are each as large
            as that partition; ~1e7 bounds them where host memory is tight).
        offload_optimizer: ``none`` or ``cpu`` (ZeRO-Offload of optimizer state on GPU clusters).
        offload_param: ``none`` or ``cpu``.
    """

    stage: Literal[0, 1, 2, 3] = 3
    overlap_comm: bool = False
    contiguous_gradients: bool = True
    reduce_bucket_size: int = 50_000_000
    stage3_prefetch_bucket_size: int = 50_000_000
    stage3_param_persistence_threshold: int = 10_000
    stage3_max_live_parameters: int | None = Field(default=None, gt=0)
    stage3_max_reuse_distance: int | None = Field(default=None, ge=0)
    sub_group_size: int | None = Field(default=None, gt=0)
    offload_optimizer: Literal["none", "cpu"] = "none"
    offload_param: Literal["none", "cpu"] = "none"


class OmniConfig(_Frozen):
    """The S2ST-Omni recipe's stage settings (arXiv 2506.11160 §2.2-2.3; training/omni.py).

    Attributes:
        train_lm: ``false`` = stage 1 (only the speech adapter is updated; the LM is frozen),
            ``true`` = stage 2 (adapter and LM; full fine-tuning instead of the paper's LoRA, see
            training/omni.py).
        frame_stack: 12.5 Hz encoder states stacked into one adapter frame (2 -> 6.25 frames/s);
            used when the adapter is created (stage 1 without an init adapter); a stage that starts
            from a bundle keeps that bundle's adapter and must name the same values here and in
            ``adapter_layers`` / ``adapter_hidden`` (checked before training).
        adapter_layers: linear layers of the adapter (paper §2.2: 4).
        adapter_hidden: width of the adapter's hidden layers (``null`` = the LM hidden size).
    """

    train_lm: bool
    frame_stack: int = Field(default=2, ge=1)
    adapter_layers: int = Field(default=4, ge=1)
    adapter_hidden: int | None = Field(default=None, ge=1)


class ClusterConfig(_Frozen):
    """How many GPU nodes a phase asks for on a cluster (a Kubeflow Trainer ``TrainJob``,
    training/trainjob.py); ignored by the local ``torchrun`` engine.

    Attributes:
        nodes: training nodes (``TrainJob.spec.trainer.numNodes``). Paper §5.1: 16 H800 GPUs =
            2 nodes x 8 for the 1.5B model.
        gpus_per_node: GPUs per node = processes (ranks) per node (``numProcPerNode``).
    """

    nodes: int = Field(default=1, ge=1)
    gpus_per_node: int = Field(default=1, ge=1)


class TrainConfig(_Frozen):
    """One phase of progressive training (paper §3.3), or the one phase of the MSLM recipe.

    Attributes:
        recipe: ``uniss`` (paper §3.3 progressive training, the default) or ``mslm`` (MSLM-S2ST,
            arXiv 2403.12408: ``data.formats`` among ``mslm_translate``/``mslm_generate``, phase 1,
            no replay/alignment/ablation; training/mslm.py) or ``s2st-omni`` (S2ST-Omni, arXiv
            2506.11160: ``data.formats`` = ``[omni_s2tt]``, phase 1 = stage 1 and phase 2 = stage 2,
            an ``omni`` section; training/omni.py).
        size: model size (``uniss.lm.SIZES``): ``tiny``, ``0_5b``, ``1_5b``.
        phase: 1 (alignment), 2 (CoT S2ST), 3 (refinement).
        pretrained: phase 1 only: local HF checkpoint dir (Qwen2.5-*-Instruct) to start from;
            ``null`` = random init with a corpus BPE text tokenizer (tiny).
        text_vocab_size: BPE size of the corpus text tokenizer (when ``pretrained`` is null).
        attn_implementation: ``sdpa`` or ``eager`` (both pack through position ids).
        seq_len: tokens per packed sequence (paper: 18k; tiny: 2048).
        pack: pack samples (True) or pad one sample per row (False; benchmark baseline).
        micro_batch_size: sequences per rank per forward.
        batch_tokens: tokens per optimizer step over all ranks (token-based batch size);
            gradient accumulation = batch_tokens / (seq_len * micro_batch_size * world_size).
        epochs: passes over the phase's samples.
        max_steps: cap on optimizer steps (the phase runs ``min(epochs x packs / per-step, max_steps)``).
        checkpoint_every: optimizer steps between checkpoints (one is always written at the end).
        keep_checkpoints: how many step checkpoints to keep.
        log_every: optimizer steps between logged metrics.
        precision: ``auto`` (bf16 where the device supports it, else fp32), ``bf16``, ``fp32``.
        seed: data-order and init seed.
        optim, data, zero, cluster, omni: see the section classes (``omni`` only with
            ``recipe: s2st-omni``).
    """

    recipe: Literal["uniss", "mslm", "s2st-omni"] = "uniss"
    size: Literal["tiny", "0_5b", "1_5b"]
    phase: Literal[1, 2, 3]
    pretrained: str | None = None
    text_vocab_size: int = Field(default=4000, ge=300)
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    seq_len: int = Field(default=2048, ge=64)
    pack: bool = True
    micro_batch_size: int = Field(default=1, ge=1)
    batch_tokens: int = Field(default=8192, ge=64)
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    checkpoint_every: int = Field(default=50, ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)
    log_every: int = Field(default=1, ge=1)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    seed: int = 0
    optim: OptimConfig
    data: DataConfig
    zero: ZeroConfig = ZeroConfig()
    cluster: ClusterConfig = ClusterConfig()
    omni: OmniConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.pretrained is not None and self.phase != 1:
            raise ValueError("pretrained applies to phase 1 only; later phases start from the previous phase's bundle")
        if self.batch_tokens < self.seq_len * self.micro_batch_size:
            raise ValueError(f"batch_tokens {self.batch_tokens} is smaller than one micro-batch ({self.seq_len} x {self.micro_batch_size})")
        d = self.data
        mslm = [f for f in d.formats if f in MSLM_FORMATS]
        omni = [f for f in d.formats if f in OMNI_FORMATS]
        if (self.recipe == "s2st-omni") != (self.omni is not None):
            raise ValueError("the omni section belongs to recipe s2st-omni, which needs it")
        if self.recipe != "s2st-omni" and omni:
            raise ValueError(f"formats {omni} belong to recipe s2st-omni; set recipe: s2st-omni")
        if self.recipe == "s2st-omni":
            if len(omni) != len(d.formats):
                raise ValueError(f"recipe s2st-omni trains formats among {list(OMNI_FORMATS)}, got {list(d.formats)}")
            if self.phase not in (1, 2) or d.replay_formats or d.replay_ratio or d.alignment or not d.use_linguistic \
                    or d.translation_upsample != 1:
                raise ValueError("recipe s2st-omni has two stages (phase 1, 2) without replay, alignment corpus, "
                                 "translation upsampling or the w/o-linguistic ablation")
        elif self.recipe == "mslm":
            if len(mslm) != len(d.formats):
                raise ValueError(f"recipe mslm trains formats among {list(MSLM_FORMATS)}, got {list(d.formats)}")
            if self.phase != 1 or d.replay_formats or d.replay_ratio or d.alignment or not d.use_linguistic:
                raise ValueError("recipe mslm is one phase (phase: 1) without replay, alignment corpus or the "
                                 "w/o-linguistic ablation (those belong to UniSS's progressive training)")
        else:
            if mslm:
                raise ValueError(f"formats {mslm} belong to recipe mslm; set recipe: mslm")
            if d.translation_upsample != 1:
                raise ValueError("data.translation_upsample applies to recipe mslm only")
            stray = sorted(set(d.format_repeat) - set(d.formats))
            if stray:
                raise ValueError(f"data.format_repeat names {stray}, which are not among data.formats {list(d.formats)}")
        if self.recipe != "uniss" and d.format_repeat:
            raise ValueError("data.format_repeat applies to recipe uniss only (recipe mslm has translation_upsample)")
        return self

    def grad_accum(self, world_size: int) -> int:
        """Gradient-accumulation steps for ``world_size`` ranks (>= 1)."""
        return max(1, round(self.batch_tokens / (self.seq_len * self.micro_batch_size * world_size)))


def config_names() -> list[str]:
    """Names of the shipped configs (``tiny_phase1.yaml`` ...)."""
    return sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config file path from a path or a shipped config name (with or without ``.yaml``).

    Raises:
        ConfigError: not found.
    """
    p = Path(name_or_path)
    if p.is_file():
        return p
    for cand in (CONFIG_DIR / p.name, CONFIG_DIR / f"{p.name}.yaml"):
        if cand.is_file():
            return cand
    raise ConfigError(f"config {name_or_path!r} not found (shipped: {', '.join(config_names())})")


def apply_overrides(doc: dict[str, Any], overrides: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """Apply ``key=value`` overrides (``optim.lr=1e-3``, ``data.use_linguistic=false``) to a raw
    config mapping; values are parsed as YAML (numbers, booleans, lists).

    Raises:
        ConfigError: an item without ``=`` or that descends into a non-mapping.
    """
    out = _deep_copy(doc)
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        parts = [k for k in key.strip().split(".") if k]
        if not parts:
            raise ConfigError(f"override {item!r} has an empty key")
        node = out
        for k in parts[:-1]:
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {k} is not a section")
            node = nxt
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: bad value ({e})") from None
    return out


def _deep_copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] | None = None) -> TrainConfig:
    """Load a YAML config (path or shipped name), apply overrides, validate.

    Raises:
        ConfigError: missing file, bad YAML, unknown key, bad value or bad override; the message
            names every offending field.
    """
    path = resolve_config_path(name_or_path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    doc = apply_overrides(doc, overrides)
    try:
        return TrainConfig.model_validate(doc)
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{path.name}: {msgs}") from None


def deepspeed_config(cfg: TrainConfig, world_size: int, *, bf16: bool) -> dict[str, Any]:
    """The DeepSpeed JSON config of a phase (https://www.deepspeed.ai/docs/config-json/).

    The optimizer and LR scheduler are client objects (torch ``AdamW`` + ``LambdaLR``), so the
    config holds batch sizes, clipping, precision and the ZeRO section;
    ``zero_allow_untested_optimizer`` allows the torch AdamW under ZeRO-3 (needed on CPU where
    DeepSpeed's fused/CPU Adam ops are not built).
    """
    z = cfg.zero
    zero: dict[str, Any] = {
        "stage": z.stage,
        "overlap_comm": z.overlap_comm,
        "contiguous_gradients": z.contiguous_gradients,
        "reduce_bucket_size": z.reduce_bucket_size,
    }
    if z.stage == 3:
        zero.update({
            "stage3_prefetch_bucket_size": z.stage3_prefetch_bucket_size,
            "stage3_param_persistence_threshold": z.stage3_param_persistence_threshold,
            "stage3_gather_16bit_weights_on_model_save": True,
        })
        for k in ("stage3_max_live_parameters", "stage3_max_reuse_distance", "sub_group_size"):
            if getattr(z, k) is not None:
                zero[k] = getattr(z, k)
        if z.offload_param != "none":
            zero["offload_param"] = {"device": z.offload_param}
    if z.offload_optimizer != "none":
        zero["offload_optimizer"] = {"device": z.offload_optimizer}
    ga = cfg.grad_accum(world_size)
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": ga,
        "train_batch_size": cfg.micro_batch_size * ga * world_size,
        "gradient_clipping": cfg.optim.grad_clip,
        "bf16": {"enabled": bool(bf16)},
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
