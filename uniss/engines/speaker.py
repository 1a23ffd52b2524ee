"""Speaker embeddings for speaker-similarity scoring (paper §5.2 / App. C: cosine of speaker
embeddings of source and output speech).

Backend: resemblyzer's ``VoiceEncoder`` (GE2E d-vector, Wan et al. 2018;
https://github.com/resemble-ai/Resemblyzer), CPU, weights shipped in the wheel, loaded once per
process. Input: ``(N,)`` float32 mono 16 kHz (resemblyzer's own rate). Output: ``(256,)`` float32,
L2-normalised. The paper uses WavLM-based verification; resemblyzer is the offline stand-in, so
absolute values differ from the paper's SIM column (measured here: same voice ~0.9, different ~0.6).
"""

from __future__ import annotations

import threading
import warnings
from functools import lru_cache
from typing import Any

import numpy as np

from uniss.audio import SAMPLE_RATE_HZ
from uniss.engines import EngineError

#: Embedding size of resemblyzer's VoiceEncoder (``model_embedding_size``).
EMBEDDING_DIM = 256

#: Shortest speech resemblyzer can embed after its silence trim: one 1.6 s partial window is the
#: model's unit; shorter clips are embedded from a single padded partial (resemblyzer behaviour).
MIN_SPEECH_S = 0.2

_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _encoder() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webrtcvad's pkg_resources deprecation warning
        from resemblyzer import VoiceEncoder

        return VoiceEncoder(device="cpu", verbose=False)


class SpeakerEncoder:
    """resemblyzer d-vector speaker encoder (shared model, thread-safe).

    Methods: :meth:`embed` ``(N,) -> (256,)``, :meth:`similarity` (cosine in [-1, 1]).
    """

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """Speaker embedding of one utterance.

        Args:
            wav: ``(N,)`` float32 mono at 16 kHz.
        Returns:
            ``(256,)`` float32, unit L2 norm.
        Raises:
            EngineError: not mono, non-finite, silent, or under :data:`MIN_SPEECH_S` of speech after
                resemblyzer's volume normalisation and silence trim (``preprocess_wav``).
        """
        from resemblyzer import preprocess_wav

        x = np.asarray(wav, dtype=np.float32)
        if x.ndim != 1 or x.size == 0:
            raise EngineError(f"speaker embedding needs a non-empty mono waveform (N,), got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise EngineError("speaker embedding got NaN or infinite samples")
        if float(np.max(np.abs(x))) < 1e-4:
            raise EngineError("speaker embedding got silence (peak < 1e-4)")
        with _LOCK:
            enc = _encoder()
            pre = preprocess_wav(x, source_sr=SAMPLE_RATE_HZ)
            if pre.size < MIN_SPEECH_S * SAMPLE_RATE_HZ:
                raise EngineError(f"too little speech for a speaker embedding ({pre.size / SAMPLE_RATE_HZ:.2f} s)")
            e = np.asarray(enc.embed_utterance(pre), dtype=np.float32)  # (256,)
        n = float(np.linalg.norm(e))
        if not np.isfinite(n) or n == 0.0:
            raise EngineError("speaker embedding is degenerate (zero norm)")
        return (e / n).astype(np.float32)

    def similarity(self, wav_a: np.ndarray, wav_b: np.ndarray) -> float:
        """Cosine similarity of the two utterances' embeddings (both ``(N,)`` float32 16 kHz).

        Raises EngineError as :meth:`embed`.
        """
        return float(np.dot(self.embed(wav_a), self.embed(wav_b)))
