"""Benchmark: sequence packing vs padding on the same samples (paper App. B.1 packs 18k tokens).

Measures, in one run on the same phase-1 samples of a dataset:

* useful-token share = real (non-padding) tokens / tokens computed, for packed sequences of
  ``--seq-len`` tokens (best-fit decreasing, ``training.packing.pack_samples``) and for padded
  batches of ``--batch`` consecutive samples padded to their longest (``pad_samples``);
  target for packing: >= 0.98;
* training throughput of the tiny model (forward + backward + AdamW step, single process, fp32
  CPU): real tokens/s and computed tokens/s, packed vs padded, ``--steps`` optimizer steps each
  after one warm-up step, with the same token budget per step.

Usage::

    .venv/bin/python benchmarks/bench_packing.py [--data DATA_DIR] [--steps 6]

Without ``--data`` it uses ``.uniss/data/demo`` when present, else a demo-sized synthetic dataset
(``training.synthetic``). Writes ``benchmarks/results/bench_packing.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from training.data import load_rows
from training.packing import pack_samples, pad_samples
from training.samples import build_phase_samples
from uniss.lm import build_lm, build_speech_tokenizer, expand_vocab, train_text_tokenizer, vocab_for

ROOT = Path(__file__).resolve().parents[1]


def _dataset(arg: str | None) -> tuple[Path, str]:
    if arg:
        return Path(arg), "given"
    for cand in (ROOT / ".uniss" / "data" / "demo", ROOT / ".uniss" / "demo"):
        if (cand / "manifest.json").is_file():
            return cand, "demo"
    from training.synthetic import make_synthetic_dataset

    out = Path("/tmp/uniss_bench_packing_data")
    if not (out / "manifest.json").is_file():
        make_synthetic_dataset(out, 880, sizes={"speaker": 1024, "semantic": 4096, "linguistic": 1024},
                               duration_s=(1.5, 5.0), rows_per_shard=200, seed=1)
    return out, "synthetic demo-sized"


def _throughput(model, batches: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]], steps: int, desc: str) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, betas=(0.9, 0.95))
    real = comp = 0
    t_total = 0.0
    for i in tqdm(range(steps + 1), desc=desc, unit="step"):
        ids, lab, pos, n_real = batches[i % len(batches)]
        t0 = time.perf_counter()
        out = model(input_ids=torch.from_numpy(ids), position_ids=torch.from_numpy(pos),
                    labels=torch.from_numpy(lab), use_cache=False)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if i == 0:
            continue  # warm-up
        t_total += dt
        real += n_real
        comp += ids.size
    return {"steps": steps, "seconds": t_total, "real_tokens_per_s": real / t_total, "computed_tokens_per_s": comp / t_total}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=8, help="samples per padded batch")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_packing.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    data, kind = _dataset(args.data)
    rows = load_rows(data, split="train", subset="general")
    text = train_text_tokenizer([r[k] for r in rows for k in ("src_text", "tgt_text")], vocab_size=4000)
    sizes = json.loads((data / "codec" / "manifest.json").read_text())["sizes"]
    vocab = vocab_for(text, sizes)
    enc = lambda s: text.encode(s, add_special_tokens=False)  # noqa: E731
    samples = build_phase_samples(vocab, enc, rows, formats=["asr", "s2tt", "tts", "mt"], seed=0, progress=True)
    packs, pst = pack_samples(samples, args.seq_len, vocab.pad_id)
    padded, dst = pad_samples(samples, args.batch, vocab.pad_id, max_len=args.seq_len)

    # throughput: same token budget per step (one 2048-token pack vs padded batches of about
    # the same number of computed tokens, built from consecutive samples as a loader would)
    packed_batches = [(p.input_ids[None], p.labels[None], p.position_ids[None], p.n_real) for p in packs[: args.steps + 1]]
    pad_batches = []
    i = 0
    while len(pad_batches) < args.steps + 1 and i < len(padded):
        chunk = padded[i : i + args.batch]
        i += args.batch
        L = max(len(p.input_ids) for p in chunk)
        assert all(len(p.input_ids) == L for p in chunk)
        pad_batches.append((np.stack([p.input_ids for p in chunk]), np.stack([p.labels for p in chunk]),
                            np.stack([p.position_ids for p in chunk]), int(sum(p.n_real for p in chunk))))
    model = build_lm("tiny", vocab.total)
    tok = build_speech_tokenizer(text, vocab)
    expand_vocab(model, vocab, tokenizer=tok)
    model.train()
    t_packed = _throughput(model, packed_batches, args.steps, "packed")
    t_padded = _throughput(model, pad_batches, args.steps, "padded")

    lengths = np.asarray([len(s) for s in samples])
    result = {
        "benchmark": "bench_packing",
        "data": str(data), "data_kind": kind, "n_rows": len(rows), "n_samples": len(samples),
        "sample_tokens": {"mean": float(lengths.mean()), "p50": float(np.median(lengths)), "max": int(lengths.max())},
        "seq_len": args.seq_len, "padded_batch": args.batch,
        "useful_share": {"packed": pst.useful_share, "padded": dst.useful_share, "target_packed": 0.98},
        "sequences": {"packed": pst.n_packs, "padded_rows": dst.n_packs, "dropped_longer_than_seq_len": pst.n_dropped},
        "throughput": {"packed": t_packed, "padded": t_padded,
                       "real_tokens_per_s_ratio_packed_over_padded": t_packed["real_tokens_per_s"] / t_padded["real_tokens_per_s"]},
        "model": {"size": "tiny", "params": int(sum(p.numel() for p in model.parameters())), "vocab_total": vocab.total},
        "machine": {"torch": torch.__version__, "threads": args.threads, "python": platform.python_version(),
                    "cpu": platform.processor() or platform.machine()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("useful_share", "throughput")}, indent=2))


if __name__ == "__main__":
    main()
