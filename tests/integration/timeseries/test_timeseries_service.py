"""The time-series service against the running stack: CDC and domain events land once, replays
add nothing, partitions are ready before the month turns, the analytics API agrees with itself."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from campus_common import topics
from campus_common.consumer import Delivered
from campus_common.events import ChangeRecord, Event
from campus_common.kafka import new_producer, publish
from campus_timeseries.projection import (
    Decoded,
    EventRow,
    TimeseriesProjection,
    from_change,
    from_event,
)
from tests.conftest import StackSettings
from tests.helpers import eventually, unique_email

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def pool(stack: StackSettings) -> AsyncIterator[AsyncConnectionPool]:
    """The service's own role on campus_ts: what it may do, the tests may do."""
    async with AsyncConnectionPool(stack.ts_dsn(), min_size=1, max_size=4, open=False) as p:
        await p.open(wait=True, timeout=10)
        yield p


@pytest.fixture
def ts_url(stack: StackSettings) -> str:
    return stack.service_url("timeseries")


async def fetch(pool: AsyncConnectionPool, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        cur = await conn.execute(sql, args)
        return await cur.fetchall()


async def count_keys(pool: AsyncConnectionPool, keys: list[str]) -> int:
    rows = await fetch(pool, "SELECT count(*) FROM events WHERE dedupe_key = ANY(%s)", keys)
    return int(rows[0][0])


def fake_user_id() -> int:
    # Far above any id the users service hands out, so no real user's events mix in.
    return random.randint(10**15, 10**16)


async def storage(pool: AsyncConnectionPool) -> str:
    return str((await fetch(pool, "SELECT path FROM storage_path"))[0][0])


async def refresh(pool: AsyncConnectionPool) -> bool:
    """Refresh the rollups as the service does; False while another refresh holds the lock."""
    return bool((await fetch(pool, "SELECT refresh_rollups()"))[0][0])


async def produce(stack: StackSettings, *sent: tuple[str, Event]) -> None:
    producer = new_producer(stack.kafka)
    await producer.start()
    try:
        for topic, event in sent:
            await publish(producer, topic, event)
    finally:
        await producer.stop()


def delivered(values: list[Decoded]) -> list[Delivered[Decoded]]:
    return [Delivered("test", 0, i, 0, None, v) for i, v in enumerate(values)]


async def test_a_created_user_appears_once(
    stack: StackSettings, http: httpx.AsyncClient, pool: AsyncConnectionPool
) -> None:
    body = {"email": unique_email(), "full_name": "Ada Series", "password": "correct horse"}
    resp = await http.post(f"{stack.service_url('users')}/users", json=body)
    assert resp.status_code == 201, resp.text
    user_id = resp.json()["id"]

    async def rows() -> list[tuple[Any, ...]]:
        return await fetch(
            pool,
            "SELECT event_type, user_id, source, properties::text FROM events "
            "WHERE dedupe_key = %s",
            f"cdc:users:created:{user_id}",
        )

    found = await eventually(rows, until=lambda r: len(r) > 0, timeout=10)
    assert len(found) == 1
    event_type, stored_user, source, properties = found[0]
    assert (event_type, stored_user, source) == ("user.created", user_id, "cdc:users")
    assert "password" not in properties and body["email"] in properties


async def test_domain_events_appear_once_even_when_delivered_twice(
    stack: StackSettings, pool: AsyncConnectionPool
) -> None:
    user = fake_user_id()
    post = Event(
        type="post.created",
        source="documents",
        key="p-1",
        user_id=user,
        payload={"post_id": "p-1", "group_id": 1, "author_id": user, "type": "note", "title": "T"},
    )
    friend = Event(
        type="friend.added",
        source="graph",
        key=str(user),
        user_id=user,
        payload={"user_id": user, "other_id": user + 1},
    )
    # A relay that crashes after sending and before clearing its outbox sends again.
    await produce(
        stack,
        (topics.DOCUMENT_EVENTS, post),
        (topics.GRAPH_EVENTS, friend),
        (topics.DOCUMENT_EVENTS, post),
        (topics.GRAPH_EVENTS, friend),
    )
    keys = [str(post.id), str(friend.id)]
    await eventually(lambda: count_keys(pool, keys), until=lambda n: n == 2, timeout=10)
    rows = await fetch(
        pool,
        "SELECT event_type, user_id, time FROM events WHERE dedupe_key = ANY(%s) ORDER BY 1",
        keys,
    )
    assert rows == [
        ("friend.added", user, friend.occurred_at),
        ("post.created", user, post.occurred_at),
    ]


async def test_a_friendship_made_in_the_graph_service_appears_once(
    stack: StackSettings, http: httpx.AsyncClient, pool: AsyncConnectionPool
) -> None:
    ids = []
    for name in ("Ann", "Ben"):
        body = {"email": unique_email(), "full_name": name, "password": "correct horse"}
        resp = await http.post(f"{stack.service_url('users')}/users", json=body)
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    a, b = ids

    async def befriend() -> int:
        # The graph service learns of new users through CDC: 404 until it has.
        return (await http.post(f"{stack.service_url('graph')}/users/{a}/friends/{b}")).status_code

    assert await eventually(befriend, until=lambda s: s != 404, timeout=20) == 201
    query = """
        SELECT count(*) FROM events WHERE event_type = 'friend.added'
        AND (properties @> %s::jsonb OR properties @> %s::jsonb)
    """
    pair = (f'{{"user_id": {a}, "other_id": {b}}}', f'{{"user_id": {b}, "other_id": {a}}}')

    async def friendships() -> int:
        return int((await fetch(pool, query, *pair))[0][0])

    assert await eventually(friendships, until=lambda n: n > 0, timeout=10) == 1


async def test_a_replayed_batch_adds_nothing(pool: AsyncConnectionPool) -> None:
    user = fake_user_id()
    now = datetime.now(UTC)
    created = ChangeRecord.model_validate(
        {
            "op": "c",
            "after": {
                "id": user,
                "email": unique_email(),
                "full_name": "R",
                "created_at": now.isoformat(),
            },
            "source": {"table": "users", "ts_ms": int(now.timestamp() * 1000), "lsn": 111},
        }
    )
    # The same row read again by a connector re-snapshot: new LSN, new ts_ms, same event.
    snapshot = created.model_copy(
        update={"op": "r", "source": created.source.model_copy(update={"lsn": 999, "ts_ms": 1})}
    )
    updated = created.model_copy(update={"op": "u"})
    events = [Event(type="post.liked", source="documents", key="p", user_id=user) for _ in range(3)]
    values: list[Decoded] = [
        v for v in (from_change(topics.USERS, c) for c in (created, updated)) if v is not None
    ]
    values += [from_event(e) for e in events]
    keys = [v.dedupe_key for v in values if isinstance(v, EventRow)]
    projection = TimeseriesProjection(pool)

    await projection.apply(delivered(values))
    assert await count_keys(pool, keys) == 5
    await projection.apply(delivered(values))
    resnapshot = from_change(topics.USERS, snapshot)
    assert resnapshot is not None
    await projection.apply(delivered([resnapshot, *reversed(values)]))
    assert await count_keys(pool, keys) == 5
    rows = await fetch(pool, "SELECT count(*) FROM events WHERE user_id = %s", user)
    assert rows[0][0] == 5


async def test_partitions_are_ready_before_the_month_turns(pool: AsyncConnectionPool) -> None:
    path = await storage(pool)
    await fetch(pool, "SELECT ensure_partitions('3 months')")  # what the service runs hourly
    (month_end,) = (
        await fetch(pool, "SELECT date_trunc('month', now(), 'UTC') + interval '1 month'")
    )[0]
    user = fake_user_id()
    rows = [
        EventRow(at, user, "test.boundary", {}, "tests", f"test:{uuid.uuid4()}")
        for at in (
            month_end - timedelta(microseconds=1),
            month_end,
            month_end + timedelta(days=40),
        )
    ]
    keys = [r.dedupe_key for r in rows]
    try:
        await TimeseriesProjection(pool).apply(delivered(list(rows)))
        stored = await fetch(
            pool,
            "SELECT time, tableoid::regclass::text FROM events WHERE dedupe_key = ANY(%s) "
            "ORDER BY time",
            keys,
        )
        assert [t for t, _ in stored] == [r.time for r in rows]
        if path == "postgres-partitioned":
            names = [part for _, part in stored]
            expected = [f"events_{d:%Y_%m}" for d in (rows[0].time, rows[1].time, rows[2].time)]
            assert names == expected  # real monthly partitions, not events_default
    finally:
        await fetch(pool, "DELETE FROM events WHERE dedupe_key = ANY(%s) RETURNING 1", keys)


async def test_analytics_endpoints_agree_with_each_other(
    stack: StackSettings, http: httpx.AsyncClient, pool: AsyncConnectionPool, ts_url: str
) -> None:
    user = fake_user_id()
    kind = f"test.{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    # Two events well behind the rollup watermark, one in the raw tail: counted once each.
    events = [
        Event(
            type=kind, source="tests", key="k", user_id=user, occurred_at=now - timedelta(minutes=m)
        )
        for m in (12, 11, 0)
    ]
    await produce(stack, *((topics.DOCUMENT_EVENTS, e) for e in events))

    async def timeline() -> dict[str, Any]:
        resp = await http.get(f"{ts_url}/analytics/timeline", params={"type": kind, "bucket": "5m"})
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    keys = [str(e.id) for e in events]
    await eventually(lambda: count_keys(pool, keys), until=lambda n: n == 3, timeout=10)
    # Rows older than the rollup watermark that arrive after a refresh are counted from the
    # next one on; after it, two come from the rollup and one from the raw tail, each once.
    # (TimescaleDB's refresh policy runs every minute; its role alone may refresh.)
    if await storage(pool) == "postgres-partitioned":
        await eventually(lambda: refresh(pool), timeout=30, interval=0.5)
    line = await eventually(timeline, until=lambda t: t["total"] == 3, timeout=90)
    assert line["total"] == 3 and line["bucket"] == "5m" and line["type"] == kind
    assert len(line["points"]) == 60
    assert sum(p["events"] for p in line["points"]) == 3

    overview = (await http.get(f"{ts_url}/analytics")).json()
    assert overview["storage"] in ("timescaledb", "postgres-partitioned")
    assert overview["total_events"] == sum(t["events"] for t in overview["by_type"])
    assert {"event_type": kind, "events": 3} in overview["by_type"]
    assert len(overview["last_hour"]) == 61
    assert sum(p["events"] for p in overview["last_hour"]) <= overview["total_events"]
    assert overview["newest_event_at"] is not None

    activity = (await http.get(f"{ts_url}/analytics/users/{user}/activity?limit=2")).json()
    assert activity["total_events"] == 3
    assert activity["by_type"] == [{"event_type": kind, "events": 3}]
    assert [e["event_type"] for e in activity["recent"]] == [kind, kind]
    assert activity["last_event_at"] >= activity["recent"][0]["time"]

    top = (await http.get(f"{ts_url}/analytics/top-users?window=1h&limit=100")).json()
    counts = [u["events"] for u in top["users"]]
    assert counts == sorted(counts, reverse=True)

    dau = (await http.get(f"{ts_url}/analytics/dau?days=3")).json()
    assert [p["day"] for p in dau["points"]] == [
        (now.date() - timedelta(days=d)).isoformat() for d in (2, 1, 0)
    ]
    assert dau["points"][-1]["active_users"] >= 1

    nobody = (await http.get(f"{ts_url}/analytics/users/{fake_user_id()}/activity")).json()
    assert nobody["total_events"] == 0 and nobody["recent"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/analytics/timeline?bucket=2m",
        "/analytics/timeline?bucket=1m&since=2000-01-01T00:00:00Z",
        "/analytics/timeline?since=yesterday",
        "/analytics/timeline?type=",
        "/analytics/timeline?type=post%00created",
        "/analytics/top-users?window=abc",
        "/analytics/top-users?window=400d",
        "/analytics/top-users?limit=0",
        "/analytics/dau?days=0",
        "/analytics/dau?days=x",
        "/analytics/users/0/activity",
        "/analytics/users/abc/activity",
        "/analytics/users/1/activity?limit=1000",
    ],
)
async def test_bad_parameters_are_422(http: httpx.AsyncClient, ts_url: str, path: str) -> None:
    resp = await http.get(f"{ts_url}{path}")
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"]
