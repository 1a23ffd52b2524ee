"""Progressive training of UniSS under DeepSpeed ZeRO-3: one recipe per phase (paper §3.3, App. B.1).

Launch (what :func:`run_phase` runs for you; on this CPU machine ``DS_ACCELERATOR=cpu`` and gloo)::

    DS_ACCELERATOR=cpu torchrun --standalone --nproc_per_node 2 -m training.trainer worker \\
        --work WORKDIR

where ``WORKDIR`` was prepared by :func:`prepare_phase` (config, start weights, tokenizer, packed
data). Library/CLI entry points::

    from training.trainer import run_phase
    bundle = run_phase(1, "tiny_phase1.yaml", data_dir, out_dir)            # phase 1
    bundle2 = run_phase(2, "tiny_phase2.yaml", data_dir, out2, init_bundle=bundle)

    uniss train --phase 1 --config tiny_phase1.yaml --data DATA --out OUT [key=value ...]

The recipe (STYLE.md #5, torchtune ``full_finetune_*``; nanoGPT ``train.py``) is plain functions
around one state object: :func:`setup` (DeepSpeed engine, resume), :func:`train` (the loop),
:func:`save_checkpoint`, :func:`cleanup`.

Phases (ARCHITECTURE.md "Progressive training"): phase 1 starts from random weights + a corpus BPE
(tiny) or a local Qwen2.5-Instruct checkpoint (``pretrained``); phases 2 and 3 start from the
previous phase's exported bundle (consolidated weights; an error before any compute if missing).
The embeddings are expanded to the speech vocabulary **before** ``deepspeed.initialize``.

Checkpoints: DeepSpeed ZeRO-3 checkpoints (``WORKDIR/ds/step<N>``) every ``checkpoint_every``
optimizer steps and at the end, with the client state ``{step, packs_consumed}`` and the LR
scheduler state; a rerun of the same command (same inputs -> same ``WORKDIR``) resumes from the
``latest`` one. Export consolidates the ZeRO-3 shards with DeepSpeed's ``zero_to_fp32`` into a
model bundle (``uniss.bundle.save_bundle``) with tokenizer, vocab layout and codec.

Workers die with their launcher (``PR_SET_PDEATHSIG``), so a SIGKILL to ``uniss train`` or
``torchrun`` never leaves orphan ranks writing checkpoints.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.config import ConfigError, TrainConfig, deepspeed_config, load_config, resolve_config_path
from training.data import DataError, check_dataset, codec_info, load_rows
from training.metric_logging import (
    JsonlLogger,
    MetricLogger,
    MLflowLogger,
    MultiLogger,
    StdoutLogger,
    mlflow_configured,
    plot_loss_curve,
    read_jsonl,
)
from uniss.errors import UnissError

__all__ = [
    "TrainError",
    "checkpoint_root",
    "export_bundle",
    "prepare_phase",
    "run_phase",
    "run_phase_step",
    "run_phases_step",
    "work_dir_for",
]

#: Files inside a phase work directory.
CONFIG_FILE = "config.json"
START_DIR = "start"  # model/ tokenizer/ vocab.json the phase starts from
PACKS_FILE = "packs.npz"
DS_DIR = "ds"
METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
DONE_FILE = "done.json"


class TrainError(UnissError, ValueError):
    """A phase that cannot start (missing init weights, wrong phase, bad data) or that failed."""


# =============================================================================== preparation
def checkpoint_root() -> Path:
    """Where phase work directories live: env ``UNISS_CHECKPOINT_ROOT`` (a PVC on clusters), else
    ``<UNISS_HOME>/checkpoints``."""
    root = os.environ.get("UNISS_CHECKPOINT_ROOT")
    if root:
        return Path(root)
    from uniss.settings import get_settings

    return get_settings().home_dir / "checkpoints"


def work_dir_for(cfg: TrainConfig, manifest: dict[str, Any], init_meta: dict[str, Any] | None, data_dir: str | Path) -> Path:
    """Stable work directory keyed by the inputs (config, shard md5s, init bundle identity; not the
    data path, which changes between KFP retries), so a rerun finds its checkpoints and resumes."""
    key = {
        "config": cfg.model_dump(mode="json"),
        "shards": sorted(s.get("md5", s["path"]) for s in manifest.get("shards", [])),
        "init": None if init_meta is None else {k: init_meta.get(k) for k in ("created_at", "phase", "git_commit", "train_metrics")},
    }
    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return checkpoint_root() / f"{cfg.size}_phase{cfg.phase}_{h}"


def _text_encoder(tok):
    def enc(s: str) -> list[int]:
        return tok.encode(s, add_special_tokens=False)

    return enc


def _build_start(cfg: TrainConfig, data_dir: Path, init_bundle: Path | None, codec: dict[str, Any], start: Path) -> None:
    """Write ``start/`` = the weights, tokenizer and vocab the phase begins from."""
    from uniss.bundle import load_bundle_tokenizer, save_bundle
    from uniss.lm import (
        build_lm,
        build_speech_tokenizer,
        expand_vocab,
        load_checked_model,
        load_pretrained,
        train_text_tokenizer,
        vocab_for,
    )

    import torch

    tmp = start.with_name(start.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    layout = "paper" if codec["backend"] == "paper" else "lite"
    if init_bundle is not None:
        tok, vocab = load_bundle_tokenizer(init_bundle)
        if vocab.sizes["speaker"] != codec["sizes"]["speaker"] or vocab.sizes["semantic"] != codec["sizes"]["semantic"] \
                or vocab.sizes["linguistic"] != codec["sizes"]["linguistic"]:
            raise TrainError(f"init bundle {init_bundle} layout {vocab.sizes} does not match the dataset's codec sizes {codec['sizes']}")
        model = load_checked_model(init_bundle / "model", attn_implementation=cfg.attn_implementation)
    else:
        torch.manual_seed(cfg.seed)
        if cfg.pretrained:
            model, text_tok = load_pretrained(cfg.pretrained, attn_implementation=cfg.attn_implementation)
        else:
            rows = load_rows(data_dir, split="train", subset="general", max_rows=cfg.data.max_rows)
            corpus = [str(r[k]) for r in rows for k in ("src_text", "tgt_text") if r.get(k)]
            text_tok = train_text_tokenizer(corpus, vocab_size=cfg.text_vocab_size)
            model = build_lm(cfg.size, len(text_tok), attn_implementation=cfg.attn_implementation)
        vocab = vocab_for(text_tok, codec["sizes"], layout=layout)
        tok = build_speech_tokenizer(text_tok, vocab)
        expand_vocab(model, vocab, tokenizer=tok)  # before DeepSpeed (ARCHITECTURE.md)
    save_bundle(tmp, model=model, tokenizer=tok, vocab=vocab, meta={"phase": cfg.phase - 1, "size": cfg.size, "kind": "start"})
    shutil.rmtree(start, ignore_errors=True)
    tmp.rename(start)


def _build_packs(cfg: TrainConfig, data_dir: Path, start: Path, out: Path) -> dict[str, Any]:
    """Samples of the phase mixture -> packed (or padded) sequences saved as ``packs.npz``."""
    from training.packing import pack_samples, pad_samples
    from training.samples import build_phase_samples
    from uniss.bundle import load_bundle_tokenizer

    tok, vocab = load_bundle_tokenizer(start)
    text_size = vocab.text_size
    enc = _text_encoder(tok)
    # the text tokenizer is the first text_size ids of the model tokenizer: speech strings never
    # reach encode_text (SpeechVocab.encode routes them), so the model tokenizer is safe here.
    d = cfg.data
    rows = load_rows(data_dir, split=d.split, subset=d.subset, max_rows=d.max_rows)
    replay_rows = None
    if d.replay_formats and d.replay_ratio > 0:
        replay_rows = load_rows(data_dir, split=d.split, subset="general", max_rows=d.max_rows)
    samples = build_phase_samples(vocab, enc, rows, formats=d.formats, replay_rows=replay_rows,
                                  replay_formats=d.replay_formats, replay_ratio=d.replay_ratio,
                                  both_sides=d.both_sides, use_linguistic=d.use_linguistic, seed=cfg.seed,
                                  progress=True)
    if cfg.pack:
        packs, stats = pack_samples(samples, cfg.seq_len, vocab.pad_id)
    else:  # baseline: one sample per sequence, padded to seq_len so micro-batches stack
        packs, stats = pad_samples(samples, 1, vocab.pad_id, max_len=cfg.seq_len, pad_to=cfg.seq_len)
    if not packs:
        raise TrainError("the phase mixture produced no trainable sequences")
    np.savez(out, input_ids=np.stack([p.input_ids for p in packs]).astype(np.int32),
             labels=np.stack([p.labels for p in packs]).astype(np.int32),
             position_ids=np.stack([p.position_ids for p in packs]).astype(np.int32),
             n_real=np.asarray([p.n_real for p in packs], dtype=np.int64))
    tasks: dict[str, int] = {}
    for s in samples:
        tasks[s.task] = tasks.get(s.task, 0) + 1
    assert max(int(p.input_ids.max()) for p in packs) < vocab.total and text_size > 0
    return {"n_samples": stats.n_samples, "n_dropped": stats.n_dropped, "n_packs": stats.n_packs,
            "useful_share": stats.useful_share, "task_counts": tasks, "n_rows": len(rows)}


def prepare_phase(
    phase: int,
    config_path_or_name: str | Path,
    data_dir: str | Path,
    *,
    init_bundle: str | Path | None = None,
    overrides: list[str] | None = None,
    work_dir: str | Path | None = None,
    data_version: str | None = None,
) -> Path:
    """Everything that must hold before any compute, then the phase's work directory.

    Checks (each a :class:`TrainError`/``ConfigError``/``DataError`` before any training):
    the config loads (unknown keys rejected) and is for ``phase``; phases 2-3 have an init bundle
    that loads (tokenizer/vocab consistent); the dataset passed its validation gate and its
    shards' md5s match; the dataset's codec directory exists; the init bundle's codec matches
    the dataset's.

    Returns:
        The work directory (``config.json``, ``start/``, ``packs.npz``, ``run.json``).
    """
    from uniss.bundle import BundleError, read_bundle_meta

    cfg = load_config(config_path_or_name, overrides)
    if int(cfg.phase) != int(phase):
        raise ConfigError(f"config {config_path_or_name} is for phase {cfg.phase}, not phase {phase}")
    init_meta = None
    if phase > 1:
        if init_bundle is None:
            raise TrainError(f"phase {phase} starts from the phase-{phase - 1} weights: give init_bundle (--init BUNDLE)")
        ib = Path(init_bundle)
        if not ib.exists():
            raise TrainError(f"init bundle {ib} does not exist (run phase {phase - 1} first)")
        try:
            init_meta = read_bundle_meta(ib)
        except BundleError as e:
            raise TrainError(f"init bundle {ib} is not usable: {e}") from None
        if not (ib / "model" / "config.json").is_file():
            raise TrainError(f"init bundle {ib} has no model/ weights")
    elif init_bundle is not None:
        ib = Path(init_bundle)
        init_meta = read_bundle_meta(ib)
    data_dir = Path(data_dir)
    manifest = check_dataset(data_dir)
    codec_dir = data_dir / "codec"
    codec = codec_info(codec_dir)
    if manifest.get("codec_fingerprint") and manifest["codec_fingerprint"] != codec["fingerprint"]:
        raise DataError(f"{data_dir}: codec/ fingerprint {codec['fingerprint'][:12]} is not the one the data was tokenized with ({str(manifest['codec_fingerprint'])[:12]})")
    if init_meta and init_meta.get("codec_fingerprint") and init_meta["codec_fingerprint"] != codec["fingerprint"]:
        raise TrainError("the init bundle was trained with a different codec than this dataset's")
    wd = Path(work_dir) if work_dir is not None else work_dir_for(cfg, manifest, init_meta, data_dir)
    wd.mkdir(parents=True, exist_ok=True)
    (wd / CONFIG_FILE).write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
    start = wd / START_DIR
    if not (start / "bundle.json").is_file():
        _build_start(cfg, data_dir, None if init_bundle is None else Path(init_bundle), codec, start)
    run_path = wd / RUN_FILE
    if not (wd / PACKS_FILE).is_file() or not run_path.is_file():
        stats = _build_packs(cfg, data_dir, start, wd / "packs.tmp.npz")
        (wd / "packs.tmp.npz").rename(wd / PACKS_FILE)
        run = {
            "phase": phase, "config_name": Path(resolve_config_path(config_path_or_name)).name,
            "overrides": list(overrides or []), "data_dir": str(data_dir.resolve()),
            "data_version": data_version or manifest.get("version"),
            "shard_md5s": [s.get("md5") for s in manifest.get("shards", [])],
            "codec": codec, "init_bundle": None if init_bundle is None else str(Path(init_bundle).resolve()),
            "packing": stats,
        }
        run_path.write_text(json.dumps(run, indent=2, default=str))
    else:  # same shards, possibly at a new path (KFP retry): point at the current copy
        run = json.loads(run_path.read_text())
        run.update({"data_dir": str(data_dir.resolve()), "codec": codec})
        run_path.write_text(json.dumps(run, indent=2, default=str))
    return wd


# =============================================================================== the recipe
@dataclass
class _State:
    cfg: TrainConfig
    work: Path
    rank: int
    world: int
    engine: Any = None
    logger: MetricLogger | None = None
    jsonl: JsonlLogger | None = None
    step: int = 0
    packs_consumed: int = 0
    total_steps: int = 0
    ga: int = 1
    data: dict[str, np.ndarray] = field(default_factory=dict)
    first_loss: float | None = None
    last_loss: float | None = None


def lr_lambda(cfg: TrainConfig, total_steps: int):
    """Multiplier of ``cfg.optim.lr`` at optimizer step ``s`` (0-based), paper App. B.1:
    linear warm-up over ``warmup_steps`` (or ``warmup_frac`` x total), then constant, or cosine
    from ``lr`` to ``min_lr`` over the remaining steps."""
    o = cfg.optim
    warm = math.ceil(o.warmup_frac * total_steps) if o.warmup_frac > 0 else o.warmup_steps
    floor = o.min_lr / o.lr

    def f(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        if o.schedule == "constant":
            return 1.0
        span = max(1, total_steps - warm - 1)
        prog = min(1.0, (s - warm) / span)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * prog))

    return f


def _bf16_supported() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _die_with_parent() -> None:
    """Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: this process dies when its parent does."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)
    except OSError:
        pass


