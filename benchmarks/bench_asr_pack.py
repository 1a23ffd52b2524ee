"""Whisper ASR for the UniST filters: one 30 s window per utterance vs packed windows, same run.

Speaks ``--n`` demo sentences per language with the system TTS voices the demo source uses
(``uniss.unist.sources.pick_voices``), transcribes them with ``WhisperASR`` unpacked and packed
(``pack_s``), and reports per language: wall seconds and the ratio, corpus WER/CER of each against
the reference text, and how often the two agree on the data filter's keep/drop decision at the
``params.yaml`` thresholds (``data.src_max_error``), which is what packing must not change.

Run: ``python benchmarks/bench_asr_pack.py [--n 48] [--pack-s 28] [--out benchmarks/results/bench_asr_pack.json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48, help="utterances per language")
    ap.add_argument("--pack-s", type=float, default=28.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_asr_pack.json"))
    args = ap.parse_args()

    from uniss.engines.asr import WhisperASR, error_rate
    from uniss.engines.tts import SystemTTS
    from uniss.metrics import error_rate as corpus_error_rate
    from uniss.unist.lexicon import generate_pairs
    from uniss.unist.params import load_params
    from uniss.unist.sources import pick_voices

    params = load_params()
    tts = SystemTTS()
    pairs = generate_pairs({"train": args.n}, seed=123)
    plain = WhisperASR(beam_size=params.asr_beam_size)
    packed = WhisperASR(beam_size=params.asr_beam_size, pack_s=args.pack_s)
    report: dict = {"machine": platform.machine(), "n_per_language": args.n, "pack_s": args.pack_s,
                    "pack_gap_s": packed.pack_gap_s, "languages": {}}
    plain.transcribe([tts.synthesize("warm up", "en", pick_voices(tts.voices("en"), "en", 1)[0])], "en")
    for lang in ("en", "zh"):
        voices = pick_voices(tts.voices(lang), lang, 4)
        refs = [getattr(p, lang) for p in pairs]
        wavs = [tts.synthesize(r, lang, voices[i % len(voices)]) for i, r in enumerate(tqdm(refs, desc=f"tts {lang}"))]
        t = time.perf_counter()
        h_plain = plain.transcribe(wavs, lang, progress=True)
        s_plain = time.perf_counter() - t
        t = time.perf_counter()
        h_pack = packed.transcribe(wavs, lang, progress=True)
        s_pack = time.perf_counter() - t
        thr = params.src_max_error[lang]
        e_plain = [error_rate(r, h, lang) for r, h in zip(refs, h_plain, strict=True)]
        e_pack = [error_rate(r, h, lang) for r, h in zip(refs, h_pack, strict=True)]
        agree = sum((a <= thr) == (b <= thr) for a, b in zip(e_plain, e_pack, strict=True))
        report["languages"][lang] = {
            "voices": voices,
            "audio_s": sum(w.size for w in wavs) / 16000,
            "windows_packed": len(packed.pack_plan([w.size / 16000 for w in wavs])),
            "plain_s": s_plain, "packed_s": s_pack, "speedup": s_plain / s_pack,
            "corpus_error_plain": corpus_error_rate(refs, h_plain, lang),
            "corpus_error_packed": corpus_error_rate(refs, h_pack, lang),
            "threshold": thr,
            "kept_plain": sum(e <= thr for e in e_plain), "kept_packed": sum(e <= thr for e in e_pack),
            "keep_decision_agreement": agree / len(refs),
            "identical_transcripts": sum(a == b for a, b in zip(h_plain, h_pack, strict=True)) / len(refs),
            "examples_differing": [(r, a, b) for r, a, b in zip(refs, h_plain, h_pack, strict=True) if a != b][:5],
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
