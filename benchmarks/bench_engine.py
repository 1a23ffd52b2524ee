"""Engine throughput and real-time factor (issue 17 acceptance lines).

One run, one model, the same inputs for every row of the report:

1. **batch 8**: tokens/s of the continuous-batching engine (``runtime="continuous"``, 8 slots) on
   8 utterances vs HF ``generate`` called on one utterance at a time (``runtime="hf"``, the paper's
   Table 3 way of measuring), plus HF ``generate`` on the padded batch of 8 (the pre-issue-17
   batched path) for reference. Tokens/s = generated tokens (``<|im_end|>`` included, padding
   excluded) / seconds spent generating. Target: >= 4x.
2. **16 mixed-length requests arriving together** (source 0.5 .. 4 s): continuous engine, 8 slots
   (rows past 8 wait and take the place of finished ones) vs HF one at a time.
3. **single-request real-time factor**: one clip, Quality mode, seconds per stage (encode /
   generate / decode) / source seconds.

Sampling: paper defaults (temperature 0.7, top-p 0.8, repetition penalty 1.1), seeded; Performance
mode for 1-2. Inputs: real recorded speech (Debian ``pocketsphinx-testdata`` LibriVox clips, cut
to the lengths above) when present, else test tones. ``require_speech=False``: the VAD check is not
what is measured.

Run: ``nice -n 15 python benchmarks/bench_engine.py [--bundle DIR] [--threads 1]``. Without
``--bundle``: a random-init model of the demo size (``uniss.lm.uniss_lm_tiny``: hidden 256, 4
layers) over the test vocabulary and test codec of ``tests/unit/serving/tiny_model.py``. Writes
``benchmarks/results/bench_engine.json`` (with the load average before and after: the figures are
only comparable at similar load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from uniss.unist.readers import LIBRIVOX_DIR as LIBRIVOX  # Debian pocketsphinx-testdata

ROOT = Path(__file__).resolve().parents[1]


def _engine(bundle: str | None, runtime: str, base=None):
    from serving.engine import TranslationEngine

    if base is not None:
        return TranslationEngine(base.model, base.tokenizer, base.vocab, base.codec, meta=base.meta, runtime=runtime, max_batch=8)
    if bundle:
        return TranslationEngine.load(bundle, runtime=runtime, max_batch=8)
    sys.path.insert(0, str(ROOT / "tests" / "unit" / "serving"))
    import tiny_model as tm

    from uniss.lm import uniss_lm_tiny

    _, tok, vocab, codec = tm.build_tiny(0)
    import torch

    torch.manual_seed(0)
    model = uniss_lm_tiny(vocab.total).eval()
    return TranslationEngine(model, tok, vocab, codec, meta={"name": "random-init demo size"}, runtime=runtime, max_batch=8)


def _sources(durations: list[float]) -> tuple[list[np.ndarray], str]:
    """Clips of the given lengths (seconds) cut from the LibriVox recordings, or tones."""
    from uniss.audio import load_audio

    clips = sorted(LIBRIVOX.glob("*.wav")) if LIBRIVOX.is_dir() else []
    if clips:
        speech = np.concatenate([load_audio(p) for p in clips])  # (N,) 16 kHz
        out, at = [], 0
        for d in durations:
            n = int(d * 16000)
            if at + n > speech.size:
                at = 0
            out.append(speech[at: at + n].copy())
            at += n
        return out, f"LibriVox recordings ({LIBRIVOX})"
    sys.path.insert(0, str(ROOT / "tests" / "unit" / "serving"))
    import tiny_model as tm

    return [tm.tone(d, 120 + 25 * i) for i, d in enumerate(durations)], "test tones"


def _gen(results) -> tuple[int, float]:
    return sum(r.output_tokens for r in results), results[0].timings["generate"]


def _one_at_a_time(engine, wavs, **kw) -> dict:
    tok, s = 0, 0.0
    for i, w in enumerate(wavs):
        n, g = _gen(engine.translate([w], seed=kw["seed"] + i, **{k: v for k, v in kw.items() if k != "seed"}))
        tok, s = tok + n, s + g
    return {"generated_tokens": tok, "generate_s": s, "tokens_per_s": tok / s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="model bundle dir (default: random-init demo-size model)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_engine.json"))
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    cont = _engine(args.bundle, "continuous")
    hf = _engine(None, "hf", base=cont)
    kw = dict(target_language="zh", mode="performance", seed=0, require_speech=False)

    rng = np.random.default_rng(0)
    wavs8, source = _sources([float(d) for d in rng.uniform(1.0, 2.5, 8)])
    cont.translate(wavs8[:2], **kw)  # warm-up
    hf.translate(wavs8[:1], **kw)
    if args.threads:  # loading the codec's CTranslate2/OpenMP runtime can reset torch's thread count
        torch.set_num_threads(args.threads)

    n, g = _gen(cont.translate(wavs8, **kw))
    batch = {"generated_tokens": n, "generate_s": g, "tokens_per_s": n / g, "decoder": dict(cont.last_stats)}
    n, g = _gen(hf.translate(wavs8, **kw))
    hf_batch = {"generated_tokens": n, "generate_s": g, "tokens_per_s": n / g}
    single = _one_at_a_time(hf, wavs8, **kw)

    wavs16, _ = _sources([float(d) for d in rng.uniform(0.5, 4.0, 16)])
    t = time.perf_counter()
    res16 = cont.translate(wavs16, **kw)
    wall16 = time.perf_counter() - t
    n, g = _gen(res16)
    mixed = {"source_s": [round(w.size / 16000, 2) for w in wavs16], "generated_tokens": n, "generate_s": g, "wall_s": wall16,
             "tokens_per_s": n / g, "decoder": dict(cont.last_stats)}
    mixed_single = _one_at_a_time(hf, wavs16, **kw)

    clip, _ = _sources([4.0])
    rtf_runs = [cont.translate(clip, target_language="zh", mode="quality", seed=s, require_speech=False)[0] for s in range(3)]
    best = min(rtf_runs, key=lambda r: r.timings["total"])
    rtf = {"source_s": best.source_duration_s, "mode": "quality", "output_tokens": best.output_tokens,
           "timings_s": {k: round(v, 4) for k, v in best.timings.items()}, "rtf": best.timings["total"] / best.source_duration_s,
           "rtf_runs": [r.timings["total"] / r.source_duration_s for r in rtf_runs], "target_rtf": 0.3}

    out = {
        "model": args.bundle or "random-init demo size (uniss_lm_tiny: hidden 256, 4 layers) + test codec",
        "inputs": source,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "batch8": {
            "source_s": [round(w.size / 16000, 2) for w in wavs8],
            "continuous": batch,
            "hf_generate_batched": hf_batch,
            "hf_generate_one_at_a_time": single,
            "speedup_vs_one_at_a_time": batch["tokens_per_s"] / single["tokens_per_s"],
            "speedup_vs_hf_batched": batch["tokens_per_s"] / hf_batch["tokens_per_s"],
            "target_speedup": 4.0,
        },
        "mixed16": {"continuous": mixed, "hf_generate_one_at_a_time": mixed_single,
                    "speedup_vs_one_at_a_time": mixed["tokens_per_s"] / mixed_single["tokens_per_s"]},
        "single_request": rtf,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
