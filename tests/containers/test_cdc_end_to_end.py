"""CDC end to end on fresh containers: PostgreSQL -> Debezium (Kafka Connect) -> Kafka -> the
graph projection into Neo4j and the gateway's cache projection into Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import pytest
from neo4j import AsyncGraphDatabase
from redis.asyncio import Redis
from testcontainers.core.container import DockerContainer

from tests.containers.support import (
    Secrets,
    containers,
    port,
    service_command,
    wait_healthy,
    wait_http,
)
from tests.helpers import eventually, unique_email

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1200)]

KAFKA_ENV = {
    "CLUSTER_ID": "5L6g3nShT-eMCtK--X86sw",
    "KAFKA_NODE_ID": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093",
    "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://kafka:9092",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka:9093",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    "KAFKA_NUM_PARTITIONS": "3",
    "KAFKA_HEAP_OPTS": "-Xms384m -Xmx384m",
}
# As docker-compose.yml and stack/connect/run.sh: connectors read only these variables.
CONNECT_ALLOWLIST = "^CAMPUS_(HOST|PG_HOST|PG_PORT|DEBEZIUM_PASSWORD)$"
REDIS_COMMAND = 'printf "requirepass %s\\n" "$CAMPUS_REDIS_PASSWORD" | exec redis-server -'


@dataclass(frozen=True)
class CdcStack:
    secrets: Secrets
    pg_port: int
    neo4j_port: int
    redis_port: int
    connect: DockerContainer


@pytest.fixture(scope="module")
def cdc_stack() -> Iterator[CdcStack]:
    s = Secrets()
    kafka_at = {"CAMPUS_KAFKA_HOST": "kafka", "CAMPUS_KAFKA_PORT": "9092"}
    with containers() as group:
        # The JVMs start together; each is awaited once something needs it.
        pg = group.start_postgres(s, publish=(5432,))
        kafka = group.start("kafka", "kafka", env=KAFKA_ENV)
        neo4j = group.start(
            "neo4j",
            "neo4j",
            env={
                "NEO4J_AUTH": f"neo4j/{s.neo4j}",
                "NEO4J_server_memory_heap_max__size": "384m",
                "NEO4J_server_memory_pagecache_size": "64m",
            },
            publish=(7687,),
        )
        redis = group.start(
            "redis",
            "redis",
            env={"CAMPUS_REDIS_PASSWORD": s.redis},
            # As in docker-compose.yml: the password goes in through stdin, never into `ps`.
            command=["sh", "-c", REDIS_COMMAND],
            publish=(6379,),
        )
        group.migrate(pg, s)
        wait_healthy(kafka, timeout=300)
        connect = group.start(
            "connect",
            "connect",
            env={
                "BOOTSTRAP_SERVERS": "kafka:9092",
                "GROUP_ID": "campus-connect",
                "CONFIG_STORAGE_TOPIC": "campus-connect-configs",
                "OFFSET_STORAGE_TOPIC": "campus-connect-offsets",
                "STATUS_STORAGE_TOPIC": "campus-connect-status",
                "HEAP_OPTS": "-Xms384m -Xmx384m",
                "CONNECT_KEY_CONVERTER_SCHEMAS_ENABLE": "false",
                "CONNECT_VALUE_CONVERTER_SCHEMAS_ENABLE": "false",
                "CONNECT_PLUGIN_DISCOVERY": "service_load",
                "CONNECT_CONFIG_PROVIDERS": "env",
                "CONNECT_CONFIG_PROVIDERS_ENV_CLASS": (
                    "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
                ),
                "CONNECT_CONFIG_PROVIDERS_ENV_PARAM_ALLOWLIST_PATTERN": CONNECT_ALLOWLIST,
                "CAMPUS_HOST": "postgres",
                "CAMPUS_PG_PORT": "5432",
                "CAMPUS_DEBEZIUM_PASSWORD": s.debezium,
                **s.connect_env(),
            },
        )
        # The image's healthcheck authenticates with the credentials its entrypoint rendered.
        wait_healthy(connect, timeout=300)
        group.run_job(
            "connector-registrar",
            {"CAMPUS_CONNECT_HOST": "connect", "CAMPUS_CONNECT_PORT": "8083", **s.connect_env()},
            ["bash", "stack/connect/init.sh"],
        )
        wait_healthy(neo4j, timeout=300)
        graph = group.start(
            "services",
            "graph",
            env={
                **kafka_at,
                "CAMPUS_NEO4J_HOST": "neo4j",
                "CAMPUS_NEO4J_BOLT_PORT": "7687",
                "CAMPUS_NEO4J_PASSWORD": s.neo4j,
                "CAMPUS_USERS_HOST": "users",
                **s.signing_env("graph"),
                **s.verify_env("graph"),
            },
            command=service_command("graph", 8003),
            publish=(8003,),
        )
        # The gateway alone, for its cache projection: its sibling services are not started,
        # so its /health says 503 (degraded) while the projection runs.
        gateway = group.start(
            "services",
            "gateway",
            env={
                **kafka_at,
                "CAMPUS_REDIS_HOST": "redis",
                "CAMPUS_REDIS_PORT": "6379",
                "CAMPUS_REDIS_PASSWORD": s.redis,
                "CAMPUS_JWT_SECRET": s.jwt,
                "CAMPUS_ADMIN_EMAIL": "admin@campusconnect.edu",
                "CAMPUS_ADMIN_PASSWORD": s.admin,
                "CAMPUS_CONNECT_HOST": "connect",
                "CAMPUS_CONNECT_PORT": "8083",
                **s.signing_env("gateway"),
                **s.connect_env(),
            },
            command=service_command("gateway", 8000),
            publish=(8000,),
        )
        wait_http(graph, f"http://127.0.0.1:{port(graph, 8003)}/health")
        wait_http(gateway, f"http://127.0.0.1:{port(gateway, 8000)}/health", ok=(200, 503))
        yield CdcStack(s, port(pg, 5432), port(neo4j, 7687), port(redis, 6379), connect)


async def test_a_postgres_insert_reaches_neo4j_and_redis(cdc_stack: CdcStack) -> None:
    s = cdc_stack.secrets
    stores = s.stores(
        pg_port=cdc_stack.pg_port,
        neo4j_bolt_port=cdc_stack.neo4j_port,
        redis_port=cdc_stack.redis_port,
    )
    conn = await asyncpg.connect(stores.users_dsn())
    try:
        uid = await conn.fetchval(
            "INSERT INTO users (email, full_name, password_hash) VALUES ($1, $2, $3) RETURNING id",
            unique_email(),
            "Captured Student",
            "hash-that-must-stay-in-postgres",
        )
    finally:
        await conn.close()

    async with AsyncGraphDatabase.driver(stores.neo4j_uri, auth=stores.neo4j_auth) as driver:

        async def in_neo4j() -> str | None:
            records, _, _ = await driver.execute_query(
                "MATCH (u:User {id: $id}) RETURN u.full_name AS name", id=uid
            )
            return records[0]["name"] if records else None

        name = await eventually(in_neo4j, until=lambda n: n is not None, timeout=120)
        assert name == "Captured Student"

    redis = Redis(**stores.redis_client_options())
    try:

        async def in_redis() -> bytes | None:
            value = await redis.get(f"user:{uid}")
            return value.encode() if isinstance(value, str) else value

        raw = await eventually(in_redis, until=lambda v: v is not None, timeout=120)
        assert raw is not None
        state, _, payload = raw.decode().split(":", 2)
        assert state == "V" and json.loads(payload)["full_name"] == "Captured Student"
        # Debezium's column.exclude.list keeps the hash out of every record.
        assert b"hash-that-must-stay-in-postgres" not in raw
    finally:
        await redis.aclose()


def test_connect_rest_needs_basic_auth_and_the_worker_holds_no_rest_password(
    cdc_stack: CdcStack,
) -> None:
    connect = cdc_stack.connect
    status = "curl -s -o /dev/null -w %{http_code} localhost:8083/connectors"
    code, out = connect.exec(["sh", "-c", status])
    assert code == 0 and out.decode() == "401", out
    code, out = connect.exec(["/kafka/healthcheck.sh"])
    assert code == 0, out
    # The worker (PID 1, the entrypoint exec'd into java) dropped the REST password: it reads
    # the rendered JAAS file; neither its environment nor its arguments hold it.
    password = cdc_stack.secrets.connect
    for name in ("environ", "cmdline"):
        code, out = connect.exec(["cat", f"/proc/1/{name}"])
        assert code == 0, out
        assert password.encode() not in out, name
    code, out = connect.exec(["stat", "-c", "%a", "/kafka/run/auth/connect-credentials.properties"])
    assert code == 0 and out.decode().strip() == "600", out
