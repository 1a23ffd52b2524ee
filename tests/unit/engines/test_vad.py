"""silero-vad speech timestamps on synthetic speech placed at a known offset."""

from __future__ import annotations

import numpy as np
import pytest

from uniss.audio import SAMPLE_RATE_HZ, duration_s
from uniss.audio import AudioError
from uniss.engines.vad import load_vad_model, speech_timestamps


def test_speech_found_at_known_offset(tts):
    speech = tts.synthesize("Please close the door when you leave the room.", "en", "flite:awb")
    x = np.concatenate([np.zeros(int(1.5 * SAMPLE_RATE_HZ), np.float32), speech,
                        np.zeros(SAMPLE_RATE_HZ, np.float32)])
    segs = speech_timestamps(x)
    assert segs, "no speech found"
    assert segs[0][0] == pytest.approx(1.5, abs=0.3)
    assert segs[-1][1] == pytest.approx(1.5 + duration_s(speech), abs=0.4)
    assert all(a < b for a, b in segs)
    assert speech_timestamps(x) == segs  # state is reset between calls: deterministic
    assert load_vad_model() is load_vad_model()  # loaded once


def test_silence_and_bad_input():
    assert speech_timestamps(np.zeros(SAMPLE_RATE_HZ, np.float32)) == []
    with pytest.raises(AudioError):
        speech_timestamps(np.zeros(0, np.float32))
    with pytest.raises(AudioError):
        speech_timestamps(np.zeros((100, 2), np.float32))
