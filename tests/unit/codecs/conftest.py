"""Shared fixtures: a few dozen flite/espeak clips and one tiny lite codec fitted on them (once per session)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "A large fawn jumped quickly over white zinc boxes.",
    "Open the window and let the fresh air in.",
    "We will meet again tomorrow morning at nine.",
    "Please call me when you arrive at the station.",
]
VOICES = ["flite:slt", "flite:awb", "flite:rms", "flite:kal16", "espeak:en-us"]


def synth(text: str, voice: str) -> np.ndarray:
    """16 kHz float32 speech from the Debian synthesizers (``uniss.engines.tts.SystemTTS``)."""
    from uniss.engines.tts import SystemTTS

    return SystemTTS().synthesize(text, "en", voice)


@pytest.fixture(scope="session")
def corpus(whisper_model_dir) -> list[tuple[str, str, np.ndarray]]:
    """(text, voice, wav) for 6 sentences x 5 voices (30 clips, ~85 s of speech).

    A missing synthesizer or Whisper-base fails the test (a broken install), never skips."""
    missing = [b for b in ("flite", "espeak-ng") if shutil.which(b) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `make setup` (installs the Debian voices)", pytrace=False)
    return [(s, v, synth(s, v)) for s in SENTENCES for v in VOICES]


@pytest.fixture(scope="session")
def tiny_codec(corpus):
    """A tiny lite codec fitted on the corpus (< 60 s on 2 cores)."""
    from uniss.codecs.lite import LiteCodecConfig, fit_lite_codec

    return fit_lite_codec([w for *_, w in corpus], LiteCodecConfig.tiny(), progress=False)


@pytest.fixture(scope="session")
def saved_codec(tiny_codec, tmp_path_factory):
    """The tiny codec saved to a directory."""
    d = tmp_path_factory.mktemp("codec")
    tiny_codec.save(d)
    return d
