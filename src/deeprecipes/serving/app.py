"""The HTTP server: TensorFlow Serving's REST API over run directories, on FastAPI and uvicorn.

    GET  /v1/models/NAME[/versions/N]                  model status (TF Serving's GetModelStatusResponse)
    GET  /v1/models/NAME[/versions/N]/metadata         signature: input shape and dtype, outputs
    POST /v1/models/NAME[/versions/N]:predict          {"instances": [...]} -> {"predictions": [...]},
                                                       {"inputs": ...} -> {"outputs": ...}
    POST /v1/models/NAME[/versions/N]:predict_image    PNG/JPEG files (multipart) or one raw image/* body
    GET  /v1/models                                    every model and version (not in TF Serving)
    GET  /health, /metrics (Prometheus), /docs and /openapi.json (OpenAPI)

Every error is ``{"error": "..."}`` with a 4xx status naming the fault (a 5xx only if the model itself fails):
malformed JSON and bad instances 400, a missing or wrong API key 401, an unknown model, version or path 404, a
wrong method 405, a body over the limit 413 (refused from its Content-Length, or as soon as the bytes read pass the
limit, before any parsing). :func:`create_app` builds the app; :func:`serve` runs it, and stops gracefully on
SIGTERM or Ctrl-C: no new connections, requests in flight and queued batches finish, then the batch workers stop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DeepRecipesError
from .batching import Batcher, ShuttingDown
from .inputs import BadRequest, json_response
from .models import ModelSpec, ServedModel, load_models

__all__ = ["create_app", "serve", "ServeOptions", "API_KEY_ENV"]

log = logging.getLogger("deeprecipes")

API_KEY_ENV = "DEEPRECIPES_API_KEY"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class ServeOptions:
    """The server's settings; the CLI's defaults.

    max_batch : most instances the batcher runs together (1 or ``batching=False``: every request alone)
    max_delay_ms : how long the first request of a batch waits for others
    max_instances : most instances in one request (more is a 413)
    max_body_mb : largest request body (more is a 413)
    api_key : when set, /v1 requests need ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``
    """

    max_batch: int = 32
    max_delay_ms: float = 2.0
    batching: bool = True
    max_instances: int = 1024
    max_body_mb: float = 16.0
    api_key: str | None = None
    which: str = "best"

    def check(self) -> None:
        for key in ("max_batch", "max_instances"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
        for key in ("max_delay_ms", "max_body_mb"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0 or value > 1e6:
                raise ConfigError(f"{key} must be a number >= 0, got {value!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("the API key is empty")


@dataclass
class _Server:
    """What the routes share: models, batchers, metrics, options."""

    models: dict[str, dict[int, ServedModel]]
    options: ServeOptions
    executor: ThreadPoolExecutor
    registry: Any
    requests: Any
    latency: Any
    batch_size: Any
    batchers: dict[str, Batcher] = field(default_factory=dict)
    address: str = ""  # where serve() listens

    def lookup(self, name: str, version: str | None) -> ServedModel:
        versions = self.models.get(name)
        if versions is None:
            raise BadRequest(f"Servable not found for request: model '{name}' is not served", 404)
        if version is None:
            return versions[max(versions)]
        if not version.isdigit():
            raise BadRequest(f"version '{version}' of model '{name}' is not an integer")
        if int(version) not in versions:
            raise BadRequest(f"Servable not found for request: version {version} of model '{name}'", 404)
        return versions[int(version)]


def _metrics() -> tuple[Any, Any, Any, Any, Any]:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry()  # one per app: several apps in one process (tests) keep their own counts
    requests = Counter(
        "deeprecipes_serve_requests",
        "HTTP requests by model, endpoint and status code",
        ["model", "endpoint", "code"],
        registry=registry,
    )
    latency = Histogram(
        "deeprecipes_serve_request_seconds",
        "request latency",
        ["model", "endpoint"],
        buckets=_LATENCY_BUCKETS,
        registry=registry,
    )
    batch = Histogram(
        "deeprecipes_serve_batch_size", "instances per model run", ["model"], buckets=_BATCH_BUCKETS, registry=registry
    )
    queued = Gauge("deeprecipes_serve_queued_instances", "instances waiting for a batch", ["model"], registry=registry)
    return registry, requests, latency, batch, queued


class _Guard:
    """Pure ASGI middleware: refuses bodies over the limit with 413 before the app parses them, and counts and
    times every request for /metrics (labels set by the routes in ``scope["state"]``)."""

    def __init__(self, app: Any, server: _Server) -> None:
        self.app, self.server = app, server
        self.limit = int(server.options.max_body_mb * 1024 * 1024)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status, seen = time.perf_counter(), [500], [0]
        state = scope.setdefault("state", {})
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit():
            await _send_error(send, 400, f"Content-Length is not a number: {length[:40]!r}")
            self._count(state, 400, start)
            return
        if int(length) > self.limit:
            await _send_error(
                send, 413, f"request body too large ({int(length)} bytes); the limit is {self.limit} bytes"
            )
            self._count(state, 413, start)
            return

        async def limited_receive() -> dict:
            message = await receive()
            seen[0] += len(message.get("body", b""))
            if seen[0] > self.limit:
                raise _TooLarge
            return message

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_status)
        except _TooLarge:
            status[0] = 413
            await _send_error(send, 413, f"request body too large; the limit is {self.limit} bytes")
        self._count(state, status[0], start)

    def _count(self, state: dict, code: int, start: float) -> None:
        model, endpoint = state.get("model", "-"), state.get("endpoint", "other")
        self.server.requests.labels(model, endpoint, str(code)).inc()
        self.server.latency.labels(model, endpoint).observe(time.perf_counter() - start)


class _TooLarge(Exception):
    pass


async def _send_error(send: Any, code: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(
    models: Sequence[str | Path | ModelSpec] | dict[str, dict[int, ServedModel]],
    options: ServeOptions | None = None,
    **kwargs: Any,
) -> Any:
    """The FastAPI app serving ``models``: run directories or specs (``NAME=RUN_DIR``, ``NAME@2=RUN_DIR``; see
    :mod:`deeprecipes.serving.models`), or models already loaded. Options as :class:`ServeOptions` or keywords."""
    options = options or ServeOptions(**kwargs)
    options.check()
    loaded = models if isinstance(models, dict) else load_models(list(models), which=options.which)
    registry, requests, latency, batch, queued = _metrics()
    server = _Server(loaded, options, ThreadPoolExecutor(1, "deeprecipes-infer"), registry, requests, latency, batch)
    for versions in loaded.values():
        for m in versions.values():
            server.batchers[m.label] = Batcher(
                m.run,
                server.executor,
                max_batch=options.max_batch if options.batching else 1,
                max_delay=options.max_delay_ms / 1000.0,
                on_batch=batch.labels(m.label).observe,
                on_queue=queued.labels(m.label).set,
            )
    return _build(server)


def _build(server: _Server) -> Any:
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from . import routes

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        for b in server.batchers.values():
            b.start()
        if server.address:  # uvicorn now handles SIGTERM and Ctrl-C: a client or supervisor may go ahead
            names = ", ".join(
                f"{n} (version{'s' if len(v) > 1 else ''} {', '.join(map(str, sorted(v)))})"
                for n, v in server.models.items()
            )
            log.info("serving %s on %s", names, server.address)
        yield
        for b in server.batchers.values():
            await b.close()  # what was queued runs; then the worker stops
        server.executor.shutdown(wait=True)
        log.info("batch workers stopped")

    app = FastAPI(
        title="deeprecipes model server",
        description="TensorFlow Serving's REST API over deeprecipes run directories.",
        lifespan=lifespan,
    )
    app.state.server = server
    app.include_router(routes.router(server.options.api_key))

    async def http_error(request: Any, exc: Any) -> Any:
        return json_response({"error": str(exc.detail)}, exc.status_code, getattr(exc, "headers", None))

    async def bad_request(request: Any, exc: Any) -> Any:
        return json_response({"error": str(exc)}, exc.status)

    async def invalid(request: Any, exc: Any) -> Any:
        return json_response({"error": f"invalid request: {exc.errors()[:1]}"}, 400)

    async def shutting_down(request: Any, exc: Any) -> Any:
        return json_response({"error": str(exc)}, 503)

    async def failed(request: Any, exc: Exception) -> Any:  # a bug, not a bad request: still JSON, and logged
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return json_response({"error": f"internal error: {type(exc).__name__}: {exc}"}, 500)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(BadRequest, bad_request)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(ShuttingDown, shutting_down)
    app.add_exception_handler(Exception, failed)
    app.add_middleware(_Guard, server=server)
    return app


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, so that a taken port or bad host is one line before the server starts."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OverflowError) as e:
        raise DeepRecipesError(f"cannot listen on {host}:{port}: {e}") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise DeepRecipesError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def serve(
    models: Sequence[str | Path | ModelSpec],
    *,
    host: str = "127.0.0.1",
    port: int = 8501,
    threads: int | None = None,
    options: ServeOptions | None = None,
    **kwargs: Any,
) -> None:
    """Serve run directories over HTTP until SIGTERM or Ctrl-C (then stop gracefully). ``port=0`` picks a free
    port; the address is logged as ``serving on http://HOST:PORT``. Options as :func:`create_app`; the API key
    defaults to ``$DEEPRECIPES_API_KEY``."""
    import torch
    import uvicorn

    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be an integer in 0..65535, got {port!r}")
    options = options or ServeOptions(**kwargs)
    if options.api_key is None and os.environ.get(API_KEY_ENV):
        options.api_key = os.environ[API_KEY_ENV]
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be an integer >= 1, got {threads!r}")
        torch.set_num_threads(threads)
    options.check()
    sock = _listen(host, port)  # a taken port stops the command before the models load
    try:
        app = create_app(models, options)
    except BaseException:
        sock.close()
        raise
    shown = sock.getsockname()
    app.state.server.address = f"http://{host if ':' not in host else f'[{host}]'}:{shown[1]}"
    config = uvicorn.Config(
        app, log_level="warning", timeout_graceful_shutdown=30, access_log=False, server_header=False
    )
    try:
        _graceful_server(config).run(sockets=[sock])
    finally:
        sock.close()
    log.info("server stopped")


def _graceful_server(config: Any) -> Any:
    """uvicorn's Server, whose SIGTERM and SIGINT only start its graceful shutdown; the process then exits with
    status 0 (uvicorn itself raises the signal again afterwards, which would end the process by that signal)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            saved = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in saved.items():
                    signal.signal(s, handler)

    return Server(config)
