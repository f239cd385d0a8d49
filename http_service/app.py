"""The team-hosted completion service: a FastAPI shell over repoctx's library.

Routes (see README.md for the request and response shapes; `repoctx.service.routes`):

* ``POST /v1/completions``: OpenAI-compatible completions (``prompt``, ``suffix`` for FIM,
  ``max_tokens``, ``temperature``, ``stop``, ``stream`` as server-sent events).
* ``POST /v1/code/completions``: prefix, suffix and client-side context snippets (plus the
  shared repositories named in ``repos``): `repoctx.pipeline.Completer`'s candidates, plan
  and finish steps, fitted to the model window in the model's own tokens, post-processed
  like the editor's completions.
* ``GET|POST /v1/code/context``: the context engine's answer for a cursor in a shared repository.
* ``GET /health``, ``GET /v1/models``, ``GET /metrics`` (Prometheus).

The modules, by job: `bodies` (request bodies), `screening` (the library's secret and path
policy applied to client text), `guard` (an ASGI middleware: API key, per-key token bucket
and concurrency cap, body size and time, stalled connections), `gate` (per engine, a bounded
FIFO queue in front of a fixed number of generation slots; 503 with Retry-After when full;
a client that disconnects cancels its generation), `service` (engines, shared repositories,
caches, routing), `routes`, `metrics`, `errors`, `settings`, `security`; this module builds
the app and runs it under uvicorn.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from repoctx.config import ConfigError
from repoctx.engines.base import EngineError, EngineUnavailable

from .errors import CLIENT_GONE, ClientGone, ServiceError, error_response, validation_message
from .gate import Gate
from .guard import Guard, uvicorn_options as connection_options
from .metrics import Metrics
from .routes import add_routes, tenant_of
from .security import KeyStore, check_startup
from .state import EngineFactory, Service
from .settings import ServiceSettings

log = logging.getLogger("repoctx.service")


# ----------------------------------------------------------------------------------- the app

def create_app(settings: ServiceSettings | None = None, keys: KeyStore | None = None,
               engines: dict[str, Any] | None = None, engine_factory: EngineFactory | None = None) -> FastAPI:
    """The FastAPI app. `engines` ({"default": engine, "long": engine}) skips building them (tests);
    such engines are not closed by the service."""
    settings = settings or ServiceSettings()
    service = Service(settings, keys, engines, engine_factory)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="repoctx completion service", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.add_middleware(Guard, service=service)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.kind, exc.code, exc.param, exc.retry_after)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(list(exc.errors()))
        service.metrics.rejected.labels("invalid").inc()
        return error_response(422, message, param=param, code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None)

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone) -> Response:
        request.scope["repoctx.status"] = CLIENT_GONE
        return Response(status_code=CLIENT_GONE)

    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, exc: EngineError) -> JSONResponse:
        if isinstance(exc, EngineUnavailable):  # every upstream is down: a refusal, retry later
            return error_response(503, f"engine unavailable: {exc}", "overloaded_error", "engine_unavailable",
                                  retry_after=exc.retry_after)
        timed_out = "timed out" in str(exc)
        return error_response(504 if timed_out else 500, f"engine error: {exc}", "engine_error",
                              "timeout" if timed_out else "engine_failed")

    # -- plain routes ---------------------------------------------------------------------------
    @app.get("/health")
    async def health() -> JSONResponse:
        status = "draining" if service.draining else ("ok" if service.ready else "starting")
        repos = collections.Counter(repo.state for repo in service.repos.values())
        body = {
            "status": status,
            "engines": {name: {"model": slot.model_id, "kind": slot.kind, "context_window": slot.window,
                               "queue_depth": slot.gate.waiting, "running": slot.gate.running,
                               **({"pool": slot.engine.status()} if hasattr(slot.engine, "status") else {})}
                        for name, slot in service.slots.items()},
            "repos": dict(repos),
        }
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    @app.get("/v1/models")
    async def models() -> dict:
        created = int(time.time())
        return {"object": "list", "data": [
            {"id": slot.model_id, "object": "model", "created": created, "owned_by": "repoctx",
             "context_window": slot.window, "engine": slot.kind, "template": slot.template.family}
            for slot in service.slots.values()]}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        for slot in service.slots.values():
            slot.gate._gauges()
        # Other tenants' names and token counts, and repositories a key may not use, stay hidden.
        visible = None if settings.metrics_public else service.visible(tenant_of(request))
        data, content_type = service.metrics.render(visible)
        return Response(content=data, media_type=content_type)

    add_routes(app, service)
    return app


# ----------------------------------------------------------------------------------- running it

def _uvicorn_config(app: FastAPI, settings: ServiceSettings, **overrides: Any):
    import uvicorn

    service = getattr(app.state, "service", None)

    def header_timeout() -> None:
        if service is not None:
            service.metrics.rejected.labels("header_timeout").inc()

    options: dict[str, Any] = dict(
        host=settings.host, port=settings.port, lifespan="on", log_level=settings.log_level,
        timeout_graceful_shutdown=max(1, math.ceil(settings.drain_timeout_s)),
        proxy_headers=False, server_header=False, **connection_options(settings, header_timeout),
    )
    options.update(overrides)
    return uvicorn.Config(app, **options)


def _server_class():
    import uvicorn

    class ServiceServer(uvicorn.Server):
        """uvicorn's server, telling the service to drain before uvicorn stops accepting connections."""

        async def shutdown(self, sockets=None) -> None:
            service = getattr(getattr(self.config.app, "state", None), "service", None)
            if service is not None:
                service.begin_drain()
            await super().shutdown(sockets)

    return ServiceServer


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, settings: ServiceSettings | None = None, host: str = "127.0.0.1", port: int = 0,
                    startup_timeout_s: float = 120.0, **uvicorn_options: Any):
    """Run `app` under uvicorn in a thread (tests, benchmarks); yields (base_url, server). Port 0 = a free port."""
    settings = settings or app.state.service.settings
    config = _uvicorn_config(app, settings, host=host, port=port, log_level=uvicorn_options.pop("log_level", "warning"),
                             **uvicorn_options)
    server = _server_class()(config)
    thread = threading.Thread(target=server.run, name="repoctx-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the service failed to start (see the log)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the service did not start within {startup_timeout_s:g} s")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{host}:{bound[1]}", server
    finally:
        server.should_exit = True
        thread.join(timeout=settings.drain_timeout_s + 30)


def main(args: Any = None) -> int:
    """``repoctx serve``: settings from --config/$REPOCTX_SERVICE_CONFIG, the environment and the flags."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServiceSettings.load(getattr(args, "config", None))
    settings.apply_cli(args)
    settings.check()
    keys = KeyStore.from_settings(settings)
    for warning in check_startup(settings, keys):
        log.warning("%s", warning)
    if len(keys):
        log.info("%d API keys loaded (%s)", len(keys), ", ".join(keys.names))
    app = create_app(settings, keys)
    server = _server_class()(_uvicorn_config(app, settings))
    server.run()
    if not server.started:
        raise ConfigError("the service did not start (see the log above)")
    return 0


__all__ = ["create_app", "main", "serve_in_thread", "Service", "Gate", "Guard", "Metrics"]
