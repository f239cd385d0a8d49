"""What every request and connection passes before a route sees it.

* `Guard` (ASGI middleware): API key, per-key token bucket and concurrency cap, body size
  and body time, the access log and metrics of every request.
* `HeaderTimeout` (a uvicorn protocol): a connection that has not sent a request's headers
  within ``limits.header_timeout_s`` of opening, or of its previous response, is closed, so
  clients that connect and stall (slowloris) cannot hold the ``max_connections`` slots;
  idle keep-alive connections close after ``limits.keep_alive_s``. `uvicorn_options` gives
  uvicorn these and the header size limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi.responses import Response

from .errors import CLIENT_GONE, error_response
from .security import ANONYMOUS, presented_key
from .settings import ServiceSettings

log = logging.getLogger("repoctx.service")
access_log = logging.getLogger("repoctx.service.access")

ROUTES = {
    "/health": "/health",
    "/metrics": "/metrics",
    "/v1/models": "/v1/models",
    "/v1/completions": "/v1/completions",
    "/v1/code/completions": "/v1/code/completions",
    "/v1/code/context": "/v1/code/context",
}
COSTLY = {"/v1/completions", "/v1/code/completions", "/v1/code/context"}
"""Routes that spend the per-key rate limit and concurrency cap."""


class Guard:
    """Pure ASGI middleware: metrics for every request; key, rate limit, concurrency cap and body size.

    It buffers the body (at most ``max_body_bytes``, within ``body_timeout_s``) before the app
    sees it, then hands the app a `receive` that replays it and afterwards passes through to
    the server's, so the handlers can wait for ``http.disconnect``. It writes the access log
    (path, status, time, tenant; never the query string) and turns an unexpected exception
    into a JSON 500.
    """

    def __init__(self, app: Any, service: Any) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = ROUTES.get(scope.get("path", ""), "other")
        method = scope.get("method", "GET")
        status = [500]
        started = time.perf_counter()

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                scope["repoctx.started"] = True
            await send(message)

        try:
            await self._guarded(scope, receive, send_status, route)
        except Exception:
            # A bug must not become a plain-text traceback nor cost the client its connection:
            # log it (without the request, which may hold code) and answer a JSON 500.
            log.exception("%s %s failed", method, scope.get("path", ""))
            if status[0] == 500 and not scope.get("repoctx.started"):
                await error_response(500, "internal error (see the service log)", "server_error",
                                     "internal_error")(scope, receive, send_status)
        finally:
            recorded = scope.get("repoctx.status", status[0])
            elapsed = time.perf_counter() - started
            self.service.metrics.requests.labels(route, method, str(recorded)).inc()
            self.service.metrics.latency.labels(route).observe(elapsed)
            # The access log names the path only: query strings (GET /v1/code/context) carry code.
            client = scope.get("client") or ("-", 0)
            access_log.info('%s:%s "%s %s" %s %.0f ms %s', client[0], client[1], method, scope.get("path", ""),
                            recorded, elapsed * 1000, scope.get("repoctx.tenant", "-"))

    async def _refuse(self, scope: dict, receive: Callable, send: Callable, reason: str, response: Response) -> None:
        self.service.metrics.rejected.labels(reason).inc()
        await response(scope, receive, send)

    async def _guarded(self, scope: dict, receive: Callable, send: Callable, route: str) -> None:
        service = self.service
        settings = service.settings
        if route == "/health" or (route == "/metrics" and settings.metrics_public):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if len(service.keys):
            tenant = service.keys.authenticate(presented_key(headers))
            if tenant is None:
                missing = presented_key(headers) is None
                message = ("missing API key: send 'Authorization: Bearer <key>'" if missing else "invalid API key")
                await self._refuse(scope, receive, send, "auth",
                                   error_response(401, message, "authentication_error", "invalid_api_key"))
                return
        else:
            tenant = ANONYMOUS
        scope["repoctx.tenant"] = tenant
        if route not in COSTLY:
            await self.app(scope, receive, send)
            return
        if service.draining:
            await self._refuse(scope, receive, send, "draining",
                               error_response(503, "the service is shutting down", "overloaded_error", "shutting_down",
                                              retry_after=5))
            return
        wait = service.limiter.take(tenant)
        if wait > 0:
            await self._refuse(scope, receive, send, "rate_limit", error_response(
                429, f"rate limit: {settings.limits.requests_per_minute:g} requests per minute per key "
                     f"(burst {settings.limits.burst}); retry in {math.ceil(wait)} s",
                "rate_limit_error", "rate_limited", retry_after=wait))
            return
        if not service.concurrency.acquire(tenant):
            await self._refuse(scope, receive, send, "concurrency", error_response(
                429, f"too many requests in flight for this key (at most {settings.limits.max_concurrent_per_key})",
                "rate_limit_error", "too_many_concurrent_requests", retry_after=1))
            return
        try:
            limit = settings.limits.max_body_bytes
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                await self._refuse(scope, receive, send, "body_size", error_response(
                    413, f"request body of {int(length)} bytes is over the {limit}-byte limit", code="body_too_large"))
                return
            chunks: list[bytes] = []
            size = 0
            deadline = time.monotonic() + settings.limits.body_timeout_s
            while True:
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    await self._refuse(scope, receive, send, "body_timeout", error_response(
                        408, f"the request body did not arrive within {settings.limits.body_timeout_s:g} s",
                        code="body_timeout"))
                    return
                if message["type"] == "http.disconnect":
                    scope["repoctx.status"] = CLIENT_GONE
                    return
                body = message.get("body", b"")
                size += len(body)
                if size > limit:
                    await self._refuse(scope, receive, send, "body_size", error_response(
                        413, f"request body is over the {limit}-byte limit", code="body_too_large"))
                    return
                chunks.append(body)
                if not message.get("more_body", False):
                    break
            replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

            async def replaying() -> dict:
                if replay:
                    return replay.pop()
                return await receive()

            await self.app(scope, replaying, send)
        finally:
            service.concurrency.release(tenant)


def header_timeout_protocol(timeout_s: float, on_timeout: Callable[[], None] | None = None) -> type:
    """uvicorn's HTTP protocol (h11, or httptools when installed) with a deadline for request headers."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class HeaderTimeout(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None

        # uvicorn sets `cycle` when a request's headers are complete: the deadline is met.
        @property
        def cycle(self) -> Any:
            return self.__dict__.get("_cycle")

        @cycle.setter
        def cycle(self, value: Any) -> None:
            self.__dict__["_cycle"] = value
            if value is not None:
                self._stop_header_timer()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._start_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            cycle = self.cycle
            if not self.transport.is_closing() and (cycle is None or cycle.response_complete):
                self._start_header_timer()  # the next request's headers are due in time too

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_timer()
            super().connection_lost(exc)

        def _start_header_timer(self) -> None:
            self._stop_header_timer()
            self._header_timer = self.loop.call_later(timeout_s, self._headers_late)

        def _stop_header_timer(self) -> None:
            timer = self.__dict__.pop("_header_timer", None)
            if timer is not None:
                timer.cancel()

        def _headers_late(self) -> None:
            self.__dict__.pop("_header_timer", None)
            cycle = self.cycle
            if self.transport.is_closing() or (cycle is not None and not cycle.response_complete):
                return
            if on_timeout is not None:
                on_timeout()
            self.transport.close()

    return HeaderTimeout


def uvicorn_options(settings: ServiceSettings, on_header_timeout: Callable[[], None] | None = None) -> dict[str, Any]:
    """uvicorn's connection limits and timeouts from the service's settings."""
    limits = settings.limits
    return dict(
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=limits.keep_alive_s,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        http=header_timeout_protocol(limits.header_timeout_s, on_header_timeout),
        access_log=False,  # `Guard` writes the access log, without query strings
    )
