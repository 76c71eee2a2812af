from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from campus_common import telemetry
from campus_common.consumer import ProjectionRunner
from campus_common.kafka import reachable
from campus_common.logging import configure_logging
from campus_common.web import create_app
from campus_gateway import cache_group, dashboard
from campus_gateway.cache import Cache, CacheUnavailableError, new_redis
from campus_gateway.config import SERVICES, get_settings
from campus_gateway.projection import CacheProjection
from campus_gateway.ratelimit import LoginLimits, RateLimiter
from campus_gateway.rebuild import CacheRebuild
from campus_gateway.routes import admin, groups, ops, posts, social, users
from campus_gateway.service import Gateway, ensure_admin
from campus_gateway.upstream import Upstream, UpstreamError

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    die_with_uvicorn_supervisor()
    settings = get_settings()
    configure_logging("gateway", settings.log_level)
    telemetry.setup(service="gateway", config=settings.tracing, libraries=("redis",))
    redis = new_redis(settings)
    cache = Cache(redis, settings)
    upstream_clients = Upstream(settings)

    def new_runner() -> ProjectionRunner[Any]:
        return ProjectionRunner(CacheProjection(cache, settings), kafka=settings.kafka)

    runner = new_runner()
    gw = Gateway(
        settings=settings, upstream=upstream_clients, cache=cache, projections={"cache": runner}
    )
    app.state.gateway = gw
    app.state.projections = gw.projections
    app.state.rebuilders = gw.rebuilders
    background: list[asyncio.Task[None]] = []
    app.state.limiter = RateLimiter(
        cache,
        window_s=settings.rate_limit_window_s,
        per_address=settings.rate_limit_per_address,
        per_user=settings.rate_limit_per_user,
        login=LoginLimits(
            window_s=settings.login_window_s,
            per_address=settings.login_limit_per_address,
            failures_per_account=settings.login_failures_per_account,
            lockout_s=settings.login_lockout_s,
        ),
    )
    app.state.health_checks = _health_checks(gw)
    if settings.cache_projection_enabled:
        await runner.start()
        rebuild = CacheRebuild(gw, new_runner)
        gw.rebuilders["cache"] = rebuild.rebuild
        background.append(asyncio.create_task(rebuild.watch_forever(), name="cache-rebuild"))
        background.append(
            asyncio.create_task(cache_group.publish_beats_forever(gw), name="cache-freshness")
        )
    # In the background: the gateway serves (and reports the users service down) meanwhile.
    background.append(asyncio.create_task(ensure_admin(gw=gw), name="ensure-admin"))
    try:
        yield
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await gw.projections["cache"].stop()  # a rebuild may have put a fresh runner in place
        await upstream_clients.aclose()
        await redis.aclose()


def die_with_uvicorn_supervisor() -> None:
    """A worker of `uvicorn --workers` exits with its supervisor, even a supervisor killed by
    SIGKILL (nothing can forward that). Otherwise orphaned workers keep the listening socket:
    the restarted supervisor cannot bind the port, and `kill -9` of the gateway leaves it
    answering."""
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return  # the supervised process itself (one worker): supervisord watches it
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent.pid:  # the supervisor died before the line above
        os._exit(1)


def _health_checks(gw: Gateway) -> dict[str, Any]:
    async def redis() -> None:
        await gw.cache.redis.ping()

    async def kafka() -> None:
        await reachable(gw.settings.kafka)

    def service(name: str) -> Any:
        async def check() -> None:
            # The service's own background probe: asking its /health would make every call here
            # fan out to each service's stores as well.
            resp = await gw.upstream.clients[name].get("/health/ready", timeout=1.5)
            if resp.status_code != 200:
                try:
                    deps = resp.json().get("dependencies", {})
                    down = sorted(k for k, v in deps.items() if v.get("status") != "ok")
                except (ValueError, AttributeError):
                    down = []
                raise RuntimeError(f"{name} answers {resp.status_code}; down behind it: {down}")

        return check

    checks: dict[str, Any] = {"redis": redis, "kafka": kafka}
    checks.update({name: service(name) for name in SERVICES})
    return checks


# Flat on purpose: every level of included routers costs each request a walk through it.
routers = [m.router for m in (users, groups, posts, social, ops, admin)] + [
    users.reads,
    groups.reads,
    social.reads,
    admin.projections,
    dashboard.router,
]
app = create_app(service="gateway", lifespan=lifespan, routers=routers, title="CampusConnect API")

# What a 422 really carries: `create_app`'s `{"detail": "invalid request", "errors": [...]}`, or a
# service's `{"detail": "<why>"}` passed through. FastAPI documents its own default (`detail` as a
# list), which no response matches, so clients generated from /openapi.json would reject them.
VALIDATION_ERROR_BODY: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "title": "Detail"},
        "errors": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ValidationError"},
            "title": "Errors",
        },
    },
}


def _openapi_with_real_errors() -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = VALIDATION_ERROR_BODY
    return app.openapi_schema  # type: ignore[return-value]


app.openapi = _openapi_with_real_errors  # type: ignore[method-assign]


@app.exception_handler(UpstreamError)
async def upstream_error(_: Request, exc: UpstreamError) -> JSONResponse:
    # A service's 429 (the users service's argon2 queue is full) keeps its Retry-After.
    headers = {"Retry-After": "1"} if exc.status_code == 429 else None
    return JSONResponse(exc.body, status_code=exc.status_code, headers=headers)


@app.exception_handler(CacheUnavailableError)
async def cache_down(_: Request, exc: CacheUnavailableError) -> JSONResponse:
    return JSONResponse(
        {"detail": "the cache (Redis) is unavailable, try again shortly"}, status_code=503
    )


@app.exception_handler(httpx.HTTPError)
async def http_error(_: Request, exc: httpx.HTTPError) -> JSONResponse:
    return JSONResponse(
        {"detail": "a backing service is unavailable, try again shortly"}, status_code=503
    )
