"""evaluation.evaluate: the evaluation harness end to end on a tiny split.

Two systems are evaluated with the platform's real ASR (batched Whisper-base) and speaker embeddings
(resemblyzer):
- the tiny random-init engine of ``tests/unit/serving/tiny_model.py`` (real ``TranslationEngine``; its output is noise,
  so its scores are near zero: checks structure, files, and that metrics match the utterance table);
- a *reference system* (topline) that answers each source with the corpus's own target text and
  speech: Text-BLEU must be 100 and Speech-BLEU must be high (Whisper on clean English TTS).
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
import tiny_model as tm  # noqa: E402

from evaluation import evaluate as E  # noqa: E402
from uniss import metrics as M  # noqa: E402

SR = 16_000

PAIRS = [  # (english, chinese, pinyin for espeak)
    ("the weather is nice today", "今天天气很好", "jin1 tian1 tian1 qi4 hen3 hao3"),
    ("i like to read books in the evening", "我喜欢晚上看书", "wo3 xi3 huan1 wan3 shang4 kan4 shu1"),
    ("please open the window", "请打开窗户", "qing3 da3 kai1 chuang1 hu4"),
]


def _wav(cmd: list[str], path: Path) -> np.ndarray:
    import soundfile as sf
    import soxr

    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    w, sr = sf.read(path, dtype="float32")
    return soxr.resample(w, sr, SR).astype(np.float32) if sr != SR else w


def _flac(w: np.ndarray) -> bytes:
    import soundfile as sf

    b = io.BytesIO()
    sf.write(b, w, SR, format="FLAC")
    return b.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A split in the shard columns: en->zh and zh->en rows built from system TTS (flite, espeak-ng)."""
    import pandas as pd

    d = tmp_path_factory.mktemp("tts")
    rows = []
    for i, (en, zh, py) in enumerate(PAIRS):
        w_en = _wav(["flite", "-voice", "slt", "-t", en, "-o", str(d / f"en{i}.wav")], d / f"en{i}.wav")
        w_zh = _wav(["espeak-ng", "-v", "cmn-latn-pinyin", "-w", str(d / f"zh{i}.wav"), py], d / f"zh{i}.wav")
        rows.append(dict(id=f"ez{i}", split="test", src_lang="en", tgt_lang="zh", src_text=en, tgt_text=zh,
                         src_audio=_flac(w_en), tgt_audio=_flac(w_zh)))
        rows.append(dict(id=f"ze{i}", split="test", src_lang="zh", tgt_lang="en", src_text=zh, tgt_text=en,
                         src_audio=_flac(w_zh), tgt_audio=_flac(w_en)))
    rows.append(dict(id="tr0", split="train", src_lang="en", tgt_lang="zh", src_text="x", tgt_text="y",
                     src_audio=rows[0]["src_audio"], tgt_audio=rows[0]["tgt_audio"]))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def asr(whisper_model_dir):
    """The platform's batched Whisper-base ASR (``uniss.engines.asr.WhisperASR``); fails when the
    model is not installed (tests/conftest.py ``whisper_model_dir``)."""
    from uniss.engines.asr import WhisperASR

    return _Memo(WhisperASR(model_dir=whisper_model_dir))


class _Memo:
    """Caches transcripts per (clip, language, batched-or-single) so the two modes of one system
    do not decode the same clip twice; batched and one-by-one calls stay separate, so the
    batched-vs-unbatched agreement check still compares two real decodes."""

    def __init__(self, asr):
        self.asr, self.cache = asr, {}

    def transcribe(self, wavs, language):
        single = len(wavs) == 1
        keys = [(np.asarray(w, np.float32).tobytes(), language, single) for w in wavs]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            for i, t in zip(todo, self.asr.transcribe([wavs[i] for i in todo], language), strict=True):
                self.cache[keys[i]] = t
        return [self.cache[k] for k in keys]


@pytest.fixture(scope="module")
def embed():
    """resemblyzer speaker embeddings (``uniss.engines.speaker.SpeakerEncoder``), cached per clip."""
    from uniss.engines.speaker import SpeakerEncoder

    enc = SpeakerEncoder()
    cache: dict[bytes, np.ndarray] = {}

    def _embed(w: np.ndarray) -> np.ndarray:
        k = np.asarray(w, np.float32).tobytes()
        if k not in cache:
            cache[k] = enc.embed(w)
        return cache[k]

    return _embed


