"""The password hash never leaves the users service: scan every place it could leak to."""

from __future__ import annotations

import contextlib
import gzip
import re
import uuid

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from neo4j import AsyncGraphDatabase

from campus_common import topics
from tests.conftest import StackSettings
from tests.e2e.conftest import ROOT
from tests.helpers import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# Every argon2 hash starts so (the column name itself may appear in config, its value never);
# a unique password makes the plain text findable too.
MARKERS = (b"$argon2",)


@pytest.fixture(scope="module")
async def leak_user(stack: StackSettings) -> dict[str, object]:
    password = f"leak-probe-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=stack.service_url("gateway"), timeout=10) as http:
        email = f"leak-{uuid.uuid4().hex[:8]}@university.edu"
        r = await http.post(
            "/users", json={"email": email, "full_name": "Leak Probe", "password": password}
        )
        assert r.status_code == 201, r.text
        user = r.json()
        token = (
            await http.post("/auth/token", data={"username": email, "password": password})
        ).json()
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        await http.put(f"/users/{user['id']}", json={"full_name": "Leak Probe 2"}, headers=auth)
        await http.get(f"/users/{user['id']}")  # into the cache
        group = await http.post(
            "/groups", json={"name": "Leak", "course_code": "L-1"}, headers=auth
        )
        assert group.status_code == 201, group.text
        await http.post(f"/groups/{group.json()['id']}/join", json={}, headers=auth)
        post = await http.post(
            f"/groups/{group.json()['id']}/posts", json={"title": "leak probe"}, headers=auth
        )
        assert post.status_code == 201, post.text
    return {
        "id": user["id"],
        "password": password.encode(),
        "token": token["access_token"],
        "group_id": group.json()["id"],
        "post_id": post.json()["id"],
    }


def _leaks(blob: bytes, password: bytes) -> bool:
    return any(m in blob for m in MARKERS) or password in blob


async def test_no_hash_in_any_kafka_topic(
    stack: StackSettings, leak_user: dict[str, object]
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka.bootstrap_servers)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith("campus")]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=stack.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen = 0
    probe_changes = 0
    try:
        ends = await consumer.end_offsets(list(consumer.assignment()))
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for recs in batch.values():
                for r in recs:
                    seen += 1
                    if r.topic == topics.USERS and r.value:
                        with contextlib.suppress(ValueError, TypeError, AttributeError):
                            row = orjson.loads(r.value).get("after") or {}
                            probe_changes += row.get("id") == leak_user["id"]
                    assert not _leaks((r.key or b"") + (r.value or b""), leak_user["password"]), (
                        r.topic
                    )  # type: ignore[arg-type]
            positions = {tp: await consumer.position(tp) for tp in ends}
            if all(positions[tp] >= end for tp, end in ends.items()):
                break
    finally:
        await consumer.stop()
    assert seen > 0 and topics.USERS in names
    # The scan read the probe's own create and rename: the records that could have carried it.
    assert probe_changes >= 2, probe_changes


async def test_no_hash_in_redis(stack: StackSettings, leak_user: dict[str, object]) -> None:
    r = aioredis.Redis(**stack.redis_client_options())
    try:

        async def cached() -> bytes | None:
            return await r.get(f"user:{leak_user['id']}")  # type: ignore[no-any-return]

        await eventually(cached, timeout=10)
        async for key in r.scan_iter(count=1000):
            kind = await r.type(key)
            if kind == b"string":
                blob = await r.get(key) or b""
            elif kind == b"list":
                blob = b"".join(await r.lrange(key, 0, -1))
            elif kind == b"zset":
                blob = b"".join(await r.zrange(key, 0, -1))
            elif kind == b"hash":
                blob = b"".join(k + v for k, v in (await r.hgetall(key)).items())
            else:
                continue
            assert not _leaks(key + blob, leak_user["password"]), key  # type: ignore[arg-type]
    finally:
        await r.aclose()


