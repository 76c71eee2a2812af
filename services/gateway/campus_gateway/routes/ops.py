"""Analytics (time-series service), cache status, and the admin-only controls."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, status
from fastapi.responses import Response

from campus_common import projection_api
from campus_gateway.cache import CacheUnavailableError
from campus_gateway.consumers import CacheProjection
from campus_gateway.ratelimit import RateLimiter
from campus_gateway.routes.deps import Admin, Gw, admin_principal, passthrough, rate_limited
from campus_gateway.schemas import RateLimitOverride

router = APIRouter(dependencies=[Depends(rate_limited)])
Scope = Literal["user", "address"]
Subject = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Fa-f.:]+$")]


@router.get("/analytics", tags=["analytics"])
async def analytics(gw: Gw, request: Request) -> Response:
    """Event totals, counts by type, events per time bucket, the newest event."""
    reply = await gw.upstream.call(
        "timeseries", "GET", "/analytics", params=request.query_params.multi_items()
    )
    return passthrough(reply)


@router.get("/analytics/{rest:path}", tags=["analytics"])
async def analytics_detail(
    rest: Annotated[str, Path(max_length=200)], gw: Gw, request: Request
) -> Response:
    """The time-series service's other views (timeline, a user's activity, top users, DAU)."""
    reply = await gw.upstream.call(
        "timeseries", "GET", f"/analytics/{rest}", params=request.query_params.multi_items()
    )
    return passthrough(reply)


@router.get("/cache-status", tags=["cache"])
async def cache_status(gw: Gw) -> dict[str, Any]:
    """Hit ratio, keys per prefix, memory, and how far the `cache` projection lags."""
    out: dict[str, Any] = {}
    try:
        out["redis"] = {"status": "ok", **await gw.cache.status()}
    except CacheUnavailableError as exc:
        out["redis"] = {"status": "down", "error": str(exc)}
    runner = gw.projections["cache"]
    projection: dict[str, Any] = await projection_api.describe(runner)
    proj = runner.projection
    if isinstance(proj, CacheProjection) and proj.last_heartbeat_at is not None:
        # The heartbeat row is rewritten every few seconds upstream: its age is the staleness.
        projection["staleness_s"] = round(time.time() - proj.last_heartbeat_at.timestamp(), 3)
    projection["connected"] = runner.consumer is not None
    out["projection"] = projection
    return out


@router.put("/admin/rate-limits/{scope}/{subject}", tags=["admin"])
async def set_rate_limit(
    scope: Scope, subject: Subject, body: RateLimitOverride, request: Request, _: Admin
) -> dict[str, Any]:
    """Give one user (by id) or client address its own limit for `ttl_s` seconds."""
    limiter: RateLimiter = request.app.state.limiter
    await limiter.set_override(
        scope=_scope(scope),
        subject=subject,
        limit=body.limit,
        window_s=body.window_s,
        ttl_s=body.ttl_s,
    )
    return {"scope": scope, "subject": subject, **body.model_dump()}


@router.delete(
    "/admin/rate-limits/{scope}/{subject}", status_code=status.HTTP_204_NO_CONTENT, tags=["admin"]
)
async def clear_rate_limit(scope: Scope, subject: Subject, request: Request, _: Admin) -> None:
    """Back to the default limits."""
    limiter: RateLimiter = request.app.state.limiter
    await limiter.clear_override(scope=_scope(scope), subject=subject)


def _scope(scope: Scope) -> str:
    return "addr" if scope == "address" else "user"


# The projection controls every service has; on the public gateway only the admin reaches them.
projections = APIRouter(dependencies=[Depends(rate_limited), Depends(admin_principal)])
projections.include_router(projection_api.router)