@dataclass
class _Res:
    source_text: str
    target_text: str
    wav: np.ndarray
    duration_s: float
    source_duration_s: float
    complete: bool = True
    reason: str = ""


class ReferenceSystem:
    """Topline: returns the corpus's own reference translation text and speech for each source clip."""

    def __init__(self, df):
        self.by_audio = {}
        for r in df.itertuples():
            src = E.decode_flac(r.src_audio, r.id)
            self.by_audio[src.tobytes()] = (r.src_text, r.tgt_text, E.decode_flac(r.tgt_audio, r.id))

    def translate(self, wavs, *, target_language, mode="quality", seed=None, do_sample=True):
        out = []
        for w in wavs:
            src_text, tgt_text, tgt = self.by_audio[np.asarray(w, np.float32).tobytes()]
            out.append(_Res(src_text if mode == "quality" else "", "" if mode == "direct" else tgt_text, tgt,
                            len(tgt) / SR, len(w) / SR))
        return out


@pytest.mark.slow
def test_reference_system_scores_as_a_topline(data, asr, embed, tmp_path):
    rep = E.evaluate(ReferenceSystem(data), data, directions=("zh-en",), modes=("performance", "direct"),
                     limit=2, out_dir=tmp_path, asr=asr, speaker_embed=embed, log_mlflow=False)
    m = rep.metrics
    assert m["text_bleu.zh-en.performance"] == pytest.approx(100.0)
    assert math.isnan(m["text_bleu.zh-en.direct"])  # no text in Direct mode
    assert m["speech_bleu.zh-en.performance"] > 50  # Whisper on clean flite English
    assert m["speech_bleu.zh-en.performance"] == m["speech_bleu.zh-en.direct"]
    # SLC recomputed from the utterance table
    u = rep.utterances[rep.utterances["mode"] == "performance"]
    assert m["slc_0.2.zh-en.performance"] == pytest.approx(M.slc(u["source_duration_s"], u["output_duration_s"], 0.2))
    assert len(u) == 2 and set(u["id"]) == {"ze0", "ze1"}  # first ids of the test split only
    print("reference topline zh-en:", {k: round(v, 3) for k, v in m.items()}, rep.asr_agreement)
    assert "tok:13a" in rep.signatures["en"]
    assert rep.asr_agreement["en"]["n"] >= 2


