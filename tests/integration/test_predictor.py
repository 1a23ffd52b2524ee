"""KServe predictor on a real ModelServer (subprocess, 127.0.0.1, free port), tiny random model.

Requests are made with KServe's own ``InferenceRESTClient`` (v1 and v2) and with plain httpx;
bad inputs must come back as 400 with a message naming the field, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import functools
import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "unit" / "serving"
sys.path.insert(0, str(TINY))
import tiny_model as tm  # noqa: E402

pytestmark = pytest.mark.integration

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")

SERVER = f"""
import sys
sys.path.insert(0, {str(TINY)!r})
import tiny_model as tm
from serving.predictor import ServeConfig, serve
serve(engine=tm.tiny_engine(), host="127.0.0.1", port=int(sys.argv[1]),
      config=ServeConfig(max_audio_s=30, max_batch=4, max_body_bytes=12_000_000))
"""


def _wav(x: np.ndarray, sr: int = 16000) -> bytes:
    b = io.BytesIO()
    sf.write(b, x, sr, format="WAV")
    return b.getvalue()


@functools.lru_cache(maxsize=4)
def _speech(text: str = "Close the door.") -> np.ndarray:
    """A short flite clip ``(N,)`` float32 16 kHz: requests must hold speech (the server's silero-vad
    check answers 400 to tones, silence and noise)."""
    from uniss.engines.tts import SystemTTS

    return SystemTTS().synthesize(text, "en", "flite:slt")


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log = open(log_path, "wb")  # a file, not a pipe: an unread pipe fills up and blocks the server
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models/{'uniss-s2st'}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise RuntimeError("server did not become ready in 90 s")
        yield url, port, proc.pid
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _rest_client(protocol: str):
    from kserve import InferenceRESTClient, RESTConfig

    return InferenceRESTClient(RESTConfig(protocol=protocol, timeout=120, retries=0))


def test_binds_loopback_only(server):
    _, port, pid = server
    out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines() if f"pid={pid}," in line]
    assert lines and all(f"127.0.0.1:{port}" in line for line in lines), lines


def test_v1_with_kserve_client_real_librivox_clip(server):
    url, _, _ = server
    audio = LIBRIVOX.read_bytes() if LIBRIVOX.exists() else _wav(_speech("Please close the door when you leave the room."))
    body = {"instances": [{"audio_b64": _b64(audio), "target_language": "zh", "mode": "quality", "speed": 1.0, "seed": 0},
                          {"audio_b64": _b64(_wav(_speech())), "target_language": "en", "mode": "quality"}]}

    async def go():
        c = _rest_client("v1")
        try:
            return await c.infer(url, body, model_name="uniss-s2st")
        finally:
            await c.close()

    res = asyncio.run(go())
    preds = res["predictions"]
    assert len(preds) == 2
    for p in preds:
        wav, sr = sf.read(io.BytesIO(base64.b64decode(p["audio_b64"])), dtype="float32")
        assert sr == 16000 and wav.ndim == 1
        assert p["duration_s"] == pytest.approx(wav.shape[0] / 16000, abs=1e-3) and p["duration_s"] > 0
        assert isinstance(p["source_text"], str) and isinstance(p["target_text"], str)
        assert p["complete"] is True


def test_v2_with_kserve_client_binary_bytes(server):
    from kserve import InferInput, InferRequest

    url, _, _ = server
    # KServe 0.21's REST decoder turns every BYTES element into UTF-8 text (InferRequest.from_bytes),
    # so raw file bytes cannot travel in a REST tensor: send base64 text in the BYTES elements.
    clips = [base64.b64encode(_wav(_speech())), base64.b64encode(_wav(_speech("Open the window.")))]
    inp = InferInput(name="audio", shape=[2], datatype="BYTES")
    inp.set_data_from_numpy(np.array(clips, dtype=np.object_), binary_data=True)
    req = InferRequest(model_name="uniss-s2st", infer_inputs=[inp], request_id="r1",
                       parameters={"target_language": "en", "mode": "performance", "seed": 1})

    async def go():
        c = _rest_client("v2")
        try:
            return await c.infer(url, req, model_name="uniss-s2st")
        finally:
            await c.close()

    res = asyncio.run(go())
    outs = {o.name: o for o in res.outputs}
    assert set(outs) == {"source_text", "target_text", "audio", "duration_s"}
    dur = outs["duration_s"].as_numpy()
    audio = outs["audio"].as_numpy()
    assert dur.shape == (2,) and audio.shape == (2,)
    for a, d in zip(audio.tolist(), dur.tolist(), strict=True):
        wav, sr = sf.read(io.BytesIO(base64.b64decode(a)), dtype="float32")
        assert sr == 16000 and wav.shape[0] / 16000 == pytest.approx(d, abs=1e-3)


def test_v2_raw_binary_bytes_are_400_not_500(server):
    """Raw WAV bytes in a binary BYTES tensor cannot pass KServe's UTF-8 decoder: 400 with advice."""
    import json
    import struct

    url, _, _ = server
    raw = _wav(_speech())
    assert b"\xff" in raw or b"\x80" in raw  # PCM16 samples are not UTF-8 text
    blob = struct.pack("<I", len(raw)) + raw  # Open Inference Protocol BYTES serialization
    header = json.dumps({"inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(blob)}}],
                         "parameters": {"target_language": "en"}}).encode()
    r = httpx.post(f"{url}/v2/models/uniss-s2st/infer", content=header + blob, timeout=60,
                   headers={"content-type": "application/octet-stream",
                            "inference-header-content-length": str(len(header))})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert "not UTF-8" in err and "base64" in err and len(err) < 300  # no echo of the payload
    ok = httpx.post(f"{url}/v2/models/uniss-s2st/infer", timeout=120, json={
        "inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES", "data": [_b64(raw)]}],
        "parameters": {"target_language": "en", "mode": "direct"}})
    assert ok.status_code == 200, ok.text


