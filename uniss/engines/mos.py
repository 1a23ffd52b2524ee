"""MOS proxy: predicted mean opinion score of speech, no reference needed.

:class:`DNSMOS` runs Microsoft's DNSMOS P.808 model (Reddy et al., ICASSP 2022, "DNSMOS P.835";
the P.808 head predicts the ITU-T P.808 overall MOS, 1-5) as shipped with its ONNX weights in the
PyPI package ``speechmos`` 0.0.1.1 (class ``speechmos.dnsmos.DNSMOS``: 9.01 s windows hopped by
1 s, a clip shorter than 9.01 s is tiled to that length, scores averaged over windows).

Why DNSMOS over ``distillmos`` (both run here, FACTS.md): it runs on onnxruntime, which the TTS
engines already load, without torch or the XLS-R feature model; its sessions take a thread limit;
and it is the MOS proxy most papers report for TTS. Cost: one P.808 call per 9 s window of the clip
(:meth:`DNSMOS.score` skips the P.835 head that ``speechmos`` also runs).

Input of :meth:`MOSPredictor.score`: a list of ``(N_i,)`` float32 waveforms, 16 kHz mono
(:data:`uniss.audio.SAMPLE_RATE_HZ`); samples are clipped to [-1, 1] (DNSMOS requires it).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from uniss.engines import EngineError, EngineUnavailableError

#: Shortest clip scored (seconds): below this a clip has no utterance to judge.
MIN_DURATION_S = 0.1

#: Peak amplitude below which a clip counts as silent (about -60 dBFS).
SILENCE_PEAK = 1e-3


class MOSError(EngineError):
    """A clip the MOS predictor cannot score: empty, shorter than 0.1 s, silent, or not finite."""


@runtime_checkable
class MOSPredictor(Protocol):
    """Reference-free speech quality: ``score(wavs) -> list[float]`` (MOS, about 1-5) per clip."""

    def score(self, wavs: list[np.ndarray]) -> list[float]:
        """One predicted MOS per ``(N_i,)`` float32 16 kHz clip."""
        ...


def _speechmos_dnsmos() -> tuple[Any, Path]:
    try:
        from speechmos import dnsmos
    except ImportError as e:
        raise EngineUnavailableError(f"speechmos is not installed ({e}); pip install speechmos==0.0.1.1") from None
    return dnsmos, Path(dnsmos.__file__).resolve().parent / "dnsmos_models"


class DNSMOS:
    """DNSMOS P.808 (and P.835 SIG/BAK/OVRL) predictor from ``speechmos``' shipped ONNX models.

    Args:
        threads: onnxruntime intra-op threads per model (default 1).
    Raises:
        EngineUnavailableError: ``speechmos`` (or its model files) missing.

    Scores are deterministic. A clean TTS sentence scores about 3-4.3, white noise about 2-3
    (measured: tests/unit/engines/test_kokoro.py).
    """

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort

        dnsmos, root = _speechmos_dnsmos()
        primary, p808 = root / "sig_bak_ovr.onnx", root / "model_v8.onnx"
        missing = [str(p) for p in (primary, p808) if not p.is_file()]
        if missing:
            raise EngineUnavailableError(f"speechmos lacks its DNSMOS models {missing}")
        if int(threads) < 1:
            raise MOSError(f"threads must be >= 1 (got {threads})")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        model = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)  # its __init__ builds sessions without a thread limit
        model.primary_model_path = str(primary)
        model.onnx_sess = ort.InferenceSession(str(primary), sess_options=opts, providers=["CPUExecutionProvider"])
        model.p808_onnx_sess = ort.InferenceSession(str(p808), sess_options=opts, providers=["CPUExecutionProvider"])
        self._model = model
        self._sr = int(dnsmos.SR)
        self._lock = threading.Lock()

    def _check(self, wav: np.ndarray, i: int) -> np.ndarray:
        w = np.asarray(wav, dtype=np.float32).reshape(-1)
        if w.size < MIN_DURATION_S * self._sr:
            raise MOSError(f"clip {i}: {w.size} samples < {MIN_DURATION_S} s at {self._sr} Hz")
        if not np.all(np.isfinite(w)):
            raise MOSError(f"clip {i}: holds NaN/inf samples")
        if float(np.max(np.abs(w))) < SILENCE_PEAK:
            raise MOSError(f"clip {i}: silent (peak < {SILENCE_PEAK})")
        return np.clip(w, -1.0, 1.0)

    def details(self, wav: np.ndarray) -> dict[str, float]:
        """All four DNSMOS scores of one 16 kHz clip: ``p808_mos``, ``ovrl_mos``, ``sig_mos``, ``bak_mos``.

        Raises MOSError (empty, too short, silent, NaN/inf).
        """
        w = self._check(wav, 0)
        with self._lock:
            out = self._model(w, self._sr, False)
        return {k: float(out[k]) for k in ("p808_mos", "ovrl_mos", "sig_mos", "bak_mos")}

    def score(self, wavs: list[np.ndarray]) -> list[float]:
        """DNSMOS P.808 MOS (about 1-5) per ``(N_i,)`` float32 16 kHz clip.

        Raises MOSError naming the first bad clip (every clip is checked before any is scored).
        """
        clips = [self._check(w, i) for i, w in enumerate(wavs)]
        out = []
        for w in clips:
            with self._lock:
                out.append(self._p808(w))
        return out

    def _p808(self, w: np.ndarray) -> float:
        """P.808 MOS alone, with ``speechmos.dnsmos.DNSMOS.__call__``'s windowing (tile the clip to at
        least ``INPUT_LENGTH`` = 9.01 s, windows of that length hopped by 1 s, mean over windows) but
        without running the P.835 SIG/BAK/OVRL model, which is ~55 % of the cost and not part of
        this score (measured 2026-12-02: per window 1.09 s P.835, 0.76 s mel, 0.03 s P.808).
        Equal to :meth:`details` ``["p808_mos"]`` (tests/unit/engines/test_mos_fast.py)."""
        from speechmos.dnsmos import INPUT_LENGTH

        n = int(INPUT_LENGTH * self._sr)
        audio = w
        while len(audio) < n:
            audio = np.append(audio, audio)
        hops = int(np.floor(len(audio) / self._sr) - INPUT_LENGTH) + 1
        scores = []
        for idx in range(hops):
            seg = audio[int(idx * self._sr): int((idx + INPUT_LENGTH) * self._sr)]
            if len(seg) < n:
                continue
            mel = np.array(self._model.audio_melspec(audio=seg[:-160])).astype("float32")[np.newaxis, :, :]
            scores.append(self._model.p808_onnx_sess.run(None, {"input_1": mel})[0][0][0])
        return float(np.mean(scores))


def has_speech(wav: np.ndarray, sample_rate_hz: int = 16000) -> bool:
    """Whether a clip can be scored: at least :data:`MIN_DURATION_S` long, finite, peak >= :data:`SILENCE_PEAK`."""
    w = np.asarray(wav, dtype=np.float32).reshape(-1)
    return bool(w.size >= MIN_DURATION_S * sample_rate_hz and np.all(np.isfinite(w))
                and float(np.max(np.abs(w))) >= SILENCE_PEAK)


def mos_or_nan(predictor: MOSPredictor, wavs: list[np.ndarray], sample_rate_hz: int = 16000) -> list[float]:
    """Predicted MOS per ``(N_i,)`` float32 clip, NaN for a clip with no speech (empty, < 0.1 s,
    silent, NaN/inf; :func:`has_speech`) instead of an error: an evaluation output that failed to
    speak scores NaN and is left out of the corpus mean (``uniss.metrics.mean_finite``).

    The scorable clips go to ``predictor.score`` in one call; should the predictor still reject one
    (:class:`MOSError`), the clips are scored one by one and the rejected ones get NaN.
    """
    out = [float("nan")] * len(wavs)
    idx = [i for i, w in enumerate(wavs) if has_speech(w, sample_rate_hz)]
    if not idx:
        return out
    try:
        for i, v in zip(idx, predictor.score([wavs[i] for i in idx]), strict=True):
            out[i] = float(v)
    except MOSError:
        for i in idx:
            try:
                out[i] = float(predictor.score([wavs[i]])[0])
            except MOSError:
                out[i] = float("nan")
    return out


__all__ = ["MOSPredictor", "DNSMOS", "MOSError", "MIN_DURATION_S", "SILENCE_PEAK", "has_speech", "mos_or_nan"]
