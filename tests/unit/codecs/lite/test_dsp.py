"""log-mel analysis and Griffin-Lim rendering on synthetic tones (librosa only, no models)."""

from __future__ import annotations

import numpy as np

from uniss.codecs.lite import HOP_SAMPLES, LOG_FLOOR, griffin_lim, log_mel


def _tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)  # (N,)


def test_log_mel_shape_rate_and_floor():
    m = log_mel(_tone(1.0))  # (80, 50)
    assert m.shape == (80, 50) and m.dtype == np.float32
    assert log_mel(_tone(0.01)).shape == (80, 1)  # 160 samples -> round(0.5) frames, at least one
    assert log_mel(np.zeros(16000, np.float32)).min() == np.float32(np.log(LOG_FLOOR))
    # the 440 Hz tone peaks in a low mel bin, the same one in every frame
    peak = m.argmax(axis=0)
    assert len(set(peak[2:-2].tolist())) == 1 and peak[10] < 20


def test_griffin_lim_length_and_peak():
    m = log_mel(_tone(0.5))  # (80, 25)
    y = griffin_lim(m, n_iter=4)
    assert y.dtype == np.float32 and y.shape == (25 * HOP_SAMPLES,)
    assert 0.05 < np.abs(y).max() <= 0.99
    # rendered audio analyses back to a mel close to the input
    assert np.abs(log_mel(y)[:, 2:-2] - m[:, 2:-2]).mean() < 1.5
