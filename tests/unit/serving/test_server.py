"""serving.server in-process: KServe's own routes and handlers on a fresh FastAPI app (no socket),
driven by ``httpx.AsyncClient`` over ``ASGITransport`` so requests run concurrently with a reload.

Checks: readiness reflects a loaded model (``/v2/health/ready``, ``/v2/models/{name}/ready``);
a reload through ``POST /v2/repository/models/{name}/load`` swaps versions while a request in
flight finishes on the old one; a failed reload keeps serving the old version; the repository
routes answer loopback clients only; a request past ``request_timeout_s`` is a typed 504 and the
server keeps serving; ``/metrics`` carries the request/error/latency counters by model version.
A scripted engine (sleeps ``delay_s`` per batch) stands in for the model."""

from __future__ import annotations

import asyncio
import base64
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from kserve.protocol.rest.server import RESTServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_model as tm  # noqa: E402

from serving.engine import ModelLoadError, TranslationResult  # noqa: E402
from serving.predictor import VERSION_HEADER, ServeConfig, UnissPredictor, wav_bytes  # noqa: E402
from serving.server import NoModelYet, ResolvedModel, UnissModelRepository, UnissModelServer  # noqa: E402

NAME = "uniss-s2st"
LOOPBACK = ("127.0.0.1", 40000)


