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


def test_v3_config_round_trip_and_v2_manifest_keys():
    """v3 configs carry their extra keys; v2 configs leave them out (v2 manifests unchanged)."""
    from uniss.codecs.lite.config import V3_KEYS

    v3 = LiteCodecConfig.preset("tiny-v3")
    assert v3.version == "3" and set(V3_KEYS) <= set(v3.to_dict())
    assert LiteCodecConfig.from_dict(v3.to_dict()) == v3
    assert not set(V3_KEYS) & set(LiteCodecConfig.tiny().to_dict())
    with pytest.raises(CodecError, match="semantic_source"):
        LiteCodecConfig(semantic_source="hubert")


def test_whisper_window_key():
    """Presets encode clip by clip; "packed" (the default of manifests before the key) is left out
    of the dict, so their fingerprints stay; a bad mode is refused."""
    for name in LiteCodecConfig.PRESETS:
        c = LiteCodecConfig.preset(name)
        assert c.whisper_window == "clip" and c.to_dict()["whisper_window"] == "clip"
        assert LiteCodecConfig.from_dict(c.to_dict()) == c
    packed = LiteCodecConfig.tiny(whisper_window="packed")
    assert "whisper_window" not in packed.to_dict()
    assert LiteCodecConfig.from_dict(packed.to_dict()).whisper_window == "packed"
    with pytest.raises(CodecError, match="whisper_window"):
        LiteCodecConfig(whisper_window="sliding")


def test_decoder_speaker_swap_is_checked_and_left_out_of_manifests_at_zero():
    """The key is newer than v3: at 0 (the behaviour of before) it is not written, so manifests and
    fingerprints of before stay as they were; a set value round-trips; out of range is a typed error."""
    assert "decoder_speaker_swap" not in LiteCodecConfig.preset("tiny-v3").to_dict()
    c = LiteCodecConfig.preset("tiny-v3", decoder_speaker_swap=0.5)
    assert c.to_dict()["decoder_speaker_swap"] == 0.5 and LiteCodecConfig.from_dict(c.to_dict()) == c
    for bad in (-0.1, 1.5):
        with pytest.raises(CodecError, match="decoder_speaker_swap"):
            LiteCodecConfig.preset("tiny-v3", decoder_speaker_swap=bad)


def test_demo_v3_hifigan_preset_is_demo_v3_with_the_hifigan_vocoder():
    """``params.yaml`` ``pipeline.demo.codec: demo-v3-hifigan`` fits demo-v3 rendered by HiFi-GAN; an
    override still wins."""
    a, b = LiteCodecConfig.preset("demo-v3-hifigan").to_dict(), LiteCodecConfig.preset("demo-v3").to_dict()
    assert a.pop("vocoder") == "hifigan" and b.pop("vocoder") == "mbmelgan"
    assert a == b
    assert LiteCodecConfig.preset("demo-v3-hifigan", vocoder="griffinlim").vocoder == "griffinlim"
