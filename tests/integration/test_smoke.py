"""Smoke tests: every real server of the native stack answers, and CDC flows end to end."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from neo4j import AsyncGraphDatabase
from pymongo import AsyncMongoClient

from campus_common import topics
from campus_common.events import ChangeRecord
from tests.conftest import StackSettings

pytestmark = pytest.mark.integration


async def test_postgres_insert_reaches_kafka_as_a_debezium_record(stack: StackSettings) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka.bootstrap_servers)
        await admin.start()
        try:
            (described,) = await admin.describe_topics([topics.GROUPS])
        finally:
            await admin.close()
        parts = [TopicPartition(topics.GROUPS, p["partition"]) for p in described["partitions"]]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:  # resolve the end offsets now, before the insert
            await consumer.position(tp)
        name = f"smoke-{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(stack.users_dsn())
        try:
            group_id = await conn.fetchval(
                "INSERT INTO groups (name, course_code) VALUES ($1, 'SMOKE-1') RETURNING id", name
            )
        finally:
            await conn.close()

        async def find() -> ChangeRecord:
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for rec in records:
                        change = ChangeRecord.from_bytes(rec.value)
                        if change.after and change.after.get("name") == name:
                            return change

        change = await asyncio.wait_for(find(), timeout=10)
        assert change.op == "c"
        assert change.after is not None and change.after["id"] == group_id
        assert change.source.table == "groups" and change.position > 0
    finally:
        await consumer.stop()


async def test_neo4j_cypher_round_trip(stack: StackSettings) -> None:
    uri = stack.neo4j_uri
    async with AsyncGraphDatabase.driver(uri, auth=stack.neo4j_auth) as driver:
        marker = uuid.uuid4().hex
        records, _, _ = await driver.execute_query(
            "CREATE (n:Smoke {marker: $m}) RETURN n.marker AS m", m=marker
        )
        assert records[0]["m"] == marker
        await driver.execute_query("MATCH (n:Smoke {marker: $m}) DELETE n", m=marker)


async def test_mongo_wire_insert_and_find(stack: StackSettings) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        host=stack.mongo_host,
        port=stack.mongo_port,
        username="campus_docs",
        password=stack.docs_db_password.get_secret_value(),
        authMechanism="PLAIN",
        serverSelectionTimeoutMS=5000,
    )
    try:
        coll = client["smoke"]["things"]
        marker = uuid.uuid4().hex
        await coll.insert_one({"marker": marker, "tags": ["a", "b"]})
        found = await coll.find_one({"marker": marker})
        assert found is not None and found["tags"] == ["a", "b"]
        await coll.delete_many({"marker": marker})
    finally:
        await client.close()


async def test_redis_set_get(stack: StackSettings) -> None:
    r = aioredis.Redis(
        **stack.redis_client_options(),
    )
    try:
        key = f"smoke:{uuid.uuid4().hex}"
        await r.set(key, "ok", ex=30)
        assert await r.get(key) == b"ok"
    finally:
        await r.aclose()


@pytest.mark.parametrize("service", ["users", "documents", "graph", "timeseries", "gateway"])
async def test_every_service_is_healthy(
    stack: StackSettings, http: httpx.AsyncClient, service: str
) -> None:
    resp = await http.get(f"{stack.service_url(service)}/health")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "ok"
    metrics = await http.get(f"{stack.service_url(service)}/metrics")
    assert metrics.status_code == 200 and "campus_http_requests_total" in metrics.text
