"""resemblyzer speaker embeddings: shape/norm, same voice scores above different voices."""

from __future__ import annotations

import numpy as np
import pytest

from uniss.audio import AudioError
from uniss.engines import EngineError
from uniss.engines.speaker import EMBEDDING_DIM, SpeakerEncoder

SENTS = ["The children played in the park until sunset.", "Could you pass me the salt and pepper please?"]


@pytest.fixture(scope="module")
def enc():
    return SpeakerEncoder()


def test_embedding_shape_norm(enc, tts):
    e = enc.embed(tts.synthesize(SENTS[0], "en", "flite:slt"))
    assert e.shape == (EMBEDDING_DIM,) and e.dtype == np.float32
    assert float(np.linalg.norm(e)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_same_voice_beats_different_voice(enc, tts):
    voices = ["flite:slt", "flite:awb", "espeak:en-us"]
    emb = {v: [enc.embed(tts.synthesize(s, "en", v)) for s in SENTS] for v in voices}
    same = [float(emb[v][0] @ emb[v][1]) for v in voices]
    diff = [float(emb[a][0] @ emb[b][1]) for a in voices for b in voices if a != b]
    assert min(same) > max(diff), (same, diff)
    assert np.mean(same) - np.mean(diff) > 0.15
    a = tts.synthesize(SENTS[0], "en", "flite:slt")
    assert enc.similarity(a, a) == pytest.approx(1.0, abs=1e-5)


def test_bad_input(enc):
    with pytest.raises(AudioError):
        enc.embed(np.zeros(0, np.float32))
    with pytest.raises(AudioError):
        enc.embed(np.full(16000, np.inf, np.float32))
    with pytest.raises(EngineError):
        enc.embed(np.zeros(16000, np.float32))  # silence: nothing left after the trim
