"""The UniSS model server: KServe's ``ModelServer`` on loopback with a model repository that
reloads the served model with no downtime, readiness that reflects a loaded model, a request
timeout, graceful shutdown and Prometheus metrics.

What KServe 0.21 already gives and is used as is (``kserve/model_server.py``,
``kserve/protocol/rest/*``):

- the model-repository extension of the Open Inference Protocol (Triton's "Model Repository
  Extension"): ``POST /v2/repository/models/{name}/load`` awaits ``ModelRepository.load(name)``
  and answers 503 (``ModelNotReady``) when it fails; :class:`UnissModelRepository` implements
  ``load`` as a zero-downtime reload of its configured source;
- ``GET /metrics`` (``prometheus_client`` default registry): KServe's per-stage latency
  histograms plus the request/error/latency/version metrics of :mod:`serving.metrics`;
- ``GET /v2/models/{name}/ready`` (the model's ``ready`` flag);
- graceful shutdown: uvicorn stops accepting connections on SIGTERM/SIGINT and waits up to
  ``timeout_graceful_shutdown`` (``ModelServer(grace_period=...)`` = ``ServeConfig.grace_period_s``)
  for in-flight requests before exiting; KServe then unloads the models.

What this module adds:

- :class:`LoopbackModelServer`: KServe 0.21's ``RESTServer`` hard-codes
  ``uvicorn.Config(host="0.0.0.0")`` and its gRPC server binds ``[::]``; this subclass disables
  gRPC and sets ``self._rest_server.config.host`` in ``ModelServer._serve`` (the coroutine
  ``start()`` hands to ``asyncio.run`` after building the ``RESTServer``, before uvicorn binds),
  and registers :func:`serving.predictor.add_exception_handlers` on KServe's app.
- ``GET /v2/health/ready``: KServe's ``DataPlane.ready`` always answers ready;
  :class:`UnissDataPlane` answers ready only when every registered model is loaded (503 otherwise).
- :class:`UnissModelRepository`: one named model built from a *source* (``models:/NAME@champion``
  through an injected resolver, or a bundle directory). ``load`` builds the new predictor in a
  worker thread while the old one keeps answering, swaps the repository entry (one dict
  assignment on the event loop: every request that looked the model up before keeps the old
  object), then retires the old predictor once its in-flight requests are done. A failed reload
  keeps the old model serving. ``POST /v2/repository/index`` (Triton's index call) lists the
  model with its version, state (``READY`` / ``UNAVAILABLE``), reason, source and whether a load
  is running.
- The ``/v2/repository/*`` routes answer only loopback clients (403 otherwise): they load code
  and weights, and the server may bind ``0.0.0.0`` inside a container.

Layers: ``serving`` does not import ``registry``; a ``models:/`` source is resolved by the
``resolve`` callable the caller passes (``uniss serve`` passes one built on
``registry.models``), which raises :class:`NoModelYet` when the source names no model yet (no
champion registered).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kserve
from fastapi.responses import JSONResponse
from kserve.errors import ModelNotFound, ModelNotReady
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane

from serving import metrics
from serving.engine import ModelLoadError
from serving.predictor import ServeConfig, UnissPredictor, add_exception_handlers
from uniss.settings import MODEL_NAME

__all__ = [
    "INDEX_ROUTE",
    "LoopbackModelServer",
    "NoModelYet",
    "ResolvedModel",
    "UnissDataPlane",
    "UnissModelRepository",
    "UnissModelServer",
    "serve_model",
]

log = logging.getLogger(__name__)

#: Triton model-repository index call (``POST``); KServe 0.21 registers load/unload only.
INDEX_ROUTE = "/v2/repository/index"
#: Routes that answer loopback clients only.
ADMIN_PREFIX = "/v2/repository"


class NoModelYet(ModelLoadError):
    """The model source names no model yet (e.g. ``models:/NAME@champion`` before any promotion).
    With ``allow_no_model`` the server starts anyway, not ready, and loads on the next
    ``POST /v2/repository/models/{name}/load``."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model source resolved to what :meth:`serving.engine.TranslationEngine.load` takes.

    Attributes:
        path: local bundle or released-checkpoint directory.
        version: registered model version (``""`` when the source is not the registry).
    """

    path: Path
    version: str = ""


Resolver = Callable[[str], ResolvedModel]


def _local_source(source: str) -> ResolvedModel:
    return ResolvedModel(Path(source), "")


class _NotLoaded(kserve.Model):
    """Stands in the repository while no model is loaded: never ready; a request to it is answered
    503 ``ModelNotReady`` with the reason (KServe's ``DataPlane.get_model`` calls ``load``)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name)
        self.reason = reason
        self.version = ""
        self.ready = False

    def load(self) -> bool:
        raise ModelNotReady(self.name, self.reason)


class UnissModelRepository(ModelRepository):
    """KServe model repository holding one :class:`serving.predictor.UnissPredictor` built from
    ``source``, reloadable with no downtime (module docstring).

    Args:
        source: what to serve: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a local
            directory; resolved again on every load, so a reload of ``models:/NAME@champion``
            picks up the new champion.
        name: route name of the model.
        resolve: ``source -> ResolvedModel``; default: ``source`` is a local directory.
            Raises :class:`NoModelYet` when the source names no model yet.
        config: request limits and batching of every predictor built.
    """

    def __init__(self, source: str | None, *, name: str = MODEL_NAME, resolve: Resolver | None = None,
                 config: ServeConfig | None = None) -> None:
        super().__init__()
        self.source = source
        self.name = name
        self.config = config or ServeConfig()
        self._resolve = resolve or _local_source
        self._lock: asyncio.Lock | None = None
        self.loading = False
        self.waiting_for_model = False
        self.last_error = ""
        self.models[name] = _NotLoaded(name, "not loaded yet")

    # ------------------------------------------------------------------ build / swap
    def current(self) -> Any:
        """The model object requests are routed to now."""
        return self.models[self.name]

    def build(self) -> UnissPredictor:
        """Resolve ``source`` and load a new predictor (blocking; runs in a worker thread on reload).

        Raises:
            NoModelYet: the source names no model yet.
            serving.engine.ModelLoadError: the model cannot be loaded (no source, bad bundle ...).
        """
        if not self.source:
            raise ModelLoadError("no model source configured")
        r = self._resolve(self.source)
        pred = UnissPredictor(self.name, model_uri=str(r.path), config=self.config, version=r.version)
        pred.load()
        return pred

    def install(self, new: UnissPredictor) -> None:
        """Route requests to ``new`` from now on (one dict assignment), publish its version in
        ``uniss_model_info``, and retire the model it replaces once that one has no request in
        flight (at once when no event loop runs, i.e. before the server starts)."""
        old = self.models.get(self.name)
        self.update(new, self.name)
        self.waiting_for_model, self.last_error = False, ""
        if isinstance(old, UnissPredictor) and old is not new:
            with contextlib.suppress(KeyError):
                metrics.MODEL_INFO.remove(old.name, old.version, self._label_source(old))
            try:
                asyncio.get_running_loop().create_task(self._retire(old))
            except RuntimeError:
                old.stop()
        metrics.MODEL_INFO.labels(new.name, new.version, self._label_source(new)).set(1)
        log.info("serving %s version %r from %s", new.name, new.version, new.model_uri)

    def _label_source(self, pred: UnissPredictor) -> str:
        return str(self.source or pred.model_uri or "")

    async def _retire(self, old: UnissPredictor) -> None:
        limit = (self.config.request_timeout_s or None) and self.config.request_timeout_s + self.config.grace_period_s
        if not await old.drain(limit):
            log.warning("retiring %s version %r with %d request(s) still in flight", old.name, old.version, old.in_flight)
        old.stop()

    def load_now(self, *, allow_no_model: bool = False) -> None:
        """Load before the server starts (blocking).

        Args:
            allow_no_model: a failure leaves the server without a model (not ready, reason kept for
                the index) instead of raising.

        Raises:
            serving.engine.ModelLoadError: (``allow_no_model`` False) the model cannot be loaded.
        """
        try:
            self.install(self.build())
            metrics.LOADS.labels(self.name, "ok").inc()
        except Exception as e:
            metrics.LOADS.labels(self.name, "error").inc()
            if not allow_no_model:
                raise
            self._failed(e)

    def _failed(self, e: BaseException) -> None:
        self.waiting_for_model = isinstance(e, NoModelYet)
        self.last_error = f"{type(e).__name__}: {e}"
        log.warning("model %s not loaded from %s: %s", self.name, self.source, self.last_error)
        if not isinstance(self.current(), UnissPredictor):
            self.models[self.name] = _NotLoaded(self.name, self.last_error)

    # ------------------------------------------------------------------ KServe hooks
    async def load(self, name: str) -> bool:
        """Zero-downtime reload (``POST /v2/repository/models/{name}/load``): build the new
        predictor in a worker thread while the current one keeps serving, then :meth:`install` it.
        Concurrent calls are serialised.

        Returns:
            True when the new model is installed and ready.

        Raises:
            kserve.errors.ModelNotFound: ``name`` is not this repository's model.
            Exception: whatever :meth:`build` raised (KServe answers 503 with the message); the
                model being served stays.
        """
        if name != self.name:
            raise ModelNotFound(name)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self.loading = True
            try:
                new = await asyncio.to_thread(self.build)
            except Exception as e:
                metrics.LOADS.labels(self.name, "error").inc()
                self._failed(e)
                raise
            finally:
                self.loading = False
            self.install(new)
            metrics.LOADS.labels(self.name, "ok").inc()
        return True

    def load_model(self, name: str) -> bool:
        """Not used: this repository has no model directory to scan."""
        return False

    def index(self) -> list[dict[str, Any]]:
        """Triton-style repository index: one row ``{name, version, state, reason, source,
        loading, waiting_for_model, in_flight}`` (``state`` ``READY`` or ``UNAVAILABLE``)."""
        m = self.current()
        ready = bool(getattr(m, "ready", False))
        return [{
            "name": self.name,
            "version": getattr(m, "version", "") if ready else "",
            "state": "READY" if ready else "UNAVAILABLE",
            "reason": self.last_error or ("" if ready else getattr(m, "reason", "")),
            "source": self.source or getattr(m, "model_uri", "") or "",
            "loading": self.loading,
            "waiting_for_model": self.waiting_for_model,
            "in_flight": getattr(m, "in_flight", 0),
        }]


class UnissDataPlane(DataPlane):
    """KServe's ``DataPlane`` whose server readiness (``GET /v2/health/ready``) reflects the models:
    ready only when at least one model is registered and every registered model is ready."""

    async def ready(self) -> bool:
        """True when every registered model is loaded and ready."""
        models = self._model_registry.get_models()
        if not models:
            return False
        for name in models:
            if not await self._model_registry.is_model_ready(name):
                return False
        return await super().ready()


class _LoopbackOnly:
    """ASGI middleware: requests under :data:`ADMIN_PREFIX` from a non-loopback client get 403."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("path", "").startswith(ADMIN_PREFIX):
            host = (scope.get("client") or ("", 0))[0]
            try:
                ok = ipaddress.ip_address(host).is_loopback
            except ValueError:
                ok = False
            if not ok:
                await JSONResponse(status_code=403, content={"error": f"{ADMIN_PREFIX}/* is served to loopback clients only"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def add_repository_routes(app: Any, repository: UnissModelRepository) -> None:
    """Add ``POST /v2/repository/index`` and the loopback-only guard of ``/v2/repository/*`` to
    KServe's FastAPI ``app`` (before it starts)."""

    async def index() -> list[dict[str, Any]]:
        return repository.index()

    app.add_api_route(INDEX_ROUTE, index, methods=["POST"])
    app.add_middleware(_LoopbackOnly)


class LoopbackModelServer(kserve.ModelServer):
    """A ``kserve.ModelServer`` bound to ``host`` (default loopback), gRPC off, one worker (see the
    module docstring).

    Args:
        host: bind address; ``0.0.0.0`` only inside a container (the InferenceService manifest).
        kw: ``ModelServer`` arguments (``http_port``, ``registered_models``, ``grace_period`` ...).
    """

    def __init__(self, *, host: str = "127.0.0.1", **kw: Any) -> None:
        kw["workers"] = 1  # the multi-process server re-binds sockets itself; one worker keeps the host
        kw.setdefault("enable_grpc", False)
        super().__init__(**kw)
        self.host = host

    def extend_app(self, app: Any) -> None:
        """Called with KServe's FastAPI app right after KServe has built it (routes, handlers)."""
        add_exception_handlers(app)

    async def _serve(self) -> None:
        rest = self._rest_server
        if rest is not None:
            rest.config.host = self.host
            build = rest.create_application  # runs inside rest.start(), awaited below

            def create_application() -> None:
                build()
                from kserve.model_server import app  # the module-level FastAPI app build() filled

                self.extend_app(app)

            rest.create_application = create_application
        await super()._serve()


class UnissModelServer(LoopbackModelServer):
    """:class:`LoopbackModelServer` over a :class:`UnissModelRepository`, with
    :class:`UnissDataPlane` readiness and the repository index / loopback guard.

    Args:
        repository: the model repository (its model may still be :class:`_NotLoaded`).
        host: bind address.
        kw: ``ModelServer`` arguments (``http_port``, ``grace_period`` ...).
    """

    def __init__(self, repository: UnissModelRepository, *, host: str = "127.0.0.1", **kw: Any) -> None:
        super().__init__(host=host, registered_models=repository, **kw)
        self.repository = repository
        self.dataplane = UnissDataPlane(model_registry=repository)

    def extend_app(self, app: Any) -> None:
        """KServe's app plus the exception handlers, the index route and the loopback guard."""
        super().extend_app(app)
        add_repository_routes(app, self.repository)

    def start(self, models: list[Any] | None = None) -> None:  # noqa: D102 - KServe's, models come from the repository
        super().start(list(models or []))


def serve_model(source: str | None = None, *, engine: Any = None, resolve: Resolver | None = None, allow_no_model: bool = False,
                host: str = "127.0.0.1", port: int = 8080, config: ServeConfig | None = None, name: str = MODEL_NAME) -> None:
    """Load the model and serve it until SIGINT/SIGTERM (blocking; graceful: in-flight requests
    finish, up to ``config.grace_period_s``).

    Args:
        source: ``models:/...`` (with ``resolve``) or a local bundle / released checkpoint dir;
            reloaded by ``POST /v2/repository/models/{name}/load``.
        engine: an already built engine served instead of loading ``source`` (tests).
        resolve: ``source -> ResolvedModel`` (see :class:`UnissModelRepository`).
        allow_no_model: start even when the model cannot be loaded (not ready; the reason is in
            ``POST /v2/repository/index``); the embedded stack starts its server this way.
        host / port: bind address and HTTP port.
        config: limits, batching, timeout, grace period (:class:`serving.predictor.ServeConfig`).
        name: route name.

    Raises:
        serving.engine.ModelLoadError: the model cannot be loaded and ``allow_no_model`` is False
            (before binding the port).
    """
    cfg = config or ServeConfig()
    repo = UnissModelRepository(source, name=name, resolve=resolve, config=cfg)
    if engine is not None:
        pred = UnissPredictor(name, engine=engine, config=cfg)
        pred.load()
        repo.install(pred)
    else:
        repo.load_now(allow_no_model=allow_no_model)
    UnissModelServer(repo, host=host, http_port=int(port), grace_period=int(cfg.grace_period_s)).start()
