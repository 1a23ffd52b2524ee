"""Codec protocol helpers and manifest I/O (no models needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uniss.codecs.base import (
    CodecError,
    CodecManifest,
    CodecTokens,
    check_codes,
    check_wav,
    load_codec,
    n_linguistic,
    n_semantic,
    read_manifest,
    write_manifest,
)
from uniss.errors import UnissError


def test_token_counts_follow_rates():
    assert n_semantic(16000) == 50
    assert n_linguistic(16000) == 13  # 12.5 rounds half up
    assert n_linguistic(16000 * 2) == 25
    assert n_semantic(100) == 1 and n_linguistic(100) == 1
    assert n_semantic(16000 * 600) == 30000  # 10 minutes


@pytest.mark.parametrize(
    "wav, msg",
    [
        (np.zeros(0, np.float32), "empty"),
        (np.zeros((16000, 2), np.float32), "mono"),
        (np.zeros(100, np.float32), "at least"),
        (np.array([np.nan] * 2000, np.float32), "NaN"),
        (np.array(["a"] * 2000), "numeric"),
    ],
)
def test_check_wav_rejects_bad_input(wav, msg):
    with pytest.raises(CodecError, match=msg) as e:
        check_wav(wav)
    assert isinstance(e.value, UnissError) and isinstance(e.value, ValueError)


def test_check_wav_converts_dtype():
    out = check_wav(np.zeros(2000, np.float64))
    assert out.dtype == np.float32 and out.shape == (2000,)


def test_check_codes():
    assert check_codes([0, 3], 4, "semantic").dtype == np.int64
    with pytest.raises(CodecError, match=r"\[0, 4\)"):
        check_codes([0, 4], 4, "semantic")
    with pytest.raises(CodecError, match="length 32"):
        check_codes([0] * 31, 4, "speaker", length=32)
    with pytest.raises(CodecError, match="integer"):
        check_codes([0.5], 4, "semantic")


def test_tokens_dict_roundtrip():
    t = CodecTokens(np.arange(32), np.array([1, 2]), np.array([3, 4, 5]))
    d = t.to_dict()
    assert json.loads(json.dumps(d)) == d
    t2 = CodecTokens.from_dict(d)
    assert all((getattr(t, k) == getattr(t2, k)).all() for k in ("speaker", "linguistic", "semantic"))
    with pytest.raises(CodecError, match="speaker"):
        CodecTokens.from_dict({"semantic": [1]})


def _manifest(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"weights")
    m = CodecManifest(backend="lite", version="1", sizes={"speaker": 4, "semantic": 8, "linguistic": 16},
                      config={"a": 1}, files={"w.bin": ""})
    write_manifest(tmp_path, m)
    return m


def test_manifest_roundtrip_and_fingerprint(tmp_path):
    m = _manifest(tmp_path)
    m2 = read_manifest(tmp_path)
    assert m2.sizes == m.sizes and m2.files == m.files and m2.files["w.bin"] != ""
    assert m2.fingerprint() == m.fingerprint()
    m2.metrics["x"] = 1  # informational metrics do not change the fingerprint
    assert m2.fingerprint() == m.fingerprint()


def test_manifest_detects_altered_weights(tmp_path):
    _manifest(tmp_path)
    (tmp_path / "w.bin").write_bytes(b"weightz")
    with pytest.raises(CodecError, match="altered"):
        read_manifest(tmp_path)
    (tmp_path / "w.bin").unlink()
    with pytest.raises(CodecError, match="missing"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    "content, msg",
    [
        ("{not json", "malformed"),
        ("[]", "JSON object"),
        (json.dumps({"format": 1, "backend": "lite"}), "lacks keys"),
        (json.dumps({"format": 9, "backend": "lite", "version": "1", "sizes": {}, "config": {}, "files": {}}), "format"),
        (json.dumps({"format": 1, "backend": "lite", "version": "1", "sizes": {"speaker": 1}, "config": {}, "files": {}}), "sizes"),
        (json.dumps({"format": 1, "backend": "lite", "version": "1", "config": {}, "files": {},
                     "sizes": {"speaker": 1, "semantic": 1, "linguistic": 1},
                     "rates": {"semantic_hz": 25.0, "linguistic_hz": 12.5, "sample_rate_hz": 16000, "n_speaker_tokens": 32}}), "rates"),
    ],
)
def test_malformed_manifest(tmp_path, content, msg):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(CodecError, match=msg):
        read_manifest(tmp_path)


def test_load_codec_errors(tmp_path):
    with pytest.raises(CodecError, match="not found"):
        load_codec(tmp_path / "nope")
    with pytest.raises(CodecError, match="no manifest.json"):
        load_codec(tmp_path)
    m = CodecManifest(backend="mystery", version="1", sizes={"speaker": 1, "semantic": 1, "linguistic": 1}, config={})
    write_manifest(tmp_path, m)
    with pytest.raises(CodecError, match="unknown codec backend 'mystery'"):
        load_codec(tmp_path)
