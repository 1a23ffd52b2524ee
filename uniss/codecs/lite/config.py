"""Sizes and training knobs of the lite codec (:class:`LiteCodecConfig`), shared by the codec and
its decoder's training loop; saved in the codec manifest's ``config``.

Shape legend: none (plain numbers). Units: sizes are codebook entries, ``n_fft`` and
``crop_frames`` count samples (16 kHz) and 50 Hz frames, ``max_train_s`` is wall-clock seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from uniss.codecs.base import CodecError

#: Whisper window modes (:attr:`LiteCodecConfig.whisper_window`): several clips per zero-padded 30 s
#: window (``packed``), or each clip in a window of its own length (``clip``).
WINDOW_MODES = ("packed", "clip")


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
        whisper_batch: Whisper windows per encoder call.
        whisper_window: ``"packed"`` (several clips per zero-padded 30 s Whisper window; every
            manifest before this key) | ``"clip"`` (each clip alone in a window of its own length:
            states independent of neighbours, and a 4 s clip encodes in 0.11 s instead of 1.0 s on
            2 cores, measured 2026-12-03; :func:`uniss.codecs.lite.features.clip_windows`).
        decoder_channels / decoder_layers / decoder_kernel: MelDecoder size.
        train_steps: decoder optimisation steps (upper bound).
        max_train_s: decoder training wall-time budget (s); at least min(50, train_steps) steps run.
        batch_size / crop_frames: decoder batch (clips) and crop length (50 Hz frames).
        lr: AdamW learning rate.
        griffin_lim_iters: Griffin-Lim iterations at decode.
        seed: RNG seed of k-means, crops and decoder init.
        semantic_source: ``"mel"`` (v2: k-means of 50 Hz log-mel frames, MelDecoder, Griffin-Lim) |
            ``"whisper"`` (v3: k-means of centred 50 Hz Whisper-base states, K_s = ``semantic_size``,
            :class:`~uniss.codecs.lite.unit_decoder.UnitDecoder`, vocoder below).
        vocoder: v3 only: ``"mbmelgan"`` (Griffin-Lim fallback when not installed) | ``"griffinlim"`` |
            ``"hifigan"`` (HiFi-GAN V1 universal, 86.13 mel frames/s; the unit decoder predicts its
            natural-log mel; no fallback: ``make setup`` installs it).
        unit_decoder_channels / unit_decoder_blocks_in / unit_decoder_blocks_out: v3 UnitDecoder
            width and FiLM blocks at 50 Hz / at 80 Hz (kernel ``decoder_kernel``).
        decoder_cpu_s: v3 decoder training budget in CPU-seconds (``time.process_time``; 300 CPU-s
            is about 150 s wall on an idle 2-core machine with 2 torch threads).
        decoder_dropout: v3 UnitDecoder dropout inside every FiLM block, training only (0 = none).
        decoder_unit_noise: v3 decoder training augmentation: share of input units replaced by random
            units (0 = none), so the decoder also renders the imperfect unit strings an LM writes.
        decoder_speaker_swap: v3 decoder training: probability that a clip with a pair partner (the
            other side of its UniST row, ``fit_lite_codec(partners=...)``) is conditioned on the
            partner's speaker vector instead of its own, with its own mel as the target. Inference
            renders a translation's units with the *source's* speaker tokens (paper §3.1.2), and
            the codec topline with them loses 11 / 14 Speech-BLEU against the target's own speaker
            tokens (EN / ZH targets 21.3 vs 32.3, 27.5 vs 41.3; demo-v3 on the demo data, 2026-12-04,
            ``benchmarks/bench_unit_errors.py``). 0 = own vector only, the presets' value: at 0.5 the
            source-voice topline of one fit moved to 13.7 / 30.4 (CER 0.55 -> 0.68 and 0.47 -> 0.71)
            while the own-voice topline stayed (32.2 / 40.8), inside the spread of seeds 0-2 of the
            preset itself (source voice 12.8-21.3 / 27.5-37.2), so it needs several seeds a variant
            before it is tried again.
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
    whisper_window: str = "packed"
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
    semantic_source: str = "mel"
    vocoder: str = "griffinlim"
    unit_decoder_channels: int = 192
    unit_decoder_blocks_in: int = 4
    unit_decoder_blocks_out: int = 2
    decoder_cpu_s: float = 300.0
    decoder_dropout: float = 0.0
    decoder_unit_noise: float = 0.0
    decoder_speaker_swap: float = 0.0

    @classmethod
    def tiny(cls, **overrides: Any) -> LiteCodecConfig:
        """CI preset: fits in well under 60 s on a few dozen short clips (2 CPU cores). All four
        presets encode each clip in its own Whisper window (``whisper_window="clip"``)."""
        base = dict(
            whisper_window="clip",
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
        base: dict[str, Any] = dict(kmeans_max_iter=5, max_kmeans_frames=100_000, whisper_window="clip")
        base.update(overrides)
        return cls(**base)

    @classmethod
    def tiny_v3(cls, **overrides: Any) -> LiteCodecConfig:
        """CI preset of codec v3 (Whisper units, unit decoder, MB-MelGAN): a few dozen short clips,
        decoder budget 20 CPU-s."""
        base: dict[str, Any] = dict(
            whisper_window="clip",
            semantic_source="whisper",
            vocoder="mbmelgan",
            linguistic_size=64,
            speaker_size=16,
            semantic_size=32,
            kmeans_max_iter=10,
            max_kmeans_frames=20_000,
            unit_decoder_channels=48,
            unit_decoder_blocks_in=2,
            unit_decoder_blocks_out=1,
            train_steps=60,
            decoder_cpu_s=20.0,
            batch_size=8,
            crop_frames=50,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def demo_v3(cls, **overrides: Any) -> LiteCodecConfig:
        """Demo preset of codec v3 with MB-MelGAN (the pipeline's demo default until 2026-12-05, now
        :meth:`demo_v3_hifigan`, which differs only in the vocoder):
        K_s = 128 Whisper units (issue 16; K=128 keeps same-sentence / other-voice token strings
        close), UnitDecoder 192 channels 4 + 2 FiLM blocks, k-means cut as in :meth:`demo`.

        Decoder regularisers and budget (measured 2026-12-03 on the demo data, fit on the UniST train
        clips plus the alignment corpus speech, 518 clips, 1,715 s): dropout 0.1 and unit noise 0.1
        over 450 CPU-s give validation L1 0.21 (train 0.17), where 300 CPU-s without them on the UniST
        train clips alone gave 0.28 (train 0.07). The unit noise also trains the decoder on the
        imperfect unit strings an LM writes.

        The budget is 2,400 steps (~500 CPU-s on a quiet 2-core machine), capped at 1,200 CPU-s. A
        CPU-second budget alone made the codec depend on the machine's load: 450 CPU-s reached 2,161
        steps on a quiet machine (cold demo 2026-12-03, codec topline Speech-BLEU 31.9 / 17.7) and
        fewer beside a CI run (26.7 / 13.5), with the same data and code. The step budget alone was
        not enough: the learning-rate schedule still read the CPU clock at every step, and two cold
        demos (2026-12-04) with identical codebooks trained decoders whose codec topline differed by
        9 / 7 BLEU (30.3 / 17.0 and 39.7 / 24.4). Since 2026-12-04 the schedule reads the clock once
        (:func:`~uniss.codecs.lite.unit_decoder.train_unit_decoder`), and a fit is bit-identical on a
        quiet and a loaded machine (checked: same decoder sha256 with and without a CPU burner).

        A 4x budget does not buy content (2026-12-06, ``demo-v3-hifigan``, the same codebooks and
        clips, ``bench_unit_errors.py`` on the 17 EN / 13 ZH test-split targets in one run,
        ``unit_errors_s2400.json`` / ``unit_errors_s9600.json``): 9,600 steps (2,327 CPU-s, validation
        L1 0.129 -> 0.117) give the codec topline in the source's voice 24.6 / 48.5 Speech-BLEU (WER /
        CER 0.48 / 0.32) against 31.8 / 47.3 (0.47 / 0.34), and in the target's own voice 33.3 / 47.4
        against 34.2 / 46.5; the voice improves (cosine to the source 0.74 / 0.72 against 0.70 / 0.68, to
        the target 0.82 / 0.79 against 0.75 / 0.74). So the units, not the decoder's training, hold the
        topline at ~35-55 % of the reference (copy synthesis through the same vocoder: 98.0 / 82.7)."""
        base: dict[str, Any] = dict(
            whisper_window="clip",
            semantic_source="whisper",
            vocoder="mbmelgan",
            semantic_size=128,
            kmeans_max_iter=5,
            max_kmeans_frames=100_000,
            train_steps=2_400,
            decoder_cpu_s=1_200.0,
            decoder_dropout=0.1,
            decoder_unit_noise=0.1,
            batch_size=16,
            crop_frames=100,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def demo_v3_hifigan(cls, **overrides: Any) -> LiteCodecConfig:
        """:meth:`demo_v3` with the HiFi-GAN V1 universal vocoder (``vocoder="hifigan"``), for
        ``params.yaml`` ``pipeline.demo.codec: demo-v3-hifigan``.

        Measured 2026-12-04 on one demo dataset against ``demo-v3`` (``bench_unit_errors.py``, 24 test
        targets a language; EN / ZH targets, Whisper-base): codec topline Speech-BLEU in the source's
        voice (the evaluation's ``topline_codec``) 31.8 / 47.3 against 21.3 / 27.5, its speaker cosine
        to the source 0.70 / 0.68 against 0.58 / 0.54; in the target's own voice 34.2 / 46.5 against
        32.3 / 41.3. The vocoder alone (copy synthesis) keeps the voice (cosine to the target 0.98 /
        0.98 against MB-MelGAN's 0.77 / 0.79), so the unit decoder is what still loses it. Cost, on a
        quiet 2-core machine, one run, 12 test clips (43.5 s): the codec decodes at 3.5 x real time
        against demo-v3's 21.3 x (the vocoders alone: 3.3 x against 22.1 x). For the demo's evaluation
        (3 modes x 2 directions x 24 clips, ~430 s of speech) that is ~2 min more.

        The pipeline's demo default (``params.yaml`` ``pipeline.demo.codec``) since its first cold demo
        (2026-12-05, quiet 2-core machine, held-out test split, EN->ZH / ZH->EN): pipeline 2,434 s
        (fit-codec 432 s, evaluation 315 s; the last MB-MelGAN cold demo on a quiet machine, 2026-12-04:
        42.4 min), codec topline Speech-BLEU 47.3 / 29.9 (MB-MelGAN 27.5 / 21.3), the model's Quality
        Speech-BLEU 1.41 / 3.02 (1.01 / 2.23) and speaker cosine to the source 0.68 / 0.70 (0.54 / 0.60);
        promoted.
        """
        return cls.demo_v3(**{"vocoder": "hifigan", **overrides})

    #: Preset names accepted by :meth:`preset`.
    PRESETS = ("tiny", "demo", "tiny-v3", "demo-v3", "demo-v3-hifigan")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> LiteCodecConfig:
        """``tiny`` | ``demo`` (v2) | ``tiny-v3`` | ``demo-v3`` | ``demo-v3-hifigan`` preset by name.

        Raises:
            CodecError: unknown preset name.
        """
        makers = {"tiny": cls.tiny, "demo": cls.demo, "tiny-v3": cls.tiny_v3, "demo-v3": cls.demo_v3,
                  "demo-v3-hifigan": cls.demo_v3_hifigan}
        if name not in makers:
            raise CodecError(f"unknown lite codec preset {name!r} ({' | '.join(makers)})")
        return makers[name](**overrides)

    @property
    def version(self) -> str:
        """Bundle version this config fits: ``"3"`` for Whisper units, else ``"2"``."""
        return "3" if self.semantic_source == "whisper" else "2"

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
        """JSON-ready dict. A v2 config (``semantic_source="mel"``) leaves out the v3-only keys, so
        v2 manifests (and their fingerprints) stay as before v3 existed."""
        d = dataclasses.asdict(self)
        if self.semantic_source == "mel":
            for k in V3_KEYS:
                d.pop(k)
        if self.whisper_window == "packed":  # manifests before the key keep their fingerprints
            d.pop("whisper_window")
        if not self.decoder_speaker_swap:  # a v3 key newer than v3's first manifests: at 0 (the
            d.pop("decoder_speaker_swap")  # behaviour of before) left out, so theirs stay as they were
        return d

    def __post_init__(self) -> None:
        for k in ("linguistic_size", "speaker_size", "semantic_size", "n_mels", "decoder_channels", "crop_frames",
                  "unit_decoder_channels"):
            if int(getattr(self, k)) < 1:
                raise CodecError(f"lite codec config {k} must be >= 1, got {getattr(self, k)}")
        if self.semantic_source not in ("mel", "whisper"):
            raise CodecError(f"lite codec semantic_source must be 'mel' or 'whisper', got {self.semantic_source!r}")
        if self.whisper_window not in WINDOW_MODES:
            raise CodecError(f"lite codec whisper_window must be one of {WINDOW_MODES}, got {self.whisper_window!r}")
        if self.vocoder not in ("mbmelgan", "griffinlim", "hifigan"):
            raise CodecError(f"lite codec vocoder must be 'mbmelgan', 'hifigan' or 'griffinlim', got {self.vocoder!r}")
        if not 0.0 <= float(self.decoder_speaker_swap) <= 1.0:
            raise CodecError(f"lite codec decoder_speaker_swap must be in [0, 1], got {self.decoder_speaker_swap}")
        if self.semantic_source == "mel" and self.vocoder != "griffinlim":
            raise CodecError("a v2 lite codec (semantic_source='mel') renders with Griffin-Lim only (vocoder='griffinlim')")


#: Config keys that only v3 (``semantic_source="whisper"``) uses; left out of v2 manifests.
V3_KEYS = ("semantic_source", "vocoder", "unit_decoder_channels", "unit_decoder_blocks_in", "unit_decoder_blocks_out",
           "decoder_cpu_s", "decoder_dropout", "decoder_unit_noise")
