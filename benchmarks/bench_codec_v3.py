"""Lite codec v3 benchmark (issue 16): fit on TTS clips, round trip on held-out sentences AND voices.

Data: sentence pairs from the demo lexicon (``uniss.unist.lexicon.generate_pairs``), spoken by the
system voices (``uniss.engines.tts.SystemTTS``); Kokoro voices too when ``uniss/engines/kokoro.py``
exists (``--kokoro``, slow on CPU). Training voices and held-out voices are disjoint.

Figures (JSON to ``benchmarks/results/codec_v3_<tag>.json``):
* intelligibility: Whisper-base (beam 1) WER (en) / CER (zh) and Speech-BLEU (``uniss.metrics``) of
  the originals and of the codec round trip (encode -> decode) against the reference text;
* voice: resemblyzer cosine of the round trip to its source;
* content units: normalised edit distance of semantic token strings, same sentence / other voice vs
  other sentence / same voice (acceptance: same-sentence <= 0.6);
* speed: each tokenizer stream (shared Whisper pass = semantic + linguistic, speaker) and the whole
  ``encode`` in x real time; decode in x real time; fit time and stages;
* the 1-minute load average and CPU count (the machine may be shared: every wall time is an upper
  bound then).

Run:  nice .venv/bin/python benchmarks/bench_codec_v3.py [--n-train 200] [--decoder-cpu-s 240]
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

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SR = 16000
#: Training voices (system TTS), per language.
TRAIN_VOICES = {
    "en": ["flite:awb", "flite:rms", "flite:kal16", "festival:ked_diphone", "espeak:en-us+m3", "espeak:en-gb+f3"],
    "zh": ["espeak:cmn-latn-pinyin+m1", "espeak:cmn-latn-pinyin+f3"],
}
#: Held-out voices (never in training).
TEST_VOICES = {"en": ["flite:slt", "festival:cmu_us_slt_arctic_hts", "espeak:en-us+f2"], "zh": ["espeak:cmn-latn-pinyin+f2"]}


def _data(n_train: int, n_test_en: int, n_test_zh: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    from uniss.engines.tts import SystemTTS
    from uniss.unist import lexicon

    pairs = lexicon.generate_pairs({"train": n_train, "dev": 0, "test": n_test_en + n_test_zh}, seed=seed)
    tts = SystemTTS()
    rng = np.random.default_rng(seed + 1)
    train, test = [], []
    tr = [p for p in pairs if p.split == "train"]
    te = [p for p in pairs if p.split == "test"]
    for i, p in enumerate(tr):
        lang = "zh" if i % 4 == 0 else "en"
        v = TRAIN_VOICES[lang][int(rng.integers(len(TRAIN_VOICES[lang])))]
        text = p.zh if lang == "zh" else p.en
        train.append({"text": text, "lang": lang, "voice": v, "sent": i, "wav": tts.synthesize(text, lang, v)})
    for j, p in enumerate(te):
        lang = "en" if j < n_test_en else "zh"
        text = p.en if lang == "en" else p.zh
        for v in TEST_VOICES[lang]:
            test.append({"text": text, "lang": lang, "voice": v, "sent": j, "wav": tts.synthesize(text, lang, v)})
    return train, test


def _kokoro_clips(items: list[dict], voices: list[str]) -> list[dict]:
    """Optional: the same texts in Kokoro voices (when the engine exists in this tree)."""
    try:
        from uniss.engines import kokoro  # type: ignore[attr-defined]
    except ImportError:
        return []
    out = []
    eng = kokoro.KokoroTTS()  # pragma: no cover - depends on the merged engine
    for k, it in enumerate(items):
        v = voices[k % len(voices)]
        out.append({**it, "voice": f"kokoro:{v}", "wav": eng.synthesize(it["text"], it["lang"], v)})
    return out


def _transcribe(wavs: list[np.ndarray], langs: list[str]) -> list[str]:
    from faster_whisper import WhisperModel

    from uniss.settings import get_settings

    m = WhisperModel(str(get_settings().whisper_dir), device="cpu", compute_type="int8", cpu_threads=2)
    out = []
    for w, lang in zip(wavs, langs, strict=True):
        segs, _ = m.transcribe(w.astype(np.float32), language=lang, beam_size=1, condition_on_previous_text=False,
                               vad_filter=False)
        out.append("".join(s.text for s in segs).strip())
    return out


def _scores(items: list[dict], hyps: list[str]) -> dict:
    from uniss.metrics import corpus_bleu, error_rate

    out: dict = {}
    for lang in ("en", "zh"):
        idx = [i for i, it in enumerate(items) if it["lang"] == lang]
        if not idx:
            continue
        refs, hs = [items[i]["text"] for i in idx], [hyps[i] for i in idx]
        out[f"{lang}_{'wer' if lang == 'en' else 'cer'}"] = round(error_rate(refs, hs, lang), 3)
        out[f"{lang}_speech_bleu"] = round(corpus_bleu(hs, refs, lang).score, 1)
        out[f"{lang}_n"] = len(idx)
    return out


def _edit_distances(items: list[dict], codes: list[np.ndarray]) -> dict:
    """Mean normalised Levenshtein distance of semantic token strings (rapidfuzz)."""
    from rapidfuzz.distance import Levenshtein

    same_sent, same_voice = [], []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            a, b = items[i], items[j]
            if a["lang"] != b["lang"]:
                continue
            d = Levenshtein.normalized_distance(codes[i].tolist(), codes[j].tolist())
            if a["sent"] == b["sent"] and a["voice"] != b["voice"]:
                same_sent.append(d)
            elif a["sent"] != b["sent"] and a["voice"] == b["voice"]:
                same_voice.append(d)
    return {
        "same_sentence_other_voice": round(float(np.mean(same_sent)), 3) if same_sent else None,
        "other_sentence_same_voice": round(float(np.mean(same_voice)), 3) if same_voice else None,
        "pairs": [len(same_sent), len(same_voice)],
        "accept_same_sentence_le_0_6": bool(same_sent) and float(np.mean(same_sent)) <= 0.6,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=200, help="training sentences (one training voice each)")
    ap.add_argument("--n-test-en", type=int, default=8, help="held-out EN sentences (x 3 held-out voices)")
    ap.add_argument("--n-test-zh", type=int, default=4, help="held-out ZH sentences (x 1 held-out voice)")
    ap.add_argument("--preset", default="demo-v3")
    ap.add_argument("--k", type=int, default=None, help="override K_s")
    ap.add_argument("--decoder-cpu-s", type=float, default=None, help="override the decoder CPU-time budget")
    ap.add_argument("--kokoro", action="store_true", help="add Kokoro clips (if uniss/engines/kokoro.py exists)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--save-codec", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from uniss.codecs.lite import LiteCodecConfig, fit_lite_codec, speaker_embedder, whisper_states

    torch.set_num_threads(2)
    info: dict = {"host": platform.node(), "cpus": os.cpu_count(), "load_avg_start": os.getloadavg(),
                  "argv": vars(args) | {"save_codec": str(args.save_codec)}}
    t0 = time.perf_counter()
    train, test = _data(args.n_train, args.n_test_en, args.n_test_zh)
    if args.kokoro:
        test += _kokoro_clips(test[:: len(TEST_VOICES["en"])], ["jf_nezumi", "jf_tebukuro"])
    info["synth_s"] = round(time.perf_counter() - t0, 1)
    info["train"] = {"clips": len(train), "audio_s": round(sum(len(x["wav"]) for x in train) / SR, 1)}
    info["test"] = {"clips": len(test), "audio_s": round(sum(len(x["wav"]) for x in test) / SR, 1),
                    "voices": sorted({x["voice"] for x in test})}

    over = {}
    if args.k:
        over["semantic_size"] = args.k
    if args.decoder_cpu_s is not None:
        over["decoder_cpu_s"] = args.decoder_cpu_s
    cfg = LiteCodecConfig.preset(args.preset, **over)
    whisper_states(), speaker_embedder()  # load models outside the timed regions
    c0, t0 = time.process_time(), time.perf_counter()
    codec = fit_lite_codec([x["wav"] for x in train], cfg, progress=False)
    info["fit"] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
                   "config": cfg.to_dict(), "metrics": codec.metrics, "sizes": codec.sizes}
    if args.save_codec:
        codec.save(args.save_codec)

    wavs = [x["wav"] for x in test]
    audio_s = sum(len(w) for w in wavs) / SR
    ws = whisper_states()
    speed = {}
    t0 = time.perf_counter()
    ws.states_with_positions(wavs, cfg.whisper_batch)
    speed["whisper_pass_semantic_plus_linguistic_x"] = round(audio_s / (time.perf_counter() - t0), 1)
    t0 = time.perf_counter()
    speaker_embedder().embed_batch(wavs)
    speed["speaker_x"] = round(audio_s / (time.perf_counter() - t0), 1)
    t0 = time.perf_counter()
    toks = codec.encode(wavs)
    speed["encode_all_three_x"] = round(audio_s / (time.perf_counter() - t0), 1)
    decoded = []
    t0 = time.perf_counter()
    for t in toks:
        decoded.append(codec.decode(t.speaker, t.semantic))
    speed["decode_x"] = round(audio_s / (time.perf_counter() - t0), 1)
    speed["load_avg_during"] = os.getloadavg()
    info["speed"] = speed
    info["duration_exact"] = all(len(d) == len(t.semantic) * 320 for d, t in zip(decoded, toks, strict=True))

    langs = [x["lang"] for x in test]
    h_orig, h_dec = _transcribe(wavs, langs), _transcribe(decoded, langs)
    emb_src, emb_dec = speaker_embedder().embed_batch(wavs), speaker_embedder().embed_batch(decoded)
    info["original"] = _scores(test, h_orig)
    info["round_trip"] = _scores(test, h_dec) | {"speaker_cos_to_source": round(float((emb_src * emb_dec).sum(1).mean()), 3)}
    info["semantic_edit_distance"] = _edit_distances(test, [t.semantic for t in toks])
    info["examples"] = [{"voice": x["voice"], "ref": x["text"], "orig": a, "decoded": b}
                        for x, a, b in list(zip(test, h_orig, h_dec, strict=True))[:6]]
    info["load_avg_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = args.tag or f"{args.preset}_k{codec.sizes['semantic']}"
    out = RESULTS / f"codec_v3_{tag}.json"
    out.write_text(json.dumps(info, indent=1, ensure_ascii=False, default=float) + "\n")
    print(json.dumps({k: info[k] for k in ("fit", "speed", "original", "round_trip", "semantic_edit_distance")},
                     default=float, ensure_ascii=False)[:3000])
    print("->", out)
    return info


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
