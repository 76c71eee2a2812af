"""A schema change while the mixed load flows (poison records and dead-letter replays are
cases of the fault suite, test_faults.py)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from campus_cli.load import MixedLoad, verify
from tests.conftest import StackSettings
from tests.e2e.conftest import converged
from tests.helpers import eventually, unique_email

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def _ts_rows(stack: StackSettings, dedupe_key: str) -> int:
    dsn = stack.ts_dsn()
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM events WHERE dedupe_key = $1", dedupe_key)
        )
    finally:
        await conn.close()


async def test_a_new_column_while_writes_flow_reaches_the_stores_that_use_it(
    stack: StackSettings, admin_http: httpx.AsyncClient
) -> None:
    column = f"e2e_{uuid.uuid4().hex[:6]}"
    su = stack.superuser_dsn("campus")
    conn = await asyncpg.connect(su)
    try:
        async with MixedLoad(stack.service_url("gateway"), rate=12) as load:
            await asyncio.sleep(2)
            # A migration adding a nullable column, mid-load.
            await conn.execute(f"ALTER TABLE users ADD COLUMN {column} text")
            await asyncio.sleep(2)
            uid = await conn.fetchval(
                f"INSERT INTO users (email, full_name, password_hash, {column}) "
                "VALUES ($1, 'Schema Change', 'x', 'she/her') RETURNING id",
                unique_email("schema"),
            )
            await asyncio.sleep(2)
        # The time-series store keeps the whole row: the new field is there.
        dsn = stack.ts_dsn()
        ts = await asyncpg.connect(dsn)
        try:

            async def prop() -> str | None:
                return await ts.fetchval(  # type: ignore[no-any-return]
                    "SELECT properties->>$2 FROM events WHERE dedupe_key = $1",
                    f"cdc:users:created:{uid}",
                    column,
                )

            assert await eventually(prop, timeout=20) == "she/her"
        finally:
            await ts.close()
        await converged()
        assert await verify(load) == []
    finally:
        await conn.execute(f"ALTER TABLE users DROP COLUMN IF EXISTS {column}")
        await conn.close()


async def test_every_projection_kept_running(stack: StackSettings) -> None:
    async with httpx.AsyncClient(timeout=10, auth=stack.operator_auth()) as http:
        for svc in ("graph", "timeseries"):
            for p in (await http.get(f"{stack.service_url(svc)}/projections")).json():
                assert p["state"] == "running", p
