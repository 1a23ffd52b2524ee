"""Kokoro-82M / Piper joe against the system voices: compute per audio second (1 thread), Whisper-base
WER/CER, resemblyzer cosine EN vs ZH of one voice vs two voices, DNSMOS P.808.

Usage: ``python benchmarks/bench_kokoro.py [--out results.json]`` (needs ``make models``).
Prints one JSON object. CPU seconds are ``time.process_time`` of the synthesis call.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uniss.audio import duration_s  # noqa: E402
from uniss.engines.asr import WhisperASR, error_rate  # noqa: E402
from uniss.engines.kokoro import KokoroTTS, PiperTTS  # noqa: E402
from uniss.engines.mos import DNSMOS  # noqa: E402
from uniss.engines.speaker import SpeakerEncoder  # noqa: E402
from uniss.engines.tts import SystemTTS  # noqa: E402

EN = ["He opened the window and looked at the garden.", "We will meet at the station tomorrow morning.",
      "The children are playing football in the park.", "Please turn off the lights before you leave.",
      "My sister bought a new bicycle last week.", "It has been raining since early this morning.",
      "The doctor said I should drink more water.", "Our train was delayed by twenty minutes.",
      "She reads a book every night before bed.", "Could you tell me where the library is?"]
ZH = ["我喜欢喝茶。", "这本书非常有意思。", "明天早上我们在车站见面。", "孩子们在公园里踢足球。",
      "离开之前请把灯关掉。", "我姐姐上个星期买了一辆新自行车。", "从今天早上开始一直在下雨。",
      "医生说我应该多喝水。", "我们的火车晚点了二十分钟。", "你能告诉我图书馆在哪里吗？"]
VOICES = ["kokoro:jf_alpha", "kokoro:jm_kumo", "kokoro:jf_nezumi", "kokoro:mix-jf_gongitsune-jm_kumo-0.7"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    k, piper, sys_tts = KokoroTTS(threads=1), PiperTTS(threads=1), SystemTTS()
    asr, enc, mos = WhisperASR(beam_size=1), SpeakerEncoder(), DNSMOS(threads=1)
    res: dict = {}
    wavs: dict[tuple[str, str, int], np.ndarray] = {}
    cpu = aud = 0.0
    k.synthesize(EN[0], "en", VOICES[0]); k.synthesize(ZH[0], "zh", VOICES[0])  # warm-up (G2P load)
    for lang, sents in (("en", EN), ("zh", ZH)):
        for i, s in enumerate(sents):
            for v in VOICES:
                c0 = time.process_time()
                wavs[(lang, v, i)] = k.synthesize(s, lang, v)
                cpu += time.process_time() - c0
                aud += duration_s(wavs[(lang, v, i)])
    res["kokoro_cpu_s_per_audio_s_1thread"] = cpu / aud
    for lang, sents in (("en", EN), ("zh", ZH)):
        per_voice = {}
        for v in VOICES:
            hyps = asr.transcribe([wavs[(lang, v, i)] for i in range(len(sents))], lang)
            per_voice[v] = float(np.mean([error_rate(r, h, lang) for r, h in zip(sents, hyps, strict=True)]))
        res[f"kokoro_whisper_{'wer' if lang == 'en' else 'cer'}_{lang}"] = per_voice
    emb = {key: enc.embed(w) for key, w in wavs.items()}

    def cos(a, b):
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    same = {v: float(np.mean([cos(emb[("en", v, i)], emb[("zh", v, j)]) for i in range(5) for j in range(5)]))
            for v in VOICES}
    diff = {f"{a}|{b}": float(np.mean([cos(emb[("en", a, i)], emb[("en", b, j)]) for i in range(5) for j in range(5)]))
            for a, b in itertools.combinations(VOICES, 2)}
    res["speaker_cos_same_voice_en_vs_zh"] = same
    res["speaker_cos_two_voices_en"] = diff
    c0 = time.process_time()
    pw = [piper.synthesize(s, "en", PiperTTS.VOICE) for s in EN]
    res["piper_cpu_s_per_audio_s_1thread"] = (time.process_time() - c0) / sum(duration_s(w) for w in pw)
    res["piper_whisper_wer_en"] = float(np.mean([error_rate(r, h, "en") for r, h in zip(EN, asr.transcribe(pw, "en"))]))
    groups = {"kokoro_en": [wavs[("en", VOICES[i % 4], i)] for i in range(10)],
              "kokoro_zh": [wavs[("zh", VOICES[i % 4], i)] for i in range(10)], "piper_en": pw,
              "flite_slt_en": [sys_tts.synthesize(s, "en", "flite:slt") for s in EN],
              "espeak_en_us": [sys_tts.synthesize(s, "en", "espeak:en-us") for s in EN],
              "espeak_cmn_f3_zh": [sys_tts.synthesize(s, "zh", "espeak:cmn-latn-pinyin+f3") for s in ZH]}
    mos.score(groups["piper_en"][:1])  # warm-up (librosa)
    c0, n = time.process_time(), 0.0
    for name, ws in groups.items():
        res[f"dnsmos_p808_{name}"] = float(np.mean(mos.score(ws)))
        n += sum(duration_s(w) for w in ws)
    res["dnsmos_cpu_s_per_audio_s"] = (time.process_time() - c0) / n
    print(json.dumps(res, indent=1, ensure_ascii=False))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
