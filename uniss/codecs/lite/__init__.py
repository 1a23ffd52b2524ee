"""The "lite" triple speech tokenizer backend (CPU, fitted on the corpus): see
:mod:`uniss.codecs.lite.codec` for the design.

Modules: :mod:`~uniss.codecs.lite.config` (sizes and knobs), :mod:`~uniss.codecs.lite.features`
(Whisper encoder states, each clip in its own window or several packed per 30 s window, centred
per window position; resemblyzer
speaker embeddings), :mod:`~uniss.codecs.lite.dsp` (log-mel, Griffin-Lim),
:mod:`~uniss.codecs.lite.quantize` (k-means, nearest centroid), :mod:`~uniss.codecs.lite.decoder`
(the mel decoder network and its training loop; imports torch, so it is not imported here) and
:mod:`~uniss.codecs.lite.codec` (:class:`LiteCodec`, :func:`fit_lite_codec`, save/load). Codec v3
(issue 16): :mod:`~uniss.codecs.lite.codec_v3` (:class:`LiteCodecV3`, Whisper semantic units),
:mod:`~uniss.codecs.lite.unit_decoder` (FiLM unit decoder; torch) and
:mod:`~uniss.codecs.lite.vocoder` (MB-MelGAN wrapper, its analysis mel, Griffin-Lim fallback)
(:class:`LiteCodecV3` is re-exported here).

Shape legend: none here (re-exports only); each module carries its own.
"""

from uniss.codecs.lite.codec import (
    DECODER_FILE,
    LITE_V2,
    LITE_VERSION,
    SPEAKER_SUBDIM,
    WEIGHTS_FILE,
    LiteCodec,
    codec_summary,
    fit_lite_codec,
    fit_speaker_codebooks,
    load_lite_codec,
)
from uniss.codecs.lite.codec_v3 import LITE_V3, LiteCodecV3
from uniss.codecs.lite.config import LiteCodecConfig
from uniss.codecs.lite.dsp import HOP_SAMPLES, LOG_FLOOR, griffin_lim, log_mel
from uniss.codecs.lite.features import (
    LINGUISTIC_HOP_SAMPLES,
    N_POSITIONS,
    POOL,
    SPEAKER_DIM,
    WHISPER_FRAMES,
    WHISPER_WINDOW_SAMPLES,
    SpeakerEmbedder,
    WhisperStates,
    clip_windows,
    pack_windows,
    position_means,
    speaker_embedder,
    whisper_states,
)

__all__ = [
    "DECODER_FILE",
    "HOP_SAMPLES",
    "LINGUISTIC_HOP_SAMPLES",
    "LITE_V2",
    "LITE_V3",
    "LITE_VERSION",
    "LOG_FLOOR",
    "N_POSITIONS",
    "POOL",
    "SPEAKER_DIM",
    "SPEAKER_SUBDIM",
    "WEIGHTS_FILE",
    "WHISPER_FRAMES",
    "WHISPER_WINDOW_SAMPLES",
    "LiteCodec",
    "LiteCodecConfig",
    "LiteCodecV3",
    "SpeakerEmbedder",
    "WhisperStates",
    "codec_summary",
    "fit_lite_codec",
    "fit_speaker_codebooks",
    "load_lite_codec",
    "griffin_lim",
    "log_mel",
    "clip_windows",
    "pack_windows",
    "position_means",
    "speaker_embedder",
    "whisper_states",
]
