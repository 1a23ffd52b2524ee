"""Lite codec v3 (Whisper units, FiLM unit decoder, MB-MelGAN): a tiny fit on the shared TTS corpus
(12 clips, 5 CPU-s decoder budget): shapes, rates, dtypes, exact duration, save/load, version
dispatch, the vocoder wrapper and its typed error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uniss.codecs import CodecError, SpeechCodec, load_codec
from uniss.codecs.lite import LITE_VERSION, LiteCodec, LiteCodecConfig, LiteCodecV3, fit_lite_codec
from uniss.codecs.lite.vocoder import (
    MBMelGAN,
    VocoderNotInstalledError,
    mbmelgan_available,
    render,
    units_to_frames,
    vocoder_log_mel,
)

needs_vocoder = pytest.mark.skipif(not mbmelgan_available(), reason="MB-MelGAN not installed (make setup)")


@pytest.fixture(scope="module")
def v3_codec(corpus):
    cfg = LiteCodecConfig.tiny_v3(decoder_cpu_s=5.0, train_steps=30, semantic_size=16, linguistic_size=16)
    return fit_lite_codec([w for *_, w in corpus[:12]], cfg, progress=False)


@pytest.fixture(scope="module")
def v3_saved(v3_codec, tmp_path_factory):
    d = tmp_path_factory.mktemp("codec_v3")
    v3_codec.save(d)
    return d


def test_v3_protocol_sizes_metrics(v3_codec):
    assert isinstance(v3_codec, LiteCodecV3) and isinstance(v3_codec, SpeechCodec)
    assert v3_codec.sizes == {"speaker": 12, "semantic": 16, "linguistic": 16}  # speaker size capped by 12 clips
    assert v3_codec.semantic_centroids.shape == (16, 512)
    assert v3_codec.vocoder_stats.shape == (2, 80) and (v3_codec.vocoder_stats[1] > 0).all()
    m = v3_codec.metrics
    assert m["n_clips"] == 12 and m["decoder_steps"] >= 20 and np.isfinite(m["decoder_train_l1"])


def test_v3_encode_shapes_rates_dtypes(v3_codec, corpus):
    wavs = [w for *_, w in corpus[:4]]
    toks = v3_codec.encode(wavs)
    for t, w in zip(toks, wavs, strict=True):
        dur = len(w) / 16000
        assert t.speaker.shape == (32,) and t.speaker.dtype == np.int64
        assert t.semantic.dtype == np.int64 and t.linguistic.dtype == np.int64
        assert t.semantic.shape == (round(50 * dur),)
        assert abs(len(t.linguistic) - 12.5 * dur) <= 1
        for fam in ("speaker", "semantic", "linguistic"):
            a = getattr(t, fam)
            assert a.min() >= 0 and a.max() < v3_codec.sizes[fam]
    # clip 0 sits at window offset 0 alone or packed, but Whisper attends over the whole window:
    # the packed neighbours move some units (tolerance as v2's linguistic stream)
    single = v3_codec.semantic(wavs[0])
    assert single.shape == toks[0].semantic.shape
    assert float((single == toks[0].semantic).mean()) >= 0.5


def test_v3_encode_without_semantic_keeps_the_other_streams(v3_codec, corpus):
    """``semantic=False`` (the engine's source encode): empty semantic codes, the same speaker and
    linguistic codes as the full encode of the same list."""
    wavs = [w for *_, w in corpus[:3]]
    full, lean = v3_codec.encode(wavs), v3_codec.encode(wavs, semantic=False)
    for a, b in zip(full, lean, strict=True):
        assert b.semantic.shape == (0,) and b.semantic.dtype == np.int64
        np.testing.assert_array_equal(a.speaker, b.speaker)
        np.testing.assert_array_equal(a.linguistic, b.linguistic)


@pytest.mark.parametrize("t_s", [1, 7, 50, 133])
def test_v3_decode_duration_is_token_count(v3_codec, t_s):
    """Duration = T_s / 50 s exactly, whatever the vocoder (speed control by token count)."""
    rng = np.random.default_rng(t_s)
    sem = rng.integers(0, v3_codec.sizes["semantic"], t_s)
    spk = rng.integers(0, v3_codec.sizes["speaker"], 32)
    assert v3_codec.decode_mel(spk, sem).shape == (units_to_frames(t_s), 80)
    y = v3_codec.decode(spk, sem)
    assert y.shape == (t_s * 320,) and y.dtype == np.float32 and np.isfinite(y).all()


def test_v3_save_load_identical(v3_codec, v3_saved, corpus):
    m = json.loads((v3_saved / "manifest.json").read_text())
    assert m["version"] == "3" == LITE_VERSION and m["config"]["semantic_source"] == "whisper"
    loaded = load_codec(v3_saved)
    assert isinstance(loaded, LiteCodecV3)
    assert loaded.fingerprint() == v3_codec.fingerprint()
    w = corpus[0][2]
    a, b = v3_codec.encode([w])[0], loaded.encode([w])[0]
    for fam in ("speaker", "semantic", "linguistic"):
        assert (getattr(a, fam) == getattr(b, fam)).all()
    np.testing.assert_allclose(loaded.decode_mel(a.speaker, a.semantic), v3_codec.decode_mel(a.speaker, a.semantic))


def test_v2_bundle_still_loads(saved_codec):
    """A v2 bundle (mel units, Griffin-Lim) loads as LiteCodec and its manifest has no v3 keys."""
    m = json.loads((saved_codec / "manifest.json").read_text())
    assert m["version"] == "2" and "semantic_source" not in m["config"]
    assert isinstance(load_codec(saved_codec), LiteCodec)


def test_v3_bad_inputs(v3_codec, v3_saved, tmp_path):
    with pytest.raises(CodecError):
        v3_codec.decode(np.zeros(32, np.int64), np.array([v3_codec.sizes["semantic"]]))
    with pytest.raises(CodecError, match="'mbmelgan', 'hifigan' or 'griffinlim'"):
        LiteCodecConfig.tiny_v3(vocoder="wavenet")
    with pytest.raises(CodecError):
        LiteCodecConfig(vocoder="mbmelgan")  # v2 renders with Griffin-Lim only
    with pytest.raises(CodecError, match="unknown lite codec preset"):
        LiteCodecConfig.preset("huge-v3")


def test_presets():
    assert LiteCodecConfig.preset("demo-v3").semantic_size == 128
    assert LiteCodecConfig.preset("demo-v3").version == "3" and LiteCodecConfig.preset("demo").version == "2"


def test_vocoder_missing_is_typed_error(tmp_path):
    with pytest.raises(VocoderNotInstalledError, match="make setup"):
        MBMelGAN(tmp_path / "nope.tflite")
    assert issubclass(VocoderNotInstalledError, CodecError)


def test_griffin_lim_render_exact_length():
    stats = np.stack([np.full(80, -2.0), np.ones(80)]).astype(np.float32)
    y = render(np.zeros((units_to_frames(23), 80), np.float32), 23, "griffinlim", stats, gl_iters=2)
    assert y.shape == (23 * 320,) and y.dtype == np.float32


@needs_vocoder
def test_mbmelgan_wrapper_shapes(corpus):
    w = corpus[0][2]
    mel = vocoder_log_mel(w)
    assert mel.ndim == 2 and mel.shape[1] == 80 and mel.dtype == np.float32
    y = MBMelGAN()(np.zeros((16, 80), np.float32))
    assert y.shape == (16 * 300,) and y.dtype == np.float32
    with pytest.raises(CodecError):
        MBMelGAN()(np.zeros((16, 40), np.float32))
