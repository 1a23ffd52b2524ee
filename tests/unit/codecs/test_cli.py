"""``uniss codec`` commands on the tiny fitted codec (fit itself is exercised through the fixture)."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


def test_encode_decode_roundtrip_info(saved_codec, corpus, tmp_path):
    wav = corpus[0][2]
    src = tmp_path / "in.wav"
    sf.write(src, wav, 16000)
    toks = tmp_path / "t.json"
    r = runner.invoke(app, ["codec", "encode", str(src), "--codec", str(saved_codec), "--json", "-o", str(toks)])
    assert r.exit_code == 0, r.output
    d = json.loads(toks.read_text())
    assert len(d["speaker"]) == 32 and len(d["semantic"]) == round(50 * len(wav) / 16000)
    out = tmp_path / "out.wav"
    r = runner.invoke(app, ["codec", "decode", str(toks), "--codec", str(saved_codec), "-o", str(out)])
    assert r.exit_code == 0, r.output
    y, sr = sf.read(out)
    assert sr == 16000 and len(y) == 320 * len(d["semantic"])
    r = runner.invoke(app, ["codec", "roundtrip", str(src), "--codec", str(saved_codec), "-o", str(tmp_path / "rt.wav")])
    assert r.exit_code == 0 and "ratio" in r.output
    r = runner.invoke(app, ["codec", "info", str(saved_codec)])
    assert r.exit_code == 0 and json.loads(r.output)["backend"] == "lite"


def test_bad_inputs_exit_2(saved_codec, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(np.random.default_rng(0).bytes(4000))
    r = runner.invoke(app, ["codec", "encode", str(junk), "--codec", str(saved_codec)])
    assert r.exit_code == 2
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    r = runner.invoke(app, ["codec", "encode", str(empty), "--codec", str(saved_codec)])
    assert r.exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"speaker": [0] * 32, "semantic": [10**6]}))
    r = runner.invoke(app, ["codec", "decode", str(bad), "--codec", str(saved_codec), "-o", str(tmp_path / "o.wav")])
    assert r.exit_code == 2 and "semantic codes must lie" in r.output
    r = runner.invoke(app, ["codec", "encode", str(junk), "--codec", str(tmp_path / "nocodec")])
    assert r.exit_code == 2
    r = runner.invoke(app, ["codec", "fit", "--out", str(tmp_path / "c"), "--audio-dir", str(tmp_path / "none")])
    assert r.exit_code == 2


def test_stereo_8k_file_is_resampled(saved_codec, corpus, tmp_path):
    """An 8 kHz stereo file is mixed down and resampled: token counts follow its duration."""
    import soxr

    w8 = soxr.resample(corpus[1][2], 16000, 8000)
    f = tmp_path / "st.wav"
    sf.write(f, np.stack([w8, w8], axis=1), 8000)
    r = runner.invoke(app, ["codec", "encode", str(f), "--codec", str(saved_codec), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert abs(len(d["semantic"]) - 50 * len(w8) / 8000) <= 1
