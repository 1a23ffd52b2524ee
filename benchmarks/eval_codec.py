"""Acceptance evaluation of the lite codec (issue 4, "Accept"): writes JSON to benchmarks/results/.

Protocol:
  1. Synthesize a training corpus: generated training sentences x 8 English TTS voices
     (flite slt/awb/rms/kal16, espeak-ng en-us/en-gb+f3, festival ked_diphone/cmu_us_slt_arctic_hts;
     the voice set of FACTS.md's baseline table) and fit a codec with the chosen preset.
  2. Held-out sentences (never in training) in the same 8 voices, plus the 5 real LibriVox clips of
     Debian's pocketsphinx-testdata (one real speaker, never in training):
     encode -> decode, then
       * Whisper-base (beam 1) WER of the decoded speech against the reference text,
       * resemblyzer cosine of decoded vs source,
       * duration ratio decoded / source,
     next to the same figures for the original audio and for the FACTS baseline
     "semantic centroids -> Griffin-Lim" on the same clips and the same codebook.
  3. Content focus: normalised edit distance (Levenshtein / max length) of the linguistic and of
     the semantic tokens of the same held-out sentence in two different voices (all voice pairs),
     and the same for two different sentences (the "chance" level).

Run:  .venv/bin/python benchmarks/eval_codec.py --preset demo   (about 10-15 min on 2 cores)
      .venv/bin/python benchmarks/eval_codec.py --preset tiny --n-train 6 --n-heldout 3   (smoke)
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SR = 16000
#: ASR groups: clips of one voice joined by GAP_S of silence up to GROUP_S (one Whisper window).
GROUP_S = 26.0
GAP_S = 0.6

VOICES = [
    "flite:slt",
    "flite:awb",
    "flite:rms",
    "flite:kal16",
    "espeak:en-us",
    "espeak:en-gb+f3",
    "festival:ked_diphone",
    "festival:cmu_us_slt_arctic_hts",
]

HELDOUT = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "Help the woman get back to her feet.",
    "The small pup gnawed a hole in the sock.",
]

_SUBJ = ["My neighbour", "The old teacher", "A young doctor", "Our little dog", "The tall farmer", "Her brother",
         "The busy waiter", "A quiet student", "The captain", "Every child", "The painter", "His mother",
         "The clever fox", "A strong sailor", "The baker", "Our new manager"]
_VERB = ["carried", "painted", "found", "opened", "watched", "followed", "cleaned", "bought", "pushed",
         "measured", "described", "forgot", "delivered", "protected", "visited", "borrowed"]
_OBJ = ["a heavy wooden chair", "the silver kettle", "seven green apples", "an empty bottle", "the broken clock",
        "a yellow umbrella", "the morning newspaper", "three warm blankets", "a crooked ladder", "the school garden",
        "a bright orange kite", "the narrow bridge", "some fresh bread", "the quiet village", "a thick leather book",
        "the frozen pond"]
_TAIL = ["before the storm arrived", "near the railway station", "after a long winter", "with great care",
         "on a sunny afternoon", "during the festival", "behind the old church", "without saying a word",
         "at the edge of the forest", "while the kettle boiled", "under the bright moon", "for the third time",
         "in the middle of the night", "beside the river", "as the bells rang", "just in time"]


def train_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct generated sentences (subject verb object tail), none equal to a held-out one."""
    rng = np.random.default_rng(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add(f"{rng.choice(_SUBJ)} {rng.choice(_VERB)} {rng.choice(_OBJ)} {rng.choice(_TAIL)}.")
    return sorted(out)


# ------------------------------------------------------------------------------------------------
# engines: the platform's own (uniss.engines) when present, else the libraries directly
# ------------------------------------------------------------------------------------------------


def synth(text: str, voice: str) -> np.ndarray:
    """16 kHz float32 speech of ``text`` in ``voice`` (``uniss.engines.tts.SystemTTS`` voice id)."""
    from uniss.engines.tts import SystemTTS

    return SystemTTS().synthesize(text, "en", voice)


class ASR:
    """Whisper-base (beam 1, batched; ``uniss.engines.asr.WhisperASR``) + corpus WER (jiwer over
    ``normalize_text``: lowercased, punctuation removed except apostrophes, paper App. C)."""

    def __init__(self) -> None:
        from uniss.engines.asr import WhisperASR

        self._eng = WhisperASR(beam_size=1)

    def transcribe(self, wavs: list[np.ndarray]) -> list[str]:
        return self._eng.transcribe(wavs, "en")

    @staticmethod
    def wer(refs: list[str], hyps: list[str]) -> float:
        """Corpus WER (total edits / total reference words)."""
        import jiwer

        from uniss.engines.asr import normalize_text

        r = [normalize_text(x, "en") for x in refs]
        h = [normalize_text(x, "en") or "<empty>" for x in hyps]
        return float(jiwer.wer(r, h))


class Speaker:
    """resemblyzer cosine similarity (``uniss.engines.speaker.SpeakerEncoder``)."""

    def __init__(self) -> None:
        from uniss.engines.speaker import SpeakerEncoder

        self._enc = SpeakerEncoder()

    def sim(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(self._enc.similarity(a, b))


def librivox() -> list[tuple[str, np.ndarray]]:
    """The 5 LibriVox clips of Debian ``pocketsphinx-testdata`` with their transcripts."""
    import soundfile as sf
    import soxr

    try:
        files = subprocess.run(["dpkg", "-L", "pocketsphinx-testdata"], capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return []
    trans = [f for f in files if f.endswith("librivox/transcription")]
    if not trans:
        return []
    d = Path(trans[0]).parent
    out = []
    for line in Path(trans[0]).read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.*)\)", line.strip())
        if not m:
            continue
        w, sr = sf.read(d / f"{m.group(2)}.wav", dtype="float32")
        if w.ndim > 1:
            w = w.mean(axis=1)
        if sr != SR:
            w = soxr.resample(w, sr, SR)
        out.append((m.group(1).strip(), np.asarray(w, np.float32)))
    return out


def norm_edit(a: np.ndarray, b: np.ndarray) -> float:
    """Levenshtein distance / max(len) of two token sequences (rapidfuzz)."""
    from rapidfuzz.distance import Levenshtein

    return float(Levenshtein.normalized_distance(list(map(int, a)), list(map(int, b))))


def corpus(sentences: list[str], voices: list[str], cache: Path | None, desc: str) -> list[tuple[str, str, np.ndarray]]:
    """(text, voice, wav) for every sentence x voice, cached as .npz."""
    from tqdm.auto import tqdm

    key = f"{desc}-{len(sentences)}x{len(voices)}-{hashlib.md5(json.dumps(sentences + voices).encode()).hexdigest()[:10]}.npz"
    if cache is not None and (cache / key).is_file():
        z = np.load(cache / key, allow_pickle=False)
        return [(str(t), str(v), z[f"w{i}"]) for i, (t, v) in enumerate(zip(z["texts"], z["voices"], strict=True))]
    items = [(s, v, synth(s, v)) for s in tqdm(sentences, desc=f"synth {desc}") for v in voices]
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / key, texts=np.array([t for t, _, _ in items]), voices=np.array([v for _, v, _ in items]),
                 **{f"w{i}": w for i, (_, _, w) in enumerate(items)})
    return items


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo", choices=["tiny", "demo"])
    ap.add_argument("--n-train", type=int, default=70, help="training sentences (x 8 voices)")
    ap.add_argument("--n-heldout", type=int, default=len(HELDOUT))
    ap.add_argument("--codec", type=Path, default=None, help="evaluate this saved codec instead of fitting one")
    ap.add_argument("--save-codec", type=Path, default=None, help="save the fitted codec here")
    ap.add_argument("--cache", type=Path, default=REPO / ".uniss" / "cache" / "codec_eval")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from tqdm.auto import tqdm

    from uniss.codecs import load_codec
    from uniss.codecs.lite import LiteCodecConfig, fit_lite_codec, griffin_lim

    res: dict = {"preset": args.preset, "host": platform.node(), "cpu_count": os.cpu_count(), "voices": VOICES}
    t0 = time.perf_counter()
    if args.codec:
        codec = load_codec(args.codec)
    else:
        train = corpus(train_sentences(args.n_train), VOICES, args.cache, "train")
        res["train"] = {"clips": len(train), "audio_s": round(sum(len(w) for *_, w in train) / SR, 1)}
        t1 = time.perf_counter()
        codec = fit_lite_codec([w for *_, w in train], LiteCodecConfig.preset(args.preset), progress=True)
        res["fit_wall_s"] = round(time.perf_counter() - t1, 1)
        if args.save_codec:
            codec.save(args.save_codec)
    res["codec"] = {"sizes": codec.sizes, "fit_metrics": codec.metrics, "fingerprint": codec.fingerprint()}

    held = corpus(HELDOUT[: args.n_heldout], VOICES, args.cache, "heldout")
    lv = librivox()
    asr, spk = ASR(), Speaker()

    def grouped_wer(refs: list[str], wavs_: list[np.ndarray], groups: list[list[int]]) -> tuple[float, list[str]]:
        """Corpus WER with clips transcribed in groups (one Whisper window each, see GROUP_S)."""
        gap = np.zeros(int(GAP_S * SR), np.float32)
        audio = [np.concatenate([x for i in g for x in (wavs_[i], gap)]) for g in groups]
        hyps = asr.transcribe(audio)
        return asr.wer([" ".join(refs[i] for i in g) for g in groups], hyps), hyps

    def make_groups(ix: list[int], wavs_: list[np.ndarray]) -> list[list[int]]:
        groups, cur, dur = [], [], 0.0
        for i in ix:
            d = len(wavs_[i]) / SR + GAP_S
            if cur and dur + d > GROUP_S:
                groups.append(cur)
                cur, dur = [], 0.0
            cur.append(i)
            dur += d
        if cur:
            groups.append(cur)
        return groups

    def evaluate(items: list[tuple[str, str, np.ndarray]], name: str) -> dict:
        wavs = [w for *_, w in items]
        toks = codec.encode(wavs, progress=True)
        dec, base = [], []
        for t in tqdm(toks, desc=f"decode {name}"):
            dec.append(codec.decode(t.speaker, t.semantic))
            base.append(griffin_lim(codec.semantic_centroids[t.semantic].T, codec.config.n_fft, 32))
        refs = [t for t, *_ in items]
        sim_d = [spk.sim(a, b) for a, b in zip(wavs, dec, strict=True)]
        sim_b = [spk.sim(a, b) for a, b in zip(wavs, base, strict=True)]
        ratio = [len(d) / len(w) for d, w in zip(dec, wavs, strict=True)]
        per_voice, totals, examples = {}, {"original": [], "decoded": [], "centroid_gl": []}, []
        for v in tqdm(sorted({v for _, v, _ in items}), desc=f"ASR {name}"):
            ix = [i for i, (_, vv, _) in enumerate(items) if vv == v]
            groups = make_groups(ix, wavs)
            row = {}
            for key, ws_ in (("original", wavs), ("decoded", dec), ("centroid_gl", base)):
                wer, hyps = grouped_wer(refs, ws_, groups)
                row[f"wer_{key}"] = round(wer, 3)
                gref = [" ".join(refs[i] for i in g) for g in groups]
                totals[key].append((gref, hyps))
                if key == "decoded":
                    examples.append({"voice": v, "ref": gref[0], "decoded": hyps[0]})
            row["sim_decoded"] = round(float(np.mean([sim_d[i] for i in ix])), 3)
            row["sim_centroid_gl"] = round(float(np.mean([sim_b[i] for i in ix])), 3)
            per_voice[v] = row
        wer_all = {k: round(asr.wer([r for g, _ in v for r in g], [h for _, hs in v for h in hs]), 4) for k, v in totals.items()}
        return {
            "clips": len(items),
            "asr_note": f"Whisper-base beam 1; clips of one voice transcribed in groups of <= {GROUP_S} s joined by {GAP_S} s silence; corpus WER",
            "wer_original": wer_all["original"],
            "wer_decoded": wer_all["decoded"],
            "wer_centroid_gl_baseline": wer_all["centroid_gl"],
            "sim_decoded_mean": round(float(np.mean(sim_d)), 4),
            "sim_decoded_min": round(float(np.min(sim_d)), 4),
            "sim_centroid_gl_baseline_mean": round(float(np.mean(sim_b)), 4),
            "duration_ratio_min": round(float(np.min(ratio)), 4),
            "duration_ratio_max": round(float(np.max(ratio)), 4),
            "per_voice": per_voice,
            "examples": examples[:4],
            "_toks": toks,
        }

    res["heldout_synthetic"] = evaluate(held, "heldout")
    if lv:
        res["librivox"] = evaluate([(t, "librivox", w) for t, w in lv], "librivox")

    # content focus --------------------------------------------------------------------------
    toks = res["heldout_synthetic"].pop("_toks")
    res.get("librivox", {}).pop("_toks", None)
    idx: dict[tuple[str, str], int] = {(t, v): i for i, (t, v, _) in enumerate(held)}
    sents = HELDOUT[: args.n_heldout]
    same = {"linguistic": [], "semantic": []}
    diff = {"linguistic": [], "semantic": []}
    for s in sents:
        for va, vb in itertools.combinations(VOICES, 2):
            a, b = toks[idx[(s, va)]], toks[idx[(s, vb)]]
            same["linguistic"].append(norm_edit(a.linguistic, b.linguistic))
            same["semantic"].append(norm_edit(a.semantic, b.semantic))
    for sa, sb in itertools.combinations(sents, 2):
        for v in VOICES:
            a, b = toks[idx[(sa, v)]], toks[idx[(sb, v)]]
            diff["linguistic"].append(norm_edit(a.linguistic, b.linguistic))
            diff["semantic"].append(norm_edit(a.semantic, b.semantic))
    res["content_focus"] = {
        "same_sentence_two_voices_ned": {k: round(float(np.mean(v)), 4) for k, v in same.items()},
        "different_sentences_same_voice_ned": {k: round(float(np.mean(v)), 4) for k, v in diff.items()},
        "pairs": len(same["linguistic"]),
    }
    res["targets"] = {
        "wer_decoded_synthetic<=0.35": res["heldout_synthetic"]["wer_decoded"] <= 0.35,
        "sim_decoded_synthetic>=0.75": res["heldout_synthetic"]["sim_decoded_mean"] >= 0.75,
        "duration_within_5pct": 0.95 <= res["heldout_synthetic"]["duration_ratio_min"]
        and res["heldout_synthetic"]["duration_ratio_max"] <= 1.05,
        "linguistic_more_shared_than_semantic": res["content_focus"]["same_sentence_two_voices_ned"]["linguistic"]
        < res["content_focus"]["same_sentence_two_voices_ned"]["semantic"] - 0.05,
    }
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    out = args.out or RESULTS / f"eval_codec_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(json.dumps({k: res[k] for k in ("targets", "content_focus")}, indent=2), file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return res


if __name__ == "__main__":
    main()
