"""Speech front-end benchmark (issue "Speech front-end" items 1-2): writes
``benchmarks/results/bench_engines.json``.

Measures, on this machine (CPU):
  * TTS: seconds per utterance and synthesis real-time factor per voice and per family
    (flite, festival, espeak-ng English, espeak-ng Mandarin via pinyin).
  * Intelligibility of each voice: Whisper-base (beam 1) corpus WER (en) / CER (zh) against the
    text it was asked to say (paper App. C normalisation, ``uniss.engines.asr.error_rate``).
  * ASR speed: real-time factor of ``WhisperASR.transcribe`` batched vs ``transcribe_one`` looped,
    over the 5 LibriVox recordings + TTS clips, and the agreement (WER of batch vs one-by-one) and
    WER of both against the LibriVox references.
  * Speaker similarity (resemblyzer cosine): same voice / different sentences vs different voices.
  * ``load_audio`` rejection time of a 10-minute file with ``max_duration_s=30``.

Run:  .venv/bin/python benchmarks/bench_engines.py            (about 5 min on 2 idle cores)
      .venv/bin/python benchmarks/bench_engines.py --quick    (2 sentences, fewer voices)
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from uniss.audio import SAMPLE_RATE_HZ, AudioTooLongError, duration_s, load_audio  # noqa: E402
from uniss.engines.asr import WhisperASR, error_rate  # noqa: E402
from uniss.engines.speaker import SpeakerEncoder  # noqa: E402
from uniss.engines.tts import SystemTTS  # noqa: E402
from uniss.metrics import error_rate as corpus_error_rate  # noqa: E402
from uniss.unist.readers import LIBRIVOX_DIR as LIBRIVOX  # noqa: E402 - Debian pocketsphinx-testdata


EN = ["He opened the window and looked at the garden.",
      "We will meet at the station tomorrow morning.",
      "The price of bread has gone up again this year.",
      "My sister is learning to play the piano.",
      "Please turn off the lights before you go to bed.",
      "The museum is closed on Mondays and public holidays."]
ZH = ["我喜欢喝茶。", "这本书非常有意思。", "明天早上我们在车站见面。",
      "今年面包的价格又上涨了。", "我妹妹正在学习弹钢琴。", "睡觉前请把灯关掉。"]

VOICES_FULL = {
    "en": ["flite:slt", "flite:awb", "flite:rms", "flite:kal16", "festival:kal_diphone", "festival:ked_diphone",
           "festival:cmu_us_slt_arctic_hts", "espeak:en-us", "espeak:en-us+m3", "espeak:en-gb", "espeak:en-gb+f3"],
    "zh": ["espeak:cmn-latn-pinyin", "espeak:cmn-latn-pinyin+m3", "espeak:cmn-latn-pinyin+f1",
           "espeak:cmn-latn-pinyin+f3", "espeak:cmn-latn-pinyin+f5"],
}
VOICES_QUICK = {"en": ["flite:slt", "festival:kal_diphone", "espeak:en-us"], "zh": ["espeak:cmn-latn-pinyin+f3"]}


def family(voice: str) -> str:
    fam = voice.split(":", 1)[0]
    return "espeak-zh" if "cmn" in voice else ("espeak-en" if fam == "espeak" else fam)


def librivox() -> list[tuple[str, np.ndarray, str]]:
    refs = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, cid = line.rpartition("(")
        refs[cid.strip(" )")] = text.replace("<s>", "").replace("</s>", "").strip()
    return [(c, load_audio(LIBRIVOX / f"{c}.wav"), refs[c]) for c in sorted(refs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 sentences per language, 4 voices")
    ap.add_argument("--beam-size", type=int, default=1)
    ap.add_argument("--sentences", type=int, default=len(EN), help="sentences per language (max 6)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_engines.json")
    args = ap.parse_args()
    n_sent = 2 if args.quick else max(2, min(args.sentences, len(EN)))
    voices = VOICES_QUICK if args.quick else VOICES_FULL
    tts, asr = SystemTTS(), WhisperASR(beam_size=args.beam_size)
    res: dict = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
                 "asr": {"model": "whisper-base ct2 int8", "beam_size": args.beam_size}}

    # --- TTS speed and intelligibility per voice
    per_voice, clips = {}, {}
    for lang in ("en", "zh"):
        sents = (EN if lang == "en" else ZH)[:n_sent]
        for v in tqdm(voices[lang], desc=f"tts {lang}", unit="voice"):
            wavs, secs = [], []
            for s in sents:
                t0 = time.perf_counter()
                wavs.append(tts.synthesize(s, lang, v))
                secs.append(time.perf_counter() - t0)
            clips[v] = wavs
            t0 = time.perf_counter()
            hyps = asr.transcribe(wavs, lang)
            asr_s = time.perf_counter() - t0
            audio_s = sum(duration_s(w) for w in wavs)
            per_voice[v] = {"language": lang, "family": family(v), "utterances": len(sents),
                            "tts_s_per_utt": float(np.mean(secs)), "tts_rtf": float(sum(secs) / audio_s),
                            "audio_s_per_utt": audio_s / len(sents),
                            "error_rate": corpus_error_rate(sents, hyps, lang), "metric": "wer" if lang == "en" else "cer",
                            "asr_rtf": asr_s / audio_s, "hyps": hyps}
    fam: dict = {}
    for v, r in per_voice.items():
        fam.setdefault(r["family"], []).append(r)
    res["tts_voices"] = per_voice
    res["tts_families"] = {f: {"voices": len(rs), "tts_s_per_utt": float(np.mean([r["tts_s_per_utt"] for r in rs])),
                               "error_rate_mean": float(np.mean([r["error_rate"] for r in rs])),
                               "error_rate_min": float(min(r["error_rate"] for r in rs)),
                               "error_rate_max": float(max(r["error_rate"] for r in rs)),
                               "metric": rs[0]["metric"]} for f, rs in fam.items()}

    # --- ASR batched vs one-by-one
    lv = librivox()
    wavs = [w for _, w, _ in lv] + [w for v in voices["en"][:3] for w in clips[v]]
    audio_s = sum(duration_s(w) for w in wavs)
    asr.transcribe(wavs[:1], "en")  # warm-up (model load)
    t0 = time.perf_counter()
    batch = asr.transcribe(wavs, "en")
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [asr.transcribe_one(w, "en") for w in tqdm(wavs, desc="asr one-by-one", unit="utt")]
    t_single = time.perf_counter() - t0
    refs = [r for _, _, r in lv]
    res["asr_speed"] = {"utterances": len(wavs), "audio_s": audio_s, "batch_size": asr.batch_size,
                        "rtf_batched": t_batch / audio_s, "rtf_one_by_one": t_single / audio_s,
                        "speedup": t_single / t_batch,
                        "batch_vs_single_wer": corpus_error_rate(single, batch, "en"),
                        "identical": int(sum(a == b for a, b in zip(batch, single))),
                        "librivox_wer_batched": corpus_error_rate(refs, batch[:len(lv)], "en"),
                        "librivox_wer_one_by_one": corpus_error_rate(refs, single[:len(lv)], "en")}

    # --- speaker similarity
    enc = SpeakerEncoder()
    en_voices = voices["en"]
    emb = {v: [enc.embed(w) for w in clips[v][:2]] for v in tqdm(en_voices, desc="speaker", unit="voice")}
    same = [float(emb[v][0] @ emb[v][1]) for v in en_voices if len(emb[v]) > 1]
    diff = [float(emb[a][0] @ emb[b][1]) for a, b in itertools.permutations(en_voices, 2)]
    res["speaker_cosine"] = {"voices": en_voices, "same_voice_mean": float(np.mean(same)),
                             "same_voice_min": float(np.min(same)), "different_voice_mean": float(np.mean(diff)),
                             "different_voice_max": float(np.max(diff)),
                             "separable": bool(np.min(same) > np.max(diff))}

    # --- 10-minute file rejection
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "long.flac"
        sf.write(p, (0.01 * np.random.default_rng(0).standard_normal(600 * SAMPLE_RATE_HZ)).astype(np.float32),
                 SAMPLE_RATE_HZ, subtype="PCM_16")
        t0 = time.perf_counter()
        try:
            load_audio(p, max_duration_s=30)
        except AudioTooLongError:
            pass
        t_reject = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = load_audio(p).size
        t_full = time.perf_counter() - t0
    res["audio"] = {"reject_10min_s": t_reject, "load_10min_s": t_full, "load_10min_samples": int(n)}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False))
    print(json.dumps({k: res[k] for k in ("tts_families", "asr_speed", "speaker_cosine", "audio")}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
