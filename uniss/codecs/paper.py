"""The paper's tokenizers behind :class:`uniss.codecs.base.SpeechCodec` (issue 4, item 3 "paper").

* **BiCodec** (Spark-TTS; paper §3.1.2): 32 global speaker tokens (codebook 4096) and 50 Hz
  semantic tokens (codebook 8192), decoded back to 16 kHz speech. Loaded from a local Spark-TTS
  model directory (the one holding ``BiCodec/`` and ``wav2vec2-large-xlsr-53/``) through the
  Spark-TTS package's own ``sparktts.models.audio_tokenizer.BiCodecTokenizer`` (clone
  github.com/SparkAudio/Spark-TTS and put it on ``PYTHONPATH``).
* **GLM-4-Voice tokenizer** (paper §3.1.2): 12.5 Hz linguistic tokens (codebook 16384), a
  vector-quantized Whisper encoder, loaded from a local ``glm-4-voice-tokenizer`` directory through
  the GLM-4-Voice repository's ``speech_tokenizer.modeling_whisper.WhisperVQEncoder`` and
  ``speech_tokenizer.utils.extract_speech_token`` plus transformers' ``WhisperFeatureExtractor``.

Only the glue is written here; the models are upstream code (STYLE #13). No checkpoint exists on
this machine, so the adapters raise :class:`CodecError` naming the missing path or module.
Token strings: ``<|bicodec_global_N|>``, ``<|bicodec_semantic_N|>``, ``<|glm_semantic_N|>``
(ARCHITECTURE.md, uniss/vocab.py).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from uniss.audio import SAMPLE_RATE_HZ
from uniss.codecs.base import (
    N_SPEAKER_TOKENS,
    CodecError,
    CodecManifest,
    CodecTokens,
    ManifestFingerprint,
    check_codes,
    check_wav,
    read_manifest,
    sha256_file,
    write_manifest,
)

#: Codebook sizes of the released tokenizers (paper §5.1: 4,096 + 8,192 + 16,384 speech tokens).
PAPER_SIZES = {"speaker": 4096, "semantic": 8192, "linguistic": 16384}
PAPER_VERSION = "1"
#: Modules the adapters import (upstream code, not vendored).
BICODEC_MODULE = "sparktts.models.audio_tokenizer"
GLM_MODEL_MODULE = "speech_tokenizer.modeling_whisper"
GLM_UTILS_MODULE = "speech_tokenizer.utils"


def _require_dir(path: str | Path | None, what: str, expect: tuple[str, ...]) -> Path:
    """Check a checkpoint directory and the entries it must hold.

    Raises:
        CodecError: unset, missing, or lacking one of ``expect`` (the message names the path).
    """
    if path is None:
        raise CodecError(f"{what}: no checkpoint directory given")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise CodecError(f"{what}: checkpoint directory not found: {p}")
    for e in expect:
        if not (p / e).exists():
            raise CodecError(f"{what}: {p} lacks {e}")
    return p


def _import(module: str, what: str, hint: str) -> Any:
    """Import an upstream module or raise :class:`CodecError` naming it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise CodecError(f"{what}: cannot import {module} ({e}); {hint}") from None


