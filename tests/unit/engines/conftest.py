"""Fixtures shared by the engine tests: real speech made once per session (system TTS, LibriVox)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uniss.audio import load_audio

#: Real recorded English speech shipped by Debian ``pocketsphinx-testdata`` (5 clips, one speaker).
LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")

EN_SENTENCES = ["He opened the window and looked at the garden.",
                "We will meet at the station tomorrow morning."]
ZH_SENTENCES = ["我喜欢喝茶。", "这本书非常有意思。"]


def librivox() -> list[tuple[str, np.ndarray, str]]:
    """``[(clip id, (N,) float32 16 kHz, reference transcript)]`` from the Debian package."""
    refs = {}
    for line in (LIBRIVOX_DIR / "transcription").read_text().splitlines():
        text, _, cid = line.rpartition("(")
        refs[cid.strip(" )")] = text.replace("<s>", "").replace("</s>", "").strip()
    return [(cid, load_audio(LIBRIVOX_DIR / f"{cid}.wav"), refs[cid]) for cid in sorted(refs)]


@pytest.fixture(scope="session")
def librivox_clips() -> list[tuple[str, np.ndarray, str]]:
    return librivox()


@pytest.fixture(scope="session")
def tts():
    from uniss.engines.tts import SystemTTS

    return SystemTTS()


@pytest.fixture(scope="session")
def whisper(whisper_model_dir):
    """Whisper-base, greedy; fails with the install command when the model is missing."""
    from uniss.engines.asr import WhisperASR

    return WhisperASR(model_dir=whisper_model_dir, beam_size=1)