def setup(work: Path) -> _State:
    """Init the process group, build the engine from ``start/`` and resume from ``ds/latest``."""
    import deepspeed
    import torch

    from uniss.lm import load_checked_model

    cfg = TrainConfig.model_validate(json.loads((work / CONFIG_FILE).read_text()))
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    torch.manual_seed(cfg.seed)
    st = _State(cfg=cfg, work=work, rank=rank, world=world)
    z = np.load(work / PACKS_FILE)
    st.data = {k: z[k] for k in z.files}
    n = st.data["input_ids"].shape[0]
    st.ga = cfg.grad_accum(world)
    per_step = world * st.ga * cfg.micro_batch_size
    st.total_steps = max(1, int(cfg.epochs * n) // per_step)
    if cfg.max_steps is not None:
        st.total_steps = min(st.total_steps, cfg.max_steps)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and _bf16_supported())
    model = load_checked_model(work / START_DIR / "model", attn_implementation=cfg.attn_implementation)
    model.config.use_cache = False
    model.train()
    o = cfg.optim
    decay = [p for nme, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for nme, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=o.lr, betas=tuple(o.betas), eps=o.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, st.total_steps))
    ds_cfg = deepspeed_config(cfg, world, bf16=bf16)
    st.engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, lr_scheduler=sched, config=ds_cfg)
    ds_dir = work / DS_DIR
    resumed = False
    if (ds_dir / "latest").is_file():
        _, client = st.engine.load_checkpoint(str(ds_dir), load_optimizer_states=True, load_lr_scheduler_states=True)
        if client is None:
            raise TrainError(f"cannot load the checkpoint in {ds_dir}")
        st.step, st.packs_consumed = int(client["step"]), int(client["packs_consumed"])
        resumed = True
    if rank == 0:
        st.jsonl = JsonlLogger(work / METRICS_FILE)
        loggers: list[MetricLogger] = [st.jsonl]
        run = json.loads((work / RUN_FILE).read_text())
        if mlflow_configured():
            rid_file = work / "mlflow_run_id"
            ml = MLflowLogger(f"phase-{cfg.phase}", run_id=rid_file.read_text().strip() if rid_file.exists() else None)
            rid_file.write_text(ml.run_id)
            loggers.append(ml)
        if os.environ.get("UNISS_TRAIN_STDOUT"):
            loggers.append(StdoutLogger())
        st.logger = MultiLogger(*loggers)
        if resumed:
            st.jsonl.log_event("resume", step=st.step, packs_consumed=st.packs_consumed, lr=float(sched.get_last_lr()[0]))
        else:
            flat = {f"cfg.{k}": v for k, v in _flatten(cfg.model_dump(mode="json")).items()}
            st.logger.log_params({**flat, "world_size": world, "grad_accum": st.ga, "total_steps": st.total_steps,
                                  "n_packs": n, "bf16": bf16, "deepspeed.zero_stage": cfg.zero.stage,
                                  "data_version": run.get("data_version"), "useful_share": run["packing"]["useful_share"]})
            st.logger.set_tags({"phase": cfg.phase, "data_version": run.get("data_version"),
                                "shard_md5s": ",".join(str(m) for m in run.get("shard_md5s", []))})
            st.logger.log_artifact(work / CONFIG_FILE, "config")
            st.logger.log_artifact(work / RUN_FILE, "config")
    return st


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _pack_index(st: _State, position: int) -> int:
    """Global data position -> pack row (a seeded permutation per epoch)."""
    n = st.data["input_ids"].shape[0]
    epoch, i = divmod(position, n)
    perm = np.random.default_rng(st.cfg.seed * 1000 + epoch).permutation(n)
    return int(perm[i])


