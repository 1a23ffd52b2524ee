"""UnissPredictor: an output without usable speech (0 samples, NaN/inf) is a typed
:class:`NoSpeechOutputError` answered HTTP 422 with a clear message (v1 and v2), never a 500 with a
traceback, and the server keeps serving. In-process: KServe's own v1/v2 routes and exception
handlers on a fresh FastAPI app, driven by Starlette's TestClient (no socket); a scripted fake
engine stands in for the model."""

from __future__ import annotations

import asyncio
import base64
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import RESTServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_model as tm  # noqa: E402

from serving.engine import TranslationResult  # noqa: E402
from serving.predictor import (  # noqa: E402
    NO_SPEECH_STATUS,
    NoSpeechOutputError,
    ServeConfig,
    UnissPredictor,
    add_exception_handlers,
    wav_bytes,
)

GOOD = tm.tone(0.5, 440)
EMPTY = np.zeros(0, dtype=np.float32)
NAN = np.full(800, np.nan, dtype=np.float32)


class ScriptedEngine:
    """``translate`` answers each row with the next waveform of ``script`` (``GOOD`` once it is spent)."""

    def __init__(self) -> None:
        self.script: list[np.ndarray] = []
        self.calls = 0

    def translate(self, wavs, *, target_language, mode, speed, seed, do_sample, require_speech):
        self.calls += 1
        out = []
        for w, tgt in zip(wavs, target_language, strict=True):
            y = self.script.pop(0) if self.script else GOOD
            empty = y.size == 0
            out.append(TranslationResult(
                source_text="hello", target_text="你好", wav=y, duration_s=y.size / 16000,
                source_duration_s=w.size / 16000, output_tokens=5, timings={}, complete=not empty,
                reason="no semantic tokens" if empty else None, mode=mode, target_language=tgt))
        return out


def _predictor() -> tuple[UnissPredictor, ScriptedEngine]:
    eng = ScriptedEngine()
    pred = UnissPredictor(engine=eng, config=ServeConfig(min_speech_s=0, batch_window_ms=0))  # tones: VAD off
    pred.load()
    return pred, eng


def _v1(n: int = 1) -> dict:
    return {"instances": [{"audio_b64": base64.b64encode(wav_bytes(tm.tone(0.5))).decode(), "target_language": "zh"}] * n}


def _v2(n: int = 1) -> dict:
    data = [base64.b64encode(wav_bytes(tm.tone(0.5))).decode()] * n
    return {"inputs": [{"name": "audio", "shape": [n], "datatype": "BYTES", "data": data}], "parameters": {"target_language": "en"}}


@pytest.fixture
def client():
    """KServe's REST app (its v1/v2 endpoints and handlers, then ours) serving a scripted predictor."""
    pred, eng = _predictor()
    repo = ModelRepository()
    repo.update(pred)
    rest = RESTServer("unused:app", DataPlane(model_registry=repo), ModelRepositoryExtension(model_registry=repo), http_port=0)
    app = FastAPI()
    rest._register_endpoints(app)
    rest._add_exception_handlers(app)
    add_exception_handlers(app)  # what LoopbackModelServer adds after KServe's create_application
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, eng


@pytest.mark.parametrize("bad, why", [(EMPTY, "is empty (0 samples)"), (NAN, "contains NaN or infinite samples")])
def test_predict_raises_typed_error_naming_the_row(bad, why):
    pred, eng = _predictor()
    eng.script = [GOOD, bad]
    parsed = pred.preprocess(_v1(2))
    with pytest.raises(NoSpeechOutputError, match=re.escape(f"predictions[1].audio_b64 {why}")) as ei:
        asyncio.run(pred.predict(parsed))
    assert "the model produced no speech" in str(ei.value) and "predictions[0]" not in str(ei.value)


def test_v1_empty_output_is_422_and_server_keeps_serving(client):
    c, eng = client
    url = "/v1/models/uniss-s2st:predict"
    eng.script = [EMPTY]
    r = c.post(url, json=_v1())
    assert r.status_code == NO_SPEECH_STATUS == 422, r.text
    err = r.json()["error"]
    assert "predictions[0].audio_b64 is empty (0 samples)" in err and "no semantic tokens" in err
    assert "Traceback" not in r.text
    eng.script = [GOOD, NAN]
    r = c.post(url, json=_v1(2))
    assert r.status_code == 422 and "predictions[1].audio_b64 contains NaN" in r.json()["error"]
    r = c.post(url, json=_v1())  # next request: served normally
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["duration_s"] > 0


def test_v2_empty_output_is_422_and_server_keeps_serving(client):
    c, eng = client
    url = "/v2/models/uniss-s2st/infer"
    eng.script = [EMPTY]
    r = c.post(url, json=_v2())
    assert r.status_code == 422, r.text
    assert "outputs.audio[0] is empty (0 samples)" in r.json()["error"]
    r = c.post(url, json=_v2())
    assert r.status_code == 200, r.text
    assert {o["name"] for o in r.json()["outputs"]} == {"source_text", "target_text", "audio", "duration_s"}
    # bad input is still 400, not 422
    assert c.post(url, json={"inputs": []}).status_code == 400
