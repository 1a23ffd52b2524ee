"""Audio I/O for the whole platform: load any WAV/FLAC/OGG as mono 16 kHz float32, encode, trim.

Shape legend: ``N`` = samples at :data:`SAMPLE_RATE_HZ` (16 kHz), ``C`` = channels of a file.
Every waveform the platform passes around is ``np.ndarray`` float32 ``(N,)`` in [-1, 1], 16 kHz mono
(paper §5.1: BiCodec and the GLM-4-Voice tokenizer both take 16 kHz input).

Libraries: decoding/encoding with soundfile (libsndfile, https://python-soundfile.readthedocs.io),
resampling with soxr (https://python-soxr.readthedocs.io, "HQ" quality), voice-activity edge trim
with silero-vad (:mod:`uniss.engines.vad`). Bad input raises an :class:`AudioError` subclass, never
a library traceback.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np

from uniss.errors import UnissError

#: Platform sample rate in Hz (paper §5.1: the speech tokenizers run at 16 kHz).
SAMPLE_RATE_HZ = 16000

#: Default shortest accepted clip in seconds (one 12.5 Hz linguistic token is 0.08 s).
DEFAULT_MIN_DURATION_S = 0.1

AudioSource = Union[str, os.PathLike, bytes, bytearray, memoryview]


class AudioError(UnissError, ValueError):
    """Base of every audio input error (the predictor answers HTTP 400, the CLI exit code 2)."""


class EmptyAudioError(AudioError):
    """The audio holds 0 samples (or the input is 0 bytes)."""


class CorruptAudioError(AudioError):
    """The input is not decodable audio (random bytes, truncated file, unknown format, NaN/inf)."""


class AudioTooShortError(AudioError):
    """The audio is shorter than the requested minimum duration."""


class AudioTooLongError(AudioError):
    """The audio is longer than the requested maximum duration (checked before decoding)."""


class NoSpeechAudioError(AudioError):
    """The audio holds no speech (silence, DC offset, a constant sample, noise): raised by
    :func:`require_speech` before any codec or model work. The predictor answers HTTP 400, the CLI
    exit code 2, a data build quarantines the row with this message as its reason.

    Distinct from :class:`uniss.engines.speaker.NoSpeechError` (an ``EngineError`` of the speaker
    encoder for digital silence only): this one is the input check of the whole platform.
    """


def duration_s(wav: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> float:
    """Duration in seconds of a waveform ``(N,)`` (or ``(N, C)``) sampled at ``sample_rate_hz``."""
    return float(np.asarray(wav).shape[0]) / float(sample_rate_hz)


def _open(src: AudioSource) -> tuple[object, str]:
    """Return a soundfile-readable object and a short name for messages."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        if len(data) == 0:
            raise EmptyAudioError("audio input is empty (0 bytes)")
        return io.BytesIO(data), f"<{len(data)} bytes>"
    path = Path(os.fspath(src))
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    if path.stat().st_size == 0:
        raise EmptyAudioError(f"audio file is empty (0 bytes): {path}")
    return str(path), str(path)


