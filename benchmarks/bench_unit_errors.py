"""Which semantic-stream errors the lite codec tolerates (issue 16): a guide to the LM's target format.

The demo LM keeps the unit order of the 50 Hz semantic stream but gets run lengths off by a frame
and substitutes units where the unit changes (free-running de-duplicated unit error rate 0.68 on the
demo data, 2026-12-04). This benchmark asks, with no LM in the loop, how much Speech-BLEU each kind
of error costs once the codec renders it. It reads a fitted codec bundle (default: the demo's
``$UNISS_HOME/data-registry/unist/codec``) and the UniST data of a finished demo workspace (the
newest ``synthesize-unist`` output, or ``--data DIR``), encodes the test-split TARGET clips and
decodes them again after one perturbation of their semantic tokens ``(T_s,)`` int64 at 50 Hz:

* ``reference``: the target clip itself (no codec);
* ``vocoder_copy_synthesis``: the codec's vocoder on the target's own analysis mel (no units; v3
  codecs): the most a perfect unit decoder could give with this vocoder;
* ``hifigan_copy_synthesis``: the same with HiFi-GAN V1 universal on its own analysis mel
  (``uniss.codecs.lite.vocoder.hifigan_copy_synthesis``; when installed);
* ``topline``: none, rendered with the target clip's own speaker tokens;
* ``topline_source_voice``: none, rendered with the *source* clip's speaker tokens: the codec
  topline of the evaluation (``evaluation.toplines``), and how the model's output is rendered;
* ``dedup_mean_durations``: runs collapsed to one unit each (``itertools.groupby``), then every unit
  re-expanded to its mean run length over the train-split targets, the lengths rescaled so that the
  clip keeps its frame count (largest-remainder rounding, each run >= 1 frame). This is what an LM
  that writes de-duplicated units (and the total length, which the speed token fixes) would give
  with a duration rule instead of a duration model;
* ``dedup_uniform_durations``: the same with one length for every run (total / runs);
* ``run_jitter_<p>``: each run lengthened or shortened by one frame with probability ``p`` (runs
  stay >= 1 frame; the clip's length drifts as an LM's does);
* ``change_substitution_<p>``: with probability ``p`` a whole run takes the unit whose centroid is
  nearest to its own (the plausible confusion: the LM's top-5 accuracy at changes is 0.89);
* ``frame_substitution_<p>``: each frame independently takes its nearest other unit with
  probability ``p`` (an error that breaks runs, for contrast).

Scores are Whisper-base (``uniss.engines.asr.WhisperASR``) Speech-BLEU and CER/WER
(``uniss.metrics``) against the target text, per target language, and the resemblyzer cosine of
the decoded clip to the target and to its source clip (``speaker_cosine_to_source``, the
evaluation's speaker similarity: the two sides of a row are one Kokoro voice in two languages).
Perturbations draw from one ``numpy`` generator (``--seed``).

Measured 2026-12-04 (demo data, a demo-v3 fit, 24 test clips a language, Speech-BLEU EN / ZH targets):
topline 32.3 / 41.3; source voice 21.3 / 27.5; de-duplicated + mean durations 6.5 / 14.0, + uniform
durations 5.2 / 2.6; run jitter 0.1: 29.2 / 33.5, 0.3: 25.1 / 28.9; run substitution 0.1: 17.4 / 29.3,
0.3: 2.1 / 7.6; frame substitution 0.1: 22.4 / 22.6, 0.3: 15.2 / 13.1. A wrong unit costs far more than a
wrong run length, and a duration rule in place of the true run lengths loses most of the topline.
The vocoder alone (copy synthesis, same codec and clips): Speech-BLEU 93.8 / 81.7 (reference 92.9 /
84.4), speaker cosine to the target 0.77 / 0.79 and to the source 0.60 / 0.66 (reference 0.68 /
0.82; codec topline in the source's voice 0.58 / 0.54). So MB-MelGAN keeps the words but not the
voice: no unit decoder in front of it can bring the output's cosine to the source up to 0.70.
HiFi-GAN V1 universal (copy synthesis): Speech-BLEU 98.0 (95.0 in an earlier run) / 82.7, cosine to
the target 0.98 / 0.98, to the source 0.69 / 0.81 (all rows; on the held-out voices 0.84 / 0.82, as the reference).
Every row records its speed in x real time (``x_real_time`` for copy synthesis, ``decode_x_real_time``
for ``codec.decode``; one run, so the rows compare): MB-MelGAN 11.6 / 13.5, HiFi-GAN 1.3 / 1.6, the
demo-v3 codec 14-20 (2026-12-04, 2 cores shared with a demo; on a quiet machine the vocoders ran
at 22.1 and 3.3). A ``demo-v3-hifigan`` codec fit on the
same data (``--codec``): topline 34.2 / 46.5, source voice 31.8 / 47.3 with cosine to the source
0.70 / 0.68, decoding at ~1.2 x real time (3.5 on a quiet machine).

Run:  nice .venv/bin/python benchmarks/bench_unit_errors.py [--codec DIR] [--data DIR] [--p 0.1,0.3]
Writes ``benchmarks/results/unit_errors_<tag>.json`` (about 5 min on 2 cores for the demo data).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_unit_decoder import copy_synthesis, demo_data_dir, write_result  # noqa: E402  (a sibling script)


def runs_of(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length code of a unit string.

    Args:
        units: ``(T,)`` int unit ids.

    Returns:
        (values ``(R,)`` int64, lengths ``(R,)`` int64), ``lengths.sum() == T``.
    """
    pairs = [(k, len(list(g))) for k, g in itertools.groupby(units.tolist())]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    v, n = zip(*pairs, strict=True)
    return np.asarray(v, np.int64), np.asarray(n, np.int64)


