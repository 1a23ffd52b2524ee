"""Tokenization speed and memory of the lite codec (issue 4 "Accept": >= 20x real time, all three
tokenizers together, on 2 cores; issue 16 raises it to >= 50x; each tokenizer reported
separately). Writes JSON.

``--windows packed,clip`` times the Whisper-dependent rows once per Whisper window mode
(``LiteCodecConfig.whisper_window``) on the same clips in one run, side by side (the codes differ
between the modes; only the speed is compared).

Speed = seconds of audio / wall seconds (a real-time factor "x"), after one warm-up call (model
loading is timed separately). Process CPU seconds and the 1-minute load average are recorded too,
since the machine may be shared. Peak RSS from ``resource.getrusage`` (Linux: KiB).

Run:  .venv/bin/python benchmarks/bench_codec.py --codec DIR   (a saved codec, e.g. from
      ``uniss codec fit`` or ``benchmarks/eval_codec.py --save-codec DIR``)
      .venv/bin/python benchmarks/bench_codec.py --fit-tiny     (fits a tiny codec first)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_codec import HELDOUT, RESULTS, SR, VOICES, corpus, train_sentences  # noqa: E402


def _timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec", type=Path, default=None)
    ap.add_argument("--fit-tiny", action="store_true", help="fit a tiny codec on a few clips first")
    ap.add_argument("--n-sentences", type=int, default=len(HELDOUT))
    ap.add_argument("--cache", type=Path, default=Path(__file__).resolve().parents[1] / ".uniss" / "cache" / "codec_eval")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_codec.json")
    ap.add_argument("--windows", default=None, help="comma list of Whisper window modes to time side by side "
                    "(packed,clip); default: the codec's own")
    args = ap.parse_args(argv)

    from uniss.codecs import load_codec
    from uniss.codecs.lite import LiteCodecConfig, fit_lite_codec, speaker_embedder, whisper_states

    t0 = time.perf_counter()
    whisper_states(), speaker_embedder()
    load_s = time.perf_counter() - t0
    if args.codec:
        codec = load_codec(args.codec)
    elif args.fit_tiny:
        tr = corpus(train_sentences(6), VOICES, args.cache, "train")
        codec = fit_lite_codec([w for *_, w in tr], LiteCodecConfig.tiny(), progress=True)
    else:
        ap.error("give --codec DIR or --fit-tiny")
    items = corpus(HELDOUT[: args.n_sentences], VOICES, args.cache, "heldout")
    wavs = [w for *_, w in items]
    audio_s = sum(len(w) for w in wavs) / SR
    codec.encode(wavs[:2])  # warm-up

    res: dict = {
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch_threads": __import__("torch").get_num_threads(),
        "codec_sizes": codec.sizes,
        "clips": len(wavs),
        "audio_s": round(audio_s, 2),
        "model_load_s": round(load_s, 2),
        "loadavg_1min_before": os.getloadavg()[0],
    }
    import dataclasses

    own = codec.config.whisper_window
    res["whisper_window"] = own
    runs = {
        "linguistic": lambda: codec.linguistic_batch(wavs),
        "speaker": lambda: [codec.speaker_codes_from_embedding(e) for e in speaker_embedder().embed_batch(wavs)],
        "semantic": lambda: [codec.semantic(w) for w in wavs],
        "all_three_encode": lambda: codec.encode(wavs),
    }
    modes = args.windows.split(",") if args.windows else [own]
    for name, fn in runs.items():
        for mode in modes if name in ("linguistic", "all_three_encode") else [own]:
            codec.config = dataclasses.replace(codec.config, whisper_window=mode)
            _, wall, cpu = _timed(fn)
            key = name if mode == own else f"{name}[{mode}]"
            res[key] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "x_real_time": round(audio_s / wall, 1)}
            print(f"{key:>26}: {audio_s / wall:7.1f}x real time ({wall:.2f} s wall, {cpu:.2f} s CPU)", file=sys.stderr)
        codec.config = dataclasses.replace(codec.config, whisper_window=own)
    sub = wavs[:8]
    sub_s = sum(len(w) for w in sub) / SR
    toks = codec.encode(sub)
    _, wall, cpu = _timed(lambda: [codec.decode(t.speaker, t.semantic) for t in toks])
    res[f"decode_{codec.config.vocoder}"] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "x_real_time": round(sub_s / wall, 1)}
    res["loadavg_1min_after"] = os.getloadavg()[0]
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    res["target_all_three_x>=20"] = res["all_three_encode"]["x_real_time"] >= 20
    res["target_all_three_x>=50"] = res["all_three_encode"]["x_real_time"] >= 50  # issue 16
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2), file=sys.stderr)
    return res


if __name__ == "__main__":
    main()
