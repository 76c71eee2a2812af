"""The FastAPI pieces every service shares: app factory, /health, /metrics, error bodies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campus_common import runtime, telemetry
from campus_common.errors import DomainError, TooManyRequestsError
from campus_common.internal_auth import Verifier, internal_caller

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[Any]]
# How often the background probe behind /health/ready runs: orchestrators and load balancers
# may call /health/ready many times a second, and each call must not fan out to every store.
PROBE_INTERVAL_S = 1.0

REQUESTS = Counter(
    "campus_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "campus_http_request_seconds", "HTTP request latency", ["service", "method", "route"]
)
MAX_BODY_BYTES = 1_000_000
# Set (by stack/services/run.sh) when the service runs several uvicorn workers: each writes its
# metrics to files there, and /metrics must answer for all of them, whichever worker is asked.
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def metrics_registry() -> CollectorRegistry:
    """What /metrics exposes: this process's metrics, or, under several workers, every
    worker's summed from their files (counters and histograms added up; a gauge keeps one
    series per worker, labelled `pid`, prometheus_client's default `all` mode, because each
    worker's projection member holds its own partitions, as each instance of the cluster
    topology does, and the dashboards aggregate by projection)."""
    if not MULTIPROC_DIR:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)  # type: ignore[no-untyped-call]
    return registry


class DependencyRead(BaseModel):
    status: Literal["ok", "down"]
    latency_ms: float
    error: str | None = None


class HealthRead(BaseModel):
    service: str
    status: Literal["ok", "degraded", "starting"]
    dependencies: dict[str, DependencyRead]


class LiveRead(BaseModel):
    service: str
    status: Literal["ok"]


def create_app(
    *,
    service: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    routers: list[APIRouter],
    title: str | None = None,
    verifier: Callable[[], Verifier] | None = None,
) -> FastAPI:
    """A service app with JSON errors, request metrics, /health, /health/live, /health/ready
    and /metrics.

    With `verifier` (every internal service), each route of `routers` answers only requests
    carrying a service token from a caller it trusts; the health routes and /metrics stay open.
    """

    @asynccontextmanager
    async def flushed(app: FastAPI) -> AsyncIterator[None]:
        if verifier is not None:
            app.state.verifier = verifier()
        async with lifespan(app):
            runtime.settle_heap()  # what start-up built lives as long as the process
            prober = asyncio.create_task(_probe_forever(app), name="health-probe")
            try:
                yield
            finally:
                prober.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await prober
        telemetry.shutdown()  # the last spans of a stopping service still reach Zipkin
        if MULTIPROC_DIR:
            # This worker's live gauges leave the sum; its counters stay in it (totals never
            # go back). A worker that dies without this keeps its last gauge values until the
            # next start of the service empties the directory (stack/services/run.sh).
            multiprocess.mark_process_dead(os.getpid(), MULTIPROC_DIR)  # type: ignore[no-untyped-call]

    app = FastAPI(title=title or f"CampusConnect {service}", lifespan=flushed)
    app.state.service = service
    app.state.health_checks = {}
    app.state.readiness = None  # the latest background probe's body, None before the first

    app.add_middleware(_Measure, service=service)
    telemetry.instrument_app(app)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        headers = (
            {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequestsError) else None
        )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(OSError)
    @app.exception_handler(TimeoutError)
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        # A store or sibling service is down or too slow: say so, and keep the trace in our log.
        log.warning("dependency unavailable on %s %s: %r", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": "a backing service is unavailable, try again shortly"}, status_code=503
        )

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        # Log the trace for us; the caller gets a message, never the trace.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.get(
        "/health",
        tags=["ops"],
        response_model=HealthRead,
        responses={503: {"model": HealthRead, "description": "a dependency is down"}},
    )
    async def health() -> JSONResponse:
        """Every dependency checked now, for a person diagnosing; probes use live/ready."""
        body = await _check_all(service, app.state.health_checks)
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.get("/health/live", tags=["ops"], response_model=LiveRead)
    async def live() -> Response:
        """The process serves HTTP; touches no dependency (a store outage restarts nothing)."""
        return Response(live_body, media_type="application/json")

    @app.get(
        "/health/ready",
        tags=["ops"],
        response_model=HealthRead,
        responses={503: {"model": HealthRead, "description": "a dependency is down, or starting"}},
    )
    async def ready() -> JSONResponse:
        """The last background probe (at most about a second old); 503 until the first."""
        body = app.state.readiness
        if body is None:
            body = {"service": service, "status": "starting", "dependencies": {}}
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    live_body = orjson.dumps({"service": service, "status": "ok"})

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(metrics_registry()), media_type=CONTENT_TYPE_LATEST)

    guard = [Depends(internal_caller)] if verifier is not None else []
    for router in routers:
        app.include_router(router, dependencies=guard)
    return app


class _TooLargeError(StarletteHTTPException):
    """An HTTPException, so FastAPI's body reading re-raises it instead of answering 400."""

    def __init__(self) -> None:
        super().__init__(413, f"request body larger than {MAX_BODY_BYTES} bytes")


class _Measure:
    """Request metrics and the body-size cap, as plain ASGI.

    A pure ASGI middleware rather than @app.middleware("http"), which wraps every request in
    extra tasks and streams (measured: it halved a hello app's requests/s). The size cap also
    counts streamed bodies, which a Content-Length check alone would let through.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
                await _too_large(scope, receive, send)
                return
        status = 500
        started_response = False
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise _TooLargeError
            return message

        async def capture(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, counted, capture)
        except _TooLargeError:
            status = 413
            if not started_response:
                await _too_large(scope, receive, send)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            LATENCY.labels(self.service, method, path).observe(time.perf_counter() - started)
            REQUESTS.labels(self.service, method, path, str(status)).inc()


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse(
        {"detail": f"request body larger than {MAX_BODY_BYTES} bytes"}, status_code=413
    )
    await response(scope, receive, send)


async def _check_all(service: str, checks: Mapping[str, HealthCheck]) -> dict[str, Any]:
    results = await asyncio.gather(*(_run_check(fn) for fn in checks.values()))
    deps = dict(zip(checks.keys(), results, strict=True))
    ok = all(d["status"] == "ok" for d in deps.values())
    return {"service": service, "status": "ok" if ok else "degraded", "dependencies": deps}


async def _probe_forever(app: FastAPI, interval_s: float = PROBE_INTERVAL_S) -> None:
    """Keep app.state.readiness current for /health/ready: one probe round per interval."""
    while True:
        started = time.monotonic()
        try:
            app.state.readiness = await _check_all(app.state.service, app.state.health_checks)
        except Exception:
            # _run_check catches each check's failure; this guards the loop itself.
            log.exception("health probe failed")
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))


async def _run_check(fn: HealthCheck, timeout: float = 2.0) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(fn(), timeout)
        status, error = "ok", None
    except Exception as exc:
        status, error = "down", f"{type(exc).__name__}: {exc}"[:300]
    out: dict[str, Any] = {
        "status": status,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if error:
        out["error"] = error
    return out


async def noop_lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield


MAX_ID = 2**63 - 1  # bigint: larger ids would overflow the driver rather than be "not found"
# An id in a path and a keyset cursor, validated alike everywhere: out of range is a 422.
Id = Annotated[int, Path(gt=0, le=MAX_ID)]
After = Annotated[int, Query(ge=0, le=MAX_ID)]
