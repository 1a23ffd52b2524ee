"""Voice-activity detection with silero-vad (https://github.com/snakers4/silero-vad; the PyPI
package ships its model, no hub access). Used by :func:`uniss.audio.vad_trim` for the UniST
High-Quality edge trim (paper §4).

The model is loaded once per process and cached (:func:`load_vad_model`); calls are serialised with
a lock because the silero model keeps recurrent state between chunks.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import numpy as np


#: Input rate of the silero-vad model (Hz; it accepts 16 kHz or 8 kHz). A property of the VAD model,
#: kept apart from the platform rate ``uniss.audio.SAMPLE_RATE_HZ``, which it happens to equal.
VAD_SAMPLE_RATE_HZ = 16000

_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def load_vad_model() -> Any:
    """The silero-vad TorchScript model shipped in the ``silero-vad`` wheel (loaded once)."""
    from silero_vad import load_silero_vad

    return load_silero_vad()


def speech_timestamps(
    wav: np.ndarray,
    *,
    threshold: float = 0.5,
    min_speech_duration_s: float = 0.25,
    min_silence_duration_s: float = 0.1,
) -> list[tuple[float, float]]:
    """Speech segments of a 16 kHz mono waveform, in seconds.

    Args:
        wav: ``(N,)`` float32 at 16 kHz.
        threshold: speech probability threshold (silero default 0.5).
        min_speech_duration_s: shorter speech bursts are ignored (silero default 0.25 s).
        min_silence_duration_s: silences shorter than this do not split a segment (0.1 s).
    Returns:
        sorted ``[(start_s, end_s), ...]``; empty when no speech is found.
    Raises:
        AudioError: empty, non-finite, non-float or non-mono input (:func:`uniss.audio.check_waveform`).
    Source: ``silero_vad.get_speech_timestamps`` (return_seconds=False, converted here).
    """
    import torch
    from silero_vad import get_speech_timestamps

    from uniss.audio import check_waveform

    x = check_waveform(wav, what="VAD input")
    model = load_vad_model()
    with _LOCK, torch.no_grad():
        ts = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(x)),
            model,
            threshold=threshold,
            sampling_rate=VAD_SAMPLE_RATE_HZ,
            min_speech_duration_ms=int(min_speech_duration_s * 1000),
            min_silence_duration_ms=int(min_silence_duration_s * 1000),
        )
        model.reset_states()
    return [(t["start"] / VAD_SAMPLE_RATE_HZ, t["end"] / VAD_SAMPLE_RATE_HZ) for t in ts]