def test_v2_plain_json_with_httpx(server):
    url, _, _ = server
    body = {"inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES", "data": [_b64(_wav(_speech()))]}],
            "parameters": {"target_language": "zh", "mode": "direct"}}
    r = httpx.post(f"{url}/v2/models/uniss-s2st/infer", json=body, timeout=120)
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    assert outs["duration_s"]["data"][0] > 0
    assert outs["target_text"]["data"] == [""]  # Direct mode writes no text


def _post_v1(url: str, instance: dict | None = None, *, content: bytes | None = None) -> httpx.Response:
    if content is not None:
        return httpx.post(f"{url}/v1/models/uniss-s2st:predict", content=content, headers={"content-type": "application/json"}, timeout=120)
    return httpx.post(f"{url}/v1/models/uniss-s2st:predict", json={"instances": [instance]}, timeout=120)


@pytest.mark.parametrize(
    "name, instance, field",
    [
        ("empty audio", {"audio_b64": ""}, "instances[0].audio_b64"),
        ("empty wav file", {"audio_b64": _b64(_wav(np.zeros(0, np.float32)))}, "instances[0].audio_b64"),
        ("random bytes", {"audio_b64": _b64(np.random.default_rng(0).bytes(4096))}, "instances[0].audio_b64"),
        ("not base64", {"audio_b64": "%%%not-base64%%%"}, "instances[0].audio_b64"),
        ("10-minute clip", {"audio_b64": _b64(_wav(np.zeros(4000 * 600, np.int16), 4000))}, "instances[0].audio_b64"),
        ("unknown language", {"audio_b64": _b64(_wav(_speech())), "target_language": "fr"}, "instances[0].target_language"),
        ("unknown mode", {"audio_b64": _b64(_wav(_speech())), "mode": "turbo"}, "instances[0].mode"),
        ("speed out of range", {"audio_b64": _b64(_wav(_speech())), "speed": 9}, "instances[0].speed"),
        ("unknown field", {"audio_b64": _b64(_wav(_speech())), "lang": "zh"}, "instances[0].lang"),
    ],
)
def test_bad_v1_inputs_are_400_naming_the_field(server, name, instance, field):
    url, _, _ = server
    r = _post_v1(url, instance)
    assert r.status_code == 400, (name, r.status_code, r.text)
    assert field in r.json()["error"], r.text


