"""The training recipe of one progressive-training phase under DeepSpeed ZeRO-3 (paper §3.3,
App. B.1; STYLE.md #5/#15 after torchtune ``recipes/full_finetune_single_device.py`` and nanoGPT
``train.py``).

Launch (what :func:`training.launch.run_phase` runs for you; on this CPU machine
``DS_ACCELERATOR=cpu`` and gloo)::

    DS_ACCELERATOR=cpu torchrun --standalone --nproc_per_node 2 -m training.recipe worker \\
        --work WORKDIR

where ``WORKDIR`` was prepared by :func:`training.workdir.prepare_phase` (config, start weights,
tokenizer, packed data). Each rank runs :func:`recipe_main`, which reads top to bottom:

- :func:`setup`: process group, model from ``WORKDIR/start`` (embeddings were expanded to the
  speech vocabulary there, **before** ``deepspeed.initialize``; recipe s2st-omni: the LM and the
  speech adapter as one :class:`training.omni.OmniLM`, the LM frozen in stage 1 and left out of the
  optimizer), AdamW + the paper's LR schedule,
  the DeepSpeed ZeRO-3 engine, resume from the last checkpoint, metric loggers;
- :func:`train`: the loop over packed sequences;
- :func:`save_checkpoint`: every ``checkpoint_every`` optimizer steps and at the end, through a
  :class:`~training.checkpointer.ZeroCheckpointer` (``WORKDIR/ds/step<N>`` with the client state
  ``{step, packs_consumed}`` and the LR scheduler state);
- :func:`cleanup`: loss curve, ``done.json``, close loggers and the process group.

A rerun of the same phase (same inputs -> same ``WORKDIR``) resumes from the ``latest``
checkpoint. Work directories live in training/workdir.py, export in training/export.py, the
launcher in training/launch.py. Workers die with their launcher (``PR_SET_PDEATHSIG``), so a
SIGKILL to ``uniss train`` or ``torchrun`` never leaves orphan ranks writing checkpoints.

Shapes: B = micro-batch size (sequences), L = ``seq_len`` (tokens); pack arrays are (N, L).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.checkpointer import ZeroCheckpointer, check_resume_tag
from training.config import TrainConfig, deepspeed_config
from training.metric_logging import (
    JsonlLogger,
    MetricLogger,
    MultiLogger,
    StdoutLogger,
    mlflow_configured,
    plot_loss_curve,
    read_jsonl,
)
from training.samples import corrupt_speech_history
from training.workdir import (
    CONFIG_FILE,
    DONE_FILE,
    DS_DIR,
    METRICS_FILE,
    PACKS_FILE,
    RUN_FILE,
    START_DIR,
    TrainError,
    phase_mlflow_logger,
)
from uniss.jsonio import read_json
from uniss.vocab import SpeechVocab

__all__ = [
    "RecipeState",
    "cleanup",
    "die_with_parent",
    "lr_lambda",
    "peak_rss_gib_per_rank",
    "recipe_main",
    "release_freed_memory",
    "save_checkpoint",
    "setup",
    "train",
]


@dataclass
class RecipeState:
    """Everything one rank's recipe holds between :func:`setup`, :func:`train` and :func:`cleanup`.

    ``data`` holds the packs (``input_ids``/``labels``/``position_ids`` (N, L) int32, ``n_real``
    (N,) int64); ``semantic_range`` the ``[lo, hi)`` semantic ids of the start bundle's vocab
    (for ``data.speech_input_noise``); ``step`` counts optimizer steps, ``packs_consumed`` sequences consumed by all
    ranks together; ``logger``/``jsonl`` are set on rank 0 only.
    """

    cfg: TrainConfig
    work: Path
    rank: int
    world: int
    engine: Any = None
    checkpointer: ZeroCheckpointer | None = None
    logger: MetricLogger | None = None
    jsonl: JsonlLogger | None = None
    step: int = 0
    packs_consumed: int = 0
    total_steps: int = 0
    ga: int = 1
    data: dict[str, np.ndarray] = field(default_factory=dict)
    semantic_range: tuple[int, int] = (0, 0)
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


# =============================================================================== setup
def setup(work: Path) -> RecipeState:
    """Init the process group, build the engine from ``start/`` and resume from ``ds/latest``.

    Raises:
        TrainError: a checkpoint exists but DeepSpeed cannot load it.
    """
    import deepspeed
    import torch

    from uniss.lm import load_checked_model

    cfg = TrainConfig.model_validate(read_json(work / CONFIG_FILE, what="phase config", error=TrainError))
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    torch.manual_seed(cfg.seed)
    st = RecipeState(cfg=cfg, work=work, rank=rank, world=world)
    # ---- data: the packs and the number of optimizer steps they make
    z = np.load(work / PACKS_FILE)
    st.data = {k: z[k] for k in z.files}
    n = st.data["input_ids"].shape[0]
    st.semantic_range = SpeechVocab.from_json((work / START_DIR / "vocab.json").read_text()).range("semantic")
    st.ga = cfg.grad_accum(world)
    per_step = world * st.ga * cfg.micro_batch_size
    st.total_steps = max(1, int(cfg.epochs * n) // per_step)
    if cfg.max_steps is not None:
        st.total_steps = min(st.total_steps, cfg.max_steps)
    # ---- model, optimizer (no weight decay on biases/norms), LR schedule, ZeRO-3 engine
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and _bf16_supported())
    model = load_checked_model(work / START_DIR / "model", attn_implementation=cfg.attn_implementation)
    model.config.use_cache = False
    if cfg.recipe == "s2st-omni":  # LM + speech adapter in one module; stage 1 freezes the LM (training/omni.py)
        from training.omni import omni_model

        model = omni_model(model, work / START_DIR, train_lm=cfg.omni.train_lm)
    model.train()
    o = cfg.optim
    decay = [p for nme, p in model.named_parameters() if p.ndim >= 2 and p.requires_grad]
    no_decay = [p for nme, p in model.named_parameters() if p.ndim < 2 and p.requires_grad]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=o.lr, betas=tuple(o.betas), eps=o.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, st.total_steps))
    ds_cfg = deepspeed_config(cfg, world, bf16=bf16)
    st.engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, lr_scheduler=sched, config=ds_cfg)
    del model, decay, no_decay
    release_freed_memory()  # the full-size weights each rank loaded are partitioned now
    init_peak = peak_rss_gib_per_rank(world, rank)
    # ---- resume
    st.checkpointer = ZeroCheckpointer(work / DS_DIR, keep=cfg.keep_checkpoints, rank=rank)
    resumed_at = st.checkpointer.load(st.engine)
    if resumed_at is not None:
        st.step, st.packs_consumed = resumed_at
    # ---- loggers (rank 0)
    if rank == 0:
        st.jsonl = JsonlLogger(work / METRICS_FILE)
        loggers: list[MetricLogger] = [st.jsonl]
        run = read_json(work / RUN_FILE, what="run record", error=TrainError)
        if mlflow_configured():
            loggers.append(phase_mlflow_logger(work, cfg.phase))
        if os.environ.get("UNISS_TRAIN_STDOUT"):
            loggers.append(StdoutLogger())
        st.logger = MultiLogger(*loggers)
        st.jsonl.log_event("memory", stage="engine_initialized", peak_rss_gib=init_peak)
        if resumed_at is not None:
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


# =============================================================================== train
def train(st: RecipeState) -> None:
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
            ids_np = st.data["input_ids"][rows].astype(np.int64)  # (B, L)
            lab_np = st.data["labels"][rows].astype(np.int64)  # (B, L)
            if cfg.data.speech_input_noise > 0:  # seeded by the data position: a resumed run draws the same noise
                ids_np = corrupt_speech_history(ids_np, lab_np, st.semantic_range, cfg.data.speech_input_noise,
                                                np.random.default_rng((cfg.seed, base)))
            ids, lab = torch.from_numpy(ids_np), torch.from_numpy(lab_np)  # (B, L) each
            pos = torch.from_numpy(st.data["position_ids"][rows].astype(np.int64))  # (B, L)
            extra = {}
            if "features" in st.data:  # recipe s2st-omni: the packs' adapter frames (P_total, k * 512)
                from training.omni import batch_features

                extra["features"] = batch_features(st.data, rows).to(eng.device)
            # attention_mask=None + restarting position_ids -> block-diagonal causal attention
            # (training/packing.py); use_cache=False keeps transformers on the packed-mask path.
            out = eng(input_ids=ids.to(eng.device), position_ids=pos.to(eng.device), labels=lab.to(eng.device), use_cache=False,
                      **extra)
            eng.backward(out.loss)
            eng.step()
            loss_sum += torch.tensor([float(out.loss.detach()), 1.0])
            del out  # the logits (L x vocab floats) are not kept through the next forward
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
        log_now = st.step % cfg.log_every == 0 or st.step == st.total_steps
        peak = peak_rss_gib_per_rank(st.world, st.rank) if log_now else []  # a collective: every rank
        if st.rank == 0:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")
            if log_now:
                st.logger.log_metrics({"loss": loss, "lr": lr, "tokens_per_s": float(real) / dt, "step_s": dt,
                                       "packs_consumed": st.packs_consumed, "peak_rss_gib_max": max(peak),
                                       **{f"peak_rss_gib_rank{r}": g for r, g in enumerate(peak)}}, st.step)
        if st.step % cfg.checkpoint_every == 0 and st.step < st.total_steps:
            save_checkpoint(st)
    bar.close()
    save_checkpoint(st)


# =============================================================================== save_checkpoint
def save_checkpoint(st: RecipeState) -> None:
    """ZeRO-3 checkpoint ``ds/step<N>`` with the step counter and data position through the
    state's checkpointer (older step checkpoints beyond ``keep_checkpoints`` are removed by rank 0
    after every rank wrote); rank 0 logs a ``checkpoint`` event."""
    tag = st.checkpointer.save(st.engine, step=st.step, packs_consumed=st.packs_consumed)
    if st.rank == 0 and st.jsonl:
        st.jsonl.log_event("checkpoint", step=st.step, tag=tag)


# =============================================================================== cleanup
def cleanup(st: RecipeState) -> None:
    """Loss-curve plot, ``done.json`` (rank 0), close loggers, destroy the process group.

    ``done.json`` is written after a barrier, so it means every rank finished training and its
    last checkpoint (the launcher relies on it when a rank crashes while the process exits).
    """
    import torch

    torch.distributed.barrier()
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


def recipe_main(work: str | Path) -> None:
    """Body of each torchrun rank: setup -> train -> cleanup (dies with its launcher)."""
    die_with_parent()
    st = setup(Path(work))
    train(st)
    cleanup(st)


# =============================================================================== helpers
def die_with_parent() -> None:
    """Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: this process dies when its parent does
    (a no-op where libc cannot be loaded)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)
    except OSError:
        pass


