"""Poison records and dead letters, and a schema change while writes flow."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from campus_cli import dlq
from campus_common import topics
from campus_common.events import Event
from tests.conftest import StackSettings
from tests.e2e.conftest import Load, converged
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


async def test_poison_is_dead_lettered_and_the_projections_carry_on(
    stack: StackSettings, admin_http: httpx.AsyncClient
) -> None:
    marker = f"poison-{uuid.uuid4().hex}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topics.USERS, b"{" + marker, key=b'{"id":1}')
    finally:
        await producer.stop()
    async with httpx.AsyncClient(
        base_url=stack.service_url("users"), timeout=10, auth=stack.operator_auth()
    ) as http:
        user = (
            await http.post(
                "/users",
                json={
                    "email": unique_email("after-poison"),
                    "full_name": "After Poison",
                    "password": "after-poison",
                },
            )
        ).json()

    for projection in ("graph", "cache", "timeseries"):

        async def letters(p: str = projection) -> list[dlq.DeadLetter]:
            return [d for d in await dlq.list_letters(p) if d.value and marker in d.value]

        found = await eventually(letters, timeout=20, interval=0.5)
        assert len(found) == 1, projection
        assert found[0].original_topic == topics.USERS and found[0].error

    # The record after the poison was applied everywhere.
    assert (
        await eventually(lambda: _ts_rows(stack, f"cdc:users:created:{user['id']}"), timeout=15)
        == 1
    )
    await converged(stack, admin_http)


async def test_a_fixed_dead_letter_is_replayed_exactly_once(stack: StackSettings) -> None:
    # A valid event dead-lettered earlier (say by a bug since fixed), straight into the DLQ.
    event = Event(type="test.replayed", source="e2e", key="replay", payload={"why": "fixed"})
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka.bootstrap_servers)
    await producer.start()
    try:
        meta = await producer.send_and_wait(
            topics.dead_letter("timeseries"),
            event.to_bytes(),
            key=b"replay",
            headers=[
                ("error", b"RuntimeError: a bug, since fixed"),
                ("original_topic", topics.DOCUMENT_EVENTS.encode()),
                ("original_partition", b"0"),
                ("original_offset", b"0"),
            ],
        )
    finally:
        await producer.stop()
    assert await _ts_rows(stack, str(event.id)) == 0

    done = await dlq.replay("timeseries", {(meta.partition, meta.offset)})
    assert [d.offset for d in done] == [meta.offset]
    assert await eventually(lambda: _ts_rows(stack, str(event.id)), timeout=15) == 1
    # Replaying again sends nothing: the replay group remembers it.
    assert await dlq.replay("timeseries", {(meta.partition, meta.offset)}) == []
    listed = [
        d
        for d in await dlq.list_letters("timeseries")
        if d.offset == meta.offset and d.partition == meta.partition
    ]
    assert listed and listed[0].replayed
    await asyncio.sleep(2)
    assert await _ts_rows(stack, str(event.id)) == 1


async def test_a_new_column_while_writes_flow_reaches_the_stores_that_use_it(
    stack: StackSettings, admin_http: httpx.AsyncClient
) -> None:
    column = f"e2e_{uuid.uuid4().hex[:6]}"
    su = stack.superuser_dsn("campus")
    conn = await asyncpg.connect(su)
    try:
        async with Load(stack, rate=20):
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
        await converged(stack, admin_http)
    finally:
        await conn.execute(f"ALTER TABLE users DROP COLUMN IF EXISTS {column}")
        await conn.close()


async def test_every_projection_kept_running(stack: StackSettings) -> None:
    async with httpx.AsyncClient(timeout=10, auth=stack.operator_auth()) as http:
        for svc in ("graph", "timeseries"):
            for p in (await http.get(f"{stack.service_url(svc)}/projections")).json():
                assert p["state"] == "running", p
