"""The "lite" triple speech tokenizer: a CPU codec fitted on the corpus (issue 4, item 3).

Size (~535 lines, over the house guide of ~500): the v2 codec's fit, encode, decode, save and load
must stay byte-stable for saved bundles (their fingerprints); v3 lives in ``codec_v3.py``.

The paper's tokenizers (BiCodec, GLM-4-Voice; paper §3.1.2) cannot be downloaded here, so this
backend rebuilds each idea at small scale from shipped models and library k-means:

* **linguistic** (12.5 tokens/s, content): Whisper-base encoder states (50 Hz, 512-d; the
  GLM-4-Voice tokenizer quantizes a Whisper encoder, paper §3.1.2) average-pooled by 4 to 12.5 Hz,
  each clip in a Whisper window of its own length (presets; ``whisper_window="clip"``) or several
  clips packed into each 30 s window (manifests before that key), centred per window position
  (:mod:`uniss.codecs.lite.features`), then a ``MiniBatchKMeans`` codebook.
* **speaker** (32 global tokens): the 256-d resemblyzer utterance embedding, product-quantized into
  32 sub-vectors of 8 dims, one ``KMeans`` codebook per sub-vector (size capped by the data).
* **semantic** (50 tokens/s, decodable): 80-bin log-mel frames (hop 320 samples = 20 ms at 16 kHz,
  :mod:`uniss.codecs.lite.dsp`) vector-quantized by ``MiniBatchKMeans``.
* **decoder**: :class:`~uniss.codecs.lite.decoder.MelDecoder` (:mod:`uniss.codecs.lite.decoder`),
  trained here with an L1 loss on log-mel: (semantic codes, speaker embedding rebuilt from the 32
  PQ codes) -> 80-bin log-mel; waveform by Griffin-Lim (librosa).

This module holds :class:`LiteCodec` (tokenize, decode, save/load), :func:`fit_lite_codec` and the
bundle layout (:data:`LITE_VERSION`, file names).

Shape legend (all audio is 16 kHz mono float32):
    N      samples of a clip (16 kHz)
    T_s    semantic frames = round(N / 320) (50 Hz)
    T_l    linguistic tokens = round(N / 1280) (12.5 Hz)
    M      mel bins (80)
    D_w    Whisper-base encoder width = 512
    D_spk  resemblyzer embedding width = 256
    K_l, K_spk, K_s   linguistic, per-sub-vector speaker, semantic codebook sizes
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from uniss.codecs.base import (
    N_SPEAKER_TOKENS,
    SAMPLE_RATE_HZ,
    CodecError,
    CodecManifest,
    CodecTokens,
    ManifestFingerprint,
    check_codes,
    check_wav,
    read_manifest,
    write_manifest,
)
from uniss.codecs.lite.config import LiteCodecConfig
from uniss.codecs.lite.dsp import griffin_lim, log_mel
from uniss.codecs.lite.features import (
    N_POSITIONS,
    SPEAKER_DIM,
    SpeakerEmbedder,
    position_means,
    speaker_embedder,
    whisper_states,
)
from uniss.codecs.lite.quantize import kmeans, nearest, subsample

if TYPE_CHECKING:  # torch is imported lazily: importing the package does not need it
    from uniss.codecs.lite.decoder import MelDecoder

#: Newest version of the lite codec directory layout and algorithms (what :func:`load_lite_codec`
#: reads up to). 2: linguistic states centred per window position (mel semantic units, Griffin-Lim);
#: 3: Whisper semantic units, unit decoder, MB-MelGAN (:mod:`uniss.codecs.lite.codec_v3`).
LITE_VERSION = "3"
#: Version written by :class:`LiteCodec` (v2 configs, ``semantic_source="mel"``).
LITE_V2 = "2"
#: Dims of each of the 32 speaker sub-vectors (256 / 32).
SPEAKER_SUBDIM = SPEAKER_DIM // N_SPEAKER_TOKENS

#: Codebooks file of a saved lite codec (safetensors: linguistic, linguistic_position_mean, speaker, semantic).
WEIGHTS_FILE = "codebooks.safetensors"
#: Decoder weights file of a saved lite codec (safetensors: the MelDecoder ``state_dict``).
DECODER_FILE = "decoder.safetensors"


class LiteCodec(ManifestFingerprint):
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

        from uniss.codecs.lite.decoder import build_decoder

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
        self.decoder: MelDecoder = build_decoder(self.semantic_centroids, config)
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
        states = whisper_states().pooled(ws, self.config.whisper_batch, progress=progress, window=self.config.whisper_window,
                                         position_mean=self.linguistic_position_mean)  # (T_l_i, D_w) each
        flat = nearest(np.concatenate(states), self.linguistic_centroids)  # (sum T_l_i,)
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
        sub = np.asarray(emb, dtype=np.float32).reshape(N_SPEAKER_TOKENS, 1, SPEAKER_SUBDIM)  # (32, 1, 8)
        d = ((self.speaker_centroids - sub) ** 2).sum(-1)  # (32, K_spk)
        return d.argmin(axis=1).astype(np.int64)

    def speaker_vector(self, codes: np.ndarray) -> np.ndarray:
        """``(32,)`` PQ codes -> ``(256,)`` float32 rebuilt embedding (concatenated centroids).

        Raises:
            CodecError: codes out of range or not 32 of them.
        """
        c = check_codes(codes, self.sizes["speaker"], "speaker", length=N_SPEAKER_TOKENS)
        return self.speaker_centroids[np.arange(N_SPEAKER_TOKENS), c].reshape(-1).astype(np.float32)  # (D_spk,)

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
        return nearest(log_mel(w, self.config.n_mels, self.config.n_fft).T, self.semantic_centroids)  # mel.T: (T_s, M)

    def encode(self, wavs: list[np.ndarray], progress: bool = False, *, semantic: bool = True) -> list[CodecTokens]:
        """All three streams of each clip (one Whisper pass for the linguistic stream of all clips).

        Batching: a clip's speaker and semantic codes equal those of :meth:`speaker` and
        :meth:`semantic` on the clip alone. Its linguistic codes do too with
        ``whisper_window="clip"`` (the presets; tests/unit/codecs/lite/test_codec.py). With
        ``"packed"`` (codecs fitted before that key) they have the same length but can differ:
        Whisper's attention spans the whole 30 s window and packing moves the clip to another window
        position (0.48-0.97 of the tokens agreed per clip for six clips in one window, tiny test
        codec). The result is deterministic for a given list.

        Args:
            wavs: list of ``(N_i,)`` float32 16 kHz.
            progress: tqdm bars.
            semantic: ``False`` skips the semantic stream (each ``semantic`` is an empty ``(0,)``
                int64): a translation request tokenizes its source for the prompt, which holds no
                semantic tokens (ARCHITECTURE.md prompts).

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
            sem = self.semantic(w) if semantic else np.zeros(0, dtype=np.int64)
            out.append(CodecTokens(speaker=self.speaker_codes_from_embedding(emb[i]), linguistic=lg, semantic=sem))
        return out

    # -- decoder ---------------------------------------------------------------------------

    def decode_mel(self, speaker: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        """``(32,)`` speaker + ``(T_s,)`` semantic codes -> ``(M, T_s)`` float32 log-mel.

        Raises:
            CodecError: codes out of range / wrong shape.
        """
        import torch

        spk = self.speaker_vector(speaker)  # (D_spk,)
        sem = check_codes(semantic, self.sizes["semantic"], "semantic")  # (T_s,)
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
            version=LITE_V2,
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
        """Load a saved v2 lite codec, checking hashes, keys and shapes (v3 bundles:
        :func:`load_lite_codec`).

        Raises:
            CodecError: bad manifest, altered/missing files, missing keys or wrong shapes.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        d = Path(directory)
        m = read_manifest(d, verify=True)
        if m.backend != "lite":
            raise CodecError(f"{d} holds a {m.backend!r} codec, not lite")
        if m.version != LITE_V2:
            raise CodecError(f"{d}: lite codec version {m.version} is not supported by LiteCodec (expected {LITE_V2}; "
                             "load_lite_codec reads 2 and 3)")
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

    def __repr__(self) -> str:
        return f"LiteCodec(sizes={self.sizes})"


# ----------------------------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------------------------


def fit_speaker_codebooks(
    ws: list[np.ndarray], cfg: LiteCodecConfig, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Speaker stream of the lite codec (v2 and v3): resemblyzer embeddings of the clips (16 per
    batch), then 32 ``KMeans`` codebooks of 8-d sub-vectors, size ``min(cfg.speaker_size, distinct
    embeddings)``.

    Args:
        ws: ``(N_i,)`` float32 16 kHz clips (checked).

    Returns:
        (centroids ``(32, K_spk, 8)`` float32, quantised embeddings ``(n, 256)`` float32 rebuilt
        from each clip's codes, timings ``speaker_features_s`` / ``speaker_kmeans_s``).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    se = speaker_embedder()
    emb = np.concatenate(
        [se.embed_batch(ws[j : j + 16]) for j in tqdm(range(0, len(ws), 16), desc="speaker embeddings", disable=not progress)]
    )  # (n, 256)
    t1 = time.perf_counter()
    k_spk = max(1, min(cfg.speaker_size, len(np.unique(emb.round(5), axis=0))))
    subs = emb.reshape(len(ws), N_SPEAKER_TOKENS, SPEAKER_SUBDIM)  # (n, 32, 8)
    spk = np.stack(
        [kmeans(subs[:, j], k_spk, cfg, cfg.seed + j, minibatch=False) for j in range(N_SPEAKER_TOKENS)]
    )  # (32, K_spk, 8)
    spk_codes = np.stack(
        [((spk - subs[i][:, None, :]) ** 2).sum(-1).argmin(1) for i in range(len(ws))]
    )  # (n, 32)
    spk_q = spk[np.arange(N_SPEAKER_TOKENS)[None, :], spk_codes].reshape(len(ws), -1).astype(np.float32)  # (n, D_spk)
    return spk, spk_q, {"speaker_features_s": t1 - t0, "speaker_kmeans_s": time.perf_counter() - t1}


def load_lite_codec(directory: str | Path) -> LiteCodec | Any:
    """Load a lite bundle of any supported version: v2 -> :class:`LiteCodec`, v3 ->
    :class:`~uniss.codecs.lite.codec_v3.LiteCodecV3`; v1 (before the per-position centring) is refused.

    Raises:
        CodecError: unsupported version, or whatever the class's ``load`` raises.
    """
    m = read_manifest(directory, verify=False)
    if m.backend == "lite" and m.version == "3":
        from uniss.codecs.lite.codec_v3 import LiteCodecV3

        return LiteCodecV3.load(directory)
    if m.backend == "lite" and m.version not in (LITE_V2, LITE_VERSION):
        raise CodecError(f"{directory}: lite codec version {m.version} is not supported (expected 2 or 3)")
    return LiteCodec.load(directory)


def fit_lite_codec(
    wavs: Iterable[np.ndarray] | list[np.ndarray],
    config: LiteCodecConfig | None = None,
    *,
    progress: bool = True,
    partners: Sequence[int] | None = None,
) -> Any:
    """Fit the three codebooks and train the decoder on a corpus of clips: a v2 :class:`LiteCodec`
    for a ``semantic_source="mel"`` config, a v3
    :class:`~uniss.codecs.lite.codec_v3.LiteCodecV3` for ``"whisper"``.

    Args:
        wavs: ``(N_i,)`` float32 16 kHz mono clips (>= 2 clips; each >= 0.08 s).
        config: sizes and knobs (default :meth:`LiteCodecConfig.demo`).
        progress: tqdm/rich progress on stderr.
        partners: v3 only: for each clip the index of its pair partner (the other side of its
            source/target row), -1 for none; used by ``decoder_speaker_swap``.

    Returns:
        the fitted :class:`LiteCodec`; ``codec.metrics`` holds the decoder's final train/validation
        L1 (log-mel) next to the centroid-lookup L1 it improves on, and stage timings (s).

    Raises:
        CodecError: fewer than 2 clips or a bad clip (its index is named).
    """
    from tqdm.auto import tqdm

    from uniss.codecs.lite.decoder import train_decoder

    cfg = config or LiteCodecConfig.demo()
    ws: list[np.ndarray] = []
    for i, w in enumerate(wavs):
        try:
            ws.append(check_wav(w))
        except CodecError as e:
            raise CodecError(f"training clip {i}: {e}") from None
    if len(ws) < 2:
        raise CodecError(f"fitting a lite codec needs at least 2 clips, got {len(ws)}")
    part = None
    if partners is not None:
        part = np.asarray(list(partners), np.int64)
        if part.shape != (len(ws),) or ((part < -1) | (part >= len(ws))).any():
            raise CodecError(f"partners must be {len(ws)} values, each a clip index in [0, {len(ws)}) or -1; "
                             f"got {part.size} in [{part.min(initial=0)}, {part.max(initial=0)}]")
    if cfg.semantic_source == "whisper":
        from uniss.codecs.lite.codec_v3 import fit_lite_codec_v3

        return fit_lite_codec_v3(ws, cfg, progress=progress, partners=part)
    rng = np.random.default_rng(cfg.seed)
    timings: dict[str, float] = {}

    # linguistic ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    wh = whisper_states()
    raw, positions = wh.pooled_with_positions(ws, cfg.whisper_batch, progress=progress, window=cfg.whisper_window)
    pos_mean = position_means(raw, positions)  # (375, 512)
    states = [s - pos_mean[p] for s, p in zip(raw, positions, strict=True)]  # (T_l_i, 512) each
    timings["linguistic_features_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ling = kmeans(subsample(np.concatenate(states), cfg.max_kmeans_frames, rng), cfg.linguistic_size, cfg, cfg.seed)
    timings["linguistic_kmeans_s"] = time.perf_counter() - t0

    # speaker ---------------------------------------------------------------------------------
    spk, spk_q, spk_timings = fit_speaker_codebooks(ws, cfg, progress)  # (32, K_spk, 8), (n, D_spk)
    timings.update(spk_timings)

    # semantic --------------------------------------------------------------------------------
    t0 = time.perf_counter()
    mels = [log_mel(w, cfg.n_mels, cfg.n_fft) for w in tqdm(ws, desc="log-mel", disable=not progress)]  # (M, T_s)
    timings["semantic_features_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    frames = np.concatenate([m.T for m in mels])  # (sum T_s, M)
    sem = kmeans(subsample(frames, cfg.max_kmeans_frames, rng), cfg.semantic_size, cfg, cfg.seed + 100)
    timings["semantic_kmeans_s"] = time.perf_counter() - t0

    # decoder ---------------------------------------------------------------------------------
    t0 = time.perf_counter()
    codes = [nearest(m.T, sem) for m in mels]  # (T_s,) each
    dec, dec_metrics = train_decoder(codes, mels, spk_q, sem, cfg, rng, progress=progress)
    timings["decoder_train_s"] = time.perf_counter() - t0
    metrics = {
        "n_clips": len(ws),
        "audio_s": float(sum(len(w) for w in ws) / SAMPLE_RATE_HZ),
        **dec_metrics,
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
