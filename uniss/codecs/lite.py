"""The "lite" triple speech tokenizer: a CPU codec fitted on the corpus (issue 4, item 3).

The paper's tokenizers (BiCodec, GLM-4-Voice; paper §3.1.2) cannot be downloaded here, so this
backend rebuilds each idea at small scale from shipped models and library k-means:

* **linguistic** (12.5 tokens/s, content): Whisper-base encoder states (50 Hz, 512-d; the
  GLM-4-Voice tokenizer quantizes a Whisper encoder, paper §3.1.2) average-pooled by 4 to 12.5 Hz,
  then a ``MiniBatchKMeans`` codebook. The encoder pads every input to 30 s (faster-whisper /
  CTranslate2; FACTS.md: ~0.45 s per call on 2 cores), so :class:`WhisperStates` packs several
  clips into each 30 s window, each starting on an 80 ms (= one token) boundary.
* **speaker** (32 global tokens): the 256-d resemblyzer utterance embedding, product-quantized into
  32 sub-vectors of 8 dims, one ``KMeans`` codebook per sub-vector (size capped by the data).
* **semantic** (50 tokens/s, decodable): 80-bin log-mel frames (hop 320 samples = 20 ms at 16 kHz)
  vector-quantized by ``MiniBatchKMeans``.
* **decoder**: :class:`MelDecoder`, a small residual 1-D conv network trained here with an L1 loss
  on log-mel: (semantic codes, speaker embedding rebuilt from the 32 PQ codes) -> 80-bin log-mel,
  predicted as a correction of the code's centroid; waveform by Griffin-Lim (librosa).

Shape legend: ``N`` samples at 16 kHz; ``T_s`` = round(N / 320) semantic frames (50 Hz);
``T_l`` = round(N / 1280) linguistic tokens (12.5 Hz); ``M`` = 80 mel bins; ``D_w`` = 512
(Whisper-base encoder width); ``D_spk`` = 256 (resemblyzer embedding).
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from uniss.codecs.base import (
    N_SPEAKER_TOKENS,
    SAMPLE_RATE_HZ,
    CodecError,
    CodecManifest,
    CodecTokens,
    check_codes,
    check_wav,
    n_linguistic,
    n_semantic,
    read_manifest,
    sha256_file,
    write_manifest,
)

#: Version of the lite codec directory layout and algorithms.
LITE_VERSION = "2"  # 2: linguistic states centred per window position
#: Hop of the semantic mel frames (samples): 16000 / 50 = 320 (50 tokens/s, paper §3.1.2).
HOP_SAMPLES = 320
#: Linguistic token span (samples): 16000 / 12.5 = 1280 = 4 Whisper encoder frames of 20 ms.
LINGUISTIC_HOP_SAMPLES = 1280
#: Whisper input window (samples): 30 s at 16 kHz (OpenAI Whisper, ``N_SAMPLES``).
WHISPER_WINDOW_SAMPLES = 30 * SAMPLE_RATE_HZ
#: Whisper encoder output frames per 30 s window (50 Hz).
WHISPER_FRAMES = 1500
#: Encoder frames pooled into one linguistic token: 50 Hz / 12.5 Hz.
POOL = 4
#: Width of the resemblyzer embedding (Resemblyzer ``model_embedding_size``).
SPEAKER_DIM = 256
#: Dims of each of the 32 speaker sub-vectors (256 / 32).
SPEAKER_SUBDIM = SPEAKER_DIM // N_SPEAKER_TOKENS
#: Floor of the mel magnitude before the log (natural log domain).
LOG_FLOOR = 1e-5

WEIGHTS_FILE = "codebooks.safetensors"
DECODER_FILE = "decoder.safetensors"


# ----------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiteCodecConfig:
    """Sizes and training knobs of the lite codec.

    Attributes:
        linguistic_size: linguistic codebook size K_l (capped by the number of 12.5 Hz frames).
        speaker_size: codebook size of each of the 32 speaker sub-quantizers (capped by the clips).
        semantic_size: semantic codebook size K_s (capped by the number of 50 Hz frames).
        n_mels: mel bins of the semantic frames and of the decoder output.
        n_fft: STFT size (samples) of the mel frames and of Griffin-Lim.
        kmeans_batch: MiniBatchKMeans batch size.
        kmeans_max_iter: MiniBatchKMeans passes over the data.
        max_kmeans_frames: frames sampled to fit each codebook (memory/time cap).
        whisper_batch: 30 s windows per Whisper encoder call.
        decoder_channels / decoder_layers / decoder_kernel: MelDecoder size.
        train_steps: decoder optimisation steps (upper bound).
        max_train_s: decoder training wall-time budget (s); at least min(50, train_steps) steps run.
        batch_size / crop_frames: decoder batch (clips) and crop length (50 Hz frames).
        lr: AdamW learning rate.
        griffin_lim_iters: Griffin-Lim iterations at decode.
        seed: RNG seed of k-means, crops and decoder init.
    """

    linguistic_size: int = 1024
    speaker_size: int = 1024
    semantic_size: int = 4096
    n_mels: int = 80
    n_fft: int = 1024
    kmeans_batch: int = 8192
    kmeans_max_iter: int = 20
    max_kmeans_frames: int = 200_000
    whisper_batch: int = 2
    decoder_channels: int = 96
    decoder_layers: int = 5
    decoder_kernel: int = 5
    train_steps: int = 4000
    max_train_s: float = 150.0
    batch_size: int = 16
    crop_frames: int = 80
    lr: float = 2e-3
    griffin_lim_iters: int = 32
    seed: int = 0

    @classmethod
    def tiny(cls, **overrides: Any) -> LiteCodecConfig:
        """CI preset: fits in well under 60 s on a few dozen short clips (2 CPU cores)."""
        base = dict(
            linguistic_size=64,
            speaker_size=16,
            semantic_size=256,
            kmeans_max_iter=10,
            max_kmeans_frames=20_000,
            decoder_channels=48,
            decoder_layers=3,
            train_steps=120,
            max_train_s=15.0,
            batch_size=8,
            crop_frames=64,
            griffin_lim_iters=16,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def demo(cls, **overrides: Any) -> LiteCodecConfig:
        """Demo preset (sizes of the default lite vocab). k-means passes and sampled frames are cut
        from the defaults: 20 passes over 200k frames took 701 s for the semantic codebook alone
        (measured under load, 2026-11-24); 5 passes over 100k frames keep the fit near 5 min."""
        base: dict[str, Any] = dict(kmeans_max_iter=5, max_kmeans_frames=100_000)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> LiteCodecConfig:
        """``tiny`` | ``demo`` preset by name.

        Raises:
            CodecError: unknown preset name.
        """
        if name == "tiny":
            return cls.tiny(**overrides)
        if name == "demo":
            return cls.demo(**overrides)
        raise CodecError(f"unknown lite codec preset {name!r} (tiny | demo)")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LiteCodecConfig:
        """Build from a dict, rejecting unknown keys (STYLE #6).

        Raises:
            CodecError: unknown keys or bad values.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CodecError(f"unknown lite codec config keys: {unknown}")
        try:
            return cls(**d)
        except TypeError as e:
            raise CodecError(f"bad lite codec config: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    def __post_init__(self) -> None:
        for k in ("linguistic_size", "speaker_size", "semantic_size", "n_mels", "decoder_channels", "crop_frames"):
            if int(getattr(self, k)) < 1:
                raise CodecError(f"lite codec config {k} must be >= 1, got {getattr(self, k)}")


# ----------------------------------------------------------------------------------------------
# feature extractors (shared, lazily loaded)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    clip: int
    start: int  # sample offset inside the clip
    length: int  # samples
    window: int
    offset: int  # sample offset inside the 30 s window (multiple of 1280)


def pack_windows(lengths: list[int]) -> list[_Piece]:
    """Pack clips (split into <= 30 s pieces) into 30 s Whisper windows, next-fit, in input order.

    Each piece starts on a multiple of 1280 samples (one linguistic token = 4 encoder frames) and
    takes ``ceil(len / 1280) * 1280`` samples of its window. Deterministic for a given list.

    Args:
        lengths: sample counts of the clips (16 kHz).

    Returns:
        pieces in order; ``window`` indices are 0..W-1.
    """
    pieces: list[_Piece] = []
    window, fill = 0, 0
    for i, n in enumerate(lengths):
        for start in range(0, n, WHISPER_WINDOW_SAMPLES):
            ln = min(WHISPER_WINDOW_SAMPLES, n - start)
            slot = math.ceil(ln / LINGUISTIC_HOP_SAMPLES) * LINGUISTIC_HOP_SAMPLES
            if fill + slot > WHISPER_WINDOW_SAMPLES:
                window, fill = window + 1, 0
            pieces.append(_Piece(i, start, ln, window, fill))
            fill += slot
    return pieces


class WhisperStates:
    """Whisper-base encoder states pooled to 12.5 Hz, several clips per 30 s window.

    Uses faster-whisper's ``WhisperModel.encode`` (CTranslate2, int8 on CPU) and its feature
    extractor (80-bin log-mel, hop 160).

    Args:
        model_dir: CTranslate2 Whisper directory (default ``get_settings().whisper_dir``).

    Raises:
        CodecError: the model directory or ``model.bin`` is missing.
    """

    def __init__(self, model_dir: str | Path | None = None) -> None:
        from faster_whisper import WhisperModel

        from uniss.settings import get_settings

        d = Path(model_dir) if model_dir is not None else get_settings().whisper_dir
        if not (d / "model.bin").is_file():
            raise CodecError(
                f"Whisper-base CTranslate2 model not found at {d} (expected model.bin): run `make setup` "
                "(scripts/install_models.py) or set UNISS_MODELS_DIR"
            )
        self.model_dir = d
        self.model = WhisperModel(str(d), device="cpu", compute_type="int8")
        self.fe = self.model.feature_extractor
        self._lock = threading.Lock()

    @lru_cache(maxsize=1)  # noqa: B019 - one instance per model dir, lives for the process
    def sha256(self) -> str:
        """sha256 of ``model.bin`` (the tokens depend on these exact weights)."""
        return sha256_file(self.model_dir / "model.bin")

    def pooled(self, wavs: list[np.ndarray], batch_windows: int = 2, progress: bool = False,
               position_mean: np.ndarray | None = None) -> list[np.ndarray]:
        """Pooled encoder states of each clip, centred per window position when ``position_mean``
        is given (see :meth:`pooled_with_positions` and :func:`position_means`).

        Args:
            wavs: list of ``(N_i,)`` float32 16 kHz.
            batch_windows: 30 s windows per encoder call.
            progress: show a tqdm bar over windows.
            position_mean: ``(375, 512)`` mean pooled state per 12.5 Hz window position.

        Returns:
            list of ``(T_l_i, 512)`` float32 with ``T_l_i = round(12.5 * N_i / 16000)`` (>= 1).
        """
        states, positions = self.pooled_with_positions(wavs, batch_windows, progress)
        if position_mean is None:
            return states
        return [s - position_mean[p] for s, p in zip(states, positions, strict=True)]

    def pooled_with_positions(self, wavs: list[np.ndarray], batch_windows: int = 2,
                              progress: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Raw pooled states of each clip and the window position (0..374) of each of its tokens.

        Packing several clips into one 30 s window puts a clip at different absolute positions
        depending on its neighbours, and Whisper's positional information dominates the raw states
        (same clip alone vs packed: normalised code edit distance 1.0). Subtracting the mean state
        of each position (fitted with the codebook) removes that first-order position term:
        measured cosine of a clip's states alone vs packed 0.50 raw -> 0.80 centred, while the same
        sentence in another voice keeps 0.44 against 0.16 for different sentences.

        Returns:
            (states, positions): lists of ``(T_l_i, 512)`` float32 and ``(T_l_i,)`` int64.
        """
        from tqdm.auto import tqdm

        pieces = pack_windows([len(w) for w in wavs])
        n_windows = pieces[-1].window + 1 if pieces else 0
        by_window: dict[int, list[_Piece]] = {}
        for p in pieces:
            by_window.setdefault(p.window, []).append(p)
        parts: list[list[np.ndarray]] = [[] for _ in wavs]
        pos_parts: list[list[np.ndarray]] = [[] for _ in wavs]
        bar = tqdm(total=n_windows, desc="whisper windows", unit="win", disable=not progress, leave=False)
        for w0 in range(0, n_windows, batch_windows):
            ws = list(range(w0, min(n_windows, w0 + batch_windows)))
            feats = []
            for w in ws:
                audio = np.zeros(WHISPER_WINDOW_SAMPLES, dtype=np.float32)
                for p in by_window[w]:
                    audio[p.offset : p.offset + p.length] = wavs[p.clip][p.start : p.start + p.length]
                f = self.fe(audio, padding=0)[:, : 2 * WHISPER_FRAMES]  # (80, 3000)
                feats.append(f)
            x = np.ascontiguousarray(np.stack(feats), dtype=np.float32)  # (B, 80, 3000)
            with self._lock:
                out = np.asarray(self.model.encode(x))  # (B, 1500, 512)
            for bi, w in enumerate(ws):
                for p in by_window[w]:
                    f0 = p.offset // HOP_SAMPLES
                    n_tok = math.ceil(p.length / LINGUISTIC_HOP_SAMPLES)
                    st = out[bi, f0 : f0 + POOL * n_tok]  # (4*n_tok, 512)
                    parts[p.clip].append(st.reshape(n_tok, POOL, -1).mean(axis=1))
                    pos_parts[p.clip].append(p.offset // LINGUISTIC_HOP_SAMPLES + np.arange(n_tok, dtype=np.int64))
            bar.update(len(ws))
        bar.close()
        res, pos = [], []
        for w, ps, qs in zip(wavs, parts, pos_parts, strict=True):
            n = n_linguistic(len(w))
            res.append(np.concatenate(ps, axis=0).astype(np.float32)[:n])
            pos.append(np.minimum(np.concatenate(qs)[:n], N_POSITIONS - 1))
        return res, pos


#: 12.5 Hz token positions in one 30 s Whisper window (1500 encoder frames / 4).
N_POSITIONS = 375


def position_means(states: list[np.ndarray], positions: list[np.ndarray]) -> np.ndarray:
    """Mean pooled state per window position over fitting clips: ``(375, D)`` float32; positions
    never observed get the global mean."""
    x = np.concatenate(states).astype(np.float64)
    p = np.concatenate(positions)
    sums = np.zeros((N_POSITIONS, x.shape[1]))
    np.add.at(sums, p, x)
    counts = np.bincount(p, minlength=N_POSITIONS)[:, None]
    glob = x.mean(axis=0, keepdims=True)
    return np.where(counts > 0, sums / np.maximum(counts, 1), glob).astype(np.float32)


@lru_cache(maxsize=2)
def whisper_states(model_dir: str | None = None) -> WhisperStates:
    """Process-wide :class:`WhisperStates` (loaded once per model dir)."""
    return WhisperStates(model_dir)


class SpeakerEmbedder:
    """resemblyzer ``VoiceEncoder`` utterance embeddings (256-d, L2-normalised), CPU.

    resemblyzer's ``preprocess_wav`` normalises loudness and trims long silences (webrtcvad);
    when that leaves less than 0.3 s, the loudness-normalised untrimmed clip is embedded instead.
    """

    def __init__(self) -> None:
        # resemblyzer imports webrtcvad, which imports setuptools' deprecated pkg_resources (a
        # UserWarning at import, harmless: webrtcvad only reads its own version from it).
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated as an API", category=UserWarning,
                                module="webrtcvad")
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder("cpu", verbose=False)
        self._lock = threading.Lock()

    @staticmethod
    def weights_sha256() -> str:
        """sha256 of resemblyzer's shipped ``pretrained.pt``."""
        import resemblyzer

        return sha256_file(Path(resemblyzer.__file__).parent / "pretrained.pt")

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(256,)`` float32 unit-norm embedding."""
        return self.embed_batch([wav])[0]

    def embed_batch(self, wavs: list[np.ndarray], max_partials: int = 32) -> np.ndarray:
        """Embeddings of several clips, their 1.6 s partial windows forwarded together.

        The same arithmetic as resemblyzer's ``VoiceEncoder.embed_utterance`` (partials at rate
        1.3/s, min coverage 0.75, L2-normalised mean of the partial embeddings), but with the
        partials of many clips in one LSTM batch (``max_partials`` per forward), which is what
        makes speaker tokenization several times faster than one call per clip on CPU.

        Args:
            wavs: list of ``(N_i,)`` float32 16 kHz.

        Returns:
            ``(n, 256)`` float32, unit-norm rows.
        """
        import torch
        from resemblyzer import audio, preprocess_wav

        enc = self.encoder
        mels, owner = [], []
        for i, wav in enumerate(wavs):
            w = preprocess_wav(wav, source_sr=SAMPLE_RATE_HZ)
            if len(w) < 0.3 * SAMPLE_RATE_HZ:
                w = audio.normalize_volume(wav.astype(np.float32), -30, increase_only=True)
            wav_slices, mel_slices = enc.compute_partial_slices(len(w), 1.3, 0.75)
            if wav_slices[-1].stop >= len(w):
                w = np.pad(w, (0, wav_slices[-1].stop - len(w)))
            mel = audio.wav_to_mel_spectrogram(w.astype(np.float32))  # (frames, 40)
            for sl in mel_slices:
                mels.append(mel[sl])  # (160, 40)
                owner.append(i)
        x = np.stack(mels).astype(np.float32)  # (P, 160, 40)
        parts = []
        with self._lock, torch.inference_mode():
            for j in range(0, len(x), max_partials):
                parts.append(enc(torch.from_numpy(x[j : j + max_partials])).numpy())
        pe = np.concatenate(parts)  # (P, 256)
        owner_a = np.asarray(owner)
        out = np.zeros((len(wavs), SPEAKER_DIM), np.float32)
        for i in range(len(wavs)):
            m = pe[owner_a == i].mean(axis=0)
            out[i] = m / max(float(np.linalg.norm(m)), 1e-12)
        return out


@lru_cache(maxsize=1)
def speaker_embedder() -> SpeakerEmbedder:
    """Process-wide :class:`SpeakerEmbedder`."""
    return SpeakerEmbedder()


@lru_cache(maxsize=4)
def _mel_basis(n_mels: int, n_fft: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=SAMPLE_RATE_HZ / 2)


def log_mel(wav: np.ndarray, n_mels: int = 80, n_fft: int = 1024) -> np.ndarray:
    """50 Hz natural-log magnitude mel frames of a clip.

    Args:
        wav: ``(N,)`` float32 16 kHz.

    Returns:
        ``(M, T_s)`` float32, ``T_s = round(N / 320)``; STFT hop 320, Hann window ``n_fft``,
        centred (librosa), mel filters 0-8 kHz (librosa Slaney), ``ln(max(mel, 1e-5))``.
    """
    import librosa

    S = np.abs(librosa.stft(wav, n_fft=n_fft, hop_length=HOP_SAMPLES, win_length=n_fft, center=True))
    mel = _mel_basis(n_mels, n_fft) @ S  # (M, 1 + N // 320)
    t = n_semantic(len(wav))
    if mel.shape[1] < t:
        mel = np.pad(mel, ((0, 0), (0, t - mel.shape[1])), mode="edge")
    return np.log(np.maximum(mel[:, :t], LOG_FLOOR)).astype(np.float32)


@lru_cache(maxsize=4)
def _mel_pinv(n_mels: int, n_fft: int) -> np.ndarray:
    return np.linalg.pinv(_mel_basis(n_mels, n_fft))  # (1 + n_fft / 2, M)


def griffin_lim(logmel: np.ndarray, n_fft: int = 1024, n_iter: int = 32) -> np.ndarray:
    """Waveform from a ``(M, T_s)`` natural-log magnitude mel by Griffin-Lim (librosa).

    The linear magnitude is the mel inverted by the filter bank's pseudo-inverse, clipped at 0
    (much faster than librosa's NNLS ``mel_to_stft``); phases by ``librosa.griffinlim``
    (momentum 0.99, Perraudin et al. 2013).

    Returns:
        ``(T_s * 320,)`` float32 16 kHz, peak-limited to 0.99.
    """
    import librosa

    M = np.exp(logmel.astype(np.float32))
    # one extra edge frame: librosa's centred STFT of ``T_s * 320`` samples has ``T_s + 1`` frames
    M = np.pad(M, ((0, 0), (0, 1)), mode="edge")
    S = np.maximum(_mel_pinv(logmel.shape[0], n_fft).astype(np.float32) @ M, 0.0)  # (1 + n_fft/2, T_s + 1)
    y = librosa.griffinlim(
        S,
        n_iter=n_iter,
        hop_length=HOP_SAMPLES,
        win_length=n_fft,
        n_fft=n_fft,
        length=logmel.shape[1] * HOP_SAMPLES,
        random_state=0,
    ).astype(np.float32)
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak > 0.99:
        y *= 0.99 / peak
    return y


# ----------------------------------------------------------------------------------------------
# decoder network
# ----------------------------------------------------------------------------------------------


def _decoder_cls():  # torch is imported lazily: encoding alone does not need it
    import torch
    from torch import nn

    class ResBlock(nn.Module):
        def __init__(self, ch: int, kernel: int, dilation: int) -> None:
            super().__init__()
            self.norm = nn.GroupNorm(1, ch)
            self.conv1 = nn.Conv1d(ch, ch, kernel, padding=dilation * (kernel // 2), dilation=dilation)
            self.conv2 = nn.Conv1d(ch, ch, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
            return x + self.conv2(torch.nn.functional.gelu(self.conv1(self.norm(x))))

    class MelDecoder(nn.Module):
        """(semantic codes, speaker embedding) -> log-mel, as a correction of the code centroid.

        Args:
            centroids: ``(K_s, M)`` float32 semantic codebook (a buffer, not trained).
            channels / layers / kernel: width, residual blocks (dilations 1, 2, 4, 1, 2, 4 ...),
                conv kernel (frames).
        """

        def __init__(self, centroids: np.ndarray, channels: int, layers: int, kernel: int) -> None:
            super().__init__()
            k, m = centroids.shape
            self.register_buffer("centroids", torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32)))
            self.embed = nn.Embedding(k, channels)
            self.cent_in = nn.Conv1d(m, channels, 1)
            self.spk = nn.Linear(SPEAKER_DIM, channels)
            self.blocks = nn.ModuleList([ResBlock(channels, kernel, 2 ** (i % 3)) for i in range(layers)])
            self.out = nn.Conv1d(channels, m, 1)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

        def forward(self, codes: torch.Tensor, spk: torch.Tensor) -> torch.Tensor:
            """codes ``(B, T)`` int64, spk ``(B, 256)`` float32 -> ``(B, M, T)`` float32 log-mel."""
            cent = self.centroids[codes].transpose(1, 2)  # (B, M, T)
            x = self.embed(codes).transpose(1, 2) + self.cent_in(cent) + self.spk(spk)[:, :, None]  # (B, C, T)
            for b in self.blocks:
                x = b(x)
            return cent + self.out(x)  # (B, M, T)

    return MelDecoder


# ----------------------------------------------------------------------------------------------
# the codec
# ----------------------------------------------------------------------------------------------


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) of each row: ``(n, d)`` -> ``(n,)`` int64 (scikit-learn)."""
    from sklearn.metrics import pairwise_distances_argmin

    return pairwise_distances_argmin(x.astype(np.float32), centroids.astype(np.float32)).astype(np.int64)


class LiteCodec:
    """The fitted lite codec (see the module docstring). Build with :func:`fit_lite_codec` or
    :meth:`load`; implements :class:`uniss.codecs.base.SpeechCodec`.

    Attributes:
        backend: ``"lite"``.
        sizes: ``{"speaker": K_spk, "semantic": K_s, "linguistic": K_l}`` (actual codebook sizes).
        config: the :class:`LiteCodecConfig` it was fitted with.
        metrics: fit-time figures (losses, timings).
    """

    backend = "lite"
    semantic_rate_hz = 50.0
    linguistic_rate_hz = 12.5
    sample_rate_hz = SAMPLE_RATE_HZ
    n_speaker_tokens = N_SPEAKER_TOKENS

    def __init__(
        self,
        config: LiteCodecConfig,
        linguistic_centroids: np.ndarray,
        speaker_centroids: np.ndarray,
        semantic_centroids: np.ndarray,
        decoder_state: dict[str, Any],
        *,
        linguistic_position_mean: np.ndarray,
        dependencies: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """Assemble from fitted parts.

        Args:
            linguistic_centroids: ``(K_l, 512)`` float32.
            speaker_centroids: ``(32, K_spk, 8)`` float32.
            semantic_centroids: ``(K_s, M)`` float32.
            decoder_state: MelDecoder ``state_dict`` (tensors).
            linguistic_position_mean: ``(375, 512)`` float32 mean Whisper state per window position,
                subtracted before quantisation (see ``WhisperStates.pooled_with_positions``).

        Raises:
            CodecError: shapes do not fit together or the decoder state does not match its keys/shapes.
        """
        import torch

        self.config = config
        self.linguistic_centroids = np.ascontiguousarray(linguistic_centroids, dtype=np.float32)
        self.speaker_centroids = np.ascontiguousarray(speaker_centroids, dtype=np.float32)
        self.semantic_centroids = np.ascontiguousarray(semantic_centroids, dtype=np.float32)
        self.linguistic_position_mean = np.ascontiguousarray(linguistic_position_mean, dtype=np.float32)
        if self.linguistic_position_mean.shape != (N_POSITIONS, self.linguistic_centroids.shape[-1]):
            raise CodecError(f"linguistic position mean must be ({N_POSITIONS}, D), got {self.linguistic_position_mean.shape}")
        if self.linguistic_centroids.ndim != 2:
            raise CodecError(f"linguistic codebook must be (K, D), got {self.linguistic_centroids.shape}")
        if self.speaker_centroids.shape[0] != N_SPEAKER_TOKENS or self.speaker_centroids.shape[2] != SPEAKER_SUBDIM:
            raise CodecError(f"speaker codebooks must be (32, K, 8), got {self.speaker_centroids.shape}")
        if self.semantic_centroids.ndim != 2 or self.semantic_centroids.shape[1] != config.n_mels:
            raise CodecError(f"semantic codebook must be (K, {config.n_mels}), got {self.semantic_centroids.shape}")
        self.sizes = {
            "speaker": int(self.speaker_centroids.shape[1]),
            "semantic": int(self.semantic_centroids.shape[0]),
            "linguistic": int(self.linguistic_centroids.shape[0]),
        }
        self.dependencies = dict(dependencies or {})
        self.metrics = dict(metrics or {})
        dec_cls = _decoder_cls()
        self.decoder = dec_cls(
            self.semantic_centroids, config.decoder_channels, config.decoder_layers, config.decoder_kernel
        )
        try:
            self.decoder.load_state_dict(
                {k: torch.as_tensor(np.asarray(v)) for k, v in decoder_state.items()}, strict=True
            )
        except RuntimeError as e:
            raise CodecError(f"decoder weights do not match the codec config: {e}") from None
        self.decoder.eval()
        self._manifest: CodecManifest | None = None

    # -- tokenizers ------------------------------------------------------------------------

    def linguistic_batch(self, wavs: list[np.ndarray], progress: bool = False) -> list[np.ndarray]:
        """Linguistic codes of several clips (shared 30 s Whisper windows).

        Returns:
            list of ``(T_l,)`` int64, ``T_l = round(12.5 * seconds)``.

        Raises:
            CodecError: a bad waveform (see :func:`check_wav`).
        """
        ws = [check_wav(w) for w in wavs]
        if not ws:
            return []
        states = whisper_states().pooled(ws, self.config.whisper_batch, progress=progress,
                                         position_mean=self.linguistic_position_mean)
        flat = _nearest(np.concatenate(states), self.linguistic_centroids)
        bounds = np.cumsum([0] + [len(s) for s in states])
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def linguistic(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(T_l,)`` int64 in ``[0, K_l)``, 12.5 tokens/s.

        Raises:
            CodecError: bad waveform.
        """
        return self.linguistic_batch([wav])[0]

    def speaker_embedding(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(256,)`` float32 resemblyzer embedding (unquantised)."""
        return speaker_embedder().embed(check_wav(wav))

    def speaker_codes_from_embedding(self, emb: np.ndarray) -> np.ndarray:
        """``(256,)`` -> ``(32,)`` int64 PQ codes (nearest centroid per 8-d sub-vector)."""
        sub = np.asarray(emb, dtype=np.float32).reshape(N_SPEAKER_TOKENS, 1, SPEAKER_SUBDIM)
        d = ((self.speaker_centroids - sub) ** 2).sum(-1)  # (32, K)
        return d.argmin(axis=1).astype(np.int64)

    def speaker_vector(self, codes: np.ndarray) -> np.ndarray:
        """``(32,)`` PQ codes -> ``(256,)`` float32 rebuilt embedding (concatenated centroids).

        Raises:
            CodecError: codes out of range or not 32 of them.
        """
        c = check_codes(codes, self.sizes["speaker"], "speaker", length=N_SPEAKER_TOKENS)
        return self.speaker_centroids[np.arange(N_SPEAKER_TOKENS), c].reshape(-1).astype(np.float32)

    def speaker(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(32,)`` int64 in ``[0, K_spk)``.

        Raises:
            CodecError: bad waveform.
        """
        return self.speaker_codes_from_embedding(self.speaker_embedding(wav))

    def semantic(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(T_s,)`` int64 in ``[0, K_s)``, ``T_s = round(50 * seconds)``.

        Raises:
            CodecError: bad waveform.
        """
        w = check_wav(wav)
        return _nearest(log_mel(w, self.config.n_mels, self.config.n_fft).T, self.semantic_centroids)

    def encode(self, wavs: list[np.ndarray], progress: bool = False) -> list[CodecTokens]:
        """All three streams of each clip; the linguistic pass shares 30 s Whisper windows.

        Note: Whisper's attention spans the whole window, so a clip's linguistic codes can differ
        slightly with the clips batched beside it; the result is deterministic for a given list.

        Args:
            wavs: list of ``(N_i,)`` float32 16 kHz.
            progress: tqdm bars.

        Raises:
            CodecError: a bad waveform (the message names its index).
        """
        from tqdm.auto import tqdm

        ws = []
        for i, w in enumerate(wavs):
            try:
                ws.append(check_wav(w))
            except CodecError as e:
                raise CodecError(f"waveform {i}: {e}") from None
        ling = self.linguistic_batch(ws, progress=progress)
        emb = speaker_embedder().embed_batch(ws)  # (n, 256)
        out = []
        for i, (w, lg) in enumerate(zip(tqdm(ws, desc="semantic", disable=not progress, leave=False), ling, strict=True)):
            out.append(CodecTokens(speaker=self.speaker_codes_from_embedding(emb[i]), linguistic=lg, semantic=self.semantic(w)))
        return out

    # -- decoder ---------------------------------------------------------------------------

    def decode_mel(self, speaker: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        """``(32,)`` speaker + ``(T_s,)`` semantic codes -> ``(M, T_s)`` float32 log-mel.

        Raises:
            CodecError: codes out of range / wrong shape.
        """
        import torch

        spk = self.speaker_vector(speaker)
        sem = check_codes(semantic, self.sizes["semantic"], "semantic")
        with torch.inference_mode():
            y = self.decoder(torch.from_numpy(sem)[None], torch.from_numpy(spk)[None])  # (1, M, T_s)
        return y[0].numpy()

    def decode(self, speaker: np.ndarray, semantic: np.ndarray, *, n_iter: int | None = None) -> np.ndarray:
        """``(32,)`` speaker + ``(T_s,)`` semantic codes -> ``(T_s * 320,)`` float32 16 kHz
        (duration ``T_s / 50`` s), via :meth:`decode_mel` and Griffin-Lim.

        Raises:
            CodecError: codes out of range / wrong shape.
        """
        it = self.config.griffin_lim_iters if n_iter is None else n_iter
        return griffin_lim(self.decode_mel(speaker, semantic), self.config.n_fft, it)

    # -- persistence -------------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "linguistic": self.linguistic_centroids,
            "linguistic_position_mean": self.linguistic_position_mean,
            "speaker": self.speaker_centroids,
            "semantic": self.semantic_centroids,
        }

    def manifest(self) -> CodecManifest:
        """The manifest this codec saves (file hashes filled in by :meth:`save`)."""
        return CodecManifest(
            backend="lite",
            version=LITE_VERSION,
            sizes=dict(self.sizes),
            config=self.config.to_dict(),
            files={WEIGHTS_FILE: "", DECODER_FILE: ""},
            dependencies=self.dependencies,
            metrics=self.metrics,
        )

    def save(self, directory: str | Path) -> Path:
        """Write ``manifest.json``, ``codebooks.safetensors``, ``decoder.safetensors`` to ``directory``.

        Byte-identical output for the same codec (safetensors is deterministic), so
        :meth:`fingerprint` is stable across save/load.
        """
        from safetensors.numpy import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file(self._arrays(), str(d / WEIGHTS_FILE))
        save_file(
            {k: v.detach().cpu().numpy().copy() for k, v in self.decoder.state_dict().items()},
            str(d / DECODER_FILE),
        )
        m = self.manifest()
        write_manifest(d, m)
        self._manifest = m
        return d

    @classmethod
    def load(cls, directory: str | Path) -> LiteCodec:
        """Load a saved lite codec, checking hashes, keys and shapes.

        Raises:
            CodecError: bad manifest, altered/missing files, missing keys or wrong shapes.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        d = Path(directory)
        m = read_manifest(d, verify=True)
        if m.backend != "lite":
            raise CodecError(f"{d} holds a {m.backend!r} codec, not lite")
        if m.version != LITE_VERSION:
            raise CodecError(f"{d}: lite codec version {m.version} is not supported (expected {LITE_VERSION})")
        for f in (WEIGHTS_FILE, DECODER_FILE):
            if f not in m.files:
                raise CodecError(f"{d}/manifest.json does not list {f}")
        cfg = LiteCodecConfig.from_dict(m.config)
        try:
            arrays = load_file(str(d / WEIGHTS_FILE))
            dec = load_file(str(d / DECODER_FILE))
        except (SafetensorError, OSError) as e:
            raise CodecError(f"corrupt codec weights in {d}: {e}") from None
        missing = {"linguistic", "linguistic_position_mean", "speaker", "semantic"} - set(arrays)
        if missing:
            raise CodecError(f"{d}/{WEIGHTS_FILE} lacks arrays {sorted(missing)}")
        expect = {
            "linguistic": (m.sizes["linguistic"], None),
            "speaker": (N_SPEAKER_TOKENS, m.sizes["speaker"], SPEAKER_SUBDIM),
            "semantic": (m.sizes["semantic"], cfg.n_mels),
        }
        for k, shape in expect.items():
            got = arrays[k].shape
            if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got, strict=True)):
                raise CodecError(f"{d}: {k} codebook has shape {got}, manifest says {shape}")
        codec = cls(
            cfg,
            arrays["linguistic"],
            arrays["speaker"],
            arrays["semantic"],
            dec,
            linguistic_position_mean=arrays["linguistic_position_mean"],
            dependencies=m.dependencies,
            metrics=m.metrics,
        )
        codec._manifest = m
        return codec

    def fingerprint(self) -> str:
        """sha256 of the manifest (holding the sha256 of each weight file); saves to a temporary
        directory first when the codec was never saved or loaded."""
        if self._manifest is None:
            import tempfile

            with tempfile.TemporaryDirectory() as t:
                self.save(t)
        assert self._manifest is not None
        return self._manifest.fingerprint()

    def __repr__(self) -> str:
        return f"LiteCodec(sizes={self.sizes})"


# ----------------------------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------------------------


def _kmeans(x: np.ndarray, k: int, cfg: LiteCodecConfig, seed: int, minibatch: bool = True) -> np.ndarray:
    """scikit-learn k-means centroids ``(min(k, n), d)`` float32 of ``x`` ``(n, d)``."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.exceptions import ConvergenceWarning

    k = max(1, min(k, len(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if minibatch and len(x) > 4 * k:
            km = MiniBatchKMeans(
                n_clusters=k,
                batch_size=max(cfg.kmeans_batch, 3 * k),
                max_iter=cfg.kmeans_max_iter,
                n_init=1,
                init_size=min(len(x), 3 * k),
                random_state=seed,
                reassignment_ratio=0.001,
            )
        else:
            km = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed)
        km.fit(x.astype(np.float32))
    return km.cluster_centers_.astype(np.float32)


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]


def fit_lite_codec(
    wavs: Iterable[np.ndarray] | list[np.ndarray],
    config: LiteCodecConfig | None = None,
    *,
    progress: bool = True,
) -> LiteCodec:
    """Fit the three codebooks and train the mel decoder on a corpus of clips.

    Args:
        wavs: ``(N_i,)`` float32 16 kHz mono clips (>= 2 clips; each >= 0.08 s).
        config: sizes and knobs (default :meth:`LiteCodecConfig.demo`).
        progress: tqdm/rich progress on stderr.

    Returns:
        the fitted :class:`LiteCodec`; ``codec.metrics`` holds the decoder's final train/validation
        L1 (log-mel) next to the centroid-lookup L1 it improves on, and stage timings (s).

    Raises:
        CodecError: fewer than 2 clips or a bad clip (its index is named).
    """
    import torch
    from tqdm.auto import tqdm

    cfg = config or LiteCodecConfig.demo()
    ws: list[np.ndarray] = []
    for i, w in enumerate(wavs):
        try:
            ws.append(check_wav(w))
        except CodecError as e:
            raise CodecError(f"training clip {i}: {e}") from None
    if len(ws) < 2:
        raise CodecError(f"fitting a lite codec needs at least 2 clips, got {len(ws)}")
    rng = np.random.default_rng(cfg.seed)
    timings: dict[str, float] = {}

    # linguistic ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    wh = whisper_states()
    raw, positions = wh.pooled_with_positions(ws, cfg.whisper_batch, progress=progress)
    pos_mean = position_means(raw, positions)  # (375, 512)
    states = [s - pos_mean[p] for s, p in zip(raw, positions, strict=True)]
    timings["linguistic_features_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ling = _kmeans(_subsample(np.concatenate(states), cfg.max_kmeans_frames, rng), cfg.linguistic_size, cfg, cfg.seed)
    timings["linguistic_kmeans_s"] = time.perf_counter() - t0

    # speaker ---------------------------------------------------------------------------------
    t0 = time.perf_counter()
    se = speaker_embedder()
    emb = np.concatenate(
        [se.embed_batch(ws[j : j + 16]) for j in tqdm(range(0, len(ws), 16), desc="speaker embeddings", disable=not progress)]
    )  # (n, 256)
    timings["speaker_features_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    k_spk = max(1, min(cfg.speaker_size, len(np.unique(emb.round(5), axis=0))))
    subs = emb.reshape(len(ws), N_SPEAKER_TOKENS, SPEAKER_SUBDIM)
    spk = np.stack(
        [_kmeans(subs[:, j], k_spk, cfg, cfg.seed + j, minibatch=False) for j in range(N_SPEAKER_TOKENS)]
    )  # (32, K_spk, 8)
    timings["speaker_kmeans_s"] = time.perf_counter() - t0

    # semantic --------------------------------------------------------------------------------
    t0 = time.perf_counter()
    mels = [log_mel(w, cfg.n_mels, cfg.n_fft) for w in tqdm(ws, desc="log-mel", disable=not progress)]  # (M, T_s)
    timings["semantic_features_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    frames = np.concatenate([m.T for m in mels])  # (sum T_s, M)
    sem = _kmeans(_subsample(frames, cfg.max_kmeans_frames, rng), cfg.semantic_size, cfg, cfg.seed + 100)
    timings["semantic_kmeans_s"] = time.perf_counter() - t0

    # decoder ---------------------------------------------------------------------------------
    t0 = time.perf_counter()
    codes = [_nearest(m.T, sem) for m in mels]
    spk_codes = np.stack(
        [((spk - subs[i][:, None, :]) ** 2).sum(-1).argmin(1) for i in range(len(ws))]
    )  # (n, 32)
    spk_q = spk[np.arange(N_SPEAKER_TOKENS)[None, :], spk_codes].reshape(len(ws), -1).astype(np.float32)  # (n, 256)
    n_val = max(1, len(ws) // 20)
    order = rng.permutation(len(ws))
    val_idx, tr_idx = order[:n_val], order[n_val:]
    torch.manual_seed(cfg.seed)
    dec = _decoder_cls()(sem, cfg.decoder_channels, cfg.decoder_layers, cfg.decoder_kernel)
    opt = torch.optim.AdamW(dec.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50))

    def batch(idx: np.ndarray, crop: int | None) -> tuple[torch.Tensor, ...]:
        L = crop or max(len(codes[i]) for i in idx)
        c = np.zeros((len(idx), L), np.int64)
        y = np.zeros((len(idx), cfg.n_mels, L), np.float32)
        mask = np.zeros((len(idx), 1, L), np.float32)
        for b, i in enumerate(idx):
            t = len(codes[i])
            s = int(rng.integers(0, t - L + 1)) if crop and t > L else 0
            n = min(L, t - s)
            c[b, :n], y[b, :, :n], mask[b, :, :n] = codes[i][s : s + n], mels[i][:, s : s + n], 1.0
        return torch.from_numpy(c), torch.from_numpy(spk_q[idx]), torch.from_numpy(y), torch.from_numpy(mask)

    def l1(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return ((pred - y).abs() * mask).sum() / (mask.sum() * cfg.n_mels)

    def evaluate(idx: np.ndarray) -> tuple[float, float]:
        dec.eval()
        tot, base = 0.0, 0.0
        with torch.inference_mode():
            for j in range(0, len(idx), 8):
                c, s, y, mask = batch(idx[j : j + 8], None)
                tot += float(l1(dec(c, s), y, mask)) * len(c)
                base += float(l1(dec.centroids[c].transpose(1, 2), y, mask)) * len(c)
        dec.train()
        return tot / len(idx), base / len(idx)

    dec.train()
    bar = tqdm(total=cfg.train_steps, desc="decoder", disable=not progress)
    step, loss_v = 0, float("nan")
    t_train = time.perf_counter()
    min_steps = min(cfg.train_steps, 50)  # the time budget never cuts training below this
    while step < cfg.train_steps and (step < min_steps or time.perf_counter() - t_train < cfg.max_train_s):
        c, s, y, mask = batch(rng.choice(tr_idx, size=cfg.batch_size, replace=len(tr_idx) < cfg.batch_size), cfg.crop_frames)
        loss = l1(dec(c, s), y, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dec.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        loss_v = loss.item()
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(l1=f"{loss_v:.3f}")
    bar.close()
    val_l1, val_base = evaluate(val_idx)
    timings["decoder_train_s"] = time.perf_counter() - t0
    dec.eval()
    metrics = {
        "n_clips": len(ws),
        "audio_s": float(sum(len(w) for w in ws) / SAMPLE_RATE_HZ),
        "decoder_steps": step,
        "decoder_train_l1": loss_v,
        "decoder_val_l1": val_l1,
        "centroid_val_l1": val_base,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    deps = {
        "whisper": {"name": "whisper-base (CTranslate2)", "model_bin_sha256": wh.sha256()},
        "resemblyzer": {"weights_sha256": SpeakerEmbedder.weights_sha256()},
    }
    return LiteCodec(
        cfg, ling, spk, sem, {k: v.detach().clone() for k, v in dec.state_dict().items()},
        linguistic_position_mean=pos_mean, dependencies=deps, metrics=metrics
    )


def codec_summary(codec: LiteCodec) -> str:
    """One JSON line: sizes and fit metrics (for logs/CLI)."""
    return json.dumps({"sizes": codec.sizes, "metrics": codec.metrics}, sort_keys=True)
