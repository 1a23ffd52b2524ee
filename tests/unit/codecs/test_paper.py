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
    """The released UniSS layout (ARCHITECTURE.md "Token layout", paper §5.1), as independent
    literals: 151,665 Qwen2.5 ids, then the paper codec's speaker/semantic/linguistic codebooks,
    35 speed and 35 control tokens, 180,407 ids in all. The layout must come out of the paper
    codec's own sizes placed after the text ids."""
    v = SpeechVocab.paper()
    assert PAPER_SIZES == {"speaker": 4096, "semantic": 8192, "linguistic": 16384}
    derived = {"text": v.sizes["text"], **PAPER_SIZES, "speed": v.sizes["speed"], "control": v.sizes["control"]}
    assert derived == v.sizes
    assert v.ranges == {
        "text": (0, 151665),
        "speaker": (151665, 155761),
        "semantic": (155761, 163953),
        "linguistic": (163953, 180337),
        "speed": (180337, 180372),
        "control": (180372, 180407),
    }
    assert sum(derived.values()) == v.total == 180407
    # ids the spec spells out (ARCHITECTURE.md): first/last of each codec family, anchor control tokens
    assert v.to_ids("speaker", 0) == 151665 and v.to_ids("speaker", 4095) == 155760
    assert v.to_ids("semantic", 0) == 155761 and v.to_ids("semantic", 8191) == 163952
    assert v.to_ids("linguistic", 0) == 163953 and v.to_ids("linguistic", 16383) == 180336


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
