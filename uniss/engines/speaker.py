"""Speaker embeddings: the one resemblyzer wrapper of the platform, used by speaker-similarity
scoring (paper §5.2 / App. C: cosine of speaker embeddings of source and output speech) and by the
lite codec's speaker tokens (:mod:`uniss.codecs.lite`).

Backend: resemblyzer's ``VoiceEncoder`` (GE2E d-vector, Wan et al. 2018;
https://github.com/resemble-ai/Resemblyzer), CPU, weights shipped in the wheel, loaded once per
process. Input: ``(N,)`` float32 mono 16 kHz (resemblyzer's own rate). Output: ``(256,)`` float32,
L2-normalised. The paper uses WavLM-based verification; resemblyzer is the offline stand-in, so
absolute values differ from the paper's SIM column (measured here: same voice ~0.9, different ~0.6).

The short-clip rule (one rule for every caller):

1. digital silence (peak ``< SILENCE_PEAK``) has no speaker: :class:`NoSpeechError`
   (resemblyzer's volume normalisation would divide by zero; speaker similarity scores it ``nan``);
2. otherwise resemblyzer's ``preprocess_wav`` normalises loudness and trims silences (webrtcvad);
   when less than :data:`MIN_SPEECH_S` of speech remains, the loudness-normalised *untrimmed*
   clip is embedded instead, so every clip with sound gets an embedding (a codec must tokenize it).

Shape legend: ``N`` samples (16 kHz), ``P`` resemblyzer partial windows (1.6 s = 160 x 40 mel) of all
clips of a batch, ``D`` = :data:`EMBEDDING_DIM` = 256.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from uniss.audio import SAMPLE_RATE_HZ, check_waveform
from uniss.engines import EngineError

__all__ = ["EMBEDDING_DIM", "MIN_SPEECH_S", "SILENCE_PEAK", "NoSpeechError", "SpeakerEncoder", "speaker_encoder"]

#: Embedding size of resemblyzer's VoiceEncoder (``model_embedding_size``).
EMBEDDING_DIM = 256

#: Least speech (s) left after resemblyzer's silence trim for the trimmed clip to be embedded; below
#: it the untrimmed clip is embedded. The lite codec's rule since its first trained bundle (its speaker
#: quantizer was fitted on embeddings made this way), so saved codecs encode unchanged.
MIN_SPEECH_S = 0.3

#: Peak amplitude under which a clip is digital silence (-80 dBFS, below one 16-bit LSB ~3e-5 x 3).
SILENCE_PEAK = 1e-4

#: resemblyzer ``embed_utterance`` defaults: partial windows per second and least coverage of the last one.
PARTIALS_RATE = 1.3
MIN_COVERAGE = 0.75

_LOCK = threading.Lock()


class NoSpeechError(EngineError):
    """The clip is digital silence: there is no speaker to embed."""


def _quiet_webrtcvad() -> None:
    """Ignore webrtcvad's import-time warning: resemblyzer imports webrtcvad, which imports
    setuptools' deprecated pkg_resources (a UserWarning, harmless: webrtcvad only reads its own
    version from it). Called before every resemblyzer import of this module (the only importer)."""
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated as an API", category=UserWarning,
                            module="webrtcvad")


@lru_cache(maxsize=1)
def _encoder() -> Any:
    _quiet_webrtcvad()
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


class SpeakerEncoder:
    """resemblyzer d-vector speaker encoder (one shared model per process, thread-safe).

    Methods: :meth:`embed` ``(N,) -> (256,)``, :meth:`embed_batch` ``[(N_i,)] -> (n, 256)``,
    :meth:`similarity` (cosine in [-1, 1]), :meth:`weights_sha256`.
    """

    @property
    def encoder(self) -> Any:
        """The process-wide resemblyzer ``VoiceEncoder``."""
        return _encoder()

    @staticmethod
    def weights_sha256() -> str:
        """sha256 (hex) of resemblyzer's shipped ``pretrained.pt`` (recorded in codec manifests)."""
        _quiet_webrtcvad()
        import resemblyzer

        with open(Path(resemblyzer.__file__).parent / "pretrained.pt", "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """Speaker embedding of one utterance.

        Args:
            wav: ``(N,)`` float32 mono at 16 kHz.
        Returns:
            ``(256,)`` float32, unit L2 norm.
        Raises:
            AudioError: not a non-empty finite mono float waveform (:func:`uniss.audio.check_waveform`).
            NoSpeechError: digital silence (module docstring, rule 1).
        """
        return self.embed_batch([wav])[0]

    def embed_batch(self, wavs: Sequence[np.ndarray], max_partials: int = 32) -> np.ndarray:
        """Embeddings of several clips, their 1.6 s partial windows forwarded together.

        The arithmetic of resemblyzer's ``VoiceEncoder.embed_utterance`` (partials at rate 1.3/s,
        min coverage 0.75, L2-normalised mean of the partial embeddings) after the short-clip rule
        of the module docstring, but with the partials of many clips in one LSTM batch
        (``max_partials`` per forward): several times faster than one call per clip on CPU.

        Args:
            wavs: ``n`` waveforms ``(N_i,)`` float32 mono 16 kHz.
            max_partials: partial windows per LSTM forward.
        Returns:
            ``(n, 256)`` float32, unit-norm rows.
        Raises:
            AudioError / NoSpeechError: as :meth:`embed`, for any clip.
        """
        import torch

        _quiet_webrtcvad()
        from resemblyzer import audio, preprocess_wav

        xs = [self._check(w) for w in wavs]
        enc = _encoder()
        mels, owner = [], []
        for i, wav in enumerate(xs):
            w = preprocess_wav(wav, source_sr=SAMPLE_RATE_HZ)
            if len(w) < MIN_SPEECH_S * SAMPLE_RATE_HZ:
                w = audio.normalize_volume(wav, -30, increase_only=True)
            wav_slices, mel_slices = enc.compute_partial_slices(len(w), PARTIALS_RATE, MIN_COVERAGE)
            if wav_slices[-1].stop >= len(w):
                w = np.pad(w, (0, wav_slices[-1].stop - len(w)))
            mel = audio.wav_to_mel_spectrogram(w.astype(np.float32))  # (frames, 40)
            for sl in mel_slices:
                mels.append(mel[sl])  # (160, 40)
                owner.append(i)
        x = np.stack(mels).astype(np.float32)  # (P, 160, 40)
        parts = []
        with _LOCK, torch.inference_mode():
            for j in range(0, len(x), max_partials):
                parts.append(enc(torch.from_numpy(x[j : j + max_partials])).numpy())  # (<=32, D)
        pe = np.concatenate(parts)  # (P, D)
        owner_a = np.asarray(owner)  # (P,)
        out = np.zeros((len(xs), EMBEDDING_DIM), np.float32)  # (n, D)
        for i in range(len(xs)):
            m = pe[owner_a == i].mean(axis=0)  # (D,)
            out[i] = m / max(float(np.linalg.norm(m)), 1e-12)
        return out

    def similarity(self, wav_a: np.ndarray, wav_b: np.ndarray) -> float:
        """Cosine similarity of the two utterances' embeddings (both ``(N,)`` float32 16 kHz).

        Raises AudioError / NoSpeechError as :meth:`embed`.
        """
        a, b = self.embed_batch([wav_a, wav_b])
        return float(np.dot(a, b))

    @staticmethod
    def _check(wav: np.ndarray) -> np.ndarray:
        x = check_waveform(wav, what="speaker embedding input")
        if float(np.max(np.abs(x))) < SILENCE_PEAK:
            raise NoSpeechError(f"speaker embedding got digital silence (peak < {SILENCE_PEAK})")
        return x


@lru_cache(maxsize=1)
def speaker_encoder() -> SpeakerEncoder:
    """Process-wide :class:`SpeakerEncoder`."""
    return SpeakerEncoder()