class PaperCodec(ManifestFingerprint):
    """BiCodec (speaker + semantic) + GLM-4-Voice tokenizer (linguistic) from local checkpoints.

    Args:
        bicodec_dir: Spark-TTS model directory (``BiCodec/``, ``wav2vec2-large-xlsr-53/``).
        glm_tokenizer_dir: ``glm-4-voice-tokenizer`` directory (``config.json`` + weights).
        device: torch device string (``cpu``, ``cuda``, ``cuda:1``).

    Raises:
        CodecError: a directory or an entry in it is missing, or the upstream module is not importable.
    """

    backend = "paper"
    semantic_rate_hz = 50.0
    linguistic_rate_hz = 12.5
    sample_rate_hz = SAMPLE_RATE_HZ
    n_speaker_tokens = N_SPEAKER_TOKENS

    def __init__(self, bicodec_dir: str | Path, glm_tokenizer_dir: str | Path, device: str = "cpu") -> None:
        self.bicodec_dir = _require_dir(bicodec_dir, "BiCodec", ("BiCodec", "wav2vec2-large-xlsr-53"))
        self.glm_tokenizer_dir = _require_dir(glm_tokenizer_dir, "GLM-4-Voice tokenizer", ("config.json",))
        self.device = device
        self.sizes = dict(PAPER_SIZES)
        bic = _import(BICODEC_MODULE, "BiCodec", "clone github.com/SparkAudio/Spark-TTS and add it to PYTHONPATH")
        glm_m = _import(GLM_MODEL_MODULE, "GLM-4-Voice tokenizer", "clone github.com/THUDM/GLM-4-Voice and add it to PYTHONPATH")
        glm_u = _import(GLM_UTILS_MODULE, "GLM-4-Voice tokenizer", "clone github.com/THUDM/GLM-4-Voice and add it to PYTHONPATH")
        import torch
        from transformers import WhisperFeatureExtractor

        self._torch = torch
        self._bicodec = bic.BiCodecTokenizer(self.bicodec_dir, device=torch.device(device))
        self._glm = glm_m.WhisperVQEncoder.from_pretrained(str(self.glm_tokenizer_dir)).eval().to(device)
        self._glm_fe = WhisperFeatureExtractor.from_pretrained(str(self.glm_tokenizer_dir))
        self._extract = glm_u.extract_speech_token
        self._manifest: CodecManifest | None = None

    # -- tokenizers ------------------------------------------------------------------------

    def _bicodec_tokens(self, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        w = check_wav(wav)
        ref = self._bicodec.get_ref_clip(w)
        batch = {
            "wav": torch.from_numpy(w)[None].float().to(self.device),  # (1, N)
            "ref_wav": torch.from_numpy(np.asarray(ref, np.float32))[None].float().to(self.device),  # (1, N_ref)
        }
        with torch.inference_mode():
            g, s = self._bicodec.tokenize_batch(batch)
        return (
            np.asarray(g.detach().cpu()).reshape(-1).astype(np.int64),  # (32,)
            np.asarray(s.detach().cpu()).reshape(-1).astype(np.int64),  # (T_s,)
        )

    def speaker(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(32,)`` int64 BiCodec global tokens in [0, 4096)."""
        return check_codes(self._bicodec_tokens(wav)[0], self.sizes["speaker"], "speaker", length=N_SPEAKER_TOKENS)

    def semantic(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(T_s,)`` int64 BiCodec semantic tokens in [0, 8192), 50 tokens/s."""
        return self._bicodec_tokens(wav)[1]

    def linguistic(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(T_l,)`` int64 GLM-4-Voice tokens in [0, 16384), 12.5 tokens/s."""
        return self.linguistic_batch([wav])[0]

    def linguistic_batch(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """GLM-4-Voice tokens of several clips (upstream ``extract_speech_token`` batches them)."""
        torch = self._torch
        utts = [(torch.from_numpy(check_wav(w))[None], SAMPLE_RATE_HZ) for w in wavs]
        with torch.inference_mode():
            toks = self._extract(self._glm, self._glm_fe, utts)
        return [np.asarray(t, dtype=np.int64) for t in toks]

    def encode(self, wavs: list[np.ndarray], *, semantic: bool = True) -> list[CodecTokens]:
        """All three streams of each clip (BiCodec yields global and semantic tokens in one pass,
        so ``semantic=False`` saves nothing and the semantic codes are returned anyway)."""
        ling = self.linguistic_batch(wavs)
        out = []
        for w, lg in zip(wavs, ling, strict=True):
            g, s = self._bicodec_tokens(w)
            out.append(CodecTokens(speaker=g, linguistic=lg, semantic=s))
        return out

    def decode(self, speaker: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        """``(32,)`` global + ``(T_s,)`` semantic tokens -> float32 16 kHz waveform (BiCodec decoder).

        Raises:
            CodecError: codes out of range / wrong shape.
        """
        torch = self._torch
        g = check_codes(speaker, self.sizes["speaker"], "speaker", length=N_SPEAKER_TOKENS)
        s = check_codes(semantic, self.sizes["semantic"], "semantic")
        with torch.inference_mode():
            wav = self._bicodec.detokenize(
                torch.from_numpy(g)[None].to(self.device),  # (1, 32)
                torch.from_numpy(s)[None].to(self.device),  # (1, T_s)
            )
        return np.asarray(wav, dtype=np.float32).reshape(-1)

    # -- persistence -------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write a ``manifest.json`` pointing at the checkpoint directories (weights are not copied;
        the sha256 of each ``*.safetensors``/``*.bin``/``*.pth`` file in them goes under ``dependencies``)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        hashes = {}
        for root in (self.bicodec_dir, self.glm_tokenizer_dir):
            for f in sorted(root.rglob("*")):
                if f.is_file() and f.suffix in {".safetensors", ".bin", ".pth", ".ckpt"}:
                    hashes[str(f)] = sha256_file(f)
        m = CodecManifest(
            backend="paper",
            version=PAPER_VERSION,
            sizes=dict(self.sizes),
            config={"bicodec_dir": str(self.bicodec_dir.resolve()), "glm_tokenizer_dir": str(self.glm_tokenizer_dir.resolve())},
            files={},
            dependencies={"weights_sha256": hashes},
        )
        write_manifest(d, m)
        self._manifest = m
        return d

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> PaperCodec:
        """Load from a saved paper-codec manifest.

        Raises:
            CodecError: bad manifest, missing checkpoint directories or modules.
        """
        m = read_manifest(directory)
        if m.backend != "paper":
            raise CodecError(f"{directory} holds a {m.backend!r} codec, not paper")
        if m.sizes != PAPER_SIZES:
            raise CodecError(f"{directory}: paper codec sizes must be {PAPER_SIZES}, got {m.sizes}")
        if m.config.get(TOKEN_ONLY_KEY):
            raise CodecError(f"{directory} is a token-only paper layout (released UniST token ids) with no BiCodec / "
                             "GLM-4-Voice checkpoints: it cannot encode or decode speech")
        c = cls(m.config.get("bicodec_dir"), m.config.get("glm_tokenizer_dir"), device=device)
        c._manifest = m
        return c


def write_paper_manifest(directory: str | Path, bicodec_dir: str | Path, glm_tokenizer_dir: str | Path) -> Path:
    """Write a paper-codec ``manifest.json`` without loading the models (checks the directories).

    Raises:
        CodecError: a checkpoint directory or an entry in it is missing.
    """
    b = _require_dir(bicodec_dir, "BiCodec", ("BiCodec", "wav2vec2-large-xlsr-53"))
    g = _require_dir(glm_tokenizer_dir, "GLM-4-Voice tokenizer", ("config.json",))
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    m = CodecManifest(
        backend="paper",
        version=PAPER_VERSION,
        sizes=dict(PAPER_SIZES),
        config={"bicodec_dir": str(b.resolve()), "glm_tokenizer_dir": str(g.resolve())},
        files={},
    )
    return write_manifest(d, m)


#: ``config`` key of a weightless paper-codec manifest (a dataset of released token ids, no audio).
TOKEN_ONLY_KEY = "token_only"


def write_token_only_manifest(directory: str | Path) -> Path:
    """Write a paper-codec ``manifest.json`` with no checkpoint behind it: the layout (sizes) of the
    released UniST token ids (issue 19 item 2). It fixes the 180,407-id paper layout for training;
    :meth:`PaperCodec.load` on it raises :class:`CodecError` (nothing can be encoded or decoded).

    Returns:
        the manifest path.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    m = CodecManifest(backend="paper", version=PAPER_VERSION, sizes=dict(PAPER_SIZES),
                      config={TOKEN_ONLY_KEY: True, "source": "released UniST token ids (no audio, no checkpoints)"},
                      files={})
    return write_manifest(d, m)


def is_token_only(directory: str | Path) -> bool:
    """True when ``directory`` holds a weightless token-only paper manifest (:func:`write_token_only_manifest`)."""
    return bool(read_manifest(directory, verify=False).config.get(TOKEN_ONLY_KEY))
