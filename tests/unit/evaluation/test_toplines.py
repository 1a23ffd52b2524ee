"""Toplines, slices and the MOS proxy of ``evaluation.evaluate`` on a tiny synthetic split.

The split: 4 en->zh rows of test tones (``tiny_model.tone``) with ``ToyCodec`` tokens (the
deterministic codec stand-in of tests/unit/serving/tiny_model.py; its decode length is exactly
320 samples per semantic token and its pitch follows the speaker tokens), and ``voice_set`` slices
seen, seen, heldout, real. The "model" answers every source with 1 s of silence. ASR, speaker
embedding and MOS are deterministic stand-ins so every expected value is computed here by hand.
"""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
import tiny_model as tm  # noqa: E402

from evaluation import evaluate as E  # noqa: E402
from uniss import metrics as M  # noqa: E402

SR = 16_000
TEXTS = ["今天天气很好", "我喜欢看书", "请打开窗户", "我们去公园"]
VOICE_SETS = ["seen", "seen", "heldout", "real"]


def _flac(w: np.ndarray) -> bytes:
    import soundfile as sf

    b = io.BytesIO()
    sf.write(b, w, SR, format="FLAC", subtype="PCM_24")
    return b.getvalue()


def _split(voice_set: bool = True) -> pd.DataFrame:
    codec = tm.ToyCodec()
    rows = []
    for i, text in enumerate(TEXTS):
        src = tm.tone(1.0 + 0.4 * i, freq=150 + 40 * i)
        tgt = tm.tone(1.2 + 0.1 * i, freq=300 + 30 * i)
        s, t = codec.encode([src])[0], codec.encode([tgt])[0]
        row = dict(id=f"ez{i}", split="test", src_lang="en", tgt_lang="zh", src_text=f"sentence {i}",
                   tgt_text=text, src_audio=_flac(src), tgt_audio=_flac(tgt),
                   src_speaker=s.speaker.tolist(), tgt_speaker=t.speaker.tolist(),
                   src_semantic=s.semantic.tolist(), tgt_semantic=t.semantic.tolist())
        if voice_set:
            row.update(voice_set=VOICE_SETS[i], voice_preserved=VOICE_SETS[i] != "real")
        rows.append(row)
    return pd.DataFrame(rows)


class SilentModel:
    """Answers every source with 1 s of digital silence (no speech: MOS NaN, BLEU 0)."""

    def translate(self, wavs, *, target_language, mode="quality", seed=None, do_sample=True):
        from types import SimpleNamespace

        return [SimpleNamespace(wav=np.zeros(SR, np.float32), target_text="", source_text="", complete=True,
                                reason="") for _ in wavs]


class LookupASR:
    """Transcribes a clip equal (to 1e-4) to a known target waveform as its text, anything else as ''."""

    def __init__(self, df):
        self.known = [(E.decode_flac(b, "t"), t) for b, t in zip(df["tgt_audio"], df["tgt_text"], strict=True)]
        self.calls = 0

    def transcribe(self, wavs, language):
        self.calls += 1
        out = []
        for w in wavs:
            hit = [t for k, t in self.known if k.size == w.size and np.allclose(k, w, atol=1e-4)]
            out.append(hit[0] if hit else "")
        return out


def embed(w: np.ndarray) -> np.ndarray:
    """Toy speaker embedding: log band energies of the spectrum; raises on silence like resemblyzer."""
    if float(np.max(np.abs(w))) < 1e-3:
        raise M.MetricsError("no speech")
    spec = np.abs(np.fft.rfft(w[:SR], n=2048))
    return np.log1p(np.array([b.sum() for b in np.array_split(spec, 16)]))


