"""HiFi-GAN V1 universal vocoder (issue 16): the installed files are checked, its analysis mel has
the reference shape, and copy synthesis gives back a clip whose mel is the input's."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from uniss.codecs import CodecError
from uniss.codecs.lite.vocoder import (
    HIFIGAN_HOP,
    HIFIGAN_SR,
    HiFiGAN,
    VocoderNotInstalledError,
    hifigan,
    hifigan_available,
    hifigan_copy_synthesis,
    hifigan_dir,
    hifigan_log_mel,
)

needs_hifigan = pytest.mark.skipif(not hifigan_available(), reason="HiFi-GAN not installed (make setup)")


def test_missing_files_are_a_typed_error(tmp_path):
    with pytest.raises(VocoderNotInstalledError, match="make setup"):
        HiFiGAN(tmp_path)


@needs_hifigan
def test_a_changed_generator_module_is_refused(tmp_path):
    for f in hifigan_dir().iterdir():
        if f.suffix != ".tar":  # the 56 MB weights are not needed: the check stops at models.py
            shutil.copy(f, tmp_path / f.name)
    (tmp_path / "generator_universal.pth.tar").write_bytes(b"")
    (tmp_path / "models.py").write_text((tmp_path / "models.py").read_text() + "\nprint('changed')\n")
    with pytest.raises(VocoderNotInstalledError, match="sha256"):
        HiFiGAN(tmp_path)


def test_analysis_mel_shape_and_bad_input():
    w = (0.1 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)  # 1 s
    m = hifigan_log_mel(w)
    assert m.shape == (HIFIGAN_SR // HIFIGAN_HOP, 80) and m.dtype == np.float32
    assert m[:, 1:8].mean() > m[:, 40:].mean() + 3  # a 220 Hz tone: energy in the low bands, in nats
    with pytest.raises(CodecError):
        hifigan_log_mel(np.zeros(100, np.float32))
    with pytest.raises(CodecError):
        hifigan_log_mel(np.zeros((2, 16000), np.float32))


@needs_hifigan
def test_copy_synthesis_gives_back_the_input_mel(corpus):
    w = corpus[0][2]
    y = hifigan_copy_synthesis(w)
    assert y.shape == w.shape and y.dtype == np.float32 and np.isfinite(y).all() and np.abs(y).max() <= 1.0
    m, m2 = hifigan_log_mel(w), hifigan_log_mel(y)
    # measured on a demo clip: 0.23 nats mean |difference|; the clip's own spread about its mean is ~3
    assert np.abs(m - m2).mean() < 0.5 < np.abs(m - m.mean()).mean()
    out = hifigan()(m[:10])
    assert out.shape == (10 * HIFIGAN_HOP,) and out.dtype == np.float32
    with pytest.raises(CodecError):
        hifigan()(m[:, :40])


@needs_hifigan
def test_a_v3_codec_with_the_hifigan_vocoder_fits_decodes_and_reloads(corpus, tmp_path):
    from uniss.codecs import load_codec
    from uniss.codecs.lite import LiteCodecConfig, fit_lite_codec
    from uniss.codecs.lite.vocoder import units_to_frames

    cfg = LiteCodecConfig.tiny_v3(vocoder="hifigan", decoder_cpu_s=5.0, train_steps=20, semantic_size=16,
                                  linguistic_size=16)
    codec = fit_lite_codec([w for *_, w in corpus[:8]], cfg, progress=False)
    t = codec.encode([corpus[0][2]])[0]
    mel = codec.decode_mel(t.speaker, t.semantic)
    assert mel.shape == (units_to_frames(len(t.semantic), "hifigan"), 80)
    assert units_to_frames(100, "hifigan") == 173 and units_to_frames(100) == 160  # 86.13 vs 80 frames/s
    y = codec.decode(t.speaker, t.semantic)
    assert y.shape == (len(t.semantic) * 320,) and y.dtype == np.float32 and np.isfinite(y).all()
    assert codec.dependencies["vocoder"]["sha256"]["models.py"].startswith("773072ea")
    codec.save(tmp_path / "c")
    again = load_codec(tmp_path / "c")
    assert again.config.vocoder == "hifigan"
    assert np.array_equal(again.decode(t.speaker, t.semantic), y)
    # benchmarks' copy synthesis normalises HiFi-GAN's own analysis mel with the codec's stats: it must
    # give back HiFi-GAN's copy synthesis (a log10 80 Hz mel in its place gives noise)
    sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "benchmarks"))
    from bench_unit_decoder import copy_synthesis

    w = corpus[0][2][: 320 * 100]
    a, b = copy_synthesis(w, codec.vocoder_stats, "hifigan"), hifigan_copy_synthesis(w)
    assert a.shape == b.shape == (320 * 100,)
    # the ends differ: analysis_log_mel edge-pads the mel to 173 frames, copy synthesis zero-pads audio
    assert np.abs(a - b)[: 320 * 90].max() < 1e-5  # the generator's receptive field reaches ~8 units back