@pytest.mark.slow
def test_tiny_engine_report_files(data, asr, embed, tmp_path):
    engine = tm.tiny_engine()
    rep = E.evaluate(engine, data, directions=("en-zh",), modes=("quality", "direct"), limit=1,
                     out_dir=tmp_path, asr=asr, speaker_embed=embed, log_mlflow=False, batch_size=2, asr_check_n=2)
    for metric in M.TABLE1_METRICS:
        for mode in ("quality", "direct"):
            assert M.metric_key(metric, "en-zh", mode) in rep.metrics
    assert len(rep.utterances) == 3  # 2 modes + the reference topline (no codec with a DataFrame)
    assert rep.toplines == ["topline_reference"] and rep.slices == ["all"]
    assert 1.0 <= rep.metrics["mos.en-zh.topline_reference"] <= 5.0  # DNSMOS on espeak Mandarin
    assert rep.metrics["rtf.en-zh.quality"] > 0
    js = json.loads((tmp_path / "metrics.json").read_text())
    assert js["counts"] == {"en-zh.quality": 1, "en-zh.direct": 1}
    assert "tok:zh" in js["signatures"]["zh"]
    for f in ("metrics_table.csv", "metrics_table.md", "utterances.parquet", "utterances.csv", "samples.html", "metrics.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    html = (tmp_path / "samples.html").read_text()
    assert html.count("<audio") >= 4  # 2 rows x (source, reference) at least and (tmp_path / "audio").is_dir()
    md = (tmp_path / "metrics_table.md").read_text()
    assert "Speech-BLEU (EN-ZH)" in md and "| quality |" in md and "| topline_reference |" in md


def test_bad_requests_are_typed_errors(data, tmp_path):
    with pytest.raises(E.EvaluationError, match="direction"):
        E.evaluate(ReferenceSystem(data), data, directions=("en-fr",), out_dir=tmp_path, asr=object(), speaker_embed=len)
    with pytest.raises(E.EvaluationError, match="mode"):
        E.evaluate(ReferenceSystem(data), data, modes=("fast",), out_dir=tmp_path, asr=object(), speaker_embed=len)
    with pytest.raises(E.EvaluationError, match="no dev rows"):
        E.evaluate(ReferenceSystem(data), data, split="dev", out_dir=tmp_path, asr=object(), speaker_embed=len)
    with pytest.raises(E.EvaluationError, match="unreadable"):
        E.decode_flac(b"not audio", "x")


class _HeardASR:
    """Hears each reference target clip as its reference text (no Whisper: a fast, exact stand-in)."""

    def __init__(self, df):
        self.heard = {E.decode_flac(r.tgt_audio, r.id).tobytes(): r.tgt_text for r in df.itertuples()}

    def transcribe(self, wavs, language):
        return [self.heard.get(np.asarray(w, np.float32).tobytes(), "") for w in wavs]


class _FakeMlflow:
    """Records what :func:`evaluation.report.log_report` sends to MLflow."""

    def __init__(self):
        from contextlib import nullcontext
        from types import SimpleNamespace

        self.tags, self.metrics = {}, {}
        self._run = nullcontext(SimpleNamespace(info=SimpleNamespace(run_id="run-1")))

    def active_run(self):
        return None

    def set_experiment(self, name):
        pass

    def start_run(self, run_name=None, tags=None):
        return self._run

    def log_metrics(self, m):
        self.metrics.update(m)

    def set_tags(self, t):
        self.tags.update(t)

    def log_artifacts(self, path, artifact_path=None):
        pass


def test_direction_without_test_rows_is_skipped_and_reported(data, tmp_path, monkeypatch):
    """zh-en has train rows but no test rows (all dropped by a data filter): en-zh is still scored,
    zh-en is skipped with a warning and its reason is in the report, its files and the MLflow tags."""
    import pandas as pd

    from evaluation import report as R

    df = data[~((data["src_lang"] == "zh") & (data["split"] == "test"))]
    df = pd.concat([df, data[data["id"] == "ze0"].assign(id="ze-train", split="train")], ignore_index=True)
    test = data[data["split"] == "test"]  # tr0 shares ez0's audio with other texts
    with pytest.warns(E.SkippedDirectionWarning, match="zh-en"):
        rep = E.evaluate(ReferenceSystem(test), df, modes=("performance",), out_dir=tmp_path, asr=_HeardASR(test),
                         speaker_embed=lambda w: np.ones(4, np.float32), mos=False, toplines=(), log_mlflow=False)
    assert rep.skipped == {"zh-en": "no test rows for direction zh-en"}
    assert rep.metrics["text_bleu.en-zh.performance"] == pytest.approx(100.0)
    assert rep.metrics["speech_bleu.en-zh.performance"] == pytest.approx(100.0)  # the ASR hears the reference
    assert not [k for k in rep.metrics if ".zh-en." in k]
    assert {g.direction for g in rep.groups} == {"en-zh"} and len(rep.utterances) == 3
    js = json.loads((tmp_path / "metrics.json").read_text())
    assert js["skipped"] == {"zh-en": "no test rows for direction zh-en"} and js["counts"] == {"en-zh.performance": 3}
    assert "- skipped zh-en: no test rows for direction zh-en" in (tmp_path / "metrics_table.md").read_text()
    assert "skipped zh-en" in (tmp_path / "samples.html").read_text()
    fake = _FakeMlflow()
    monkeypatch.setattr(R, "eval_mlflow", lambda: fake)
    assert R.log_report(rep) == "run-1"
    assert fake.tags["uniss.eval.skipped"] == "zh-en: no test rows for direction zh-en"
    assert "speech_bleu.en-zh.performance" in fake.metrics


def test_no_rows_in_any_direction_fails_before_the_model_loads(data, tmp_path):
    """Only when no requested direction has rows is it an error, raised before the model is loaded
    (the bundle path does not exist: loading it would raise another error)."""
    with pytest.raises(E.EvaluationError, match=r"no test rows for direction\(s\) zh-en"):
        E.evaluate(str(tmp_path / "no-such-bundle"), data[data["src_lang"] == "en"], directions=("zh-en",),
                   out_dir=tmp_path, asr=object(), speaker_embed=len, mos=False, log_mlflow=False)
