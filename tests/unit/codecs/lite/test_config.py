"""LiteCodecConfig: presets, unknown keys, validation (no models needed)."""

from __future__ import annotations

import pytest

from uniss.codecs.base import CodecError
from uniss.codecs.lite import LiteCodecConfig


def test_config_presets_and_unknown_keys():
    assert LiteCodecConfig.preset("tiny").semantic_size < LiteCodecConfig.preset("demo").semantic_size
    with pytest.raises(CodecError, match="preset"):
        LiteCodecConfig.preset("huge")
    with pytest.raises(CodecError, match="unknown lite codec config keys"):
        LiteCodecConfig.from_dict({"semantic_size": 8, "bogus": 1})
    with pytest.raises(CodecError, match=">= 1"):
        LiteCodecConfig(semantic_size=0)
    c = LiteCodecConfig.tiny()
    assert LiteCodecConfig.from_dict(c.to_dict()) == c
