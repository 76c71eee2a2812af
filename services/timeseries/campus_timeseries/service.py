"""Analytics over `events`, and the upkeep of the store (rollup refresh, partitions)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg_pool import AsyncConnectionPool

from campus_common.errors import InvalidError, UnavailableError
from campus_timeseries import repository as repo
from campus_timeseries.schemas import (
    Bucket,
    DailyActiveUsers,
    DayCount,
    Overview,
    Point,
    RecentEvent,
    Timeline,
    TopUsers,
    TypeCount,
    UserActivity,
    UserCount,
)

log = logging.getLogger(__name__)

BUCKETS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
MAX_POINTS = 1440
DEFAULT_POINTS = 60
MAX_WINDOW = timedelta(days=365)
PROJECTION = "timeseries"
_WINDOW = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_window(window: str) -> timedelta:
    """'90m', '24h', '7d' as a timedelta; 422 for anything else or beyond a year."""
    match = _WINDOW.match(window)
    if not match:
        raise InvalidError(f"window must look like 90m, 24h or 7d, not {window!r}")
    span = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if not timedelta(0) < span <= MAX_WINDOW:
        raise InvalidError(f"window must be more than 0 and at most {MAX_WINDOW.days}d")
    return span


def timeline_start(*, now: datetime, width: timedelta, since: datetime | None) -> datetime:
    """Where a timeline starts: `since`, or DEFAULT_POINTS buckets back; 422 if too many."""
    if since is None:
        return now - width * (DEFAULT_POINTS - 1)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # a time without an offset is taken as UTC
    if (now - since) / width > MAX_POINTS:
        raise InvalidError(
            f"since is too far back for {width}: at most {MAX_POINTS} buckets per timeline"
        )
    return since


@asynccontextmanager
async def _reading(pool: AsyncConnectionPool) -> AsyncIterator[repo.Conn]:
    # One snapshot per request, so the numbers of one answer agree with each other.
    try:
        async with pool.connection() as conn:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn
    except psycopg.OperationalError as exc:
        raise UnavailableError("the time-series store is unavailable, try again shortly") from exc


async def overview(*, pool: AsyncConnectionPool) -> Overview:
    """Totals, counts by type, the last hour minute by minute, the newest event."""
    async with _reading(pool) as conn:
        state = await repo.status(conn, projection=PROJECTION)
        types = await repo.counts_by_type(conn)
        hour = await repo.timeline(
            conn, width=BUCKETS["1m"], since=state["now"] - timedelta(hours=1), event_type=None
        )
    newest = max((t["newest"] for t in types if t["newest"] is not None), default=None)
    return Overview(
        storage=state["storage"],
        total_events=sum(t["events"] for t in types),
        newest_event_at=newest,
        by_type=[TypeCount(event_type=t["event_type"], events=t["events"]) for t in types],
        last_hour=[Point(**p) for p in hour],
        cdc_heartbeat_at=state["beat_at"],
    )


async def timeline(
    *, pool: AsyncConnectionPool, bucket: Bucket, event_type: str | None, since: datetime | None
) -> Timeline:
    """Events per bucket since a time (default: the last 60 buckets), optionally of one type."""
    width = BUCKETS[bucket]
    async with _reading(pool) as conn:
        start = timeline_start(now=await repo.now(conn), width=width, since=since)
        rows = await repo.timeline(conn, width=width, since=start, event_type=event_type)
    points = [Point(**r) for r in rows]
    return Timeline(
        bucket=bucket,
        type=event_type,
        since=start,
        total=sum(p.events for p in points),
        points=points,
    )


async def user_activity(*, pool: AsyncConnectionPool, user_id: int, limit: int) -> UserActivity:
    """What one user did: counts by type, first and last event, the latest events."""
    async with _reading(pool) as conn:
        counts = await repo.user_counts(conn, user_id=user_id)
        recent = await repo.user_recent(conn, user_id=user_id, limit=limit)
    return UserActivity(
        user_id=user_id,
        total_events=sum(c["events"] for c in counts),
        first_event_at=min((c["first_at"] for c in counts), default=None),
        last_event_at=max((c["last_at"] for c in counts), default=None),
        by_type=[TypeCount(event_type=c["event_type"], events=c["events"]) for c in counts],
        recent=[RecentEvent(**r) for r in recent],
    )


async def top_users(*, pool: AsyncConnectionPool, window: str, limit: int) -> TopUsers:
    """The most active users over a trailing window."""
    span = parse_window(window)
    async with _reading(pool) as conn:
        since = await repo.now(conn) - span
        rows = await repo.top_users(conn, since=since, limit=limit)
    return TopUsers(window=window, since=since, users=[UserCount(**r) for r in rows])


async def daily_active_users(*, pool: AsyncConnectionPool, days: int) -> DailyActiveUsers:
    """Distinct active users per UTC day, today and the days before, empty days included."""
    async with _reading(pool) as conn:
        now = await repo.now(conn)
        today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        first = today - timedelta(days=days - 1)
        rows = await repo.daily_active_users(conn, since=first, until=today + timedelta(days=1))
    by_day = {r["day"].astimezone(UTC).date(): r["users"] for r in rows}
    points = [
        DayCount(day=d, active_users=by_day.get(d, 0))
        for d in ((first + timedelta(days=i)).date() for i in range(days))
    ]
    return DailyActiveUsers(days=days, points=points)


async def maintain(
    *, pool: AsyncConnectionPool, refresh_s: float, partitions_ahead: str, stop: asyncio.Event
) -> None:
    """Keep partitions ahead of time (hourly) and the rollups fresh, until `stop` is set."""
    next_partitions = 0.0
    while not stop.is_set():
        wait = refresh_s
        try:
            if time.monotonic() >= next_partitions:
                async with pool.connection() as conn:
                    created = await repo.ensure_partitions(conn, ahead=partitions_ahead)
                if created:
                    log.info("created %d partitions of events", created)
                next_partitions = time.monotonic() + 3600
            started = time.monotonic()
            async with pool.connection() as conn:
                refreshed = await repo.refresh_rollups(conn)
            took = time.monotonic() - started
            if refreshed:
                log.debug("rollups refreshed in %.2fs", took)
            # A refresh grows with the table: keep it to about a tenth of the time.
            wait = max(refresh_s, 10 * took)
        except Exception as exc:  # the store may be down: try again next round
            log.warning("store upkeep failed: %s: %s", type(exc).__name__, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
