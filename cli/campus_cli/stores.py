"""Read-only looks straight into each store, for the demos (what a student would query)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from neo4j import AsyncDriver, AsyncGraphDatabase
from pydantic import SecretStr
from redis.asyncio.cluster import RedisCluster

from campus_common.config import StoreSettings as CommonStoreSettings


class StoreSettings(CommonStoreSettings):
    """What the CLI needs to look into each store itself (demos, reconcile); the addresses
    and credentials come from campus_common.config, the one place they are spelled."""

    docs_db_password: SecretStr
    # The gateway's trims (same variables): the reconcile must know how much Redis keeps.
    activity_list_max: int = 50
    hot_posts_max: int = 1000

    def neo4j(self) -> AsyncDriver:
        return AsyncGraphDatabase.driver(self.neo4j_uri, auth=self.neo4j_auth)

    def mongo_options(self) -> dict[str, Any]:
        """Keyword arguments for AsyncMongoClient, as the documents service connects."""
        return {
            **self.mongo_client_options(self.docs_db_password),
            "serverSelectionTimeoutMS": 5000,
        }

    def redis(self) -> aioredis.Redis | RedisCluster:
        if self.redis_cluster:  # the cluster topology: any node leads to all of them
            return RedisCluster(**self.redis_client_options())
        return aioredis.Redis(**self.redis_client_options())


def _s() -> StoreSettings:
    return StoreSettings()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def pg_user(user_id: int) -> dict[str, Any] | None:
    conn = await asyncpg.connect(_s().users_dsn())
    try:
        row = await conn.fetchrow(
            "SELECT id, email::text, full_name FROM users WHERE id = $1", user_id
        )
        return dict(row) if row else None
    finally:
        await conn.close()


async def neo4j_user(user_id: int) -> dict[str, Any] | None:
    async with _s().neo4j() as d:
        records, _, _ = await d.execute_query(
            "MATCH (u:User {id: $id}) RETURN u.full_name AS full_name, u.lsn AS lsn", id=user_id
        )
        return dict(records[0]) if records and records[0]["full_name"] is not None else None


async def redis_get(key: str) -> str | None:
    r = _s().redis()
    try:
        value = await r.get(key)
        return value.decode() if isinstance(value, bytes) else value
    finally:
        await r.aclose()


async def ts_events(user_id: int, event_type: str) -> int:
    conn = await asyncpg.connect(_s().ts_dsn())
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
