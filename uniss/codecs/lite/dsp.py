"""Signal processing of the lite codec: 50 Hz log-mel analysis and Griffin-Lim rendering.

The semantic stream quantizes these mel frames and the decoder predicts them; :func:`griffin_lim`
turns a predicted log-mel back into a waveform. librosa does the STFT, mel filters and Griffin-Lim.

Shape legend (all audio is 16 kHz mono float32):
    N    samples (16 kHz)
    T_s  mel / semantic frames = round(N / 320) (50 Hz, hop 320 samples = 20 ms)
    M    mel bins (80 by default)
    F    linear STFT bins = 1 + n_fft / 2
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from uniss.codecs.base import SAMPLE_RATE_HZ, n_semantic

#: Hop of the semantic mel frames (samples): 16000 / 50 = 320 (50 tokens/s, paper §3.1.2).
HOP_SAMPLES = 320
#: Floor of the mel magnitude before the log (natural log domain).
LOG_FLOOR = 1e-5


@lru_cache(maxsize=4)
def _mel_basis(n_mels: int, n_fft: int) -> np.ndarray:
    """librosa Slaney mel filter bank, 0-8 kHz: ``(M, F)`` float32."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=SAMPLE_RATE_HZ / 2)


def log_mel(wav: np.ndarray, n_mels: int = 80, n_fft: int = 1024) -> np.ndarray:
    """50 Hz natural-log magnitude mel frames of a clip.

    Args:
        wav: ``(N,)`` float32 16 kHz.

    Returns:
        ``(M, T_s)`` float32, ``T_s = round(N / 320)``; STFT hop 320, Hann window ``n_fft``,
        centred (librosa), mel filters 0-8 kHz (librosa Slaney), ``ln(max(mel, 1e-5))``.
    """
    import librosa

    S = np.abs(librosa.stft(wav, n_fft=n_fft, hop_length=HOP_SAMPLES, win_length=n_fft, center=True))  # (F, 1 + N // 320)
    mel = _mel_basis(n_mels, n_fft) @ S  # (M, 1 + N // 320)
    t = n_semantic(len(wav))
    if mel.shape[1] < t:
        mel = np.pad(mel, ((0, 0), (0, t - mel.shape[1])), mode="edge")
    return np.log(np.maximum(mel[:, :t], LOG_FLOOR)).astype(np.float32)  # (M, T_s)


@lru_cache(maxsize=4)
def _mel_pinv(n_mels: int, n_fft: int) -> np.ndarray:
    """Pseudo-inverse of the mel filter bank: ``(F, M)``."""
    return np.linalg.pinv(_mel_basis(n_mels, n_fft))  # (F, M)


def griffin_lim(logmel: np.ndarray, n_fft: int = 1024, n_iter: int = 32) -> np.ndarray:
    """Waveform from a ``(M, T_s)`` natural-log magnitude mel by Griffin-Lim (librosa).

    The linear magnitude is the mel inverted by the filter bank's pseudo-inverse, clipped at 0
    (much faster than librosa's NNLS ``mel_to_stft``); phases by ``librosa.griffinlim``
    (momentum 0.99, Perraudin et al. 2013).

    Args:
        logmel: ``(M, T_s)`` natural-log mel magnitudes (50 Hz frames).
        n_fft: STFT size (samples) the mel was analysed with.
        n_iter: Griffin-Lim iterations.

    Returns:
        ``(T_s * 320,)`` float32 16 kHz (duration ``T_s / 50`` s), peak-limited to 0.99.
    """
    import librosa

    M = np.exp(logmel.astype(np.float32))  # (M, T_s)
    # one extra edge frame: librosa's centred STFT of ``T_s * 320`` samples has ``T_s + 1`` frames
    M = np.pad(M, ((0, 0), (0, 1)), mode="edge")  # (M, T_s + 1)
    S = np.maximum(_mel_pinv(logmel.shape[0], n_fft).astype(np.float32) @ M, 0.0)  # (F, T_s + 1)
    y = librosa.griffinlim(
        S,
        n_iter=n_iter,
        hop_length=HOP_SAMPLES,
        win_length=n_fft,
        n_fft=n_fft,
        length=logmel.shape[1] * HOP_SAMPLES,
        random_state=0,
    ).astype(np.float32)  # (T_s * 320,)
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak > 0.99:
        y *= 0.99 / peak
    return y
