"""Engine throughput: batched TranslationEngine (batch 8) vs one utterance at a time.

Paper Table 3 measures speed with HF ``generate`` called per utterance; the baseline here is the
same engine (same model, prompts, constrained decoding, sampling) called with one utterance per
``generate`` call. Tokens/s = generated tokens (up to and including ``<|im_end|>``, padding
excluded) / seconds spent in ``generate``. Also reports Quality vs Performance time per utterance
(paper §5.5: Performance about 1.07x faster).

Run: ``python benchmarks/bench_engine.py [--bundle DIR] [--out benchmarks/results/bench_engine.json]``.
Without ``--bundle`` it uses the random-init tiny model and test codec of
``tests/unit/serving/tiny_model.py`` (hidden 128, 2 layers).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]


def _engine(bundle: str | None):
    if bundle:
        from registry.models import resolve_model_source
        from serving.engine import TranslationEngine

        return TranslationEngine.load(resolve_model_source(bundle)), f"bundle:{bundle}"
    sys.path.insert(0, str(ROOT / "tests" / "unit" / "serving"))
    import tiny_model as tm

    return tm.tiny_engine(seed=0, hidden=128, layers=2), "random-init tiny (hidden 128, 2 layers) + test codec"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_engine.json"))
    args = ap.parse_args()
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "unit" / "serving"))
    import tiny_model as tm

    engine, model_desc = _engine(args.bundle)
    rng = np.random.default_rng(0)
    wavs = [tm.tone(float(d), float(f)) for d, f in zip(rng.uniform(0.6, 1.2, args.batch), rng.uniform(120, 300, args.batch), strict=True)]
    kw = dict(target_language="zh", mode="performance", seed=0, require_speech=False)  # tones, not speech: generation throughput only
    engine.translate(wavs[:2], **kw)  # warm-up

    def gen_tokens(results):
        return sum(r.output_tokens for r in results)

    t = time.perf_counter()
    res_b = engine.translate(wavs, **kw)
    batch_s = res_b[0].timings["generate"]
    batch_wall = time.perf_counter() - t
    tok_b = gen_tokens(res_b)

    single_gen_s, tok_s, single_wall = 0.0, 0, 0.0
    for w in tqdm(wavs, desc="one at a time"):
        t = time.perf_counter()
        r = engine.translate([w], **kw)[0]
        single_wall += time.perf_counter() - t
        single_gen_s += r.timings["generate"]
        tok_s += r.output_tokens

    modes = {}
    for mode in ("quality", "performance"):
        t = time.perf_counter()
        rs = engine.translate(wavs, target_language="zh", mode=mode, seed=0, require_speech=False)
        modes[mode] = {"s_per_utt": (time.perf_counter() - t) / len(wavs), "tokens_per_utt": gen_tokens(rs) / len(wavs)}

    out = {
        "model": model_desc,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "batch": args.batch,
        "source_s": [round(w.shape[0] / 16000, 3) for w in wavs],
        "batched": {"generated_tokens": tok_b, "generate_s": batch_s, "wall_s": batch_wall, "tokens_per_s": tok_b / batch_s},
        "one_at_a_time": {"generated_tokens": tok_s, "generate_s": single_gen_s, "wall_s": single_wall, "tokens_per_s": tok_s / single_gen_s},
        "speedup_tokens_per_s": (tok_b / batch_s) / (tok_s / single_gen_s),
        "target_speedup": 4.0,
        "modes": modes,
        "performance_vs_quality_speedup": modes["quality"]["s_per_utt"] / modes["performance"]["s_per_utt"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
