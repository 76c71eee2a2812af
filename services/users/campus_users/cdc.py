"""The replication slot Debezium reads: how much WAL it pins, exported for the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, Request
from prometheus_client import Gauge

from campus_common.internal_auth import privileged_caller

log = logging.getLogger(__name__)
router = APIRouter(tags=["cdc"], dependencies=[Depends(privileged_caller)])

SLOT_RETAINED = Gauge(
    "campus_replication_slot_retained_bytes", "WAL the slot keeps from being recycled", ["slot"]
)
SLOT_LAG = Gauge(
    "campus_replication_slot_lag_bytes", "WAL written but not yet confirmed by Debezium", ["slot"]
)
SLOT_ACTIVE = Gauge("campus_replication_slot_active", "1 while Debezium is connected", ["slot"])

# pg_replication_slots is readable without privileges; the service role needs nothing more.
SLOTS_SQL = """
SELECT slot_name, plugin, active, wal_status,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained_bytes,
       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag_bytes,
       confirmed_flush_lsn::text AS confirmed_flush_lsn,
       pg_current_wal_lsn()::text AS current_lsn
FROM pg_replication_slots
WHERE slot_type = 'logical'
ORDER BY slot_name
"""


async def slots(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every logical slot with its retained WAL and confirmed-flush lag in bytes."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(SLOTS_SQL)
    out = [dict(r) for r in rows]
    for s in out:
        SLOT_RETAINED.labels(s["slot_name"]).set(s["retained_bytes"] or 0)
        SLOT_LAG.labels(s["slot_name"]).set(s["lag_bytes"] or 0)
        SLOT_ACTIVE.labels(s["slot_name"]).set(1 if s["active"] else 0)
    return out


async def export_forever(pool: asyncpg.Pool, interval: float = 5.0) -> None:
    """Keep the slot gauges current for Prometheus even when nobody asks the API."""
    while True:
        with contextlib.suppress(Exception):
            await slots(pool)
        await asyncio.sleep(interval)


@router.get("/cdc/slots")
async def get_slots(request: Request) -> list[dict[str, Any]]:
    """Logical replication slots (Debezium's), with WAL retained and lag in bytes."""
    return await slots(request.app.state.pool)
