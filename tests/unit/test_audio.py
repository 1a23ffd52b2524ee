"""uniss.audio: load/resample/mono-mix, encode/write, duration limits, VAD trim, bad audio."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from uniss.audio import (SAMPLE_RATE_HZ, AudioError, AudioTooLongError, AudioTooShortError, CorruptAudioError,
                         EmptyAudioError, duration_s, load_audio, resample, to_flac_bytes, to_wav_bytes, vad_trim,
                         write_audio)
from uniss.errors import UnissError


def tone(seconds: float, hz: float = 440.0, sr: int = SAMPLE_RATE_HZ, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def encode(x: np.ndarray, sr: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    from uniss.engines.tts import SystemTTS

    return SystemTTS().synthesize("She sells sea shells by the sea shore.", "en", "flite:slt")


def test_errors_are_typed():
    for e in (EmptyAudioError, CorruptAudioError, AudioTooShortError, AudioTooLongError):
        assert issubclass(e, AudioError) and issubclass(e, UnissError) and issubclass(e, ValueError)


@pytest.mark.parametrize("fmt,subtype,tol", [("WAV", "PCM_16", 1e-4), ("FLAC", "PCM_16", 1e-4), ("OGG", "VORBIS", 0.05)])
def test_load_formats_from_bytes_and_path(tmp_path, fmt, subtype, tol):
    x = tone(0.5)
    data = encode(x, SAMPLE_RATE_HZ, fmt, subtype)
    y = load_audio(data)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert float(np.max(np.abs(y - x))) < tol
    p = tmp_path / f"a.{fmt.lower()}"
    p.write_bytes(data)
    assert np.array_equal(load_audio(p), y)
    assert np.array_equal(load_audio(str(p)), y)


def test_resample_and_mono_mix_44k_stereo():
    left, right = tone(1.0, 300, 44100, 0.4), tone(1.0, 300, 44100, 0.2)
    y = load_audio(encode(np.stack([left, right], 1), 44100))
    assert y.size == SAMPLE_RATE_HZ and duration_s(y) == pytest.approx(1.0)
    ref = tone(1.0, 300, SAMPLE_RATE_HZ, 0.3)  # mean of the channels, at 16 kHz
    assert float(np.max(np.abs(y[100:-100] - ref[100:-100]))) < 2e-3


def test_8khz_stereo_keeps_duration_and_pitch():
    x8 = tone(2.0, 500, 8000, 0.5)
    y = load_audio(encode(np.stack([x8, 0.5 * x8], 1), 8000))
    assert y.size == 2 * SAMPLE_RATE_HZ
    spec = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(y.size, 1 / SAMPLE_RATE_HZ)[int(np.argmax(spec))] == pytest.approx(500, abs=1)


def test_encode_roundtrip_and_write(tmp_path, speech):
    for enc in (to_flac_bytes, to_wav_bytes):
        y = load_audio(enc(speech))
        assert y.shape == speech.shape and float(np.max(np.abs(y - speech))) < 1e-4
    assert to_flac_bytes(speech)[:4] == b"fLaC" and to_wav_bytes(speech)[:4] == b"RIFF"
    for suf in ("wav", "flac", "ogg"):
        p = write_audio(tmp_path / "sub" / f"x.{suf}", speech)
        assert load_audio(p).size == pytest.approx(speech.size, abs=2)
    with pytest.raises(AudioError, match="suffix"):
        write_audio(tmp_path / "x.mp4", speech)
    with pytest.raises(EmptyAudioError):
        to_flac_bytes(np.zeros(0, np.float32))
    with pytest.raises(AudioError):
        to_wav_bytes(np.zeros((10, 2), np.float32))


def test_empty_audio(tmp_path):
    with pytest.raises(EmptyAudioError):
        load_audio(b"")
    with pytest.raises(EmptyAudioError):
        load_audio(encode(np.zeros(0, np.float32), SAMPLE_RATE_HZ))  # valid header, 0 samples
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(EmptyAudioError):
        load_audio(tmp_path / "e.wav")


def test_corrupt_audio(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(CorruptAudioError):
        load_audio(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptAudioError):
        load_audio(b"this is a text file, not audio\n" * 10)
    with pytest.raises(CorruptAudioError):  # float WAV holding NaN
        load_audio(encode(np.full(1600, np.nan, np.float32), SAMPLE_RATE_HZ, subtype="FLOAT"))
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav")


def test_duration_limits(tmp_path):
    with pytest.raises(AudioTooShortError):
        load_audio(encode(tone(0.05), SAMPLE_RATE_HZ))
    assert load_audio(encode(tone(0.05), SAMPLE_RATE_HZ), min_duration_s=0).size == 800
    # a 10-minute file is rejected from its header when a max is given, and loaded otherwise
    p = tmp_path / "long.flac"
    minutes10 = (0.01 * np.random.default_rng(1).standard_normal(600 * SAMPLE_RATE_HZ)).astype(np.float32)
    sf.write(p, minutes10, SAMPLE_RATE_HZ, format="FLAC", subtype="PCM_16")
    with pytest.raises(AudioTooLongError, match="600.00 s"):
        load_audio(p, max_duration_s=30.0)
    with pytest.raises(AudioTooLongError):
        load_audio(p.read_bytes(), max_duration_s=30.0)
    y = load_audio(p)
    assert duration_s(y) == pytest.approx(600.0)


def test_resample_rejects_bad_rate():
    with pytest.raises(AudioError):
        resample(np.zeros(10, np.float32), 0)


def test_vad_trim_removes_edge_silence(speech):
    pad = np.zeros(SAMPLE_RATE_HZ, np.float32)  # 1 s of silence each side
    padded = np.concatenate([pad, speech, pad])
    trimmed = vad_trim(padded)
    assert duration_s(padded) - duration_s(trimmed) > 1.5
    assert duration_s(trimmed) >= duration_s(speech) - 0.5  # speech itself is kept
    # the kept part is the speech: it correlates with the original around the same offset
    assert float(np.sqrt(np.mean(trimmed**2))) > float(np.sqrt(np.mean(padded**2)))
    silence = np.zeros(SAMPLE_RATE_HZ, np.float32)
    assert np.array_equal(vad_trim(silence), silence)  # no speech found: nothing is dropped
    with pytest.raises(EmptyAudioError):
        vad_trim(np.zeros(0, np.float32))
