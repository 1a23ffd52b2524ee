"""Frozen feature extractors of the lite codec: Whisper-base encoder states and resemblyzer
speaker embeddings (both shipped models, CPU, loaded lazily once per process).

* :class:`WhisperStates`: encoder states (50 Hz, 512-d) average-pooled by 4 to 12.5 Hz, in one of
  two window modes (``LiteCodecConfig.whisper_window``). ``"clip"`` (the presets):
  :func:`clip_windows` gives each clip a window of its own length, so its states depend on nothing
  else. ``"packed"`` (codecs fitted before the key): Whisper was fed 30 s windows
  (faster-whisper / CTranslate2; FACTS.md: ~0.45 s per call on 2 cores), so :func:`pack_windows`
  packs several clips into each, each starting on an 80 ms (= one linguistic token) boundary.
  :func:`position_means` fits the mean state per window position that the codec subtracts
  ("centring").
* ``SpeakerEmbedder``: the platform's resemblyzer wrapper :class:`uniss.engines.speaker.SpeakerEncoder`
  (256-d utterance embedding, many clips per LSTM batch).

Shape legend (all audio is 16 kHz mono float32):
    N      samples of a clip (16 kHz)
    B      Whisper windows in one encoder call
    T_w    encoder frames per window = 1500 (50 Hz, 320 samples = 20 ms each)
    T_l    linguistic tokens of a clip = round(N / 1280) (12.5 Hz)
    375    12.5 Hz token positions in one window (``N_POSITIONS``)
    P      resemblyzer partial windows (1.6 s, 160 x 40 mel) of all clips in a batch
    D_w    Whisper-base encoder width = 512
    D_spk  resemblyzer embedding width = 256
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from uniss.codecs.base import SAMPLE_RATE_HZ, CodecError, n_linguistic, n_semantic, sha256_file
from uniss.codecs.lite.config import WINDOW_MODES
from uniss.engines.speaker import EMBEDDING_DIM, SpeakerEncoder, speaker_encoder

#: Linguistic token span (samples): 16000 / 12.5 = 1280 = 4 Whisper encoder frames of 20 ms.
LINGUISTIC_HOP_SAMPLES = 1280
#: Whisper input window (samples): 30 s at 16 kHz (OpenAI Whisper, ``N_SAMPLES``).
WHISPER_WINDOW_SAMPLES = 30 * SAMPLE_RATE_HZ
#: Whisper encoder output frames per 30 s window (50 Hz).
WHISPER_FRAMES = 1500
#: Samples per Whisper encoder frame: 480000 / 1500 = 320 (20 ms; two 10 ms mel hops of 160).
WHISPER_FRAME_SAMPLES = WHISPER_WINDOW_SAMPLES // WHISPER_FRAMES
#: Encoder frames pooled into one linguistic token: 50 Hz / 12.5 Hz.
POOL = 4
#: 12.5 Hz token positions in one 30 s Whisper window (1500 encoder frames / 4).
N_POSITIONS = WHISPER_FRAMES // POOL
#: Width of the resemblyzer embedding (Resemblyzer ``model_embedding_size``).
SPEAKER_DIM = EMBEDDING_DIM


# ----------------------------------------------------------------------------------------------
# packing clips into 30 s Whisper windows
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    clip: int
    start: int  # sample offset inside the clip
    length: int  # samples
    window: int
    offset: int  # sample offset inside the 30 s window (multiple of 1280)


def _split_clips(lengths: list[int]):
    """``(clip, start, length)`` of each <= 30 s piece of each clip, in order (samples, 16 kHz)."""
    for i, n in enumerate(lengths):
        for start in range(0, n, WHISPER_WINDOW_SAMPLES):
            yield i, start, min(WHISPER_WINDOW_SAMPLES, n - start)


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
    for i, start, ln in _split_clips(lengths):
        slot = math.ceil(ln / LINGUISTIC_HOP_SAMPLES) * LINGUISTIC_HOP_SAMPLES
        if fill + slot > WHISPER_WINDOW_SAMPLES:
            window, fill = window + 1, 0
        pieces.append(_Piece(i, start, ln, window, fill))
        fill += slot
    return pieces


def clip_windows(lengths: list[int]) -> list[_Piece]:
    """One window per clip piece (clips split into <= 30 s pieces), each piece at offset 0 of a
    window ``ceil(len / 1280) * 1280`` samples long (the ``"clip"`` Whisper window).

    The encoder then sees the clip alone, unpadded to 30 s: its states depend on nothing else
    (packing puts a clip beside varying neighbours), and a 4 s clip costs a 4 s pass (0.11 s on 2
    cores, measured) instead of a 30 s one (1.0 s). CTranslate2's Whisper encoder accepts inputs
    shorter than 3000 mel frames (positional embeddings sliced from 0; measured 2026-12-03).

    Args:
        lengths: sample counts of the clips (16 kHz).

    Returns:
        pieces in order; piece ``j`` is window ``j``.
    """
    return [_Piece(i, start, ln, j, 0) for j, (i, start, ln) in enumerate(_split_clips(lengths))]


# ----------------------------------------------------------------------------------------------
# Whisper encoder states
# ----------------------------------------------------------------------------------------------


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
               position_mean: np.ndarray | None = None, window: str = "packed") -> list[np.ndarray]:
        """Pooled encoder states of each clip, centred per window position when ``position_mean``
        is given (see :meth:`pooled_with_positions` and :func:`position_means`).

        Args:
            wavs: list of ``(N_i,)`` float32 16 kHz.
            batch_windows: Whisper windows per encoder call.
            progress: show a tqdm bar over windows.
            position_mean: ``(375, 512)`` mean pooled state per 12.5 Hz window position.
            window: :data:`WINDOW_MODES` (see :meth:`states_with_positions`).

        Returns:
            list of ``(T_l_i, 512)`` float32 with ``T_l_i = round(12.5 * N_i / 16000)`` (>= 1).
        """
        states, positions = self.pooled_with_positions(wavs, batch_windows, progress, window=window)
        if position_mean is None:
            return states
        return [s - position_mean[p] for s, p in zip(states, positions, strict=True)]  # (T_l_i, D_w) each

    def pooled_with_positions(self, wavs: list[np.ndarray], batch_windows: int = 2,
                              progress: bool = False, window: str = "packed") -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Raw pooled states of each clip and the window position (0..374) of each of its tokens.

        Packing several clips into one 30 s window puts a clip at different absolute positions
        depending on its neighbours, and Whisper's positional information dominates the raw states
        (same clip alone vs packed: normalised code edit distance 1.0). Subtracting the mean state
        of each position (fitted with the codebook) removes that first-order position term:
        measured cosine of a clip's states alone vs packed 0.50 raw -> 0.80 centred, while the same
        sentence in another voice keeps 0.44 against 0.16 for different sentences.

        Args:
            wavs: list of ``(N_i,)`` float32 16 kHz.
            batch_windows: Whisper windows per encoder call.
            progress: show a tqdm bar over windows.
            window: :data:`WINDOW_MODES` (see :meth:`states_with_positions`).

        Returns:
            (states, positions): lists of ``(T_l_i, 512)`` float32 and ``(T_l_i,)`` int64.
        """
        pooled, pooled_pos, _, _ = self.states_with_positions(wavs, batch_windows, progress, window=window)
        return pooled, pooled_pos

    def states_with_positions(
        self, wavs: list[np.ndarray], batch_windows: int = 2, progress: bool = False, window: str = "packed"
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """One encoder pass -> raw states at 12.5 Hz (pooled by 4) and at the native 50 Hz, each
        with its window positions (lite codec v2 uses the first pair, v3 both).

        Args:
            wavs: list of ``(N_i,)`` float32 16 kHz.
            batch_windows: windows per encoder call (``"clip"``: windows of equal length only).
            progress: show a tqdm bar over windows.
            window: ``"packed"`` (:func:`pack_windows`: several clips per 30 s window, zero padded;
                lite codec v2/v3 bundles before ``whisper_window``) or ``"clip"``
                (:func:`clip_windows`: each clip piece alone in a window of its own length).

        Returns:
            (pooled, pooled_positions, frames, frame_positions): lists of ``(T_l_i, 512)`` float32,
            ``(T_l_i,)`` int64 in ``[0, 375)``, ``(T_s_i, 512)`` float32 and ``(T_s_i,)`` int64 in
            ``[0, 1500)``, with ``T_l_i = round(12.5 * N_i / 16000)``, ``T_s_i = round(50 * N_i / 16000)``.

        Raises:
            CodecError: unknown ``window``.
        """
        from tqdm.auto import tqdm

        if window not in WINDOW_MODES:
            raise CodecError(f"unknown Whisper window mode {window!r} ({' | '.join(WINDOW_MODES)})")
        lengths = [len(w) for w in wavs]
        pieces = pack_windows(lengths) if window == "packed" else clip_windows(lengths)
        n_windows = pieces[-1].window + 1 if pieces else 0
        by_window: dict[int, list[_Piece]] = {}
        for p in pieces:
            by_window.setdefault(p.window, []).append(p)
        # window length (samples): 30 s when packed; the piece's token-aligned slot when clipped
        wlen = {w: WHISPER_WINDOW_SAMPLES if window == "packed"
                else math.ceil(ps[0].length / LINGUISTIC_HOP_SAMPLES) * LINGUISTIC_HOP_SAMPLES for w, ps in by_window.items()}
        batches: list[list[int]] = []  # encoder calls: consecutive windows of one length
        for w in sorted(by_window, key=lambda w: (wlen[w], w)):
            if batches and len(batches[-1]) < batch_windows and wlen[batches[-1][0]] == wlen[w]:
                batches[-1].append(w)
            else:
                batches.append([w])
        parts: list[list[np.ndarray]] = [[] for _ in wavs]
        pos_parts: list[list[np.ndarray]] = [[] for _ in wavs]
        fparts: list[list[np.ndarray]] = [[] for _ in wavs]
        fpos_parts: list[list[np.ndarray]] = [[] for _ in wavs]
        bar = tqdm(total=n_windows, desc="whisper windows", unit="win", disable=not progress, leave=False)
        for ws in batches:
            n_mel = 2 * wlen[ws[0]] // WHISPER_FRAME_SAMPLES  # 3000 for a 30 s window (10 ms hops)
            feats = []
            for w in ws:
                audio = np.zeros(wlen[w], dtype=np.float32)  # (480000,) packed, (slot,) clipped
                for p in by_window[w]:
                    audio[p.offset : p.offset + p.length] = wavs[p.clip][p.start : p.start + p.length]
                f = self.fe(audio, padding=0)[:, :n_mel]  # (80, n_mel)
                feats.append(f)
            x = np.ascontiguousarray(np.stack(feats), dtype=np.float32)  # (B, 80, n_mel)
            with self._lock:
                out = np.asarray(self.model.encode(x))  # (B, n_mel / 2, D_w)
            for bi, w in enumerate(ws):
                for p in by_window[w]:
                    f0 = p.offset // WHISPER_FRAME_SAMPLES
                    n_tok = math.ceil(p.length / LINGUISTIC_HOP_SAMPLES)
                    st = out[bi, f0 : f0 + POOL * n_tok]  # (4 * n_tok, D_w)
                    parts[p.clip].append(st.reshape(n_tok, POOL, -1).mean(axis=1))  # (n_tok, D_w)
                    pos_parts[p.clip].append(p.offset // LINGUISTIC_HOP_SAMPLES + np.arange(n_tok, dtype=np.int64))
                    fparts[p.clip].append(st)  # (4 * n_tok, D_w)
                    fpos_parts[p.clip].append(f0 + np.arange(POOL * n_tok, dtype=np.int64))
            bar.update(len(ws))
        bar.close()
        res, pos, fres, fpos = [], [], [], []
        for w, ps, qs, fs, fq in zip(wavs, parts, pos_parts, fparts, fpos_parts, strict=True):
            n = n_linguistic(len(w))
            res.append(np.concatenate(ps, axis=0).astype(np.float32)[:n])  # (T_l, D_w)
            pos.append(np.minimum(np.concatenate(qs)[:n], N_POSITIONS - 1))  # (T_l,)
            t = n_semantic(len(w))  # <= 4 * sum(n_tok): each piece covers ceil(len / 1280) * 4 frames
            fres.append(np.concatenate(fs, axis=0).astype(np.float32)[:t])  # (T_s, D_w)
            fpos.append(np.minimum(np.concatenate(fq)[:t], WHISPER_FRAMES - 1))  # (T_s,)
        return res, pos, fres, fpos


def frame_position_means(states: list[np.ndarray], positions: list[np.ndarray], smooth: int = POOL) -> np.ndarray:
    """Mean 50 Hz state per window position (lite codec v3's semantic centring).

    Each 50 Hz position sees four times fewer frames than a 12.5 Hz one, so the means are pooled
    over blocks of ``smooth`` neighbouring positions (default 4: the same statistics per block as
    :func:`position_means`), then repeated back to 1500 positions.

    Args:
        states: list of ``(T_s_i, D)`` 50 Hz states.
        positions: list of ``(T_s_i,)`` int64 window positions in ``[0, 1500)``.
        smooth: positions per block.

    Returns:
        ``(1500, D)`` float32; blocks never observed get the global mean.
    """
    x = np.concatenate(states).astype(np.float64)  # (sum T_s, D)
    p = np.concatenate(positions) // smooth  # (sum T_s,)
    nb = math.ceil(WHISPER_FRAMES / smooth)
    sums = np.zeros((nb, x.shape[1]))  # (nb, D)
    np.add.at(sums, p, x)
    counts = np.bincount(p, minlength=nb)[:, None]  # (nb, 1)
    m = np.where(counts > 0, sums / np.maximum(counts, 1), x.mean(axis=0, keepdims=True))  # (nb, D)
    return np.repeat(m, smooth, axis=0)[:WHISPER_FRAMES].astype(np.float32)  # (1500, D)


def position_means(states: list[np.ndarray], positions: list[np.ndarray]) -> np.ndarray:
    """Mean pooled state per window position over fitting clips.

    Args:
        states: list of ``(T_l_i, D)`` pooled states.
        positions: list of ``(T_l_i,)`` int64 window positions in ``[0, 375)``.

    Returns:
        ``(375, D)`` float32; positions never observed get the global mean.
    """
    x = np.concatenate(states).astype(np.float64)  # (sum T_l, D)
    p = np.concatenate(positions)  # (sum T_l,)
    sums = np.zeros((N_POSITIONS, x.shape[1]))  # (375, D)
    np.add.at(sums, p, x)
    counts = np.bincount(p, minlength=N_POSITIONS)[:, None]  # (375, 1)
    glob = x.mean(axis=0, keepdims=True)  # (1, D)
    return np.where(counts > 0, sums / np.maximum(counts, 1), glob).astype(np.float32)  # (375, D)


@lru_cache(maxsize=2)
def whisper_states(model_dir: str | None = None) -> WhisperStates:
    """Process-wide :class:`WhisperStates` (loaded once per model dir)."""
    return WhisperStates(model_dir)


# ----------------------------------------------------------------------------------------------
# speaker embeddings
# ----------------------------------------------------------------------------------------------


# One resemblyzer wrapper for the platform (uniss.engines.speaker): the codec's speaker tokens and
# speaker-similarity scoring share its model, its short-clip rule and its pkg_resources warning filter.
SpeakerEmbedder = SpeakerEncoder


@lru_cache(maxsize=1)
def speaker_embedder() -> SpeakerEncoder:
    """Process-wide :class:`~uniss.engines.speaker.SpeakerEncoder`."""
    return speaker_encoder()
