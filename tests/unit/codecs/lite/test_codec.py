"""The lite codec fitted on a few TTS clips: shapes, rates, ranges, persistence, decode, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uniss.codecs import CodecError, SpeechCodec, load_codec
from uniss.codecs.lite import LITE_VERSION, WEIGHTS_FILE, LiteCodec, LiteCodecConfig, fit_lite_codec, log_mel, pack_windows


def test_protocol_and_sizes(tiny_codec):
    assert isinstance(tiny_codec, SpeechCodec)
    assert tiny_codec.backend == "lite"
    assert tiny_codec.sizes == {"speaker": 16, "semantic": 256, "linguistic": 64}
    assert (tiny_codec.semantic_rate_hz, tiny_codec.linguistic_rate_hz, tiny_codec.sample_rate_hz) == (50.0, 12.5, 16000)
    m = tiny_codec.metrics
    assert m["n_clips"] == 30 and m["decoder_steps"] > 0
    assert np.isfinite(m["decoder_val_l1"]) and np.isfinite(m["centroid_val_l1"])


def test_encode_shapes_rates_ranges(tiny_codec, corpus):
    wavs = [w for *_, w in corpus[:6]]
    toks = tiny_codec.encode(wavs)
    for t, w in zip(toks, wavs, strict=True):
        dur = len(w) / 16000
        assert t.speaker.shape == (32,) and t.speaker.dtype == np.int64
        assert t.semantic.dtype == np.int64 and t.linguistic.dtype == np.int64
        assert t.semantic.shape == (round(50 * dur),)
        assert abs(len(t.linguistic) - 12.5 * dur) <= 1
        for fam in ("speaker", "semantic", "linguistic"):
            a = getattr(t, fam)
            assert a.min() >= 0 and a.max() < tiny_codec.sizes[fam]
        # more than one code is used: the codebooks are not degenerate
        assert len(np.unique(t.semantic)) > 5 and len(np.unique(t.linguistic)) > 3


def test_encode_without_semantic_keeps_the_other_streams(tiny_codec, corpus):
    """``semantic=False`` (the engine's source encode): empty semantic codes, the same speaker and
    linguistic codes as the full encode of the same list."""
    wavs = [w for *_, w in corpus[:3]]
    full, lean = tiny_codec.encode(wavs), tiny_codec.encode(wavs, semantic=False)
    for a, b in zip(full, lean, strict=True):
        assert b.semantic.shape == (0,) and b.semantic.dtype == np.int64
        np.testing.assert_array_equal(a.speaker, b.speaker)
        np.testing.assert_array_equal(a.linguistic, b.linguistic)


def test_single_calls_match_batched_encode(tiny_codec, corpus):
    """Single-clip calls against ``encode`` on six clips packed into one 30 s Whisper window.

    Tolerance as documented in ``LiteCodec.encode``: speaker and semantic codes exactly equal;
    linguistic codes of equal length, agreeing on at least half of the tokens over the batch and on
    more than a quarter for every clip (measured 0.48-0.97 per clip; without the per-position
    centring every clip moved off offset 0 agrees on none).
    """
    wavs = [w for *_, w in corpus[:6]]
    pieces = pack_windows([len(w) for w in wavs])
    assert [p.clip for p in pieces] == list(range(6)) and {p.window for p in pieces} == {0}  # one shared window
    assert all(p.offset > 0 for p in pieces[1:])  # five clips sit at other positions than alone
    toks = tiny_codec.encode(wavs)
    agree = []
    for i, (w, t) in enumerate(zip(wavs, toks, strict=True)):
        assert (tiny_codec.semantic(w) == t.semantic).all(), f"clip {i}: semantic codes changed"
        assert (tiny_codec.speaker(w) == t.speaker).all(), f"clip {i}: speaker codes changed"
        single = tiny_codec.linguistic(w)  # (T_l,), the clip alone at window offset 0
        assert single.shape == t.linguistic.shape
        agree.append(float((single == t.linguistic).mean()))
    assert min(agree) > 0.25 and float(np.mean(agree)) >= 0.5, f"linguistic agreement alone vs packed: {agree}"


def test_same_voice_shares_speaker_codes(tiny_codec, corpus):
    """Two sentences of one voice share more speaker codes than the same sentence in two voices."""
    by = {(s, v): w for s, v, w in corpus}
    s0, s1 = "The quick brown fox jumps over the lazy dog.", "She sells sea shells by the sea shore."
    same_voice = (tiny_codec.speaker(by[(s0, "flite:awb")]) == tiny_codec.speaker(by[(s1, "flite:awb")])).mean()
    diff_voice = (tiny_codec.speaker(by[(s0, "flite:awb")]) == tiny_codec.speaker(by[(s0, "espeak:en-us")])).mean()
    assert same_voice > diff_voice


def test_save_load_identical_tokens_and_fingerprint(tiny_codec, saved_codec, corpus):
    loaded = load_codec(saved_codec)
    assert isinstance(loaded, LiteCodec) and loaded.sizes == tiny_codec.sizes
    wavs = [w for *_, w in corpus[:4]]
    for a, b in zip(tiny_codec.encode(wavs), loaded.encode(wavs), strict=True):
        assert (a.speaker == b.speaker).all() and (a.linguistic == b.linguistic).all() and (a.semantic == b.semantic).all()
    fp = loaded.fingerprint()
    assert len(fp) == 64 and fp == tiny_codec.fingerprint() == load_codec(saved_codec).fingerprint()
    t = tiny_codec.encode(wavs[:1])[0]
    np.testing.assert_allclose(loaded.decode_mel(t.speaker, t.semantic), tiny_codec.decode_mel(t.speaker, t.semantic))
    man = json.loads((saved_codec / "manifest.json").read_text())
    assert man["backend"] == "lite" and len(man["files"][WEIGHTS_FILE]) == 64
    assert man["dependencies"]["whisper"]["model_bin_sha256"]


def test_load_codec_dispatch_by_version(saved_codec, tmp_path):
    """``load_codec`` routes a v2 lite bundle to :class:`LiteCodec` (v3: test_codec_v3.py); a v1 bundle (before the
    per-position centring) is refused with a typed error."""
    import shutil

    assert LITE_VERSION == "3"  # newest; v2 configs still write version 2
    assert json.loads((saved_codec / "manifest.json").read_text())["version"] == "2"
    assert isinstance(load_codec(saved_codec), LiteCodec)
    d = tmp_path / "v1"
    shutil.copytree(saved_codec, d)
    m = json.loads((d / "manifest.json").read_text())
    m["version"] = "1"
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CodecError, match="lite codec version 1 is not supported"):
        load_codec(d)


def test_tampered_codec_dir(saved_codec, tmp_path):
    import shutil

    d = tmp_path / "c"
    shutil.copytree(saved_codec, d)
    with open(d / WEIGHTS_FILE, "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(CodecError, match="altered"):
        load_codec(d)
    # consistent hashes but shapes that disagree with the manifest sizes
    shutil.rmtree(d)
    shutil.copytree(saved_codec, d)
    m = json.loads((d / "manifest.json").read_text())
    m["sizes"]["semantic"] += 1
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CodecError, match="semantic codebook has shape"):
        load_codec(d)


def test_decode_duration_and_dtype(tiny_codec, corpus):
    w = corpus[3][2]
    t = tiny_codec.encode([w])[0]
    y = tiny_codec.decode(t.speaker, t.semantic)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == len(t.semantic) * 320
    assert abs(len(y) / len(w) - 1) < 0.05
    assert 0.01 < np.abs(y).max() <= 0.99
    # the decoded mel follows the source mel (far closer than an unrelated clip's codes would give)
    ref = log_mel(w)
    err = np.abs(tiny_codec.decode_mel(t.speaker, t.semantic) - ref).mean()
    shuffled = np.random.default_rng(0).permutation(t.semantic)
    err_shuf = np.abs(tiny_codec.decode_mel(t.speaker, shuffled) - ref).mean()
    assert err < 0.75 * err_shuf


def test_decode_bad_codes(tiny_codec):
    spk = np.zeros(32, np.int64)
    with pytest.raises(CodecError, match="semantic codes must lie"):
        tiny_codec.decode(spk, np.array([0, tiny_codec.sizes["semantic"]]))
    with pytest.raises(CodecError, match="length 32"):
        tiny_codec.decode(spk[:31], np.array([0, 1]))
    with pytest.raises(CodecError, match="non-empty"):
        tiny_codec.decode(spk, np.array([], np.int64))


def test_encode_bad_input_names_index(tiny_codec, corpus):
    with pytest.raises(CodecError, match="waveform 1: waveform is empty"):
        tiny_codec.encode([corpus[0][2], np.zeros(0, np.float32)])
    with pytest.raises(CodecError, match="mono"):
        tiny_codec.semantic(np.zeros((8000, 2), np.float32))


def test_long_clip_splits_into_windows(tiny_codec, corpus):
    """A 64 s clip (3 Whisper windows) gets round(12.5 * 64) linguistic and 50 * 64 semantic tokens."""
    w = np.concatenate([c[2] for c in corpus])[: 64 * 16000]
    assert len(w) == 64 * 16000
    t = tiny_codec.encode([w])[0]
    assert len(t.linguistic) == 800 and len(t.semantic) == 3200


def test_fit_rejects_bad_corpus():
    with pytest.raises(CodecError, match="at least 2 clips"):
        fit_lite_codec([np.zeros(16000, np.float32)], LiteCodecConfig.tiny(), progress=False)
    with pytest.raises(CodecError, match="training clip 1"):
        fit_lite_codec([np.zeros(16000, np.float32), np.zeros(3, np.float32)], LiteCodecConfig.tiny(), progress=False)


def test_linguistic_codes_do_not_depend_on_batch_mates(tiny_codec, corpus):
    """The presets encode each clip in its own Whisper window, so a clip's codes are the same
    alone and beside another clip."""
    assert tiny_codec.config.whisper_window == "clip"
    a, b = corpus[0][2], corpus[7][2]
    alone = tiny_codec.linguistic_batch([a])[0]
    np.testing.assert_array_equal(tiny_codec.linguistic_batch([b, a])[1], alone)


def test_packed_states_depend_on_batch_mates_clip_states_do_not(corpus):
    """Packing (``whisper_window="packed"``, codecs before the key) puts a clip beside others in a
    zero-padded 30 s window, and its Whisper states change with them (measured here: mean cosine
    0.66 raw, 0.63 after position centring); in its own window they are the same."""
    from uniss.codecs.lite.features import whisper_states

    a, b = corpus[0][2], corpus[7][2]

    def cos(x, y):
        return float(((x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)).mean())

    alone = whisper_states().pooled([a], window="packed")[0]  # (T_l, 512)
    assert cos(alone, whisper_states().pooled([b, a], window="packed")[1]) < 0.9
    alone = whisper_states().pooled([a], window="clip")[0]
    np.testing.assert_array_equal(whisper_states().pooled([b, a], window="clip")[1], alone)
