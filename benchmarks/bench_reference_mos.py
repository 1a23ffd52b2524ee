"""Reference-target quality, old data vs new, side by side in one run: the demo corpus's target speech
spoken by the system voices it used before (flite/espeak English, espeak ``cmn-latn-pinyin+f3``
Mandarin, each target in another voice than its source) and by Kokoro in the source's own voice.

For the same demo-lexicon sentence pairs (EN->ZH and ZH->EN) it reports per engine and direction:
DNSMOS P.808 of the target (``uniss.engines.mos.DNSMOS``), Whisper-base error rate of the target
(WER en / CER zh, ``uniss.engines.asr``), resemblyzer cosine target vs source
(``uniss.engines.speaker.SpeakerEncoder``), and TTS compute per audio second.

Usage: ``python benchmarks/bench_reference_mos.py [--pairs 8] [--out benchmarks/results/reference_mos.json]``
(needs ``make setup``). Writes one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uniss.audio import duration_s  # noqa: E402
from uniss.engines.asr import WhisperASR, error_rate  # noqa: E402
from uniss.engines.kokoro import KokoroTTS  # noqa: E402
from uniss.engines.mos import DNSMOS  # noqa: E402
from uniss.engines.speaker import SpeakerEncoder  # noqa: E402
from uniss.engines.tts import SystemTTS  # noqa: E402
from uniss.unist import lexicon  # noqa: E402

#: The voices the demo corpus used before Kokoro (uniss.unist.sources.PREFERRED_VOICES, system part).
SYSTEM_VOICES = {"en": ["flite:slt", "espeak:en-us"], "zh": ["espeak:cmn-latn-pinyin+f3", "espeak:cmn-latn-pinyin+f1"]}
KOKORO_VOICES = ["kokoro:jf_alpha", "kokoro:jm_kumo", "kokoro:mix-jf_nezumi-jm_kumo-0.3", "kokoro:jf_tebukuro"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=8, help="sentence pairs per direction")
    ap.add_argument("--out", default="benchmarks/results/reference_mos.json")
    args = ap.parse_args()
    pairs = lexicon.generate_pairs({"test": 2 * args.pairs}, seed=42)
    engines = {"system": SystemTTS(), "kokoro": KokoroTTS(threads=2)}
    asr, enc, mos = WhisperASR(beam_size=1), SpeakerEncoder(), DNSMOS()
    res: dict = {"pairs_per_direction": args.pairs}
    for name, tts in engines.items():
        cpu = aud = 0.0
        for d, (src, tgt) in enumerate((("en", "zh"), ("zh", "en"))):
            sub = pairs[d * args.pairs:(d + 1) * args.pairs]
            src_w, tgt_w = [], []
            for i, p in enumerate(sub):
                text = {"en": p.en, "zh": p.zh}
                if name == "system":  # the old data: another voice on the target side
                    vs, vt = SYSTEM_VOICES[src][i % 2], SYSTEM_VOICES[tgt][(i + 1) % 2]
                else:  # voice preserved
                    vs = vt = KOKORO_VOICES[i % len(KOKORO_VOICES)]
                src_w.append(tts.synthesize(text[src], src, vs))
                c0 = time.process_time()
                tgt_w.append(tts.synthesize(text[tgt], tgt, vt))
                cpu += time.process_time() - c0
                aud += duration_s(tgt_w[-1])
            hyps = asr.transcribe(tgt_w, tgt)
            refs = [p.zh if tgt == "zh" else p.en for p in sub]
            key = f"{name}.{src}-{tgt}"
            res[f"{key}.dnsmos_p808"] = float(np.mean(mos.score(tgt_w)))
            res[f"{key}.target_error_rate"] = float(np.mean([error_rate(r, h, tgt) for r, h in zip(refs, hyps, strict=True)]))
            res[f"{key}.speaker_cos_target_vs_source"] = float(np.mean(
                [enc.similarity(a, b) for a, b in zip(src_w, tgt_w, strict=True)]))
        res[f"{name}.tts_cpu_s_per_audio_s"] = cpu / aud
    for d in ("en-zh", "zh-en"):
        res[f"ratio.{d}.dnsmos_kokoro_over_system"] = res[f"kokoro.{d}.dnsmos_p808"] / res[f"system.{d}.dnsmos_p808"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
