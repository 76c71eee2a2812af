"""Read-only looks straight into each store, for the demos (what a student would query)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from neo4j import AsyncGraphDatabase
from pydantic import SecretStr

from campus_common.config import CampusSettings, PostgresDsn


class StoreSettings(CampusSettings):
    users_db_password: SecretStr
    ts_db_password: SecretStr
    neo4j_password: SecretStr
    redis_password: SecretStr


def _s() -> StoreSettings:
    return StoreSettings()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def pg_user(user_id: int) -> dict[str, Any] | None:
    s = _s()
    dsn = PostgresDsn(
        host=s.pg_host,
        port=s.pg_port,
        database="campus",
        user="campus_users",
        password=s.users_db_password,
    ).dsn()
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT id, email::text, full_name FROM users WHERE id = $1", user_id
        )
        return dict(row) if row else None
    finally:
        await conn.close()


async def neo4j_user(user_id: int) -> dict[str, Any] | None:
    s = _s()
    uri = f"bolt://{s.neo4j_host}:{s.neo4j_bolt_port}"
    async with AsyncGraphDatabase.driver(
        uri, auth=("neo4j", s.neo4j_password.get_secret_value())
    ) as d:
        records, _, _ = await d.execute_query(
            "MATCH (u:User {id: $id}) RETURN u.full_name AS full_name, u.lsn AS lsn", id=user_id
        )
        return dict(records[0]) if records and records[0]["full_name"] is not None else None


async def redis_get(key: str) -> str | None:
    s = _s()
    r = aioredis.Redis(
        host=s.redis_host,
        port=s.redis_port,
        password=s.redis_password.get_secret_value(),
        decode_responses=True,
    )
    try:
        value = await r.get(key)
        return value.decode() if isinstance(value, bytes) else value
    finally:
        await r.aclose()


async def ts_events(user_id: int, event_type: str) -> int:
    s = _s()
    dsn = PostgresDsn(
        host=s.ts_pg_host,
        port=s.ts_pg_port,
        database="campus_ts",
        user="campus_ts",
        password=s.ts_db_password,
    ).dsn()
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM events WHERE user_id = $1 AND event_type = $2",
                user_id,
                event_type,
            )
        )
    finally:
        await conn.close()