@pytest.mark.parametrize(
    "content, needle",
    [
        (b'{"instances": [', "Unrecognized request format"),
        (b'{"instances": {"audio_b64": "x"}}', "instances"),
        (b'{"inputs": []}', "body"),
        (b'[1, 2, 3]', "body"),
        (b'{"instances": []}', "instances"),
        (b'{"instances": [1]}', "instances[0]"),
    ],
)
def test_wrong_json_is_400(server, content, needle):
    url, _, _ = server
    r = _post_v1(url, content=content)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_json_body_without_a_json_content_type_is_read_as_json(server, content_type):
    """``curl -d`` and ``curl --data-binary @-`` (the README's example) send form-urlencoded; the JSON
    body must still be served, and a non-JSON body of that type is a 400 that says what to send."""
    url, _, _ = server
    body = json.dumps({"instances": [{"audio_b64": _b64(_wav(_speech())), "target_language": "zh", "mode": "direct"}]})
    headers = {} if content_type is None else {"content-type": content_type}
    r = httpx.post(f"{url}/v1/models/uniss-s2st:predict", content=body.encode(), headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 1
    bad = httpx.post(f"{url}/v1/models/uniss-s2st:predict", content=b"audio=abc", headers=headers, timeout=60)
    assert bad.status_code == 400 and "JSON" in bad.json()["error"], bad.text


def test_limits_batch_and_body(server):
    url, _, _ = server
    inst = {"audio_b64": _b64(_wav(_speech()))}
    r = httpx.post(f"{url}/v1/models/uniss-s2st:predict", json={"instances": [inst] * 5}, timeout=60)
    assert r.status_code == 400 and "limit of 4" in r.json()["error"]
    big = {"audio_b64": _b64(_wav(np.zeros(48000 * 29, np.float32), 48000))}  # 2.8 MB PCM16 WAV, 3.7 MB base64
    r = httpx.post(f"{url}/v1/models/uniss-s2st:predict", json={"instances": [big] * 5}, timeout=60)
    assert r.status_code == 400 and "body" in r.json()["error"]


def test_bad_v2_inputs(server):
    url, _, _ = server
    good = {"name": "audio", "shape": [1], "datatype": "BYTES", "data": [_b64(_wav(_speech()))]}
    cases = [
        ({"inputs": [dict(good, name="wave")]}, "inputs"),
        ({"inputs": [dict(good, datatype="FP32", data=[1.0])]}, "inputs.audio"),
        ({"inputs": [good], "parameters": {"target_language": "de"}}, "parameters.target_language"),
        ({"inputs": [dict(good, data=["aGVsbG8gd29ybGQ="])]}, "inputs.audio[0]"),
    ]
    for body, field in cases:
        r = httpx.post(f"{url}/v2/models/uniss-s2st/infer", json=body, timeout=60)
        assert r.status_code == 400, (body, r.text)
        assert field in r.json()["error"], r.text


def test_8khz_stereo_is_resampled_and_served(server):
    url, _, _ = server
    from uniss.audio import resample

    x = resample(_speech(), 16000, 8000)
    stereo = np.stack([x, 0.5 * x], axis=1)  # (N, 2) at 8 kHz
    r = _post_v1(url, {"audio_b64": _b64(_wav(stereo, 8000)), "mode": "direct"})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["source_duration_s"] == pytest.approx(x.shape[0] / 8000, abs=1e-3)


def test_still_serving_after_bad_requests(server):
    url, _, _ = server
    for _ in range(3):
        assert _post_v1(url, content=b"garbage").status_code == 400
    r = _post_v1(url, {"audio_b64": _b64(_wav(_speech())), "mode": "performance"})
    assert r.status_code == 200
    assert httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200


def _degenerate_wavs() -> dict[str, bytes]:
    """The no-speech kinds of issue 17 as WAV files (3 s, 16 kHz); NaN/inf need float WAV."""
    rng = np.random.default_rng(0)
    n = 3 * 16000
    nan = np.zeros(n, np.float32)
    nan[100] = np.nan
    inf = np.zeros(n, np.float32)
    inf[7] = -np.inf
    b = {k: _wav(v) for k, v in {
        "silence": np.zeros(n, np.float32),
        "dc_offset": np.full(n, 0.3, np.float32),
        "constant": np.full(n, -0.7, np.float32),
        "clipped_noise": np.clip(3 * rng.standard_normal(n), -1, 1).astype(np.float32),
        "white_noise": (0.3 * rng.standard_normal(n)).astype(np.float32),
        "tone": tm.tone(2.0),
    }.items()}
    for k, v in {"nan": nan, "inf": inf}.items():
        buf = io.BytesIO()
        sf.write(buf, v, 16000, format="WAV", subtype="FLOAT")
        b[k] = buf.getvalue()
    return b


@pytest.mark.parametrize("kind", sorted(_degenerate_wavs()))
def test_no_speech_is_400_v1_and_v2_and_server_keeps_serving(server, kind):
    url, _, _ = server
    audio = _degenerate_wavs()[kind]
    r = _post_v1(url, {"audio_b64": _b64(audio), "mode": "direct"})
    assert r.status_code == 400, (kind, r.status_code, r.text)
    err = r.json()["error"]
    assert "instances[0].audio_b64" in err and ("no speech" in err or "NaN" in err), err
    body = {"inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES", "data": [_b64(audio)]}],
            "parameters": {"target_language": "zh", "mode": "direct"}}
    r = httpx.post(f"{url}/v2/models/uniss-s2st/infer", json=body, timeout=60)
    assert r.status_code == 400, (kind, r.status_code, r.text)
    assert "inputs.audio[0]" in r.json()["error"]
    assert httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200


def test_serves_speech_after_no_speech_requests(server):
    url, _, _ = server
    for audio in list(_degenerate_wavs().values())[:3]:
        assert _post_v1(url, {"audio_b64": _b64(audio)}).status_code == 400
    r = _post_v1(url, {"audio_b64": _b64(_wav(_speech())), "mode": "direct"})
    assert r.status_code == 200, r.text