class DurationMOS:
    """MOS stand-in: the clip's duration in seconds; records what it scored."""

    def __init__(self):
        self.seen: list[np.ndarray] = []

    def score(self, wavs):
        self.seen.extend(wavs)
        return [w.size / SR for w in wavs]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    df = _split()
    mos = DurationMOS()
    rep = E.evaluate(SilentModel(), df, directions=("en-zh",), modes=("quality",), codec=tm.ToyCodec(),
                     out_dir=tmp_path_factory.mktemp("rep"), asr=LookupASR(df), speaker_embed=embed,
                     mos=mos, log_mlflow=False)
    return rep, df, mos


def test_reference_topline_scores_the_target_speech(report):
    rep, df, _ = report
    m = rep.metrics
    src = [E.decode_flac(b, "s") for b in df["src_audio"]]
    tgt = [E.decode_flac(b, "t") for b in df["tgt_audio"]]
    assert m["speech_bleu.en-zh.topline_reference"] == pytest.approx(100.0)
    assert math.isnan(m["text_bleu.en-zh.topline_reference"])
    ratios = [t.size / s.size for s, t in zip(src, tgt, strict=True)]  # 1.2, 0.93, 0.78, 0.68 (vs SOURCE)
    assert m["slc_0.2.en-zh.topline_reference"] == pytest.approx(np.mean([abs(r - 1) <= 0.2 + 1e-9 for r in ratios]))
    assert m["slc_0.2.en-zh.topline_reference"] == pytest.approx(0.5)
    assert m["slc_0.4.en-zh.topline_reference"] == pytest.approx(1.0)
    sims = [M.cosine(embed(s), embed(t)) for s, t in zip(src, tgt, strict=True)]
    assert m["speaker_sim.en-zh.topline_reference"] == pytest.approx(np.mean(sims))
    assert m["mos.en-zh.topline_reference"] == pytest.approx(np.mean([t.size / SR for t in tgt]))
    assert math.isnan(m["rtf.en-zh.topline_reference"])


def test_codec_topline_decodes_target_tokens_in_the_source_voice(report):
    rep, df, mos = report
    codec = tm.ToyCodec()
    want = [codec.decode(np.asarray(s), np.asarray(t)) for s, t in zip(df["src_speaker"], df["tgt_semantic"], strict=True)]
    other = codec.decode(np.asarray(df["tgt_speaker"][0]), np.asarray(df["tgt_semantic"][0]))
    assert not np.allclose(want[0], other)  # the speaker tokens matter, and the source's were used:
    assert any(w.size == want[0].size and np.allclose(w, want[0]) for w in mos.seen)
    u = rep.utterances[rep.utterances["mode"] == "topline_codec"]
    assert list(u["output_duration_s"]) == pytest.approx([len(t) * 320 / SR for t in df["tgt_semantic"]])
    assert rep.metrics["mos.en-zh.topline_codec"] == pytest.approx(np.mean([w.size / SR for w in want]))
    assert rep.metrics["speech_bleu.en-zh.topline_codec"] == pytest.approx(0.0)  # the toy voice is no speech
    assert rep.metrics["rtf.en-zh.topline_codec"] > 0  # decode time / source seconds


def test_silent_model_scores_nan_mos_and_zero_bleu(report):
    rep, _, _ = report
    assert math.isnan(rep.metrics["mos.en-zh.quality"])
    assert rep.metrics["speech_bleu.en-zh.quality"] == pytest.approx(0.0)
    assert math.isnan(rep.metrics["speaker_sim.en-zh.quality"])
    assert rep.utterances[rep.utterances["mode"] == "quality"]["mos"].isna().all()


def test_slices_score_their_own_rows(report):
    rep, df, _ = report
    assert rep.slices == ["all", "seen", "heldout", "real"]
    n = {(g.mode, g.slice): g.n for g in rep.groups}
    assert n[("quality", "all")] == 4 and n[("quality", "seen")] == 2 and n[("topline_reference", "real")] == 1
    tgt = [E.decode_flac(b, "t") for b in df["tgt_audio"]]
    m = rep.metrics
    assert m["mos.en-zh.topline_reference/seen"] == pytest.approx((tgt[0].size + tgt[1].size) / 2 / SR)
    assert m["mos.en-zh.topline_reference/real"] == pytest.approx(tgt[3].size / SR)
    assert m["slc_0.2.en-zh.topline_reference/heldout"] == 0.0  # ratio 0.78
    assert m["slc_0.2.en-zh.topline_reference/seen"] == 1.0  # ratios 1.2, 0.93
    assert m["speech_bleu.en-zh.topline_reference/seen"] == pytest.approx(100.0)
    assert set(rep.utterances["voice_set"]) == {"seen", "heldout", "real"}


