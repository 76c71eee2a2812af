"""Cache-aside profiles kept fresh by the `cache` projection, on the real Redis and Kafka."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from gateway_helpers import Account
from redis.asyncio import Redis

from campus_common import topics
from campus_common.consumer import Delivered
from campus_common.events import ChangeRecord, Event
from campus_gateway.cache import HOT_POSTS, LEADERBOARD, Cache, decode_entry
from campus_gateway.config import get_settings
from campus_gateway.projection import CacheProjection
from tests.conftest import StackSettings
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def cache_header(http: httpx.AsyncClient, url: str) -> tuple[str, dict[str, object]]:
    resp = await http.get(url)
    assert resp.status_code == 200, resp.text
    return resp.headers["x-cache"], resp.json()


async def test_miss_hit_and_invalidation_after_an_update(
    http: httpx.AsyncClient, gw: str, account: Account, redis: Redis
) -> None:
    url = f"{gw}/users/{account.id}"
    await redis.delete(f"user:{account.id}")  # the projection may have warmed it already
    assert (await cache_header(http, url))[0] == "miss"
    outcome, body = await cache_header(http, url)
    assert (outcome, body["full_name"]) == ("hit", "Ada Student")

    resp = await http.put(url, json={"full_name": "Ada Renamed"}, headers=account.auth)
    assert resp.status_code == 200
    # Read-your-writes at once (the gateway marks the entry), then the projection's refresh
    # from the CDC record serves the new name from Redis again.
    assert (await cache_header(http, url))[1]["full_name"] == "Ada Renamed"
    final = await eventually(
        lambda: cache_header(http, url),
        until=lambda r: r == ("hit", {**r[1], "full_name": "Ada Renamed"}),
    )
    assert final[0] == "hit"
    entry = decode_entry(await redis.get(f"user:{account.id}"))
    assert entry is not None and entry.state == "V" and entry.lsn > 0  # written by the projection


async def test_a_change_made_behind_the_gateway_reaches_the_cache(
    http: httpx.AsyncClient, gw: str, account: Account, stack: StackSettings
) -> None:
    """An update straight to the users service: only the CDC projection can tell the cache."""
    url = f"{gw}/users/{account.id}"
    await cache_header(http, url)
    assert (await cache_header(http, url))[0] == "hit"
    resp = await http.put(
        f"{stack.service_url('users')}/users/{account.id}", json={"full_name": "Via CDC"}
    )
    assert resp.status_code == 200
    await eventually(
        lambda: cache_header(http, url), until=lambda r: r[1]["full_name"] == "Via CDC", timeout=5
    )
    assert (await cache_header(http, url))[0] == "hit"

    deleted = await http.delete(f"{stack.service_url('users')}/users/{account.id}")
    assert deleted.status_code == 204

    async def status() -> int:
        return (await http.get(url)).status_code

    await eventually(status, until=lambda s: s == 404, timeout=5)
    resp = await http.get(url)
    assert resp.headers.get("content-type", "").startswith("application/json")


async def test_member_count_follows_joins(
    http: httpx.AsyncClient, gw: str, account: Account, other: Account
) -> None:
    group = (
        await http.post(
            f"{gw}/groups", json={"name": "Counted", "course_code": "C-3"}, headers=account.auth
        )
    ).json()
    url = f"{gw}/groups/{group['id']}"
    assert (await http.get(url)).json()["member_count"] == 0
    for member in (account, other):
        assert (await http.post(f"{url}/join", json={}, headers=member.auth)).status_code == 201
        # Each join is visible at once, never a stale count from the cache.
    assert (await http.get(url)).json()["member_count"] == 2
    leave = await http.delete(f"{url}/members/{other.id}", headers=other.auth)
    assert leave.status_code == 204
    assert (await http.get(url)).json()["member_count"] == 1

    async def cached() -> tuple[str, int]:
        resp = await http.get(url)
        return resp.headers["x-cache"], resp.json()["member_count"]

    assert await eventually(cached, until=lambda r: r == ("hit", 1), timeout=15) == ("hit", 1)


async def test_cache_status_reports_ratio_keys_memory_and_lag(
    http: httpx.AsyncClient, gw: str, admin: Account
) -> None:
    status = (await http.get(f"{gw}/cache-status", headers=admin.auth)).json()
    redis = status["redis"]
    assert redis["hits"] >= 0 and redis["misses"] >= 0
    assert redis["hit_ratio"] is None or 0 <= redis["hit_ratio"] <= 1
    assert redis["keys"]["by_prefix"]["user"] > 0
    assert redis["memory"]["used_bytes"] > 0
    projection = status["projection"]
    assert projection["state"] == "running" and projection["connected"] is True
    assert projection["total_lag"] >= 0
    assert 0 <= projection["staleness_s"] < 30  # Debezium's heartbeat flows every 2 s


async def test_the_projection_is_idempotent_and_order_safe(redis: Redis) -> None:
    """Redelivered and out-of-order records through the real projection code into real Redis."""
    settings = get_settings()
    cache = Cache(redis, settings)
    projection = CacheProjection(cache, settings)
    user_id = random.randint(10**15, 10**16)  # far above any real id: no clash with real data
    liked = Event(
        type="post.liked",
        source="test",
        key="p",
        user_id=1,
        payload={"post_id": "p", "group_id": None, "user_id": 1, "author_id": user_id},
    )
    try:
        batch = [Delivered(topics.DOCUMENT_EVENTS, 0, i, 0, None, liked) for i in range(3)]
        await projection.apply(batch)
        await projection.apply(batch)
        assert await redis.zscore(LEADERBOARD, str(user_id)) == 1.0

        def change(lsn: int, name: str) -> Delivered[ChangeRecord | Event]:
            row = {
                "id": user_id,
                "email": "x@y.edu",
                "full_name": name,
                "created_at": "2025-01-01T00:00:00Z",
                "updated_at": datetime.now(UTC).isoformat(),
            }
            record = ChangeRecord(
                op="u", after=row, source={"table": "users", "ts_ms": 1, "lsn": lsn}
            )
            return Delivered(topics.USERS, 0, lsn, 0, None, record)

        await projection.apply([change(200, "newer")])
        await projection.apply([change(100, "older")])  # a late, older change
        entry = decode_entry(await redis.get(f"user:{user_id}"))
        assert entry is not None and entry.lsn == 200
        assert orjson.loads(entry.data)["full_name"] == "newer"
        # Within one batch (one script call) too: the older change, later in it, changes nothing.
        await projection.apply([change(300, "newest"), change(250, "stale")])
        entry = decode_entry(await redis.get(f"user:{user_id}"))
        assert entry is not None and entry.lsn == 300
        assert orjson.loads(entry.data)["full_name"] == "newest"
    finally:
        await redis.delete(f"user:{user_id}", f"processed:{liked.id}")
        await redis.zrem(LEADERBOARD, str(user_id))


async def test_hot_posts_rank_engagement(
    http: httpx.AsyncClient, gw: str, account: Account, other: Account, redis: Redis
) -> None:
    post = (await http.post(f"{gw}/posts", json={"title": "hot take"}, headers=account.auth)).json()
    created = datetime.fromisoformat(post["created_at"]).timestamp()
    await http.post(
        f"{gw}/posts/{post['id']}/comments", json={"body": "agreed"}, headers=other.auth
    )

    async def score() -> float | None:
        # Read from the sorted set itself: after a busy load (the fault suite's) a post with one
        # comment is not in the route's top 100.
        return await redis.zscore(HOT_POSTS, post["id"])

    # Written at `created`, pushed an hour forward by its comment.
    boosted = await eventually(score, until=lambda s: s is not None and s >= created + 3599)
    assert boosted == pytest.approx(created + 3600, abs=2)


async def test_a_paused_projection_lags_and_converges_after_resume(
    http: httpx.AsyncClient, gw: str, account: Account, admin: Account, stack: StackSettings
) -> None:
    """The eventual-consistency demo for the cache, through /admin/consumers."""
    url = f"{gw}/users/{account.id}"
    await cache_header(http, url)
    assert (await cache_header(http, url))[0] == "hit"

    async def cache_lag() -> int:
        rows = (await http.get(f"{gw}/admin/consumers", headers=admin.auth)).json()
        return int(next(r for r in rows if r["name"] == "cache")["total_lag"])

    paused = await http.post(f"{gw}/admin/consumers/cache/pause", headers=admin.auth)
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    try:
        changed = await http.put(
            f"{stack.service_url('users')}/users/{account.id}", json={"full_name": "While Paused"}
        )
        assert changed.status_code == 200
        await eventually(cache_lag, until=lambda lag: lag > 0)
        assert (await cache_header(http, url))[1]["full_name"] == "Ada Student"  # stale, as paused
    finally:
        resumed = await http.post(f"{gw}/admin/consumers/cache/resume", headers=admin.auth)
        assert resumed.status_code == 200 and resumed.json()["state"] == "running"
    await eventually(
        lambda: cache_header(http, url), until=lambda r: r[1]["full_name"] == "While Paused"
    )


async def test_admin_consumers_lists_every_projection(
    http: httpx.AsyncClient, gw: str, admin: Account
) -> None:
    rows = (await http.get(f"{gw}/admin/consumers", headers=admin.auth)).json()
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) >= {"cache", "graph", "timeseries"}
    for row in by_name.values():
        assert row["state"] in ("running", "paused")
        assert {"group_id", "partitions", "total_lag", "time_lag_s", "staleness_s"} <= set(row)
    unknown = await http.post(f"{gw}/admin/consumers/nope/pause", headers=admin.auth)
    assert unknown.status_code == 404