def save_checkpoint(st: _State) -> None:
    """ZeRO-3 checkpoint ``ds/step<N>`` with the step counter and data position; older step
    checkpoints beyond ``keep_checkpoints`` are removed (rank 0, after every rank wrote)."""
    import torch

    ds_dir = st.work / DS_DIR
    tag = f"step{st.step}"
    st.engine.save_checkpoint(str(ds_dir), tag=tag, client_state={"step": st.step, "packs_consumed": st.packs_consumed})
    torch.distributed.barrier()
    if st.rank == 0:
        tags = sorted((p for p in ds_dir.glob("step*") if p.is_dir()), key=lambda p: int(p.name[4:]))
        for old in tags[: -st.cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        if st.jsonl:
            st.jsonl.log_event("checkpoint", step=st.step, tag=tag)


def train(st: _State) -> None:
    """The loop: every optimizer step consumes ``world x grad_accum x micro_batch`` sequences;
    logs loss (mean over ranks and micro-batches), LR and real tokens/s; checkpoints every
    ``checkpoint_every`` steps and at the end."""
    import torch
    from tqdm import tqdm

    cfg, eng = st.cfg, st.engine
    mbs = cfg.micro_batch_size
    bar = tqdm(total=st.total_steps, initial=st.step, desc=f"phase {cfg.phase}", unit="step",
               disable=st.rank != 0, dynamic_ncols=True)
    while st.step < st.total_steps:
        t0 = time.perf_counter()
        loss_sum = torch.zeros(2)  # (sum of losses, micro-batches)
        real = torch.zeros(1)
        lr = float(eng.lr_scheduler.get_last_lr()[0])
        for _ in range(st.ga):
            base = st.packs_consumed + st.rank * mbs
            rows = [_pack_index(st, base + j) for j in range(mbs)]
            ids = torch.from_numpy(st.data["input_ids"][rows].astype(np.int64))  # (B, L)
            lab = torch.from_numpy(st.data["labels"][rows].astype(np.int64))  # (B, L)
            pos = torch.from_numpy(st.data["position_ids"][rows].astype(np.int64))  # (B, L)
            # attention_mask=None + restarting position_ids -> block-diagonal causal attention
            # (training/packing.py); use_cache=False keeps transformers on the packed-mask path.
            out = eng(input_ids=ids.to(eng.device), position_ids=pos.to(eng.device), labels=lab.to(eng.device), use_cache=False)
            eng.backward(out.loss)
            eng.step()
            loss_sum += torch.tensor([float(out.loss.detach()), 1.0])
            real += float(st.data["n_real"][rows].sum())
            st.packs_consumed += st.world * mbs
        torch.distributed.all_reduce(loss_sum)
        torch.distributed.all_reduce(real)
        st.step += 1
        dt = time.perf_counter() - t0
        loss = float(loss_sum[0] / loss_sum[1])
        if st.first_loss is None:
            st.first_loss = loss
        st.last_loss = loss
        if st.rank == 0:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")
            if st.step % cfg.log_every == 0 or st.step == st.total_steps:
                st.logger.log_metrics({"loss": loss, "lr": lr, "tokens_per_s": float(real) / dt, "step_s": dt,
                                       "packs_consumed": st.packs_consumed}, st.step)
        if st.step % cfg.checkpoint_every == 0 and st.step < st.total_steps:
            save_checkpoint(st)
    bar.close()
    save_checkpoint(st)


def cleanup(st: _State) -> None:
    """Loss-curve plot, ``done.json`` (rank 0), close loggers, destroy the process group."""
    import torch

    if st.rank == 0:
        recs = read_jsonl(st.work / METRICS_FILE)
        png = plot_loss_curve(recs, st.work / "loss_curve.png", title=f"phase {st.cfg.phase} loss")
        st.logger.log_artifact(png, "plots")
        losses = _loss_by_step(recs)
        steps = sorted(losses)
        done = {"steps": st.step, "total_steps": st.total_steps,
                "loss_start": losses[steps[0]] if steps else None, "loss_end": losses[steps[-1]] if steps else None}
        tps = [r["tokens_per_s"] for r in recs if r.get("kind") == "metrics" and "tokens_per_s" in r]
        done["tokens_per_s_mean"] = float(np.mean(tps)) if tps else None
        st.logger.log_metrics({"final_loss": done["loss_end"] or float("nan")}, st.step)
        (st.work / DONE_FILE).write_text(json.dumps(done, indent=2))
        st.logger.close()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def _loss_by_step(recs: list[dict[str, Any]]) -> dict[int, float]:
    out: dict[int, float] = {}
    for r in recs:
        if r.get("kind") == "metrics" and "loss" in r:
            out[int(r["step"])] = float(r["loss"])
    return out


def worker_main(work: str | Path) -> None:
    """Body of each torchrun rank: setup -> train -> cleanup."""
    _die_with_parent()
    st = setup(Path(work))
    train(st)
    cleanup(st)


# =============================================================================== export + launch
def export_bundle(work: str | Path, out_dir: str | Path) -> Path:
    """Consolidate the last ZeRO-3 checkpoint of a finished phase (DeepSpeed ``zero_to_fp32``)
    into a model bundle (``uniss.bundle.save_bundle``) with the tokenizer, vocab layout and codec.

    Raises:
        TrainError: the phase has not finished (no ``done.json``/checkpoint).
    """
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from uniss.bundle import load_bundle_tokenizer, save_bundle
    from uniss.lm import load_checked_model

    w = Path(work)
    if not (w / DONE_FILE).is_file() or not (w / DS_DIR / "latest").is_file():
        raise TrainError(f"{w}: the phase has not finished; nothing to export")
    cfg = TrainConfig.model_validate(json.loads((w / CONFIG_FILE).read_text()))
    run = json.loads((w / RUN_FILE).read_text())
    done = json.loads((w / DONE_FILE).read_text())
    model = load_checked_model(w / START_DIR / "model")
    sd = get_fp32_state_dict_from_zero_checkpoint(str(w / DS_DIR))
    expected = set(model.state_dict())
    tied = bool(model.config.tie_word_embeddings)
    missing = [k for k in expected if k not in sd and not (tied and k == "lm_head.weight")]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        raise TrainError(f"consolidated checkpoint does not match the model: missing={missing[:5]} unexpected={unexpected[:5]}")
    model.load_state_dict(sd, strict=False)
    if tied:
        model.tie_weights()
    tok, vocab = load_bundle_tokenizer(w / START_DIR)
    meta = {
        "phase": cfg.phase, "size": cfg.size, "data_version": run.get("data_version"),
        "shard_md5s": run.get("shard_md5s", []), "codec_fingerprint": run["codec"]["fingerprint"],
        "config": cfg.model_dump(mode="json"), "overrides": run.get("overrides", []),
        "init_bundle": run.get("init_bundle"),
        "train_metrics": {**done, "packing_useful_share": run["packing"]["useful_share"],
                          "n_packs": run["packing"]["n_packs"], "n_samples": run["packing"]["n_samples"]},
    }
    rid = w / "mlflow_run_id"
    if rid.exists():
        meta["mlflow_run_id"] = rid.read_text().strip()
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save_bundle(tmp, model=model, tokenizer=tok, vocab=vocab, codec_dir=run["codec"]["path"], meta=meta)
    if (w / "loss_curve.png").is_file():
        shutil.copy2(w / "loss_curve.png", tmp / "loss_curve.png")
    shutil.copy2(w / METRICS_FILE, tmp / METRICS_FILE)
    out.mkdir(parents=True, exist_ok=True)  # KFP hands over an existing output dir: fill it in place
    for p in out.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in tmp.iterdir():
        shutil.move(str(p), out / p.name)
    tmp.rmdir()
    return out


def _launch(work: Path, nproc: int, timeout_s: float | None = None) -> None:
    env = dict(os.environ)
    import torch

    if not torch.cuda.is_available():
        env.setdefault("DS_ACCELERATOR", "cpu")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "training.trainer", "worker", "--work", str(work)]
    log = work / "launcher.log"
    with log.open("ab") as lf:
        lf.write(f"\n$ {' '.join(cmd)}\n".encode())
        proc = subprocess.Popen(cmd, env=env, stdout=None if os.environ.get("UNISS_TRAIN_STDOUT") else lf,
                                stderr=subprocess.STDOUT if not os.environ.get("UNISS_TRAIN_STDOUT") else None,
                                preexec_fn=_die_with_parent)
        try:
            rc = proc.wait(timeout=timeout_s)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if rc != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise TrainError(f"training ranks failed (exit {rc}); log {log}:\n{tail}")