def fit_lengths(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer run lengths proportional to ``weights`` that sum to ``total`` (largest remainder),
    each >= 1 (needs ``total >= len(weights)``; else every run gets 1).

    Args:
        weights: ``(R,)`` float > 0.
        total: frames to fill.

    Returns:
        ``(R,)`` int64.
    """
    r = len(weights)
    if r == 0:
        return np.zeros(0, np.int64)
    if total <= r:
        return np.ones(r, np.int64)
    share = weights / weights.sum() * (total - r)  # one frame each first, the rest by weight
    base = np.floor(share).astype(np.int64)
    rest = total - r - int(base.sum())
    base[np.argsort(-(share - base), kind="stable")[:rest]] += 1
    return base + 1


def perturb(units: np.ndarray, kind: str, p: float, mean_len: np.ndarray, neighbour: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """One perturbation of a semantic unit string (see the module docstring).

    Args:
        units: ``(T,)`` int64.
        kind: ``topline`` | ``dedup_mean_durations`` | ``dedup_uniform_durations`` | ``run_jitter`` |
            ``change_substitution`` | ``frame_substitution``.
        p: probability of the random kinds.
        mean_len: ``(K_s,)`` float mean run length of each unit (frames).
        neighbour: ``(K_s,)`` int64 nearest other centroid of each unit.
        rng: the draws.

    Returns:
        ``(T',)`` int64 (``T' == T`` except for ``run_jitter``).

    Raises:
        ValueError: unknown kind.
    """
    v, n = runs_of(units)
    if kind == "topline":
        return units
    if kind == "dedup_mean_durations":
        return np.repeat(v, fit_lengths(mean_len[v], len(units)))
    if kind == "dedup_uniform_durations":
        return np.repeat(v, fit_lengths(np.ones(len(v)), len(units)))
    if kind == "run_jitter":
        step = np.where(rng.random(len(n)) < p, rng.choice([-1, 1], len(n)), 0)
        return np.repeat(v, np.maximum(1, n + step))
    if kind == "change_substitution":
        return np.repeat(np.where(rng.random(len(v)) < p, neighbour[v], v), n)
    if kind == "frame_substitution":
        return np.where(rng.random(len(units)) < p, neighbour[units], units)
    raise ValueError(f"unknown perturbation {kind!r}")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="UniST dataset directory (default: the newest demo run's)")
    ap.add_argument("--codec", default=None, help="codec bundle (default: $UNISS_HOME/data-registry/unist/codec)")
    ap.add_argument("--p", default="0.1,0.3", help="probabilities of the random perturbations, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="demo")
    a = ap.parse_args(argv)

    import pandas as pd

    from uniss.codecs.base import load_codec
    from uniss.codecs.lite.vocoder import hifigan_available, hifigan_copy_synthesis
    from uniss.engines.asr import WhisperASR
    from uniss.engines.speaker import SpeakerEncoder
    from uniss.metrics import corpus_bleu, cosine, error_rate
    from uniss.settings import get_settings
    from uniss.unist.io import decode_flac

    d = demo_data_dir(a.data)
    codec_dir = Path(a.codec) if a.codec else get_settings().home / "data-registry" / "unist" / "codec"
    codec = load_codec(codec_dir)
    df = pd.concat([pd.read_parquet(f) for f in sorted((d / "shards").glob("*.parquet"))], ignore_index=True)
    train, test = df[df.split == "train"], df[df.split == "test"]
    asr, spk = WhisperASR(), SpeakerEncoder()
    rng = np.random.default_rng(a.seed)
    ps = [float(x) for x in a.p.split(",") if x]

    k = codec.sizes["semantic"]
    lens: list[list[int]] = [[] for _ in range(k)]
    for t in codec.encode([decode_flac(b) for b in train.tgt_audio]):
        v, n = runs_of(np.asarray(t.semantic))
        for u, m in zip(v.tolist(), n.tolist(), strict=True):
            lens[u].append(m)
    overall = float(np.mean([m for x in lens for m in x]))
    mean_len = np.array([np.mean(x) if x else overall for x in lens], np.float64)  # (K_s,)
    c = codec.semantic_centroids  # (K_s, 512)
    dist = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    neighbour = dist.argmin(1).astype(np.int64)  # (K_s,)

    kinds = ["topline", "topline_source_voice", "dedup_mean_durations", "dedup_uniform_durations"] + [
        f"{kind}_{p}" for kind in ("run_jitter", "change_substitution", "frame_substitution") for p in ps]
    out: dict = {"data": str(d), "codec": str(codec_dir), "codec_fingerprint": codec.fingerprint(), "seed": a.seed,
                 "mean_run_length_frames": round(overall, 2), "load_avg_1m_start": os.getloadavg()[0],
                 "cpus": os.cpu_count(), "by_language": {}}
    copy_rows: list[tuple[str, Any]] = []  # (row, (N,) 16 kHz -> (N',) 16 kHz): vocoders on the target's own mel
    if getattr(codec, "vocoder_stats", None) is not None:  # v3: the codec's own vocoder
        copy_rows.append(("vocoder_copy_synthesis", lambda w: copy_synthesis(w, codec.vocoder_stats, codec.config.vocoder)))
    if hifigan_available():  # HiFi-GAN V1 universal on its own analysis mel, for comparison
        copy_rows.append(("hifigan_copy_synthesis", hifigan_copy_synthesis))
    t_start = time.perf_counter()
    for lang in ("en", "zh"):
        sub = test[test.tgt_lang == lang]
        if sub.empty:
            continue
        wavs, texts = [decode_flac(b) for b in sub.tgt_audio], sub.tgt_text.tolist()
        toks = codec.encode(wavs)
        src_wavs = [decode_flac(b) for b in sub.src_audio]
        src_speaker = [t.speaker for t in codec.encode(src_wavs, semantic=False)]
        ref_emb, src_emb = spk.embed_batch(wavs), spk.embed_batch(src_wavs)
        res: dict = {"n": len(texts), "runs_per_s": round(float(np.mean(
            [len(runs_of(np.asarray(t.semantic))[0]) / (len(t.semantic) / 50) for t in toks])), 2)}

        def score(outs: list[np.ndarray], cosines: bool = True) -> dict:
            hyps = asr.transcribe(outs, lang)
            r = {"speech_bleu": round(corpus_bleu(hyps, texts, lang).score, 2), "error_rate": round(error_rate(texts, hyps, lang), 3)}
            if cosines:
                emb = spk.embed_batch(outs)
                r["speaker_cosine"] = round(float(np.mean([cosine(x, y) for x, y in zip(emb, ref_emb, strict=True)])), 3)
                r["speaker_cosine_to_source"] = round(float(np.mean([cosine(x, y) for x, y in zip(emb, src_emb, strict=True)])), 3)
            return r

        def timed(make: Any) -> tuple[list[np.ndarray], float]:
            """Run ``make()`` -> (its clips, x real time: seconds of 16 kHz audio per wall second)."""
            t0 = time.perf_counter()
            clips = make()
            return clips, round(sum(len(x) for x in clips) / 16000 / (time.perf_counter() - t0), 2)

        res["reference"] = score(wavs, cosines=False)
        res["reference"]["speaker_cosine_to_source"] = round(float(np.mean(
            [cosine(x, y) for x, y in zip(ref_emb, src_emb, strict=True)])), 3)
        print(lang, "reference", json.dumps(res["reference"]), flush=True)
        for name, synth in copy_rows:
            outs, xrt = timed(lambda: [synth(w) for w in wavs])  # noqa: B023 - called at once
            res[name] = {**score(outs), "x_real_time": xrt}
            print(lang, name, json.dumps(res[name]), flush=True)
        for kind in kinds:
            base, _, p = kind.rpartition("_") if kind[-1].isdigit() else (kind, "", "0")
            voices = src_speaker if kind == "topline_source_voice" else [t.speaker for t in toks]
            base = "topline" if kind == "topline_source_voice" else base
            outs, xrt = timed(lambda: [codec.decode(v, perturb(np.asarray(t.semantic, np.int64), base, float(p), mean_len,
                                                                neighbour, rng))
                                       for t, v in zip(toks, voices, strict=True)])  # noqa: B023 - called at once
            res[kind] = {**score(outs), "decode_x_real_time": xrt}
            print(lang, kind, json.dumps(res[kind]), flush=True)
        out["by_language"][lang] = res
    out["wall_s"] = round(time.perf_counter() - t_start, 1)
    write_result(out, f"unit_errors_{a.tag}")
    return out


if __name__ == "__main__":
    main()