async def test_no_hash_in_neo4j(stack: StackSettings, leak_user: dict[str, object]) -> None:
    async with AsyncGraphDatabase.driver(stack.neo4j_uri, auth=stack.neo4j_auth) as d:
        await eventually(lambda: _node(d, leak_user["id"]), timeout=10)  # type: ignore[arg-type]
        recs, _, _ = await d.execute_query(
            "MATCH (n) UNWIND keys(n) AS k "
            "WITH k, n[k] AS v WHERE toLower(k) CONTAINS 'password' "
            "OR (v IS :: STRING AND (v CONTAINS '$argon2' OR v = $pw)) RETURN count(*) AS n",
            pw=leak_user["password"].decode(),  # type: ignore[attr-defined]
        )
        assert recs[0]["n"] == 0
        # Relationship properties too (MEMBER_OF, FRIEND, FOLLOWS carry their own).
        recs, _, _ = await d.execute_query(
            "MATCH ()-[r]->() UNWIND keys(r) AS k "
            "WITH k, r[k] AS v WHERE toLower(k) CONTAINS 'password' "
            "OR (v IS :: STRING AND (v CONTAINS '$argon2' OR v = $pw)) RETURN count(*) AS n",
            pw=leak_user["password"].decode(),  # type: ignore[attr-defined]
        )
        assert recs[0]["n"] == 0


async def _node(d: object, user_id: object) -> bool:
    recs, _, _ = await d.execute_query(
        "MATCH (u:User {id: $id}) RETURN u.full_name AS n", id=user_id
    )  # type: ignore[attr-defined]
    return bool(recs and recs[0]["n"])


async def test_no_hash_in_timeseries(stack: StackSettings, leak_user: dict[str, object]) -> None:
    dsn = stack.ts_dsn()
    conn = await asyncpg.connect(dsn)
    try:

        async def recorded() -> int:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM events WHERE user_id = $1", leak_user["id"]
                )
            )

        await eventually(recorded, until=lambda n: n >= 2, timeout=15)
        n = await conn.fetchval(
            "SELECT count(*) FROM events WHERE properties::text LIKE '%$argon2%' "
            "OR properties::text ILIKE '%password%' OR properties::text LIKE '%' || $1 || '%'",
            leak_user["password"].decode(),  # type: ignore[attr-defined]
        )
        assert n == 0
    finally:
        await conn.close()


async def test_no_hash_in_logs(leak_user: dict[str, object]) -> None:
    # Rotated logs too (name.log.1, name.log.2.gz): every file under the logs folder.
    files = [f for f in (ROOT / ".stack" / "logs").rglob("*") if f.is_file()]
    assert files
    for log in files:
        blob = log.read_bytes()
        if log.suffix == ".gz":
            blob = gzip.decompress(blob)
        assert not _leaks(blob, leak_user["password"]), log.name  # type: ignore[arg-type]


async def test_no_hash_in_any_get_response(
    stack: StackSettings, leak_user: dict[str, object]
) -> None:
    """Every GET route of the gateway's OpenAPI document, with ids of real objects."""
    ids = {
        "user_id": leak_user["id"],
        "other_id": leak_user["id"],
        "group_id": leak_user["group_id"],
        "post_id": leak_user["post_id"],
        "name": "cache",  # /projections/{name}
    }
    auth = {"Authorization": f"Bearer {leak_user['token']}"}
    async with httpx.AsyncClient(base_url=stack.service_url("gateway"), timeout=15) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
        checked = []
        for path, ops in paths.items():
            if "get" not in ops:
                continue
            url = re.sub(r"{(\w+)}", lambda m: str(ids.get(m.group(1), m.group(0))), path)
            assert "{" not in url, f"no real id for {path}"
            r = await http.get(url, headers=auth)
            assert r.status_code < 500, (url, r.status_code)
            assert not _leaks(r.content, leak_user["password"]), url  # type: ignore[arg-type]
            checked.append(url)
    assert f"/users/{leak_user['id']}" in checked and len(checked) > 20