def run_phase(
    phase: int,
    config_path_or_name: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    init_bundle: str | Path | None = None,
    overrides: list[str] | None = None,
    nproc: int = 2,
    *,
    work_dir: str | Path | None = None,
    data_version: str | None = None,
    timeout_s: float | None = None,
) -> Path:
    """Train one phase under DeepSpeed ZeRO-3 with ``nproc`` ranks (a ``torchrun`` subprocess, so
    it runs inside a KFP step) and export its bundle to ``out_dir``.

    Rerunning the same call after a crash resumes from the last checkpoint; rerunning after
    success only re-exports.

    Args:
        phase: 1, 2 or 3.
        config_path_or_name: YAML path or shipped name (``tiny_phase1.yaml``).
        data_dir: validated UniST dataset directory (with ``codec/``).
        out_dir: bundle directory to write.
        init_bundle: previous phase's bundle (required for phases 2-3).
        overrides: ``key=value`` config overrides.
        nproc: ranks (processes) to launch.
        work_dir: checkpoint/work directory (default: keyed by the inputs under
            :func:`checkpoint_root`).
        data_version: data version tag recorded in the bundle (default: the manifest's version).

    Returns:
        ``Path`` of the bundle.

    Raises:
        ConfigError, DataError, TrainError: before compute for bad config / data / init weights;
        ``TrainError`` when the ranks fail.
    """
    wd = prepare_phase(phase, config_path_or_name, data_dir, init_bundle=init_bundle, overrides=overrides,
                       work_dir=work_dir, data_version=data_version)
    if not (wd / DONE_FILE).is_file():
        _launch(wd, nproc, timeout_s)
    return export_bundle(wd, out_dir)


