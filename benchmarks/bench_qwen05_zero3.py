"""A few phase-1 DeepSpeed ZeRO-3 steps of the real Qwen2.5-0.5B on 2 CPU ranks (issue 18 "Accept").

What it does:

1. writes a synthetic UniST-shaped dataset (``training.synthetic``) whose codec sizes are the
   paper's (4,096 speaker / 8,192 semantic / 16,384 linguistic), so the expanded vocabulary is the
   released size, 180,407 ids (151,665 real Qwen2.5 text ids + the speech/speed/control tokens);
2. prepares phase 1 with ``0_5b_phase1.yaml`` and ``pretrained=<the installed checkpoint>``
   (``training.workdir.prepare_phase``: the checkpoint is loaded, its embeddings resized to the
   layout before DeepSpeed), short sequences (``--seq-len``);
3. runs the recipe with ``TorchrunLauncher`` (``DS_ACCELERATOR=cpu``, gloo, 2 ranks) for
   ``--steps`` optimizer steps while sampling the RSS of the launcher's process tree;
4. writes ``benchmarks/results/qwen05_zero3.json``: loss of the first and last step (and the means
   of the first and last two), seconds per step (median of the steps after the first), tokens/s,
   peak RSS of the ranks together and of the largest rank, preparation time.

The synthetic data is not speech; the figures are about the engine (ZeRO-3 on a real 0.5B with the
180k-id vocabulary), not about translation quality.

Memory (measured 2026-12-02, seq_len 256, fp32, 2 ranks on 2 cores / 24 GiB): with DeepSpeed's
defaults each rank's peak RSS grew 7.9 -> 10.4 -> 11.3 GiB over steps 1-3 until the OOM killer
ended the run; with ``sub_group_size`` 1e7, ``stage3_max_live_parameters`` 1e7 and the ranks'
glibc malloc returning freed tensor pages (``MALLOC_MMAP_THRESHOLD_`` 1 MiB) it is 4.7 GiB after
the engine is built and 8.25 GiB at most per rank over 6 steps (about 4.2 GiB of it the rank's
partition: fp32 weights + gradients + AdamW moments of ~260M parameters; the rest the gathered tied
180,407 x 896 embedding, the logits and their gradients). Both ranks together need ~17 GiB free.

Needs the optional checkpoint: ``python scripts/install_models.py --only qwen2.5-0.5b``.
Run (niced; about 2-2.5 min per step on 2 shared cores, ~18 min for 6 steps)::

    nice -n 15 python benchmarks/bench_qwen05_zero3.py [--steps 6] [--seq-len 256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil

from training.launch import TorchrunLauncher
from training.metric_logging import read_jsonl
from training.synthetic import make_synthetic_dataset
from training.workdir import METRICS_FILE, TrainError, prepare_phase
from uniss.settings import get_settings

RESULTS = Path(__file__).resolve().parent / "results"
PAPER_CODEC_SIZES = {"speaker": 4096, "semantic": 8192, "linguistic": 16384}


class RssSampler(threading.Thread):
    """Samples the summed RSS (bytes) of this process's children (torchrun + ranks) every ``every_s``."""

    def __init__(self, every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.every_s, self.peak_total, self.peak_one, self._halt = every_s, 0, 0, threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self._halt.is_set():
            rss = []
            for p in me.children(recursive=True):
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    pass
            if rss:
                self.peak_total = max(self.peak_total, sum(rss))
                self.peak_one = max(self.peak_one, max(rss))
            time.sleep(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(get_settings().models_dir.expanduser().resolve() / "qwen2.5-coder-0.5b-instruct"))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1e-4,
                    help="LR, reached after 1 warm-up step (the paper's phase-1 8e-4 warms up over 200 steps; "
                         "8e-4 after 1 step measured: loss 18.9 -> 42.6 at step 5)")
    ap.add_argument("--sub-group-size", type=int, default=10_000_000, help="ZeRO-3 optimizer sub-group (parameters)")
    ap.add_argument("--out", default=str(RESULTS / "qwen05_zero3.json"))
    args = ap.parse_args()
    if not (Path(args.model) / "model.safetensors").is_file():
        raise SystemExit(f"no checkpoint at {args.model}: run python scripts/install_models.py --only qwen2.5-0.5b")

    with tempfile.TemporaryDirectory(prefix="bench_qwen05_") as tmp:
        tmpd = Path(tmp)
        data = make_synthetic_dataset(tmpd / "data", args.rows, sizes=PAPER_CODEC_SIZES)
        overrides = [f"pretrained={args.model}", f"seq_len={args.seq_len}", f"batch_tokens={2 * args.seq_len}",
                     f"max_steps={args.steps}", f"checkpoint_every={10 * args.steps}", "keep_checkpoints=1", "epochs=100",
                     "log_every=1", "precision=fp32", f"optim.lr={args.lr}", "optim.warmup_steps=1",
                     "zero.overlap_comm=false", "zero.reduce_bucket_size=5000000",
                     "zero.stage3_prefetch_bucket_size=5000000", "zero.stage3_param_persistence_threshold=10000",
                     # at most ~10M gathered parameters alive per rank (DeepSpeed's default 1e9 keeps
                     # the whole gathered model: two ranks OOM-killed at ~10 GB each on 24 GiB)
                     "zero.stage3_max_live_parameters=10000000", "zero.stage3_max_reuse_distance=10000000",
                     # AdamW steps over 1e7-parameter sub-groups: its temporaries (sqrt(v) and the
                     # update) stay ~40 MB instead of two copies of a rank's whole 1 GB partition
                     f"zero.sub_group_size={args.sub_group_size}"]
        os.environ.pop("UNISS_MLFLOW_TRACKING_URI", None)
        # inherited by the ranks: few glibc arenas, and every allocation of >= 1 MiB its own mmap,
        # unmapped when freed (measured without it: each rank's peak RSS grew 7.9 -> 10.4 -> 11.3
        # GiB over steps 1-3, freed tensor pages stuck in the heap, until the OOM killer)
        os.environ.setdefault("MALLOC_ARENA_MAX", "2")
        os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        wd = prepare_phase(1, "0_5b_phase1.yaml", data, overrides=overrides, work_dir=tmpd / "work")
        prep_s = time.perf_counter() - t0
        sampler = RssSampler()
        sampler.start()
        t1 = time.perf_counter()
        error = None
        try:
            TorchrunLauncher().launch(wd, 2)
        except TrainError as e:  # e.g. a rank OOM-killed: keep what was measured up to there
            error = str(e)[-1500:]
        finally:
            sampler.stop()
        train_s = time.perf_counter() - t1
        mf = wd / METRICS_FILE
        all_recs = read_jsonl(mf) if mf.is_file() else []
        recs = [r for r in all_recs if r.get("kind") == "metrics" and "loss" in r]
        mem_events = [r for r in all_recs if r.get("kind") == "event" and r.get("event") == "memory"]
        load_after = os.getloadavg()
        run = json.loads((wd / "run.json").read_text())
        vocab = json.loads((wd / "start" / "vocab.json").read_text())
    losses = [float(r["loss"]) for r in recs]
    step_s = [float(r["step_s"]) for r in recs]
    tok_s = [float(r["tokens_per_s"]) for r in recs]
    out = {
        "status": "ok" if error is None else "failed", "error_tail": error,
        "what": "phase-1 DeepSpeed ZeRO-3 steps of Qwen2.5-Coder-0.5B-Instruct (real checkpoint) expanded to the "
                "released 180,407-id layout, synthetic UniST-shaped data, 2 CPU ranks (gloo, DS_ACCELERATOR=cpu), fp32",
        "model": args.model, "vocab_total": vocab.get("total"), "world_size": 2, "seq_len": args.seq_len,
        "grad_accum": 1, "steps": len(recs), "lr": args.lr, "n_packs": run["packing"]["n_packs"],
        "loss_first_step": losses[0] if losses else None, "loss_last_step": losses[-1] if losses else None,
        "loss_first2_mean": statistics.mean(losses[:2]) if len(losses) >= 2 else None,
        "loss_last2_mean": statistics.mean(losses[-2:]) if len(losses) >= 2 else None,
        "losses": losses,
        "s_per_step_median_after_first": statistics.median(step_s[1:]) if len(step_s) > 1 else None,
        "step_s": step_s, "real_tokens_per_s_median": statistics.median(tok_s) if tok_s else None,
        "peak_rss_gib_per_rank": [recs[-1].get(f"peak_rss_gib_rank{r}") for r in range(2)] if recs else None,
        "peak_rss_gib_per_rank_after_engine_init": mem_events[0].get("peak_rss_gib") if mem_events else None,
        "peak_rss_ranks_total_gib": round(sampler.peak_total / 2**30, 2),
        "peak_rss_largest_process_gib": round(sampler.peak_one / 2**30, 2),
        "prepare_s": round(prep_s, 1), "train_wall_s": round(train_s, 1),
        "zero": {"sub_group_size": args.sub_group_size, "stage3_max_live_parameters": 10_000_000},
        "machine": {"cpus": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
                    "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
                    "loadavg_1_5_15_after": [round(x, 2) for x in load_after]},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k not in ("losses", "step_s", "error_tail")}, indent=2))
    if error is not None:
        raise SystemExit(f"training failed (partial figures in {args.out}): {error[-300:]}")


if __name__ == "__main__":
    main()
