"""Analytics (time-series service) and the cache status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from campus_common import projection_api
from campus_gateway import cache_group, contract
from campus_gateway.auth import ensure_self
from campus_gateway.cache import CacheUnavailableError
from campus_gateway.contract import errors
from campus_gateway.routes.deps import (
    Admin,
    Caller,
    Gw,
    Id,
    passthrough,
    rate_limited,
)
from campus_gateway.service import Gateway

router = APIRouter(responses=errors(), dependencies=[Depends(rate_limited)])
Scope = Literal["user", "address"]
Subject = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Fa-f.:]+$")]


@router.get("/analytics", tags=["analytics"], response_model=contract.Overview)
async def analytics(gw: Gw, request: Request) -> Response:
    """Event totals, counts by type, events per time bucket, the newest event."""
    return await _analytics(gw, request, "/analytics")


@router.get("/analytics/timeline", tags=["analytics"], response_model=contract.Timeline)
async def analytics_timeline(
    gw: Gw,
    request: Request,
    bucket: Literal["1m", "5m", "15m", "1h", "1d"] = "1m",
    event_type: Annotated[str | None, Query(alias="type", max_length=200)] = None,
    since: datetime | None = None,
) -> Response:
    """Events per time bucket since a time, optionally of one type."""
    return await _analytics(gw, request, "/analytics/timeline")


@router.get(
    "/analytics/users/{user_id}/activity", tags=["analytics"], response_model=contract.UserActivity
)
async def analytics_user_activity(
    user_id: Id,
    gw: Gw,
    request: Request,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> Response:
    """One user's events: counts by type, first and last, the latest ones (your own; the admin
    may see anyone's)."""
    ensure_self(caller, user_id, action="see activity")
    return await _analytics(gw, request, f"/analytics/users/{user_id}/activity")


@router.get("/analytics/top-users", tags=["analytics"], response_model=contract.TopUsers)
async def analytics_top_users(
    gw: Gw,
    request: Request,
    window: Annotated[str, Query(max_length=10, description="e.g. 90m, 24h, 7d")] = "24h",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Response:
    """The most active users over a trailing window."""
    return await _analytics(gw, request, "/analytics/top-users")


@router.get("/analytics/dau", tags=["analytics"], response_model=contract.DailyActiveUsers)
async def analytics_dau(
    gw: Gw, request: Request, days: Annotated[int, Query(ge=1, le=366)] = 7
) -> Response:
    """Distinct active users per UTC day."""
    return await _analytics(gw, request, "/analytics/dau")


async def _analytics(gw: Gateway, request: Request, path: str) -> Response:
    reply = await gw.upstream.call(
        "timeseries", "GET", path, params=request.query_params.multi_items()
    )
    return passthrough(reply)


@router.get("/cache-status", tags=["cache"], response_model=contract.CacheStatus)
async def cache_status(gw: Gw, admin: Admin) -> dict[str, Any]:
    """Hit ratio, keys per prefix, memory, and how far the `cache` projection lags (admin)."""
    out: dict[str, Any] = {}
    try:
        out["redis"] = {"status": "ok", **await gw.cache.status()}
    except CacheUnavailableError as exc:
        out["redis"] = {"status": "down", "error": str(exc)}
    runner = gw.projections["cache"]
    out["projection"] = {
        **await cache_group.describe(gw, await projection_api.describe(runner)),
        "connected": runner.consumer is not None,
    }
    return out
