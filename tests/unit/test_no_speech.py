"""No-speech and degenerate audio (issue 17 item 1): every kind gives a typed error before any model
work, real speech passes -- at the waveform check (``uniss.audio.require_speech``), the translation
engine's entry, the CLI (one line, exit 2) and a data build's quarantine."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from uniss.audio import (
    SAMPLE_RATE_HZ,
    AudioError,
    CorruptAudioError,
    NoSpeechAudioError,
    require_speech,
)
from uniss.errors import UnissError

N = 3 * SAMPLE_RATE_HZ


def degenerate() -> dict[str, np.ndarray]:
    """Each degenerate kind, 3 s at 16 kHz, float32 ``(N,)``."""
    rng = np.random.default_rng(0)
    nan = np.zeros(N, np.float32)
    nan[100] = np.nan
    inf = np.zeros(N, np.float32)
    inf[7] = np.inf
    return {
        "silence": np.zeros(N, np.float32),
        "dc_offset": np.full(N, 0.3, np.float32),
        "constant": np.full(N, -0.7, np.float32),
        "clipped_noise": np.clip(3 * rng.standard_normal(N), -1, 1).astype(np.float32),
        "white_noise": (0.3 * rng.standard_normal(N)).astype(np.float32),
        "quiet_noise": (0.01 * rng.standard_normal(N)).astype(np.float32),
        "nan": nan,
        "inf": inf,
    }


KINDS = sorted(degenerate())
NOT_FINITE = {"nan", "inf"}


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    from uniss.engines.tts import SystemTTS

    return SystemTTS().synthesize("Please close the door when you leave the room.", "en", "flite:slt")


def test_error_type():
    assert issubclass(NoSpeechAudioError, AudioError) and issubclass(NoSpeechAudioError, UnissError)
    from uniss.engines.speaker import NoSpeechError

    assert NoSpeechError is not NoSpeechAudioError


@pytest.mark.parametrize("kind", KINDS)
def test_each_degenerate_kind_is_a_typed_error(kind):
    x = degenerate()[kind]
    want = CorruptAudioError if kind in NOT_FINITE else NoSpeechAudioError
    with pytest.raises(want, match="clip"):
        require_speech(x, what="clip")


def test_real_speech_passes(speech):
    out = require_speech(speech)
    assert out.dtype == np.float32 and out.shape == speech.shape
    # speech after 2 s of silence and under a DC offset still passes
    padded = np.concatenate([np.zeros(2 * SAMPLE_RATE_HZ, np.float32), speech]) + np.float32(0.05)
    require_speech(padded)


def test_min_speech_threshold(speech):
    with pytest.raises(NoSpeechAudioError, match="at least 30.00 s"):
        require_speech(speech, min_speech_s=30.0)


# ---------------------------------------------------------------- engine entry: before the codec runs
sys.path.insert(0, str(Path(__file__).resolve().parent / "serving"))


class _NoCodec:
    def encode(self, wavs, **kw):  # pragma: no cover - must never be reached
        raise AssertionError("codec.encode ran on audio without speech")


@pytest.mark.parametrize("kind", ["silence", "white_noise", "dc_offset"])
def test_engine_rejects_before_codec(kind):
    import tiny_model as tm

    engine = tm.tiny_engine(seed=0)
    engine.codec = _NoCodec()
    with pytest.raises(NoSpeechAudioError, match=r"wavs\[0\]"):
        engine.translate([degenerate()[kind]], target_language="zh")


# ---------------------------------------------------------------- CLI: one line, exit 2
def _wav_file(path: Path, x: np.ndarray, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), x, SAMPLE_RATE_HZ, subtype=subtype)
    return path


@pytest.mark.parametrize("kind", ["silence", "white_noise", "nan"])
def test_cli_translate_no_speech_exit_2_one_line(tmp_path, kind):
    from pipelines.cli import app

    x = degenerate()[kind]
    src = _wav_file(tmp_path / f"{kind}.wav", x, "FLOAT" if kind in NOT_FINITE else "PCM_16")
    res = CliRunner().invoke(app, ["translate", str(src), "--to", "en", "--out", str(tmp_path / "o.wav"),
                                   "--model", str(tmp_path / "no-such-bundle")])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    want = "CorruptAudioError" if kind in NOT_FINITE else "NoSpeechAudioError"
    assert lines[0].startswith("error: ") and want in lines[0], lines[0]
    assert "Traceback" not in res.output


# ---------------------------------------------------------------- data build: quarantine with the reason
def test_records_to_table_quarantines_no_speech(speech):
    from uniss.unist.sources import SourceRecord, records_to_table

    def flac(x: np.ndarray, subtype: str = "PCM_16") -> bytes:
        b = io.BytesIO()
        sf.write(b, x, SAMPLE_RATE_HZ, format="WAV" if subtype == "FLOAT" else "FLAC", subtype=subtype)
        return b.getvalue()

    kinds = degenerate()
    recs = [SourceRecord(id="good", split="train", language="en", transcript="t", audio=flac(speech))]
    for k in KINDS:
        recs.append(SourceRecord(id=k, split="train", language="en", transcript="t",
                                 audio=flac(kinds[k], "FLOAT" if k in NOT_FINITE else "PCM_16")))
    table, q = records_to_table(recs)
    assert list(table["id"]) == ["good"]
    reasons = dict(zip(q["id"], q["reason"], strict=True))
    assert sorted(reasons) == KINDS
    for k in KINDS:
        want = "CorruptAudioError" if k in NOT_FINITE else "NoSpeechAudioError"
        assert reasons[k].startswith(want), (k, reasons[k])
    assert set(q["step"]) == {"source"}