def peak_rss_gib_per_rank(world: int, rank: int) -> list[float]:
    """Peak resident memory (GiB) of every rank's process so far, indexed by rank.

    Each rank reads its own high-water mark (``getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux)
    and the values are summed into a one-hot vector with ``all_reduce``, so every rank must call
    this at the same point (a collective). Returns ``[]`` where ``resource`` is not available.
    """
    import torch

    try:
        import resource
    except ImportError:  # not POSIX
        return []
    v = torch.zeros(world, dtype=torch.float64)
    v[rank] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    torch.distributed.all_reduce(v)
    return [round(float(x), 3) for x in v]


def release_freed_memory() -> None:
    """glibc ``malloc_trim(0)``: give freed heap pages back to the OS (the full-size weights a rank
    loads before ZeRO-3 partitions them are mostly tensors under glibc's mmap threshold, whose
    freed pages otherwise stay in the rank's RSS); a no-op where libc cannot be loaded."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _bf16_supported() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _pack_index(st: RecipeState, position: int) -> int:
    """Global data position -> pack row (a seeded permutation per epoch)."""
    n = st.data["input_ids"].shape[0]
    epoch, i = divmod(position, n)
    perm = np.random.default_rng(st.cfg.seed * 1000 + epoch).permutation(n)
    return int(perm[i])


def _loss_by_step(recs: list[dict[str, Any]]) -> dict[int, float]:
    out: dict[int, float] = {}
    for r in recs:
        if r.get("kind") == "metrics" and "loss" in r:
            out[int(r["step"])] = float(r["loss"])
    return out


def _main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.recipe")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="one torchrun rank (see the module docstring)")
    w.add_argument("--work", required=True)
    w.add_argument("--resume-from", default=None, metavar="TAG",
                   help="checkpoint tag (step<N>) that must be in WORK/ds (set by the TrainJob launcher on a retry)")
    args = ap.parse_args(argv)
    if args.cmd == "worker":
        if args.resume_from:
            check_resume_tag(Path(args.work) / DS_DIR, args.resume_from)
        recipe_main(args.work)


if __name__ == "__main__":
    _main()
