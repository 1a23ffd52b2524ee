"""KServe predictor for UniSS speech-to-speech translation (v1 JSON and v2 Open Inference Protocol).

A ``kserve.Model`` subclass (STYLE.md #12, kserve ``python/custom_model/model.py``): ``load`` builds
the :class:`serving.engine.TranslationEngine` and sets ``ready``; ``preprocess`` validates and
decodes each request into :class:`Utterance` objects; ``predict`` runs them through a micro-batcher
that merges concurrent requests into one engine batch (up to ``max_batch`` rows, waiting at most
``batch_window_ms``), then encodes the response.

v1 (``POST /v1/models/uniss-s2st:predict``)::

    {"instances": [{"audio_b64": "<base64 audio file>", "target_language": "zh",
                    "mode": "quality", "speed": 1.0}]}
    -> {"predictions": [{"source_text", "target_text", "audio_b64" (WAV 16 kHz PCM16),
                         "duration_s", "source_duration_s", "complete", "reason", "output_tokens"}]}

v2 (``POST /v2/models/uniss-s2st/infer``): input tensor ``audio`` (BYTES, shape ``[B]``; raw audio
file bytes through the binary-data extension, or base64 text in plain JSON); request
``parameters`` ``target_language``, ``mode``, ``speed``, ``seed``, ``do_sample`` (optional BYTES
input ``target_language`` ``[B]`` per row). Outputs: ``source_text``, ``target_text`` (BYTES
``[B]``), ``audio`` (BYTES ``[B]``, WAV files), ``duration_s`` (FP32 ``[B]``).

Every bad request (malformed JSON/tensors, unknown field/language/mode, undecodable, empty, too
short or too long audio, too many rows, too large a body) raises ``kserve.errors.InvalidInput``
(HTTP 400) whose message names the field; the server keeps serving.

A valid request whose translation has no usable speech (the model stopped before any semantic
token, so the output audio has 0 samples, or the decoded audio holds NaN/inf) raises
:class:`NoSpeechOutputError`, answered HTTP 422 ``{"error": "the model produced no speech: <field>
is empty (0 samples) ..."}`` (:data:`NO_SPEECH_STATUS`): the request was understood but this output cannot be returned;
the client may retry (another ``seed``, ``do_sample``) or send a clearer clip. Never a 500.

The server around the predictor (loopback binding, model repository and zero-downtime reload,
readiness, graceful shutdown) is :mod:`serving.server`; its metrics :mod:`serving.metrics`.

Raw bytes in a v2 binary tensor: KServe 0.21's REST decoder (``InferRequest.from_bytes`` ->
``InferInput.set_data_from_numpy(binary_data=False)`` in ``kserve/protocol/infer_type.py``) turns
every BYTES element into UTF-8 text before the model sees it; raw audio file bytes make it raise
``InferenceError('Failed to encode "<all the bytes>" using UTF-8 ...')``, which KServe answers with
HTTP 500 and the whole payload in the message. ``serving.server.LoopbackModelServer`` registers, right after
KServe builds its FastAPI app, a handler that answers that error with HTTP 400 and a short message
(send base64 text in the BYTES elements instead), and the 422 handler of :class:`NoSpeechOutputError`
and the 504 handler of :class:`RequestTimeoutError` (:func:`add_exception_handlers`); every other
``InferenceError`` goes to KServe's own handler unchanged.

Size (~650 lines, over the house guide of ~500): request validation, response encoding and the
HTTP status of each typed error form one protocol contract kept in one place (the request
accounting of :meth:`UnissPredictor.__call__` belongs to it: it labels each answer with that
status); the server glue is in :mod:`serving.server`, except the exception handlers that map this
module's errors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

import kserve
import numpy as np
from fastapi.responses import JSONResponse
from kserve.errors import InferenceError, InvalidInput, inference_error_handler
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving import metrics
from serving.engine import ModelLoadError, TranslationEngine
from uniss.audio import MIN_SPEECH_S, AudioError, check_waveform, load_audio, require_speech, to_wav_bytes
from uniss.errors import UnissError
from uniss.settings import MODEL_NAME

__all__ = [
    "MODEL_NAME",
    "NO_SPEECH_STATUS",
    "NoSpeechOutputError",
    "RequestTimeoutError",
    "ServeConfig",
    "TIMEOUT_STATUS",
    "UnissPredictor",
    "Utterance",
    "V1Instance",
    "VERSION_HEADER",
    "add_exception_handlers",
    "decode_audio",
    "http_status",
    "output_wav_bytes",
    "serve",
    "wav_bytes",
]


class ServeConfig(BaseSettings):
    """Request limits and batching (env prefix ``UNISS_SERVE_``).

    Attributes:
        max_audio_s: longest accepted source clip, seconds (the paper evaluates sentence-level
            utterances; a 10-minute clip is refused, not truncated).
        min_audio_s: shortest clip, seconds (the codec needs at least one 80 ms linguistic frame).
        max_body_bytes: largest request body, bytes (Content-Length).
        max_batch: most utterances per request and per engine batch.
        batch_window_ms: how long the micro-batcher waits for more requests, milliseconds.
        min_speech_s: least speech (seconds, silero-vad) a clip must hold, checked in ``preprocess``
            before any model work (``uniss.audio.require_speech``; default its ``MIN_SPEECH_S`` =
            0.25 s, silero-vad's ``min_speech_duration_ms``); silence, DC, a constant sample or noise
            is answered 400. 0 turns the check off.
        request_timeout_s: longest a request may wait for its translation (queue + engine),
            seconds; past it the request is answered HTTP 504 ``{"error": ...}``
            (:class:`RequestTimeoutError`) and the server keeps serving. 0 turns it off.
        grace_period_s: on SIGTERM/SIGINT, how long the server waits for in-flight requests to
            finish before it exits anyway, seconds (uvicorn ``timeout_graceful_shutdown``).
        device: torch device of the engine.
        runtime: decoding runtime of the engine (``serving.engine.RUNTIMES``): ``continuous``
            (CPU/GPU, continuous batching), ``hf`` (``transformers`` ``generate``), ``vllm`` (GPU,
            needs ``vllm`` in the image; untested on a GPU).
    """

    model_config = SettingsConfigDict(env_prefix="UNISS_SERVE_", extra="ignore")

    max_audio_s: float = Field(60.0, gt=0)
    min_audio_s: float = Field(0.1, ge=0)
    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0)
    max_batch: int = Field(8, ge=1)
    batch_window_ms: float = Field(10.0, ge=0)
    min_speech_s: float = Field(MIN_SPEECH_S, ge=0)
    request_timeout_s: float = Field(300.0, ge=0)
    grace_period_s: int = Field(30, ge=0)
    device: str = "cpu"
    runtime: Literal["continuous", "hf", "vllm"] = "continuous"


class V1Instance(BaseModel):
    """One v1 instance (unknown fields are refused so typos do not pass silently)."""

    model_config = ConfigDict(extra="forbid")

    audio_b64: str = Field(min_length=1)
    target_language: Literal["en", "zh"] = "zh"
    mode: Literal["quality", "performance", "direct"] = "quality"
    speed: float = Field(1.0, ge=0.1, le=3.5)
    seed: int | None = None
    do_sample: bool = True


class _V2Params(BaseModel):
    model_config = ConfigDict(extra="ignore")

    target_language: Literal["en", "zh"] = "zh"
    mode: Literal["quality", "performance", "direct"] = "quality"
    speed: float = Field(1.0, ge=0.1, le=3.5)
    seed: int | None = None
    do_sample: bool = True


@dataclass
class Utterance:
    """A validated request row: ``wav`` ``(N,)`` float32 16 kHz plus its options."""

    wav: np.ndarray
    target_language: str
    mode: str
    speed: float
    seed: int | None
    do_sample: bool


@dataclass
class _Parsed:
    protocol: Literal["v1", "v2"]
    rows: list[Utterance]
    request_id: str | None = None


def _invalid(msg: str) -> InvalidInput:
    return InvalidInput(msg)


#: HTTP status of :class:`NoSpeechOutputError`: 422 Unprocessable Content (RFC 9110 §15.5.21: the
#: request is well-formed but cannot be processed), distinct from 400 (fix the request) and 500.
NO_SPEECH_STATUS = int(HTTPStatus.UNPROCESSABLE_ENTITY)


class NoSpeechOutputError(InferenceError):
    """The model produced no usable speech for a valid request: 0 output samples (generation stopped
    before any semantic token) or NaN/inf samples. The server answers HTTP :data:`NO_SPEECH_STATUS`
    (422) with ``{"error": message}``; the message names the output field and row."""


#: HTTP status of :class:`RequestTimeoutError`: 504 Gateway Timeout (RFC 9110 §15.6.5: the server
#: did not complete the request in time). Not 408, which means the *client* was too slow to send it.
TIMEOUT_STATUS = int(HTTPStatus.GATEWAY_TIMEOUT)

#: Response header naming the registered model version that answered (``""`` when unknown).
VERSION_HEADER = "x-uniss-model-version"


class RequestTimeoutError(InferenceError):
    """The translation did not finish within ``ServeConfig.request_timeout_s``. Answered HTTP
    :data:`TIMEOUT_STATUS` (504) with ``{"error": message}``; rows still queued are dropped from
    the batch, a batch already running finishes and its result is discarded."""


# --------------------------------------------------------------------------------------- audio
def decode_audio(data: bytes, *, field: str, min_s: float, max_s: float, min_speech_s: float = MIN_SPEECH_S) -> np.ndarray:
    """Audio file bytes (WAV/FLAC/OGG, any rate, any channels) -> ``(N,)`` float32 mono 16 kHz.

    Uses ``uniss.audio.load_audio`` (soundfile decode, soxr resampling, duration limits), then
    ``uniss.audio.require_speech`` (silero-vad; skipped when ``min_speech_s`` is 0).

    Raises:
        kserve.errors.InvalidInput: empty, undecodable, too short or too long audio, NaN/inf samples,
            or audio without speech (silence, DC offset, constant, noise); the message starts with
            ``field``.
    """
    if not data:
        raise _invalid(f"{field}: empty audio")
    try:
        wav = load_audio(data, min_duration_s=min_s, max_duration_s=max_s)
        return require_speech(wav, min_speech_s=min_speech_s, what="audio") if min_speech_s > 0 else wav
    except UnissError as e:
        raise _invalid(f"{field}: {e}") from None


def wav_bytes(wav: np.ndarray) -> bytes:
    """``(N,)`` float32 16 kHz -> WAV file bytes (PCM 16-bit mono; ``uniss.audio.to_wav_bytes``).

    Raises:
        uniss.audio.AudioError: empty, non-finite or non-mono ``wav`` (``uniss.audio.check_waveform``).
    """
    return to_wav_bytes(wav)


def output_wav_bytes(results: Sequence[Any], field: str) -> list[bytes]:
    """WAV bytes of every result's ``wav``, after checking each is speech that can be returned.

    Args:
        results: engine results (``.wav`` ``(M,)`` float32 16 kHz, ``.reason``).
        field: response field for messages, with ``{i}`` for the row (``predictions[{i}].audio_b64``).
    Returns:
        one WAV file per result.
    Raises:
        NoSpeechOutputError: some output is empty (0 samples) or holds NaN/inf; the message names
            every such row (``uniss.audio.check_waveform`` rule) and the engine's ``reason``.
    """
    bad = []
    for i, r in enumerate(results):
        try:
            check_waveform(r.wav, what=field.format(i=i))
        except AudioError as e:
            why = getattr(r, "reason", None)
            bad.append(f"{e}" + (f" (generation: {why})" if why else ""))
    if bad:
        raise NoSpeechOutputError(
            f"the model produced no speech: {'; '.join(bad)}. The request was valid: retry with another seed "
            "or do_sample, or send a clearer clip")
    return [wav_bytes(r.wav) for r in results]


# --------------------------------------------------------------------------------------- batcher
class _MicroBatcher:
    """Merges concurrent requests into engine batches (one engine call at a time, in a worker
    thread, so the event loop keeps answering health checks). Rows of one sampling switch go to
    one ``engine.translate`` call with per-row mode, speed and seed (one codec pass and one decode
    loop for Quality and Performance rows together); the engine's continuous
    decoder (``serving.decoder``) lets rows finish independently inside it."""

    def __init__(self, engine: Any, max_batch: int, window_s: float) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.window_s = window_s
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uniss-engine")
        self._lock = threading.Lock()

    async def submit(self, rows: list[Utterance]) -> list[Any]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in rows]
        for r, f in zip(rows, futs, strict=True):
            self._queue.put_nowait((r, f))
        return list(await asyncio.gather(*futs))

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            deadline = loop.time() + self.window_s
            while len(items) < self.max_batch:
                left = deadline - loop.time()
                try:
                    items.append(self._queue.get_nowait() if left <= 0 else await asyncio.wait_for(self._queue.get(), left))
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
            groups: dict[tuple, list] = {}
            items = [(r, f) for r, f in items if not f.done()]  # timed out while queued: not run
            for r, f in items:  # mode, speed and seed are per row: only greedy/sampling splits a batch
                groups.setdefault(r.do_sample, []).append((r, f))
            for do_sample, grp in groups.items():
                try:
                    res = await loop.run_in_executor(self._pool, self._translate, [r for r, _ in grp], do_sample)
                except Exception as e:  # noqa: BLE001 - delivered to each waiting request
                    for _, f in grp:
                        if not f.done():
                            f.set_exception(e)
                    continue
                for (_, f), out in zip(grp, res, strict=True):
                    if not f.done():
                        f.set_result(out)

    def stop(self) -> None:
        """Cancel the batching task and release the engine thread (after the last request)."""
        if self._task is not None:
            self._task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _translate(self, rows: list[Utterance], do_sample: bool) -> list[Any]:
        with self._lock:
            return self.engine.translate(
                [r.wav for r in rows], target_language=[r.target_language for r in rows], mode=[r.mode for r in rows],
                speed=[r.speed for r in rows],
                seed=[r.seed for r in rows],  # per row: a request samples the same tokens whatever its batch-mates
                do_sample=do_sample, require_speech=False,  # checked in preprocess (ServeConfig.min_speech_s)
            )


# --------------------------------------------------------------------------------------- model
class UnissPredictor(kserve.Model):
    """``kserve.Model`` serving a :class:`serving.engine.TranslationEngine`.

    Args:
        name: route name (``uniss-s2st``).
        model_uri: local bundle dir or released checkpoint dir (loaded by ``load``); a
            ``models:/NAME@ALIAS`` URI must be resolved first (``uniss serve`` does it with
            ``registry.models.resolve_model_source``).
        engine: an already built engine (tests, notebooks); then ``model_uri`` is not needed.
        config: limits and batching; default from the environment (:class:`ServeConfig`).
        version: registered model version being served (``""`` when not from the registry); sent
            back in the :data:`VERSION_HEADER` response header and the v2 ``model_version`` field,
            and the ``model_version`` label of the metrics (:mod:`serving.metrics`).
    """

    def __init__(self, name: str = MODEL_NAME, *, model_uri: str | None = None, engine: Any = None, config: ServeConfig | None = None,
                 version: str = "") -> None:
        super().__init__(name, return_response_headers=True)
        self.model_uri = model_uri
        self.engine = engine
        self.config = config or ServeConfig()
        self.version = str(version or "")
        self._batcher: _MicroBatcher | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.ready = False

    def load(self) -> bool:
        """Build the engine (if not given), run its one-time set-up (``TranslationEngine.prepare``:
        an S2ST-Omni model's TTS voice references) and mark the model ready.

        Raises:
            serving.engine.ModelLoadError: the model source cannot be loaded.
        """
        if self.engine is None:
            if not self.model_uri:
                raise ModelLoadError("no model given: pass model_uri or engine")
            self.engine = TranslationEngine.load(self.model_uri, device=self.config.device, runtime=self.config.runtime,
                                                 max_batch=self.config.max_batch)
        if hasattr(self.engine, "prepare"):  # ready only once a first request pays no one-time set-up
            self.engine.prepare()
        self._batcher = _MicroBatcher(self.engine, self.config.max_batch, self.config.batch_window_ms / 1000.0)
        self.ready = True
        return self.ready

    def validate(self, payload: Any) -> Any:
        """Validation is done by :meth:`preprocess` (kserve's default expects a raw dict)."""
        return payload

    # ---------------------------------------------------------------- request accounting
    async def __call__(self, body: Any, headers: dict[str, str] | None = None, verb: InferenceVerb = InferenceVerb.PREDICT) -> Any:
        """KServe's request path (preprocess -> predict -> postprocess), counted: in-flight gauge,
        request counter by HTTP status, latency histogram and error counter, all labelled with the
        model name and :attr:`version` (:mod:`serving.metrics`). Exceptions propagate unchanged."""
        labels = {"model_name": self.name, "model_version": self.version}
        self._in_flight += 1
        self._idle.clear()
        metrics.IN_FLIGHT.labels(**labels).inc()
        t0 = time.perf_counter()
        code = 200
        try:
            return await super().__call__(body, headers, verb)
        except Exception as e:
            code = http_status(e)
            metrics.ERRORS.labels(**labels, error=type(e).__name__).inc()
            raise
        finally:
            metrics.REQUESTS.labels(**labels, code=str(code)).inc()
            metrics.LATENCY.labels(**labels).observe(time.perf_counter() - t0)
            metrics.IN_FLIGHT.labels(**labels).dec()
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    @property
    def in_flight(self) -> int:
        """Requests inside :meth:`__call__` now."""
        return self._in_flight

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until no request is in flight (at most ``timeout_s`` seconds; None = no limit).

        Returns:
            True when idle, False when the time ran out first.
        """
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    def stop(self) -> None:
        """Mark not ready and release the batcher and engine (KServe calls it on unload and at
        shutdown; the model repository calls it once a replaced model has drained)."""
        self.ready = False
        if self._batcher is not None:
            self._batcher.stop()
            self._batcher = None
        self.engine = None

    # ---------------------------------------------------------------- preprocess
    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> _Parsed:
        """Validate a v1 dict or v2 ``InferRequest`` into :class:`Utterance` rows.

        Raises:
            kserve.errors.InvalidInput: any malformed field (named in the message).
        """
        cfg = self.config
        size = (headers or {}).get("content-length")
        if size is not None and size.isdigit() and int(size) > cfg.max_body_bytes:
            raise _invalid(f"body: {int(size)} bytes is more than the limit of {cfg.max_body_bytes} bytes")
        if isinstance(payload, InferRequest):
            return self._parse_v2(payload)
        if isinstance(payload, (bytes, bytearray, str)):
            # KServe hands over the raw body when the content type is not JSON, e.g. ``curl -d``'s
            # default application/x-www-form-urlencoded; a JSON body is still read as JSON.
            try:
                payload = json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                raise _invalid("body: not a JSON document; send a JSON object with 'instances' "
                               "(Content-Type: application/json)") from None
        if not isinstance(payload, dict):
            raise _invalid(f"body: expected a JSON object with 'instances', got {type(payload).__name__}")
        return self._parse_v1(payload)

    def _check_batch(self, n: int, field: str) -> None:
        if n == 0:
            raise _invalid(f"{field}: no utterances in the request")
        if n > self.config.max_batch:
            raise _invalid(f"{field}: {n} utterances is more than the limit of {self.config.max_batch} per request")

    def _parse_v1(self, payload: dict) -> _Parsed:
        extra = sorted(set(payload) - {"instances"})
        if extra:
            raise _invalid(f"body: unknown field(s) {extra}; expected only 'instances'")
        inst = payload.get("instances")
        if not isinstance(inst, list):
            raise _invalid("instances: expected a list of objects")
        self._check_batch(len(inst), "instances")
        rows = []
        for i, d in enumerate(inst):
            if not isinstance(d, dict):
                raise _invalid(f"instances[{i}]: expected an object, got {type(d).__name__}")
            try:
                v = V1Instance.model_validate(d)
            except ValidationError as e:
                err = e.errors()[0]
                loc = ".".join(str(x) for x in err["loc"])
                raise _invalid(f"instances[{i}].{loc}: {err['msg']}") from None
            try:
                raw = base64.b64decode(v.audio_b64, validate=True)
            except (binascii.Error, ValueError):
                raise _invalid(f"instances[{i}].audio_b64: not valid base64") from None
            wav = decode_audio(raw, field=f"instances[{i}].audio_b64", min_s=self.config.min_audio_s, max_s=self.config.max_audio_s,
                               min_speech_s=self.config.min_speech_s)
            rows.append(Utterance(wav, v.target_language, v.mode, float(v.speed), v.seed, v.do_sample))
        return _Parsed("v1", rows)

    def _parse_v2(self, req: Any) -> _Parsed:
        try:
            params = _V2Params.model_validate(dict(req.parameters or {}))
        except ValidationError as e:
            err = e.errors()[0]
            raise _invalid(f"parameters.{'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from None
        audio = req.get_input_by_name("audio")
        if audio is None:
            raise _invalid("inputs: no input tensor named 'audio' (BYTES, shape [B])")
        if audio.datatype != "BYTES":
            raise _invalid(f"inputs.audio: datatype must be BYTES, got {audio.datatype}")
        try:
            items = audio.as_numpy().reshape(-1).tolist()
        except Exception as e:  # noqa: BLE001 - bad shapes/contents in a user tensor
            raise _invalid(f"inputs.audio: cannot read the tensor ({e})") from None
        self._check_batch(len(items), "inputs.audio")
        langs: Sequence[str] = [params.target_language] * len(items)
        lang_in = req.get_input_by_name("target_language")
        if lang_in is not None:
            langs = [x.decode() if isinstance(x, bytes) else str(x) for x in lang_in.as_numpy().reshape(-1).tolist()]
            if len(langs) != len(items):
                raise _invalid(f"inputs.target_language: {len(langs)} values for {len(items)} audio rows")
            bad = [x for x in langs if x not in ("en", "zh")]
            if bad:
                raise _invalid(f"inputs.target_language: unknown language {bad[0]!r}; supported: en, zh")
        rows = []
        for i, item in enumerate(items):
            field = f"inputs.audio[{i}]"
            if isinstance(item, str):
                item = item.encode()
            if not isinstance(item, bytes):
                raise _invalid(f"{field}: expected bytes, got {type(item).__name__}")
            if not item[:4] in (b"RIFF", b"fLaC", b"OggS", b"FORM") and item:
                # plain-JSON clients send BYTES as text: accept base64 of the file
                try:
                    item = base64.b64decode(item, validate=True)
                except (binascii.Error, ValueError):
                    pass  # left for the decoder, which names the field
            wav = decode_audio(item, field=field, min_s=self.config.min_audio_s, max_s=self.config.max_audio_s,
                               min_speech_s=self.config.min_speech_s)
            seed = None if params.seed is None else params.seed + i  # row i of a v2 request: seed + i
            rows.append(Utterance(wav, langs[i], params.mode, float(params.speed), seed, params.do_sample))
        return _Parsed("v2", rows, request_id=req.id)

    # ---------------------------------------------------------------- predict
    async def predict(self, payload: _Parsed, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None) -> Any:
        """Run the rows through the micro-batcher and encode the protocol's response; the served
        :attr:`version` goes into ``response_headers`` (:data:`VERSION_HEADER`).

        Raises:
            kserve.errors.InvalidInput: a typed :class:`UnissError` from the engine (bad option).
            NoSpeechOutputError: an output without usable speech (HTTP 422, see :func:`output_wav_bytes`).
            RequestTimeoutError: not done within ``ServeConfig.request_timeout_s`` (HTTP 504).
        """
        if not isinstance(payload, _Parsed):  # called without our preprocess
            payload = self.preprocess(payload, headers)
        if response_headers is not None:
            response_headers[VERSION_HEADER] = self.version
        assert self._batcher is not None, "load() not called"
        limit = self.config.request_timeout_s or None
        try:
            results = await asyncio.wait_for(self._batcher.submit(payload.rows), limit)
        except asyncio.TimeoutError:
            raise RequestTimeoutError(
                f"request: not translated within {limit:g} s (UNISS_SERVE_REQUEST_TIMEOUT_S); the server is busy "
                "or the clip is long: retry later or send a shorter clip") from None
        except UnissError as e:
            raise _invalid(f"request: {e}") from None
        if payload.protocol == "v1":
            audio = output_wav_bytes(results, "predictions[{i}].audio_b64")
            return {
                "predictions": [
                    {
                        "source_text": r.source_text,
                        "target_text": r.target_text,
                        "audio_b64": base64.b64encode(a).decode("ascii"),
                        "duration_s": round(float(r.duration_s), 4),
                        "source_duration_s": round(float(r.source_duration_s), 4),
                        "output_tokens": int(r.output_tokens),
                        "complete": bool(r.complete),
                        "reason": r.reason,
                    }
                    for r, a in zip(results, audio, strict=True)
                ]
            }
        return self._v2_response(payload, results)

    def _v2_response(self, payload: _Parsed, results: list[Any]) -> Any:
        audio = output_wav_bytes(results, "outputs.audio[{i}]")

        def bytes_out(name: str, values: list[bytes]) -> InferOutput:
            o = InferOutput(name=name, shape=[len(values)], datatype="BYTES")
            o.set_data_from_numpy(np.array(values, dtype=np.object_), binary_data=False)
            return o

        dur = InferOutput(name="duration_s", shape=[len(results)], datatype="FP32")
        dur.set_data_from_numpy(np.array([r.duration_s for r in results], dtype=np.float32), binary_data=False)
        outs = [
            bytes_out("source_text", [(r.source_text or "").encode() for r in results]),
            bytes_out("target_text", [(r.target_text or "").encode() for r in results]),
            bytes_out("audio", [base64.b64encode(a) for a in audio]),
            dur,
        ]
        return InferResponse(response_id=payload.request_id or "", model_name=self.name, infer_outputs=outs,
                             model_version=self.version or None)


# --------------------------------------------------------------------------------------- server
BYTES_NOT_TEXT = (
    "inputs: a BYTES element is not UTF-8 text; KServe's REST protocol carries BYTES as text, so send "
    "each audio file as base64 text (plain JSON 'data', or base64 bytes in a binary tensor)"
)


def _is_bytes_not_text(exc: Exception) -> bool:
    msg = str(exc)
    return isinstance(exc, UnicodeDecodeError) or (msg.startswith("Failed to encode") and "using UTF-8" in msg)


def _add_bytes_decode_handler(app: Any) -> None:
    """Answer KServe's "BYTES element is not UTF-8" failure with HTTP 400 instead of 500.

    Registered on KServe's FastAPI ``app`` after ``RESTServer.create_application`` has added its
    own handlers (Starlette keeps one handler per exception class: the last one registered wins).
    The body has KServe's error shape, ``{"error": "..."}``; other ``InferenceError`` s go to
    ``kserve.errors.inference_error_handler`` (HTTP 500) as before.
    """

    async def _bytes_not_text(request: Any, exc: Exception) -> Any:
        if _is_bytes_not_text(exc):
            return JSONResponse(status_code=400, content={"error": BYTES_NOT_TEXT})
        return await inference_error_handler(request, exc)

    app.add_exception_handler(InferenceError, _bytes_not_text)
    app.add_exception_handler(UnicodeDecodeError, _bytes_not_text)


async def _no_speech_output(request: Any, exc: Exception) -> Any:
    return JSONResponse(status_code=NO_SPEECH_STATUS, content={"error": str(exc)})


async def _timed_out(request: Any, exc: Exception) -> Any:
    return JSONResponse(status_code=TIMEOUT_STATUS, content={"error": str(exc)})


def http_status(exc: BaseException) -> int:
    """The HTTP status the server answers ``exc`` with (the handlers registered by KServe and by
    :func:`add_exception_handlers`): 400 bad request, 404 unknown model, 422 no speech, 503 not
    ready, 504 timeout, 500 anything else."""
    from kserve.errors import ModelNotFound, ModelNotReady

    for cls, code in ((InvalidInput, 400), (NoSpeechOutputError, NO_SPEECH_STATUS), (RequestTimeoutError, TIMEOUT_STATUS),
                      (ModelNotFound, 404), (ModelNotReady, 503)):
        if isinstance(exc, cls):
            return code
    return 400 if _is_bytes_not_text(exc) else 500


def add_exception_handlers(app: Any) -> None:
    """Register this module's HTTP mappings on KServe's FastAPI ``app`` (after KServe's own):
    the BYTES-not-text failure -> 400 (:func:`_add_bytes_decode_handler`),
    :class:`NoSpeechOutputError` -> :data:`NO_SPEECH_STATUS` (422) and :class:`RequestTimeoutError`
    -> :data:`TIMEOUT_STATUS` (504), all with KServe's error body
    ``{"error": "..."}``. Starlette picks the handler of the most specific class in the exception's
    MRO, so the subclass handler wins over the ``InferenceError`` one."""
    _add_bytes_decode_handler(app)
    app.add_exception_handler(NoSpeechOutputError, _no_speech_output)
    app.add_exception_handler(RequestTimeoutError, _timed_out)


def serve(model: str | Path | None = None, *, engine: Any = None, host: str = "127.0.0.1", port: int = 8080, config: ServeConfig | None = None) -> None:
    """Load the model (a local bundle or released checkpoint dir, or ``engine``) and serve it until
    SIGINT/SIGTERM (blocking); :func:`serving.server.serve_model` with a fixed source.

    Raises:
        serving.engine.ModelLoadError: the model cannot be loaded (before binding the port).
    """
    from serving.server import serve_model

    serve_model(None if model is None else str(model), engine=engine, host=host, port=port, config=config)