def resample(wav: np.ndarray, sr_in_hz: int, sr_out_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Resample ``(N,)`` float32 from ``sr_in_hz`` to ``sr_out_hz`` with soxr ("HQ" quality).

    Returns ``(round(N * sr_out / sr_in),)`` float32. Raises :class:`AudioError` on a rate <= 0.
    """
    import soxr

    if sr_in_hz <= 0 or sr_out_hz <= 0:
        raise AudioError(f"invalid sample rate {sr_in_hz} -> {sr_out_hz} Hz")
    x = np.ascontiguousarray(wav, dtype=np.float32)
    if sr_in_hz == sr_out_hz or x.size == 0:
        return x
    return np.asarray(soxr.resample(x, sr_in_hz, sr_out_hz, quality="HQ"), dtype=np.float32)


def load_audio(
    src: AudioSource,
    *,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    max_duration_s: float | None = None,
) -> np.ndarray:
    """Load WAV/FLAC/OGG (any format libsndfile reads) from a path or bytes as mono 16 kHz.

    Channels are mixed by their mean; any sample rate is resampled to 16 kHz with soxr.
    The duration limit is checked from the header (``soundfile.info``) before decoding, so an
    oversized request is rejected without decoding it.

    Args:
        src: file path or the encoded file's bytes.
        min_duration_s: shortest accepted clip (seconds); 0 disables the check.
        max_duration_s: longest accepted clip (seconds); ``None`` accepts any length.
    Returns:
        ``(N,)`` float32 in [-1, 1] at 16 kHz (:data:`SAMPLE_RATE_HZ`).
    Raises:
        EmptyAudioError: 0 bytes or 0 samples.
        CorruptAudioError: not decodable, or samples that are NaN/inf.
        AudioTooShortError / AudioTooLongError: outside ``[min_duration_s, max_duration_s]``.
        AudioError: missing file.
    """
    import soundfile as sf

    obj, name = _open(src)
    try:
        info = sf.info(obj)
        if isinstance(obj, io.BytesIO):
            obj.seek(0)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise CorruptAudioError(f"cannot decode audio {name}: {e}") from None
    if info.samplerate <= 0:
        raise CorruptAudioError(f"audio {name} has an invalid sample rate {info.samplerate}")
    if info.frames == 0:
        raise EmptyAudioError(f"audio {name} holds 0 samples")
    header_s = info.frames / info.samplerate if info.frames > 0 else None
    if max_duration_s is not None and header_s is not None and header_s > max_duration_s:
        raise AudioTooLongError(f"audio {name} lasts {header_s:.2f} s > max {max_duration_s:.2f} s")
    try:
        data, sr = sf.read(obj, dtype="float32", always_2d=True)  # (N, C)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise CorruptAudioError(f"cannot decode audio {name}: {e}") from None
    if data.shape[0] == 0:
        raise EmptyAudioError(f"audio {name} holds 0 samples")
    if not np.all(np.isfinite(data)):
        raise CorruptAudioError(f"audio {name} contains NaN or infinite samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]  # (N,)
    wav = resample(mono, int(sr), SAMPLE_RATE_HZ)
    dur = duration_s(wav)
    if max_duration_s is not None and dur > max_duration_s:
        raise AudioTooLongError(f"audio {name} lasts {dur:.2f} s > max {max_duration_s:.2f} s")
    if min_duration_s and dur < min_duration_s:
        raise AudioTooShortError(f"audio {name} lasts {dur:.3f} s < min {min_duration_s:.3f} s")
    return np.clip(wav, -1.0, 1.0).astype(np.float32, copy=False)


def check_waveform(wav: object, *, min_duration_s: float = 0.0, what: str = "waveform") -> np.ndarray:
    """The one check of an in-memory waveform, used by every module that takes one (encoders, VAD,
    ASR, speaker embeddings, codecs, the translation engine).

    Rule: a 1-D array of real floating-point samples (mono, 16 kHz: :data:`SAMPLE_RATE_HZ`), non-empty,
    at least ``min_duration_s`` long, with no NaN/inf. Integer arrays are refused: every waveform
    of the platform is float in [-1, 1] and an int16 PCM buffer cast to float would be 32768 times
    too loud (decode files and bytes with :func:`load_audio`).

    Args:
        wav: ``(N,)`` float array (any float dtype; lists of floats are accepted).
        min_duration_s: shortest accepted duration in seconds (0 = any non-empty clip).
        what: name of the input in error messages (e.g. ``"wavs[3]"``, ``"ASR input 0"``).
    Returns:
        ``(N,)`` float32, C-contiguous (values not clipped).
    Raises:
        AudioError: not an array, not 1-D (e.g. stereo ``(N, 2)``: mix down with :func:`load_audio`)
            or not floating point.
        EmptyAudioError: 0 samples.
        AudioTooShortError: shorter than ``min_duration_s``.
        CorruptAudioError: NaN or infinite samples.
    """
    try:
        a = np.asarray(wav)
    except Exception as e:  # noqa: BLE001 - any conversion failure is bad input
        raise AudioError(f"{what} is not an array: {e}") from None
    if a.ndim != 1:
        raise AudioError(f"{what} must be a mono waveform (N,) at {SAMPLE_RATE_HZ} Hz, got shape {a.shape}; "
                         "load files with uniss.audio.load_audio (mono mix + resampling)")
    if a.dtype.kind != "f":
        raise AudioError(f"{what} must hold numeric float samples in [-1, 1], got dtype {a.dtype}")
    if a.size == 0:
        raise EmptyAudioError(f"{what} is empty (0 samples)")
    if a.size < min_duration_s * SAMPLE_RATE_HZ:
        raise AudioTooShortError(f"{what} is {a.size / SAMPLE_RATE_HZ:.3f} s long; at least {min_duration_s} s needed")
    x = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(x).all():
        raise CorruptAudioError(f"{what} contains NaN or infinite samples")
    return x


#: Least total speech (seconds, summed over silero-vad segments) for a clip to count as speech. The
#: silero-vad default ``min_speech_duration_ms=250`` of ``get_speech_timestamps`` (silero-vad README /
#: ``silero_vad/utils_vad.py``): one segment of that length is enough.
MIN_SPEECH_S = 0.25

#: silero-vad speech-probability threshold (its documented default 0.5: "Speech threshold. Silero VAD
#: outputs speech probabilities for each audio chunk, probabilities ABOVE this value are considered as
#: SPEECH", ``get_speech_timestamps`` docstring).
VAD_THRESHOLD = 0.5

#: Peak-to-peak amplitude under which a clip is constant (digital silence, a DC offset, one sample
#: repeated) and rejected without running the VAD: 2 x 1e-4 (-80 dBFS, the speaker encoder's
#: ``SILENCE_PEAK``), i.e. below ~3 LSB of 16-bit PCM around any offset.
CONSTANT_PTP = 2e-4


def require_speech(wav: object, *, min_speech_s: float = MIN_SPEECH_S, what: str = "audio") -> np.ndarray:
    """The platform's no-speech check: pass a waveform only when silero-vad finds speech in it.

    Run it on every *source* clip before any codec or model work (translation engine entry, predictor
    preprocess, ``uniss translate``, external data sources). Rules, in order:

    1. :func:`check_waveform` (1-D float, non-empty, finite: NaN/inf -> :class:`CorruptAudioError`);
    2. peak-to-peak amplitude ``< CONSTANT_PTP`` (silence, DC offset, one repeated sample) -> no speech,
       without running the VAD;
    3. silero-vad (:func:`uniss.engines.vad.speech_timestamps`, threshold :data:`VAD_THRESHOLD`,
       segments of at least 0.25 s) must find at least ``min_speech_s`` seconds of speech in total;
       white/clipped noise and pure tones score below the threshold (measured: 0 segments).

    Cost: one silero-vad pass, measured ~58 ms per second of audio (1 s: 56 ms, 3 s: 180 ms, 10 s:
    0.60 s; shared 2-core CPU, torch CPU); rule 2 costs one min/max (~0.1 ms for 3 s).

    Args:
        wav: ``(N,)`` float waveform, mono 16 kHz (:data:`SAMPLE_RATE_HZ`).
        min_speech_s: least total speech (seconds); default :data:`MIN_SPEECH_S` (silero default).
        what: name of the input in error messages (``"wavs[2]"``, a file name, a record id).
    Returns:
        ``(N,)`` float32, the checked waveform (as :func:`check_waveform` returns it; not trimmed).
    Raises:
        NoSpeechAudioError: constant signal or less than ``min_speech_s`` of detected speech.
        AudioError / EmptyAudioError / CorruptAudioError: as :func:`check_waveform`.
    """
    from uniss.engines.vad import speech_timestamps

    x = check_waveform(wav, what=what)
    ptp = float(x.max() - x.min())
    if ptp < CONSTANT_PTP:
        raise NoSpeechAudioError(f"{what} holds no speech: the signal is constant (peak-to-peak {ptp:.1e} < {CONSTANT_PTP:.0e}; "
                                 "silence, DC offset or one repeated sample)")
    segs = speech_timestamps(x, threshold=VAD_THRESHOLD, min_speech_duration_s=MIN_SPEECH_S)
    speech = sum(b - a for a, b in segs)
    if speech < min_speech_s:
        raise NoSpeechAudioError(f"{what} holds no speech: silero-vad found {speech:.2f} s of speech in "
                                 f"{duration_s(x):.2f} s, at least {min_speech_s:.2f} s needed")
    return x


def _check_wav(wav: np.ndarray) -> np.ndarray:
    return np.clip(check_waveform(wav), -1.0, 1.0)


def _encode(wav: np.ndarray, fmt: str, subtype: str, sample_rate_hz: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, _check_wav(wav), sample_rate_hz, format=fmt, subtype=subtype)
    return buf.getvalue()


def to_flac_bytes(wav: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """Encode ``(N,)`` float32 as 16-bit FLAC bytes (lossless at 16-bit; the shard audio format).

    Raises EmptyAudioError / CorruptAudioError / AudioError for empty, non-finite or non-mono input.
    """
    return _encode(wav, "FLAC", "PCM_16", sample_rate_hz)


def to_wav_bytes(wav: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """Encode ``(N,)`` float32 as 16-bit PCM WAV bytes (what the predictor returns)."""
    return _encode(wav, "WAV", "PCM_16", sample_rate_hz)


def write_audio(path: str | os.PathLike, wav: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> Path:
    """Write ``(N,)`` float32 to ``path``; format from the suffix (.wav, .flac, .ogg), 16-bit PCM
    for WAV/FLAC, Vorbis for OGG. Parent folders are created. Returns the path.

    Raises AudioError on an unsupported suffix or bad waveform.
    """
    import soundfile as sf

    p = Path(path)
    fmt = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}.get(p.suffix.lower())
    if fmt is None:
        raise AudioError(f"unsupported audio suffix {p.suffix!r} (use .wav, .flac or .ogg)")
    x = _check_wav(wav)
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(p), x, sample_rate_hz, format=fmt[0], subtype=fmt[1])
    return p


def vad_trim(wav: np.ndarray, *, pad_s: float = 0.05) -> np.ndarray:
    """Remove leading and trailing non-speech with silero-vad (UniST High-Quality rule, paper §4).

    Args:
        wav: ``(N,)`` float32 16 kHz.
        pad_s: seconds of context kept before the first and after the last speech segment.
    Returns:
        ``(M,)`` float32, M <= N: from the first speech start to the last speech end (+ pad).
        When silero-vad finds no speech at all the input is returned unchanged (nothing is lost;
        the caller's ASR filter judges it).
    Raises:
        EmptyAudioError: 0 samples.
    """
    from uniss.engines.vad import speech_timestamps

    x = np.asarray(wav, dtype=np.float32)
    if x.size == 0:
        raise EmptyAudioError("cannot trim a waveform of 0 samples")
    segs = speech_timestamps(x)
    if not segs:
        return x
    start = max(0, int((segs[0][0] - pad_s) * SAMPLE_RATE_HZ))
    end = min(x.size, int(np.ceil((segs[-1][1] + pad_s) * SAMPLE_RATE_HZ)))
    return x[start:end]
