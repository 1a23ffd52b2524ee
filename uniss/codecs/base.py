"""The triple speech tokenizer protocol (paper §3.1.2) and the codec directory format.

UniSS represents an utterance with three token streams:

* **speaker** — 32 global tokens per utterance (timbre, prosody), BiCodec "global" tokens in the paper;
* **linguistic** — content tokens at 12.5 tokens/s (GLM-4-Voice tokenizer = quantized Whisper encoder);
* **semantic** — 50 tokens/s, decodable back to a 16 kHz waveform together with the speaker tokens
  (BiCodec semantic tokens).

Shape legend: ``N`` samples at 16 kHz, ``T_l`` linguistic tokens (~12.5 * N / 16000),
``T_s`` semantic tokens (= round(50 * N / 16000)).

A saved codec is a directory::

    CODEC/
      manifest.json   {"format", "backend", "version", "sizes", "rates", "config",
                       "files": {name: sha256}, "dependencies": {...}}
      <weight files>  named in manifest["files"], checked against their sha256 on load

:func:`load_codec` dispatches on ``manifest["backend"]`` (``lite`` | ``paper``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

# Sample rate of every waveform a codec takes and returns (Hz): the platform rate, defined once in
# uniss.audio (paper §3.1.2 / BiCodec); re-exported here as part of the codec protocol.
from uniss.audio import SAMPLE_RATE_HZ, AudioError, check_waveform
from uniss.errors import UnissError
from uniss.jsonio import read_json

#: Semantic token rate (tokens/s): BiCodec semantic tokens, paper §3.1.2.
SEMANTIC_RATE_HZ = 50.0
#: Linguistic token rate (tokens/s): GLM-4-Voice tokenizer, paper §3.1.2.
LINGUISTIC_RATE_HZ = 12.5
#: Global speaker tokens per utterance: BiCodec, paper §3.1.2.
N_SPEAKER_TOKENS = 32
#: Format number of ``manifest.json``.
MANIFEST_FORMAT = 1
MANIFEST_NAME = "manifest.json"
#: Shortest waveform a codec accepts (s): one linguistic token (80 ms).
MIN_DURATION_S = 0.08
FAMILIES = ("speaker", "semantic", "linguistic")


class CodecError(UnissError, ValueError):
    """Bad codec input or state: bad waveform, missing/corrupt codec directory, missing checkpoint
    or module of a paper backend, out-of-range codes."""


@dataclass
class CodecTokens:
    """The three token streams of one utterance (family-local codes, ``int64``).

    Attributes:
        speaker: ``(32,)`` int64 in ``[0, sizes["speaker"])``.
        linguistic: ``(T_l,)`` int64 in ``[0, sizes["linguistic"])``, 12.5 tokens/s.
        semantic: ``(T_s,)`` int64 in ``[0, sizes["semantic"])``, 50 tokens/s.
    """

    speaker: np.ndarray
    linguistic: np.ndarray
    semantic: np.ndarray

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-ready dict of int lists (the shard/CLI format)."""
        return {k: [int(x) for x in getattr(self, k)] for k in ("speaker", "linguistic", "semantic")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CodecTokens:
        """Inverse of :meth:`to_dict`.

        Raises:
            CodecError: a key is missing or a value is not a list of integers.
        """
        try:
            return cls(**{k: np.asarray(d[k], dtype=np.int64).reshape(-1) for k in ("speaker", "linguistic", "semantic")})
        except (KeyError, TypeError, ValueError) as e:
            raise CodecError(f"token dict needs integer lists 'speaker', 'linguistic', 'semantic': {e}") from None


@runtime_checkable
class SpeechCodec(Protocol):
    """What every codec backend provides (docs/design.md, ``uniss/codecs/``)."""

    backend: str
    sizes: dict[str, int]
    semantic_rate_hz: float
    linguistic_rate_hz: float
    sample_rate_hz: int
    n_speaker_tokens: int

    def speaker(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(32,)`` int64 speaker codes."""
        ...

    def linguistic(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(T_l,)`` int64, T_l ~ 12.5 * seconds."""
        ...

    def semantic(self, wav: np.ndarray) -> np.ndarray:
        """``(N,)`` float32 16 kHz -> ``(T_s,)`` int64, T_s ~ 50 * seconds."""
        ...

    def encode(self, wavs: list[np.ndarray], *, semantic: bool = True) -> list[CodecTokens]:
        """All three streams of each waveform (batched); ``semantic=False`` leaves ``semantic``
        empty ``(0,)`` where a backend can skip it (the engine needs only the source's speaker and
        linguistic tokens: ARCHITECTURE.md prompts)."""
        ...

    def decode(self, speaker: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        """``(32,)`` speaker + ``(T_s,)`` semantic codes -> ``(T_s * 320,)`` float32 16 kHz."""
        ...

    def save(self, directory: str | Path) -> Path:
        """Write the codec directory (manifest + weights); returns its path."""
        ...

    def fingerprint(self) -> str:
        """sha256 hex of the saved manifest (which holds the sha256 of every weight file)."""
        ...


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------


def check_wav(wav: Any, *, min_duration_s: float = MIN_DURATION_S) -> np.ndarray:
    """Validate one codec input waveform.

    Args:
        wav: ``(N,)`` float array, mono, 16 kHz, values roughly in [-1, 1].
        min_duration_s: shortest accepted duration (s).

    Returns:
        ``(N,)`` float32 contiguous array.

    Raises:
        CodecError: not a 1-D numeric array (e.g. stereo ``(N, 2)``: mix it down with
            ``uniss.audio.load_audio`` first), empty, shorter than ``min_duration_s``, or NaN/inf.
    """
    try:
        return check_waveform(wav, min_duration_s=min_duration_s, what="waveform")
    except AudioError as e:  # the codec protocol's error type; the rule is uniss.audio's
        raise CodecError(str(e)) from None


def n_semantic(n_samples: int) -> int:
    """Semantic token count of ``n_samples`` at 16 kHz: round(50 * seconds), at least 1."""
    return max(1, int(round(n_samples * SEMANTIC_RATE_HZ / SAMPLE_RATE_HZ)))


def n_linguistic(n_samples: int) -> int:
    """Linguistic token count of ``n_samples`` at 16 kHz: round(12.5 * seconds), at least 1."""
    return max(1, int(math.floor(n_samples * LINGUISTIC_RATE_HZ / SAMPLE_RATE_HZ + 0.5)))


def check_codes(codes: Any, size: int, family: str, *, length: int | None = None) -> np.ndarray:
    """Validate a code array of one family.

    Returns:
        ``(T,)`` int64.

    Raises:
        CodecError: not 1-D integers, empty, wrong length, or a code outside ``[0, size)``.
    """
    try:
        a = np.asarray(codes)
    except Exception as e:  # noqa: BLE001
        raise CodecError(f"{family} codes are not an array: {e}") from None
    if a.ndim != 1 or a.size == 0 or (a.dtype.kind not in "iu"):
        raise CodecError(f"{family} codes must be a non-empty 1-D integer array, got shape {a.shape} dtype {a.dtype}")
    if length is not None and a.size != length:
        raise CodecError(f"{family} codes must have length {length}, got {a.size}")
    if a.min() < 0 or a.max() >= size:
        raise CodecError(f"{family} codes must lie in [0, {size}), got range [{a.min()}, {a.max()}]")
    return a.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# manifest I/O
# ----------------------------------------------------------------------------------------------


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


@dataclass
class CodecManifest:
    """Contents of ``manifest.json``.

    Attributes:
        backend: ``lite`` | ``paper``.
        version: backend format version (str).
        sizes: codebook sizes per family (``speaker``, ``semantic``, ``linguistic``).
        rates: ``{"semantic_hz": 50.0, "linguistic_hz": 12.5, "sample_rate_hz": 16000, "n_speaker_tokens": 32}``.
        config: backend config (JSON-ready).
        files: weight file name -> sha256.
        dependencies: external models the tokens depend on (e.g. Whisper weights sha256).
        metrics: fit-time figures (informational).
    """

    backend: str
    version: str
    sizes: dict[str, int]
    config: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    dependencies: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    rates: dict[str, float] = field(
        default_factory=lambda: {
            "semantic_hz": SEMANTIC_RATE_HZ,
            "linguistic_hz": LINGUISTIC_RATE_HZ,
            "sample_rate_hz": SAMPLE_RATE_HZ,
            "n_speaker_tokens": N_SPEAKER_TOKENS,
        }
    )

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys): the bytes the fingerprint hashes."""
        d = {
            "format": MANIFEST_FORMAT,
            "backend": self.backend,
            "version": self.version,
            "sizes": self.sizes,
            "rates": self.rates,
            "config": self.config,
            "files": self.files,
            "dependencies": self.dependencies,
            "metrics": self.metrics,
        }
        return json.dumps(d, indent=2, sort_keys=True) + "\n"

    def fingerprint(self) -> str:
        """sha256 hex of the canonical manifest JSON, ``metrics`` excluded (they are informational)."""
        d = json.loads(self.to_json())
        d.pop("metrics", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


class ManifestFingerprint:
    """Mixin giving a codec ``fingerprint()`` from its manifest.

    The class sets ``self._manifest`` (a :class:`CodecManifest`) in ``save`` and ``load``; a codec
    that was never saved or loaded is saved to a temporary directory first, so the fingerprint is
    always that of the files a saved codec would hold.
    """

    _manifest: CodecManifest | None

    def fingerprint(self) -> str:
        """sha256 hex of the manifest (which holds the sha256 of every weight file), see
        :meth:`CodecManifest.fingerprint`."""
        if self._manifest is None:
            import tempfile

            with tempfile.TemporaryDirectory() as t:
                self.save(t)  # type: ignore[attr-defined]  # every codec defines save(dir)
        assert self._manifest is not None
        return self._manifest.fingerprint()


def write_manifest(directory: str | Path, manifest: CodecManifest) -> Path:
    """Hash every file named in ``manifest.files`` (present in ``directory``) and write ``manifest.json``.

    Raises:
        CodecError: a named weight file is missing.
    """
    d = Path(directory)
    for name in list(manifest.files):
        p = d / name
        if not p.is_file():
            raise CodecError(f"codec weight file missing while saving: {p}")
        manifest.files[name] = sha256_file(p)
    out = d / MANIFEST_NAME
    out.write_text(manifest.to_json())
    return out


def read_manifest(directory: str | Path, *, verify: bool = True) -> CodecManifest:
    """Read and check ``DIR/manifest.json``.

    Args:
        directory: the codec directory.
        verify: check each weight file's sha256 against the manifest.

    Raises:
        CodecError: no directory/manifest, malformed JSON, missing keys, unknown format,
            sizes/rates not matching the protocol, a missing or altered weight file.
    """
    d = Path(directory)
    f = d / MANIFEST_NAME
    if not d.is_dir():
        raise CodecError(f"codec directory not found: {d}")
    if not f.is_file():
        raise CodecError(f"not a codec directory (no {MANIFEST_NAME}): {d}")
    raw = read_json(f, what="codec manifest", error=CodecError)
    missing = [k for k in ("format", "backend", "version", "sizes", "config", "files") if k not in raw]
    if missing:
        raise CodecError(f"{f} lacks keys {missing}")
    if raw["format"] != MANIFEST_FORMAT:
        raise CodecError(f"{f}: unsupported manifest format {raw['format']!r} (expected {MANIFEST_FORMAT})")
    sizes = raw["sizes"]
    if not isinstance(sizes, dict) or sorted(sizes) != sorted(FAMILIES) or not all(
        isinstance(v, int) and v > 0 for v in sizes.values()
    ):
        raise CodecError(f"{f}: sizes must give a positive int for each of {FAMILIES}, got {sizes!r}")
    m = CodecManifest(
        backend=str(raw["backend"]),
        version=str(raw["version"]),
        sizes={k: int(v) for k, v in sizes.items()},
        config=dict(raw["config"]),
        files=dict(raw["files"]),
        dependencies=dict(raw.get("dependencies", {})),
        metrics=dict(raw.get("metrics", {})),
    )
    if "rates" in raw:
        r = raw["rates"]
        if (
            float(r.get("semantic_hz", -1)) != SEMANTIC_RATE_HZ
            or float(r.get("linguistic_hz", -1)) != LINGUISTIC_RATE_HZ
            or int(r.get("sample_rate_hz", -1)) != SAMPLE_RATE_HZ
            or int(r.get("n_speaker_tokens", -1)) != N_SPEAKER_TOKENS
        ):
            raise CodecError(f"{f}: rates {r!r} differ from the protocol's {m.rates!r}")
    if verify:
        for name, digest in m.files.items():
            p = d / name
            if not p.is_file():
                raise CodecError(f"codec weight file missing: {p}")
            if sha256_file(p) != digest:
                raise CodecError(f"codec weight file altered (sha256 mismatch): {p}")
    return m


def load_codec(directory: str | Path) -> SpeechCodec:
    """Load a saved codec, dispatching on ``manifest["backend"]``.

    Raises:
        CodecError: bad directory/manifest (see :func:`read_manifest`) or unknown backend.
    """
    m = read_manifest(directory, verify=False)
    if m.backend == "lite":
        from uniss.codecs.lite import load_lite_codec

        return load_lite_codec(directory)  # v2 LiteCodec | v3 LiteCodecV3; v1 refused
    if m.backend == "paper":
        from uniss.codecs.paper import PaperCodec

        return PaperCodec.load(directory)
    raise CodecError(f"unknown codec backend {m.backend!r} in {Path(directory) / MANIFEST_NAME} (lite | paper)")