def test_gate_reads_only_its_modes(report):
    from uniss.gate import GateThresholds, decide

    rep, _, _ = report
    d = decide(rep.metrics, None, GateThresholds(modes=("quality",), directions=("en-zh",),
                                                 floors={"speech_bleu": 50.0}, non_regression={}))
    assert not d.passed  # the model's 0, not the topline's 100
    assert [c.key for c in d.checks] == ["speech_bleu.en-zh.quality"]


def test_report_files_carry_toplines_and_slices(report):
    rep, _, _ = report
    out = rep.out_dir
    js = json.loads((out / "metrics.json").read_text())
    assert js["counts"] == {"en-zh.quality": 4}
    assert js["toplines"]["topline_reference"]["en-zh"]["speech_bleu"] == pytest.approx(100.0)
    assert js["slices"]["seen"] == {"en-zh.quality": 2, "en-zh.topline_reference": 2, "en-zh.topline_codec": 2}
    assert js["metrics"]["mos.en-zh.quality"] is None
    csv = pd.read_csv(out / "metrics_table.csv")
    ref = csv[(csv["mode"] == "topline_reference") & (csv["slice"] == "all")]
    assert len(ref) == 1 and ref["speech_bleu"].iloc[0] == pytest.approx(100.0)
    assert list(csv["mode"][csv["slice"] == "all"]) == ["quality", "topline_reference", "topline_codec"]
    md = (out / "metrics_table.md").read_text()
    assert "| topline_reference | 100.00 |" in md and "### slice: real" in md and "MOS (DNSMOS) (EN-ZH)" in md
    html = (out / "samples.html").read_text()
    assert "<td>topline_codec</td>" in html and "en-zh / topline_reference" in html
    assert (out / "metrics.png").stat().st_size > 10_000
    assert set(rep.timings) == {"translate_s", "score_s", "toplines_s", "mos_s"}


def test_old_data_has_one_slice_and_no_codec_topline_without_codec(tmp_path):
    df = _split(voice_set=False)
    rep = E.evaluate(SilentModel(), df, directions=("en-zh",), modes=("direct",), out_dir=tmp_path,
                     asr=LookupASR(df), speaker_embed=embed, mos=False, log_mlflow=False)
    assert rep.slices == ["all"] and rep.toplines == ["topline_reference"]
    assert not any("/" in k for k in rep.metrics)
    assert rep.metrics["speech_bleu.en-zh.topline_reference"] == pytest.approx(100.0)
    assert math.isnan(rep.metrics["mos.en-zh.topline_reference"])  # mos=False: no predictor
    with pytest.raises(E.EvaluationError, match="topline"):
        E.evaluate(SilentModel(), df, toplines=("oracle",), out_dir=tmp_path, asr=object(), speaker_embed=len)


def test_dnsmos_scores_nan_on_silence_and_a_value_on_speech():
    from uniss.engines.mos import DNSMOS, mos_or_nan

    dn = DNSMOS()
    voiced = tm.tone(2.0, freq=180)
    got = mos_or_nan(dn, [np.zeros(SR, np.float32), voiced, np.zeros(0, np.float32), voiced[:800]])
    assert math.isnan(got[0]) and math.isnan(got[2]) and math.isnan(got[3])  # silence, empty, 50 ms
    assert got[1] == pytest.approx(dn.score([voiced])[0]) and 1.0 <= got[1] <= 5.0
