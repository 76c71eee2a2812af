from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from psycopg_pool import AsyncConnectionPool

from campus_common.web import MAX_ID
from campus_timeseries import service
from campus_timeseries.schemas import (
    Bucket,
    DailyActiveUsers,
    Overview,
    Timeline,
    TopUsers,
    UserActivity,
)

router = APIRouter(prefix="/analytics", tags=["analytics"])


async def pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool  # type: ignore[no-any-return]


Pool = Annotated[AsyncConnectionPool, Depends(pool)]


@router.get("")
async def overview(pool: Pool) -> Overview:
    """Total events, counts by type, the last hour per minute, newest event, storage path."""
    return await service.overview(pool=pool)


@router.get("/timeline")
async def timeline(
    pool: Pool,
    bucket: Bucket = "1m",
    event_type: Annotated[
        str | None, Query(alias="type", max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    ] = None,
    since: datetime | None = None,
) -> Timeline:
    """Events per bucket (1m, 5m, 15m, 1h, 1d) since a time, optionally of one type."""
    return await service.timeline(pool=pool, bucket=bucket, event_type=event_type, since=since)


@router.get("/users/{user_id}/activity")
async def user_activity(
    pool: Pool,
    user_id: Annotated[int, Path(gt=0, le=MAX_ID)],
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> UserActivity:
    """One user's events: counts by type, first and last, the latest `limit`."""
    return await service.user_activity(pool=pool, user_id=user_id, limit=limit)


@router.get("/top-users")
async def top_users(
    pool: Pool,
    window: Annotated[str, Query(max_length=10)] = "24h",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> TopUsers:
    """The most active users over a trailing window (e.g. 90m, 24h, 7d)."""
    return await service.top_users(pool=pool, window=window, limit=limit)


@router.get("/dau")
async def daily_active_users(
    pool: Pool, days: Annotated[int, Query(ge=1, le=366)] = 7
) -> DailyActiveUsers:
    """Distinct active users per UTC day over the last `days` days."""
    return await service.daily_active_users(pool=pool, days=days)
