"""Paper backend (BiCodec + GLM-4-Voice): no checkpoint exists here, so the error paths are tested."""

from __future__ import annotations

import json

import pytest

from uniss.codecs import CodecError, load_codec
from uniss.codecs.paper import BICODEC_MODULE, PAPER_SIZES, PaperCodec, write_paper_manifest
from uniss.vocab import SpeechVocab


def _fake_dirs(tmp_path):
    b = tmp_path / "Spark-TTS-0.5B"
    (b / "BiCodec").mkdir(parents=True)
    (b / "wav2vec2-large-xlsr-53").mkdir()
    g = tmp_path / "glm-4-voice-tokenizer"
    g.mkdir()
    (g / "config.json").write_text("{}")
    return b, g


def test_sizes_match_paper_vocab():
    v = SpeechVocab.paper()
    assert PAPER_SIZES == {"speaker": 4096, "semantic": 8192, "linguistic": 16384}
    assert sum(PAPER_SIZES.values()) == 28672
    assert v.total == 180407


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(CodecError, match=r"BiCodec: checkpoint directory not found: .*nope"):
        PaperCodec(tmp_path / "nope", tmp_path)
    b, g = _fake_dirs(tmp_path)
    with pytest.raises(CodecError, match=r"GLM-4-Voice tokenizer: .* lacks config.json"):
        PaperCodec(b, tmp_path / "Spark-TTS-0.5B")
    (b / "BiCodec").rmdir()
    with pytest.raises(CodecError, match="lacks BiCodec"):
        PaperCodec(b, g)


def test_missing_module_is_named(tmp_path):
    b, g = _fake_dirs(tmp_path)
    with pytest.raises(CodecError, match=f"cannot import {BICODEC_MODULE}"):
        PaperCodec(b, g)


def test_manifest_then_load_codec_gives_clear_error(tmp_path):
    b, g = _fake_dirs(tmp_path)
    d = tmp_path / "codec"
    write_paper_manifest(d, b, g)
    m = json.loads((d / "manifest.json").read_text())
    assert m["backend"] == "paper" and m["sizes"] == PAPER_SIZES
    with pytest.raises(CodecError, match="cannot import"):
        load_codec(d)
    (g / "config.json").unlink()
    with pytest.raises(CodecError, match="lacks config.json"):
        load_codec(d)
