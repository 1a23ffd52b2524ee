"""Where lite codec v3 loses intelligibility (issue 16): the vocoder ceiling vs the unit decoder.

Reads the UniST data of a finished demo workspace (``synthesize-unist`` output of the newest
``uniss retrain`` run under ``$UNISS_HOME/pipeline_root``, or ``--data DIR``) and measures, on its
test-split TARGET clips (held-out sentences; seen, held-out and real voices):

* **originals**: Whisper-base (``uniss.engines.asr.WhisperASR``) WER/CER and Speech-BLEU
  (``uniss.metrics``) of the reference target speech (the reference topline of the evaluation);
* **vocoder ceiling**: analysis mel -> MB-MelGAN (and Griffin-Lim), with the mel statistics
  estimated from the train/dev clips as the codec fit does (:func:`uniss.codecs.lite.vocoder.estimate_mel_stats`):
  what a perfect unit decoder would reach;
* **unit decoder**: a v3 codec fitted on the train/dev clips (``--preset``, ``--decoder-cpu-s``),
  then encode -> decode of the test clips: WER/CER, Speech-BLEU, resemblyzer cosine to the source
  clip, the decoder's train / validation / test L1 in the normalised mel space.

Every figure comes from one run on one machine; the JSON records the 1-minute load average (the
machine may be shared: every wall time is an upper bound then).

Run:  nice .venv/bin/python benchmarks/bench_unit_decoder.py [--decoder-cpu-s 300] [--skip-gl]
Writes ``benchmarks/results/unit_decoder_<tag>.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def demo_data_dir(arg: str | None) -> Path:
    """``arg`` as a path, else the UniST data of the newest ``uniss retrain`` run under
    ``$UNISS_HOME/pipeline_root`` (its ``synthesize-unist`` output). Exits with a message if none."""
    if arg:
        return Path(arg)
    from uniss.settings import get_settings

    runs = sorted(glob.glob(str(get_settings().home / "pipeline_root" / "uniss-retrain-*" / "synthesize-unist" / "unist")))
    if not runs:
        raise SystemExit("no synthesize-unist output under $UNISS_HOME/pipeline_root: run `make demo` or pass --data")
    return Path(runs[-1])


def copy_synthesis(wav: np.ndarray, stats: np.ndarray, vocoder: str) -> np.ndarray:
    """A clip's own analysis mel through a vocoder: ``(N,)`` float32 16 kHz -> ``(T_s * 320,)`` float32
    16 kHz, ``T_s = round(N / 320)`` (50 Hz units). The mel is the vocoder's own analysis mel
    (:func:`uniss.codecs.lite.vocoder.analysis_log_mel`: log10 at 80 frames/s, or HiFi-GAN's natural
    log at 86.13 frames/s), normalised with ``stats`` (``(2, 80)`` mean / std of that mel,
    :func:`uniss.codecs.lite.vocoder.estimate_mel_stats` or a codec's ``vocoder_stats``) and rendered by
    ``vocoder`` (``mbmelgan`` | ``griffinlim`` | ``hifigan``, :func:`uniss.codecs.lite.vocoder.render`):
    the ceiling of a perfect unit decoder."""
    from uniss.codecs.lite import vocoder as V

    t_s = round(len(wav) / 320)
    return V.render((V.analysis_log_mel(wav, t_s, vocoder) - stats[0]) / stats[1], t_s, vocoder, stats)


def _clips(df, side: str) -> list[np.ndarray]:
    from uniss.unist.io import decode_flac

    return [decode_flac(b) for b in df[f"{side}_audio"]]


def _score(asr, wavs: list[np.ndarray], texts: list[str], lang: str) -> dict:
    from uniss.metrics import corpus_bleu, error_rate

    hyps = asr.transcribe(list(wavs), lang)
    return {"error_rate": round(error_rate(texts, hyps, lang), 3), "speech_bleu": round(corpus_bleu(hyps, texts, lang).score, 1),
            "n": len(texts)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="UniST dataset directory (default: the newest demo run's)")
    ap.add_argument("--preset", default="demo-v3")
    ap.add_argument("--decoder-cpu-s", type=float, default=300.0, help="unit decoder budget (CPU-seconds)")
    ap.add_argument("--skip-gl", action="store_true", help="leave out the Griffin-Lim ceiling (slow)")
    ap.add_argument("--tag", default="demo")
    ap.add_argument("--alignment", default=None,
                    help="also fit on the speech rows of this phase-1 alignment corpus (alignment.parquet)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="codec config override key=value (e.g. decoder_dropout=0.1), repeatable")
    a = ap.parse_args(argv)

    import pandas as pd

    from uniss.codecs.lite import LiteCodecConfig, fit_lite_codec
    from uniss.codecs.lite import vocoder as V
    from uniss.engines.asr import WhisperASR
    from uniss.engines.speaker import SpeakerEncoder
    from uniss.metrics import cosine

    d = demo_data_dir(a.data)
    df = pd.concat([pd.read_parquet(f) for f in sorted(glob.glob(str(d / "shards" / "*.parquet")))], ignore_index=True)
    fit_df, test_df = df[df.split.isin(["train", "dev"])], df[df.split == "test"]
    fit_wavs = _clips(fit_df, "src") + _clips(fit_df, "tgt")
    if a.alignment:
        al = pd.read_parquet(a.alignment)
        al = al[al["kind"] == "speech"]
        fit_wavs += _clips(al, "src") + _clips(al, "tgt")
    overrides = {k: type(getattr(LiteCodecConfig(), k))(v) for k, v in (o.split("=", 1) for o in a.overrides)}
    asr, spk = WhisperASR(), SpeakerEncoder()
    out: dict = {"data": str(d), "alignment": a.alignment, "overrides": overrides, "fit_clips": len(fit_wavs), "fit_audio_s": round(sum(len(w) for w in fit_wavs) / 16000, 1),
                 "load_avg_1m_start": os.getloadavg()[0], "cpus": os.cpu_count(), "by_language": {}}

    stats = V.estimate_mel_stats([V.vocoder_log_mel(w) for w in fit_wavs])  # (2, 80)
    t0 = time.perf_counter()
    codec = fit_lite_codec(fit_wavs, LiteCodecConfig.preset(a.preset, decoder_cpu_s=a.decoder_cpu_s, train_steps=1_000_000,
                                                                   **overrides),
                           progress=False)
    out["fit_s"] = round(time.perf_counter() - t0, 1)
    out["codec_metrics"] = codec.metrics

    for lang in ("en", "zh"):
        sub = test_df[test_df.tgt_lang == lang]
        if sub.empty:
            continue
        wavs, texts = _clips(sub, "tgt"), sub.tgt_text.tolist()
        res: dict = {"original": _score(asr, wavs, texts, lang)}
        vocs = ["mbmelgan"] + ([] if a.skip_gl else ["griffinlim"])
        for voc in vocs:
            res[f"ceiling_{voc}"] = _score(asr, [copy_synthesis(w, stats, voc) for w in wavs], texts, lang)
        t0 = time.perf_counter()
        toks = codec.encode(wavs)
        t_enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        outs = [codec.decode(t.speaker, t.semantic) for t in toks]
        t_dec = time.perf_counter() - t0
        l1 = [float(np.abs(codec.decode_mel(t.speaker, t.semantic)
                           - (V.vocoder_log_mel(w, len(t.semantic)) - codec.vocoder_stats[0]) / codec.vocoder_stats[1]).mean())
              for t, w in zip(toks, wavs, strict=True)]
        cos = [cosine(x, y) for x, y in zip(spk.embed_batch(outs), spk.embed_batch(wavs), strict=True)]
        audio_s = sum(len(w) for w in wavs) / 16000
        res["unit_decoder"] = {**_score(asr, outs, texts, lang), "speaker_cosine": round(float(np.mean(cos)), 3),
                               "test_l1": round(float(np.mean(l1)), 3), "encode_x_realtime": round(audio_s / t_enc, 1),
                               "decode_x_realtime": round(audio_s / t_dec, 1)}
        out["by_language"][lang] = res
        print(lang, json.dumps(res))
    write_result(out, f"unit_decoder_{a.tag}")
    return out


def write_result(out: dict, name: str) -> Path:
    """Add the end-of-run 1-minute load average and write ``benchmarks/results/<name>.json``."""
    out["load_avg_1m_end"] = os.getloadavg()[0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