def run_phase_step(*, phase: int, config: str, data_dir: str, data_version: str | None, init_bundle: str | None,
                   overrides: list[str], nproc: int, out_dir: str) -> dict[str, Any]:
    """KFP component body helper (``components/training.py::train_phase``): :func:`run_phase`
    and the bundle metadata to record on the output artifact."""
    b = run_phase(phase, config, data_dir, out_dir, init_bundle=init_bundle, overrides=overrides, nproc=nproc,
                  data_version=data_version or None)
    meta = json.loads((b / "bundle.json").read_text())
    tm = meta.get("train_metrics", {})
    return {"phase": phase, "loss_start": tm.get("loss_start"), "loss_end": tm.get("loss_end"),
            "steps": tm.get("steps"), "data_version": meta.get("data_version"),
            "mlflow_run_id": meta.get("mlflow_run_id", "")}


def run_phases_step(*, phases: list[int], model_size: str, data_dir: str, data_version: str | None,
                    overrides: list[str], nproc: int, out_dir: str, run_name: str = "") -> dict[str, Any]:
    """Ablation helper (``components/training.py::train_variant``): the listed phases in order,
    each from the previous one's bundle (``<size>_phase<N>.yaml``); the last bundle goes to
    ``out_dir``, intermediate bundles next to the work directories."""
    if not phases or sorted(phases) != list(phases) or any(p not in (1, 2, 3) for p in phases):
        raise TrainError(f"phases must be an increasing list from {{1, 2, 3}}, got {phases}")
    prev: Path | None = None
    info: dict[str, Any] = {"variant": run_name, "phases": list(phases)}
    for i, p in enumerate(phases):
        last = i == len(phases) - 1
        ovr = list(overrides)
        init = prev
        if p > 1 and prev is None:
            # "w/o phase 1": phase 2 starts from the untrained start weights (random init +
            # corpus BPE / pretrained text LM): build them as a phase-1 start.
            wd1 = prepare_phase(1, f"{model_size}_phase1.yaml", data_dir, overrides=ovr, data_version=data_version)
            init = wd1 / START_DIR
        out = Path(out_dir) if last else checkpoint_root() / f"bundles/{run_name or 'variant'}_phase{p}"
        prev = run_phase(p, f"{model_size}_phase{p}.yaml", data_dir, out, init_bundle=init, overrides=ovr,
                         nproc=nproc, data_version=data_version or None)
        tm = json.loads((prev / "bundle.json").read_text()).get("train_metrics", {})
        info[f"phase{p}_loss_end"] = tm.get("loss_end")
    return info


def _main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.trainer")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="one torchrun rank (see the module docstring)")
    w.add_argument("--work", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "worker":
        worker_main(args.work)


if __name__ == "__main__":
    _main()
