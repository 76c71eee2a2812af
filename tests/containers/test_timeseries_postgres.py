"""The time-series service on a fresh database loaded from TimeScaleDB.sql by the migrate job:
plain PostgreSQL takes the partitioned path; the TimescaleDB image, where it can be pulled,
takes the hypertable path."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from tests.containers.support import (
    Secrets,
    containers,
    port,
    service_command,
    wait_http,
)

pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]

# docker-compose.yml's default; Docker Hub is not reachable on our machines.
TIMESCALEDB_IMAGE = "timescale/timescaledb:2.17.2-pg15"


@dataclass(frozen=True)
class TsStack:
    secrets: Secrets
    pg_port: int
    ts_url: str
    ts_port: int


def _pullable(image: str) -> bool:
    present = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, check=False
    )
    if present.returncode == 0:
        return True
    try:
        pulled = subprocess.run(["docker", "pull", "-q", image], capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return pulled.returncode == 0


@pytest.fixture(params=["postgres", "timescaledb"])
def ts_stack(request: pytest.FixtureRequest) -> Iterator[TsStack]:
    s = Secrets()
    if request.param == "timescaledb" and not _pullable(TIMESCALEDB_IMAGE):
        pytest.skip(f"{TIMESCALEDB_IMAGE} cannot be pulled here (no Docker Hub)")
    with containers() as group:
        # One server holds both databases, as natively (campus_ts is what is under test).
        db = group.start_postgres(
            s,
            publish=(5432,),
            image_tag=TIMESCALEDB_IMAGE if request.param == "timescaledb" else None,
        )
        group.migrate(db, s)
        ts = group.start(
            "services",
            "timeseries",
            env={
                "CAMPUS_TS_PG_HOST": "postgres",
                "CAMPUS_TS_PG_PORT": "5432",
                "CAMPUS_TS_DB_PASSWORD": s.ts_db,
                "CAMPUS_KAFKA_HOST": "kafka",
                **s.verify_env("timeseries"),
            },
            command=service_command("timeseries", 8004),
            publish=(8004,),
        )
        url = f"http://127.0.0.1:{port(ts, 8004)}"
        wait_http(ts, f"{url}/health")
        yield TsStack(s, port(db, 5432), url, port(ts, 8004))


async def test_the_analytics_api_reads_what_the_store_holds(
    ts_stack: TsStack, request: pytest.FixtureRequest
) -> None:
    expected = {"postgres": "postgres-partitioned", "timescaledb": "timescaledb"}
    path = expected[request.node.callspec.params["ts_stack"]]
    s = ts_stack.secrets
    conn = await asyncpg.connect(s.stores(pg_port=ts_stack.pg_port).ts_dsn())
    try:
        assert await conn.fetchval("SELECT path FROM storage_path") == path
        assert await conn.fetchval("SELECT count(*) FROM events") == 0  # a fresh store
        now = datetime.now(UTC)
        await conn.executemany(
            "INSERT INTO events (time, user_id, event_type, source, dedupe_key) "
            "VALUES ($1, $2, $3, 'test', $4)",
            [(now, 7, "post.created", f"tc-{i}") for i in range(3)],
        )
        partitioned = await conn.fetchval(
            "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'events'::regclass"
        )
        # The fallback is declarative partitioning; a hypertable is not a partitioned table.
        assert partitioned == (1 if path == "postgres-partitioned" else 0)
    finally:
        await conn.close()
    auth = s.operator_auth({ts_stack.ts_port: "timeseries"})
    async with httpx.AsyncClient(base_url=ts_stack.ts_url, timeout=10, auth=auth) as http:
        overview = await http.get("/analytics")
        assert overview.status_code == 200, overview.text
        body = overview.json()
        assert body["storage"] == path
        assert body["total_events"] == 3
        assert {"event_type": "post.created", "events": 3} in body["by_type"]
