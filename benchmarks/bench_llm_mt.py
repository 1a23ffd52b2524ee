"""LLM MT (``uniss.engines.llm_mt.LocalChatMT``, Qwen2.5-Coder-0.5B-Instruct, App. E.2 prompt, greedy)
on demo sentences: per direction, corpus BLEU of the cleaned translations against the lexicon's
reference translations (``uniss.metrics.corpus_bleu``; a dropped output scores as empty), the share
dropped by the App. E.2 clean-up (with the reasons), and seconds per sentence (wall, batched).

Usage: ``nice -n 15 python benchmarks/bench_llm_mt.py [--n 50] [--threads 1] [--batch-size 8]
[--out benchmarks/results/llm_mt.json]`` (needs ``python scripts/install_models.py --only qwen2.5-0.5b``).
Sentences: the first ``n`` pairs of the demo generator's ``test`` split (``uniss.unist.lexicon.generate_pairs``,
seed 0); the same pairs in both directions. No reply cache (every sentence is generated).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uniss.engines.llm_mt import LocalChatMT  # noqa: E402
from uniss.engines.mt import clean_translation  # noqa: E402
from uniss.metrics import corpus_bleu  # noqa: E402
from uniss.unist.lexicon import generate_pairs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", default="benchmarks/results/llm_mt.json")
    args = ap.parse_args()

    pairs = generate_pairs({"test": args.n}, seed=0)
    t0 = time.perf_counter()
    eng = LocalChatMT(batch_size=args.batch_size, threads=args.threads)
    eng._load()
    res: dict = {"engine": eng.cache_id(), "n": args.n, "threads": args.threads, "batch_size": args.batch_size,
                 "load_s": round(time.perf_counter() - t0, 2), "load_average_before": os.getloadavg(),
                 "directions": {}}
    for src, tgt in (("zh", "en"), ("en", "zh")):
        texts = [getattr(p, src) for p in pairs]
        refs = [getattr(p, tgt) for p in pairs]
        t0 = time.perf_counter()
        raw = eng.translate(texts, src, tgt)
        dt = time.perf_counter() - t0
        cleaned, reasons = [], []
        for r in raw:
            try:
                cleaned.append(clean_translation(r, tgt))
            except Exception as e:  # noqa: BLE001 - counted as dropped, reason kept
                cleaned.append("")
                reasons.append(type(e).__name__)
        kept = [(h, r) for h, r in zip(cleaned, refs, strict=True) if h]
        bleu_all = corpus_bleu(cleaned, refs, tgt)
        res["directions"][f"{src}-{tgt}"] = {
            "bleu": round(bleu_all.score, 2),
            "bleu_kept_only": round(corpus_bleu([h for h, _ in kept], [r for _, r in kept], tgt).score, 2) if kept else None,
            "signature": bleu_all.signature,
            "dropped_share": round(len(reasons) / len(raw), 3),
            "dropped_reasons": {k: reasons.count(k) for k in sorted(set(reasons))},
            "changed_by_cleanup_share": round(sum(c != r.strip() for c, r in zip(cleaned, raw, strict=True) if c) / len(raw), 3),
            "s_per_sentence": round(dt / len(texts), 3),
            "examples": [{"src": s, "ref": r, "raw": w, "clean": c}
                         for s, r, w, c in list(zip(texts, refs, raw, cleaned, strict=True))[:5]],
        }
    res["load_average_after"] = os.getloadavg()
    print(json.dumps(res, indent=1, ensure_ascii=False))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
