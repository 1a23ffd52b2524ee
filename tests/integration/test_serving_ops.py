"""Operations of the model server on a real socket (subprocess, 127.0.0.1, free port, tiny random
model): request timeout -> typed 504 and the server keeps serving; ``/metrics`` exposes the request
counters by model version; SIGTERM with a request in flight: the request completes, then the
server exits.

The server wraps the tiny engine so that a request with ``seed`` = :data:`SLOW_SEED` sleeps
:data:`SLOW_S` seconds in the engine thread (a deterministic slow request, whatever the machine).
"""

from __future__ import annotations

import base64
import concurrent.futures
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "unit" / "serving"

pytestmark = pytest.mark.integration

SLOW_SEED = 4242
SLOW_S = 9.0
TIMEOUT_S = 6.0  # a normal request takes 1-2 s on 2 busy cores
NAME = "uniss-s2st"

SERVER = f"""
import sys, time
sys.path.insert(0, {str(TINY)!r})
import tiny_model as tm
from serving.predictor import ServeConfig, serve

class Slow:
    def __init__(self, engine):
        self.engine = engine
    def translate(self, wavs, **kw):
        if {SLOW_SEED} in (kw.get("seed") or []):  # seeds come per row
            time.sleep({SLOW_S})
        return self.engine.translate(wavs, **kw)

serve(engine=Slow(tm.tiny_engine()), host="127.0.0.1", port=int(sys.argv[1]),
      config=ServeConfig(min_speech_s=0, request_timeout_s=float(sys.argv[2]), grace_period_s=30))
"""


def _start(tmp: Path, timeout_s: float) -> tuple[subprocess.Popen, str, Path]:
    sys.path.insert(0, str(TINY))
    port = free_port()
    log_path = tmp / f"server-{port}.log"
    log = open(log_path, "wb")  # a file, not a pipe: an unread pipe fills up and blocks the server
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(timeout_s)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return proc, url, log_path
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"server not ready in 120 s: {log_path.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _body(seed: int = 0) -> dict:
    import tiny_model as tm

    from serving.predictor import wav_bytes

    audio = base64.b64encode(wav_bytes(tm.tone(1.0))).decode()
    return {"instances": [{"audio_b64": audio, "target_language": "zh", "mode": "performance", "seed": seed}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, url, log = _start(tmp_path_factory.mktemp("ops"), TIMEOUT_S)
    try:
        yield url
    finally:
        _stop(proc)


def test_timeout_is_typed_504_and_server_keeps_serving(server):
    url = server
    body = _body(SLOW_SEED)
    t0 = time.perf_counter()
    r = httpx.post(f"{url}/v1/models/{NAME}:predict", json=body, timeout=60)
    took = time.perf_counter() - t0
    assert r.status_code == 504, r.text
    assert r.json()["error"].startswith(f"request: not translated within {TIMEOUT_S:g} s") and took < SLOW_S
    time.sleep(SLOW_S - took + 0.5)  # the engine finishes the timed-out batch, then is free
    assert httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
    r = httpx.post(f"{url}/v1/models/{NAME}:predict", json=_body(), timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["audio_b64"]


def test_metrics_expose_request_counters(server):
    url = server
    assert httpx.post(f"{url}/v1/models/{NAME}:predict", json=_body(), timeout=60).status_code == 200
    assert httpx.post(f"{url}/v1/models/{NAME}:predict", json={"instances": []}, timeout=60).status_code == 400
    text = httpx.get(f"{url}/metrics", timeout=10).text
    assert f'uniss_requests_total{{code="200",model_name="{NAME}",model_version=""}}' in text
    assert f'uniss_requests_total{{code="400",model_name="{NAME}",model_version=""}}' in text
    assert f'uniss_request_errors_total{{error="InvalidInput",model_name="{NAME}",model_version=""}}' in text
    assert f'uniss_request_duration_seconds_bucket{{le="0.5",model_name="{NAME}",model_version=""}}' in text
    assert f'uniss_requests_in_flight{{model_name="{NAME}",model_version=""}} 0.0' in text
    assert f'request_predict_seconds_count{{model_name="{NAME}"}}' in text  # KServe's own


def test_sigterm_with_a_request_in_flight_completes_it(tmp_path):
    proc, url, log = _start(tmp_path, 60.0)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fut = pool.submit(httpx.post, f"{url}/v1/models/{NAME}:predict", json=_body(SLOW_SEED), timeout=60)
            deadline = time.time() + 20
            while time.time() < deadline:  # the request is inside the model
                if f'uniss_requests_in_flight{{model_name="{NAME}",model_version=""}} 1.0' in httpx.get(f"{url}/metrics", timeout=5).text:
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the slow request never got in flight")
            t_term = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            r = fut.result(timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["audio_b64"]
        proc.wait(timeout=30)
        assert time.perf_counter() - t_term < 30
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/v2/health/live", timeout=2)
    finally:
        _stop(proc)
        if proc.returncode not in (0, -signal.SIGTERM):
            print(log.read_text()[-3000:])