class SlowEngine:
    """``translate`` sleeps ``delay_s`` (in the engine thread), then answers a 0.2 s tone per row."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.started = threading.Event()

    def translate(self, wavs, *, target_language, mode, speed, seed, do_sample, require_speech):
        self.started.set()
        time.sleep(self.delay_s)
        y = tm.tone(0.2, 330)
        return [TranslationResult(source_text="a", target_text="b", wav=y, duration_s=0.2, source_duration_s=w.size / 16000,
                                  output_tokens=3, timings={}, complete=True, reason=None, mode=mode, target_language=t)
                for w, t in zip(wavs, target_language, strict=True)]


CFG = ServeConfig(min_speech_s=0, batch_window_ms=0, request_timeout_s=1.0, grace_period_s=1)


class Registry:
    """A fake model registry: ``champion`` -> version; each version has an engine delay."""

    def __init__(self) -> None:
        self.champion: str | None = None
        self.delays: dict[str, float] = {}
        self.broken: set[str] = set()

    def resolve(self, source: str) -> ResolvedModel:
        if self.champion is None:
            raise NoModelYet(f"{NAME} has no alias 'champion'")
        return ResolvedModel(Path(f"/models/{self.champion}"), self.champion)


def _repo(reg: Registry) -> UnissModelRepository:
    repo = UnissModelRepository(f"models:/{NAME}@champion", resolve=reg.resolve, config=CFG)

    def build() -> UnissPredictor:  # the engine is built from the "version", not from disk
        r = reg.resolve(repo.source)
        if r.version in reg.broken:
            raise ModelLoadError(f"bundle of version {r.version} is broken")
        p = UnissPredictor(NAME, engine=SlowEngine(reg.delays.get(r.version, 0.0)), config=CFG, version=r.version)
        p.load()
        return p

    repo.build = build  # type: ignore[method-assign]
    return repo


def _app(repo: UnissModelRepository) -> FastAPI:
    server = UnissModelServer(repo, http_port=0)
    rest = RESTServer("unused:app", server.dataplane, server.model_repository_extension, http_port=0)
    app = FastAPI()
    rest._register_endpoints(app)
    rest._add_exception_handlers(app)
    server.extend_app(app)
    return app


def _client(app: FastAPI, client=LOOPBACK) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=client), base_url="http://test", timeout=30)


def _v1() -> dict:
    return {"instances": [{"audio_b64": base64.b64encode(wav_bytes(tm.tone(0.5))).decode(), "target_language": "zh"}]}


def test_readiness_reflects_a_loaded_model_and_reload_serves_the_new_version():
    reg = Registry()
    repo = _repo(reg)
    repo.load_now(allow_no_model=True)
    assert repo.waiting_for_model and repo.index()[0]["state"] == "UNAVAILABLE"

    async def go():
        async with _client(_app(repo)) as c:
            assert (await c.get("/v2/health/live")).status_code == 200
            assert (await c.get("/v2/health/ready")).status_code == 503
            assert (await c.get(f"/v2/models/{NAME}/ready")).status_code == 503
            r = await c.post(f"/v1/models/{NAME}:predict", json=_v1())
            assert r.status_code == 503  # KServe checks readiness first (its message names the model)
            idx = (await c.post("/v2/repository/index")).json()
            assert idx[0]["waiting_for_model"] and "champion" in idx[0]["reason"]

            reg.champion = "1"
            assert (await c.post(f"/v2/repository/models/{NAME}/load")).status_code == 200
            assert (await c.get("/v2/health/ready")).status_code == 200
            assert (await c.get(f"/v2/models/{NAME}/ready")).json()["ready"] is True
            r = await c.post(f"/v1/models/{NAME}:predict", json=_v1())
            assert r.status_code == 200 and r.headers[VERSION_HEADER] == "1"
            idx = (await c.post("/v2/repository/index")).json()[0]
            assert (idx["state"], idx["version"], idx["waiting_for_model"]) == ("READY", "1", False)

    asyncio.run(go())


def test_reload_while_a_request_is_in_flight():
    reg = Registry()
    reg.champion, reg.delays = "1", {"1": 0.6}
    repo = _repo(reg)
    repo.load_now()
    old = repo.current()

    async def go():
        async with _client(_app(repo)) as c:
            slow = asyncio.create_task(c.post(f"/v1/models/{NAME}:predict", json=_v1()))
            while old.in_flight == 0:  # the request reached the old model
                await asyncio.sleep(0.01)
            reg.champion = "2"
            assert (await c.post(f"/v2/repository/models/{NAME}/load")).status_code == 200
            assert not slow.done()  # the swap did not wait for, nor break, the request in flight
            r_new = await c.post(f"/v1/models/{NAME}:predict", json=_v1())
            r_old = await slow
            assert r_old.status_code == 200 and r_old.headers[VERSION_HEADER] == "1"
            assert r_new.status_code == 200 and r_new.headers[VERSION_HEADER] == "2"
            for _ in range(100):  # the old model is retired once drained
                if old.engine is None:
                    break
                await asyncio.sleep(0.01)
            assert old.engine is None and not old.ready

            # a failed reload keeps the old version serving, with the reason in the index and a 503
            reg.champion = "3"
            reg.broken.add("3")
            r = await c.post(f"/v2/repository/models/{NAME}/load")
            assert r.status_code == 503 and "version 3 is broken" in r.text
            r = await c.post(f"/v1/models/{NAME}:predict", json=_v1())
            assert r.status_code == 200 and r.headers[VERSION_HEADER] == "2"
            idx = (await c.post("/v2/repository/index")).json()[0]
            assert idx["version"] == "2" and "broken" in idx["reason"]

    asyncio.run(go())


def test_repository_routes_refuse_non_loopback_clients():
    reg = Registry()
    reg.champion = "1"
    repo = _repo(reg)
    repo.load_now()

    async def go():
        async with _client(_app(repo), client=("10.1.2.3", 5555)) as c:
            assert (await c.post(f"/v2/repository/models/{NAME}/load")).status_code == 403
            assert (await c.post("/v2/repository/index")).status_code == 403
            assert (await c.get("/v2/health/ready")).status_code == 200  # the data plane stays open

    asyncio.run(go())


def test_timeout_is_typed_504_and_the_server_keeps_serving():
    reg = Registry()
    reg.champion, reg.delays = "7", {"7": 1.5}  # longer than request_timeout_s = 1.0
    repo = _repo(reg)
    repo.load_now()

    async def go():
        async with _client(_app(repo)) as c:
            t0 = time.perf_counter()
            r = await c.post(f"/v1/models/{NAME}:predict", json=_v1())
            assert r.status_code == 504 and time.perf_counter() - t0 < 1.4
            assert r.json()["error"].startswith("request: not translated within 1 s")
            repo.current().engine.delay_s = 0.0
            await asyncio.sleep(0.7)  # the timed-out batch finishes in the engine thread
            r = await c.post(f"/v1/models/{NAME}:predict", json=_v1())
            assert r.status_code == 200, r.text

            text = (await c.get("/metrics")).text
            assert f'uniss_requests_total{{code="504",model_name="{NAME}",model_version="7"}}' in text
            assert f'uniss_requests_total{{code="200",model_name="{NAME}",model_version="7"}}' in text
            assert f'uniss_request_errors_total{{error="RequestTimeoutError",model_name="{NAME}",model_version="7"}}' in text
            assert f'uniss_request_duration_seconds_count{{model_name="{NAME}",model_version="7"}}' in text
            assert f'uniss_model_info{{model_name="{NAME}",model_version="7",source="models:/{NAME}@champion"}} 1.0' in text
            assert "request_predict_seconds_count" in text  # KServe's own histograms, same endpoint

    asyncio.run(go())

