"""M5: the leaderboard: top-10 latency at 100k members and point updates through the projection.

Top 10. The gateway reads the real key `leaderboard:points` (not configurable), so for the
run it gets 100k extra members with bench-only ids (≥ 10^12) and negative scores: they sit
below every real user, so the product's top 10 does not change while they are there, and they
are removed by exact id afterwards. Beside it: the same ZREVRANGE from this process, and the
brief's PostgreSQL leaderboard (UPDATE + ORDER BY … LIMIT 10 on an indexed 100k-row table in
campus_bench).

Updates. Producing fake events to campus.documents.events would change the product's
leaderboard and analytics, so the gateway's own `CacheProjection` class runs in this process
against the real Redis, on logical database 15 (nothing else uses it): it decodes and applies
`post.liked` events exactly as in the gateway (the Lua dedupe marker, ZINCRBY, the hot-posts
boost, the group's activity list). Anchor: the real redis-benchmark binary doing ZINCRBY.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka.structs import ConsumerRecord
from redis.asyncio import Redis

from bench import fixtures, profile
from bench.core import Figure, Report, percentile
from bench.env import settings
from bench.tools import redis_benchmark
from campus_common import topics
from campus_common.consumer import Delivered
from campus_common.events import ChangeRecord, Event
from campus_gateway.cache import HOT_POSTS, LEADERBOARD, Cache, activity_key, processed_key
from campus_gateway.config import Settings as GatewaySettings
from campus_gateway.projection import CacheProjection

MEMBERS = 100_000
BATCH = 1000  # the ProjectionRunner's default max_batch
GROUPS = 100
ZINCRBY_KEY = "bench:leaderboard:zincrby"


async def _seed(redis: Redis) -> list[str]:
    members = [str(fixtures.BENCH_ID_BASE + i) for i in range(MEMBERS)]
    for i in range(0, MEMBERS, 10_000):
        chunk = members[i : i + 10_000]
        await redis.zadd(LEADERBOARD, {m: -float(1 + (j % 997)) for j, m in enumerate(chunk)})
    return members


async def _unseed(redis: Redis, members: list[str]) -> None:
    for i in range(0, len(members), 10_000):
        await redis.zrem(LEADERBOARD, *members[i : i + 10_000])


async def _timed(n: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    """Latencies of n sequential calls, in seconds."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t)
    return out


async def _gateway_top10(report: Report, requests: int) -> dict[str, list[float]]:
    redis = fixtures.redis_client()
    members: list[str] = []
    try:
        real_above = await redis.zcount(LEADERBOARD, 0, "+inf")
        members = await _seed(redis)
        size = await redis.zcard(LEADERBOARD)
        async with fixtures.http_client() as http:
            token = await fixtures.admin_token(http)
            async with fixtures.rate_limit_lifted(http, token, ttl_s=600):
                lb_url = f"{fixtures.url('gateway')}/recommendations/leaderboard"

                async def gateway() -> None:
                    resp = await http.get(lb_url, params={"limit": 10})
                    if resp.status_code != 200:
                        raise RuntimeError(f"leaderboard: {resp.status_code} {resp.text[:200]}")

                async def direct() -> None:
                    await redis.zrevrange(LEADERBOARD, 0, 9, withscores=True)

                await _timed(50, gateway)  # warm the pools and the cached names
                gw = await _timed(requests, gateway)
                raw = await _timed(requests, direct)
    finally:
        await _unseed(redis, members)
        await redis.aclose()
    if real_above < 10:
        report.sections["M5 note"] = (
            f"Only {real_above} real users have points, so bench members (unnamed) filled the "
            "rest of the top 10 during the run and the gateway looked their names up each time."
        )
    report.sections["M5 leaderboard size"] = (
        f"`{LEADERBOARD}` held {size:,} members during the top-10 run "
        f"({MEMBERS:,} bench members with negative scores, removed afterwards)."
    )
    return {"gateway": gw, "redis": raw}


@dataclass
class PgLeaderboard:
    select: list[float]  # top 10 with the index on points
    select_plain: list[float]  # top 10 on the brief's table: primary key only
    updates_per_s: float
    plan: str
    plan_plain: str


TOP10 = "SELECT user_id, points FROM {table} ORDER BY points DESC, user_id LIMIT 10"


async def _postgres(requests: int, update_s: float) -> PgLeaderboard:
    await fixtures.ensure_bench_db()
    dsn = settings().superuser_dsn("campus_bench")
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('bench_leaderboard_plain') IS NULL") or (
            await conn.fetchval("SELECT count(*) FROM bench_leaderboard") != MEMBERS
        ):
            await conn.execute("""
                DROP TABLE IF EXISTS bench_leaderboard, bench_leaderboard_plain;
                CREATE TABLE bench_leaderboard (user_id bigint PRIMARY KEY, points bigint NOT NULL);
            """)
            rng = random.Random(5)
            await conn.copy_records_to_table(
                "bench_leaderboard",
                records=[(i, rng.randint(0, 10_000)) for i in range(1, MEMBERS + 1)],
            )
            await conn.execute("""
                CREATE INDEX bench_leaderboard_points_idx
                    ON bench_leaderboard (points DESC, user_id);
                CREATE TABLE bench_leaderboard_plain AS SELECT * FROM bench_leaderboard;
                ALTER TABLE bench_leaderboard_plain ADD PRIMARY KEY (user_id);
                ANALYZE bench_leaderboard; ANALYZE bench_leaderboard_plain;
            """)
        indexed = TOP10.format(table="bench_leaderboard")
        plain = TOP10.format(table="bench_leaderboard_plain")
        await _timed(50, lambda: conn.fetch(indexed))
        select = await _timed(requests, lambda: conn.fetch(indexed))
        await _timed(5, lambda: conn.fetch(plain))
        select_plain = await _timed(max(requests // 3, 50), lambda: conn.fetch(plain))
        plans = []
        for query in (indexed, plain):
            rows = await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + query)
            plans.append("\n".join(r[0] for r in rows))
    finally:
        await conn.close()

    conns = [await asyncpg.connect(dsn) for _ in range(4)]
    done = 0
    deadline = time.monotonic() + update_s

    async def loop(c: asyncpg.Connection, seed: int) -> None:
        nonlocal done
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            await c.execute(
                "UPDATE bench_leaderboard SET points = points + 1 WHERE user_id = $1",
                rng.randint(1, MEMBERS),
            )
            done += 1

    started = time.monotonic()
    try:
        await asyncio.gather(*(loop(c, k) for k, c in enumerate(conns)))
    finally:
        for c in conns:
            await c.close()
    return PgLeaderboard(
        select, select_plain, done / (time.monotonic() - started), plans[0], plans[1]
    )


def _events(n: int) -> list[bytes]:
    rng = random.Random(11)
    base = fixtures.BENCH_ID_BASE
    out = []
    for _ in range(n):
        post = f"bench{rng.randrange(10_000):06d}"
        payload = {
            "post_id": post,
            "group_id": base + rng.randrange(GROUPS),
            "user_id": base + rng.randrange(MEMBERS),
            "author_id": base + rng.randrange(MEMBERS),
        }
        out.append(
            Event(
                type="post.liked",
                source="bench",
                key=post,
                user_id=payload["user_id"],
                payload=payload,
            ).to_bytes()
        )
    return out


async def _projection(n: int) -> tuple[float, float, float]:
    """(events/s through CacheProjection.decode + apply, share of it decoding, ZINCRBY/s
    pipelined from here)."""
    redis = fixtures.redis_client(fixtures.BENCH_REDIS_DB)
    projection = CacheProjection(Cache(redis, GatewaySettings()), GatewaySettings())
    values = _events(n)
    ids: list[str] = []
    try:
        records = [
            ConsumerRecord(
                topics.DOCUMENT_EVENTS, 0, offset, 0, 0, None, value, None, 0, len(value), ()
            )
            for offset, value in enumerate(values)
        ]
        decoding = 0.0
        started = time.perf_counter()
        for i in range(0, n, BATCH):
            t = time.perf_counter()
            batch: list[Delivered[ChangeRecord | Event]] = []
            for rec in records[i : i + BATCH]:
                event = projection.decode(rec)
                if not isinstance(event, Event):
                    raise RuntimeError("the projection did not decode a domain event")
                ids.append(str(event.id))
                batch.append(Delivered(rec.topic, 0, rec.offset, 0, None, event))
            decoding += time.perf_counter() - t
            await projection.apply(batch)
        elapsed = time.perf_counter() - started
        through = n / elapsed

        key = f"{ZINCRBY_KEY}:{uuid.uuid4().hex[:6]}"
        rng = random.Random(3)
        started = time.perf_counter()
        for i in range(0, n, BATCH):
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(min(BATCH, n - i)):
                    pipe.zincrby(key, 1, str(rng.randrange(MEMBERS)))
                await pipe.execute()
        pipelined = n / (time.perf_counter() - started)
        await redis.delete(key)
    finally:
        for i in range(0, len(ids), 10_000):
            await redis.delete(*(processed_key(e) for e in ids[i : i + 10_000]))
        await redis.delete(
            LEADERBOARD,
            HOT_POSTS,
            *(activity_key(fixtures.BENCH_ID_BASE + g) for g in range(GROUPS)),
        )
        await redis.aclose()
    return through, decoding / elapsed, pipelined


async def run(report: Report, *, quick: bool) -> None:
    requests = 300 if quick else 2000
    events = 20_000 if quick else 100_000
    top = await _gateway_top10(report, requests)
    pg = await _postgres(requests, 5.0 if quick else 20.0)
    s = settings()
    zincrby = await redis_benchmark(
        host=s.redis_host,
        port=s.redis_port,
        password=s.redis_password.get_secret_value(),
        requests=100_000,
        clients=50,
        args=[
            "--dbnum",
            str(fixtures.BENCH_REDIS_DB),
            "-r",
            str(MEMBERS),
            "ZINCRBY",
            ZINCRBY_KEY,
            "1",
            "__rand_int__",
        ],
    )
    bench_redis = fixtures.redis_client(fixtures.BENCH_REDIS_DB)
    try:
        await bench_redis.delete(ZINCRBY_KEY)
    finally:
        await bench_redis.aclose()
    through, decode_share, pipelined = await _projection(events)
    if profile.available():
        # A second, untimed run under the sampler (it would share the cores with the first).
        _, found = await profile.during(
            report, name="cache_projection", pid=os.getpid(), seconds=4, work=_projection(events)
        )
        report.sections["M5 flame graph (py-spy)"] = (
            f"- `flame_cache_projection.svg`: {events:,} `post.liked` events through the cache "
            f"projection in this process; {found}"
        )

    gw_ms = [x * 1000 for x in top["gateway"]]
    raw_ms = [x * 1000 for x in top["redis"]]
    pg_ms = [x * 1000 for x in pg.select]
    plain_ms = [x * 1000 for x in pg.select_plain]
    label = f"{MEMBERS // 1000}k members, {requests} sequential requests"
    gw99, pg99 = percentile(gw_ms, 99), percentile(pg_ms, 99)
    report.add(
        Figure(
            "M5",
            f"leaderboard top 10 at the gateway p99 ({label})",
            round(gw99, 2),
            "ms",
            "PostgreSQL ORDER BY points DESC LIMIT 10, indexed, p99",
            round(pg99, 2),
            "≤ 5 ms",
            gw99 <= 5.0,
        )
    )
    report.add(
        Figure(
            "M5",
            f"leaderboard top 10 at the gateway p50 ({label})",
            round(percentile(gw_ms, 50), 2),
            "ms",
            "PostgreSQL p50",
            round(percentile(pg_ms, 50), 2),
        )
    )
    report.add(
        Figure(
            "M5",
            "top 10 straight from Redis (ZREVRANGE from this process) p99",
            round(percentile(raw_ms, 99), 2),
            "ms",
            "PostgreSQL p99",
            round(pg99, 2),
        )
    )
    report.add(
        Figure(
            "M5",
            f"point updates/s through the cache projection (post.liked, batches of {BATCH})",
            round(through),
            "updates/s",
            "redis-benchmark ZINCRBY (50 clients)",
            round(zincrby.requests_per_s),
            "≥ 30 % of raw ZINCRBY",
            through >= 0.3 * zincrby.requests_per_s,
        )
    )
    report.add(
        Figure(
            "M5",
            f"ZINCRBY/s pipelined from this process (batches of {BATCH})",
            round(pipelined),
            "updates/s",
            "redis-benchmark ZINCRBY",
            round(zincrby.requests_per_s),
        )
    )
    report.add(
        Figure(
            "M5",
            "PostgreSQL top 10 without an index on points (the brief's table) p99",
            round(percentile(plain_ms, 99), 2),
            "ms",
            "with the index p99",
            round(pg99, 2),
        )
    )
    report.add(
        Figure(
            "M5",
            "PostgreSQL UPDATE points = points + 1, 4 connections",
            round(pg.updates_per_s),
            "updates/s",
            "redis-benchmark ZINCRBY",
            round(zincrby.requests_per_s),
        )
    )
    report.series["latency:leaderboard_gateway"] = top["gateway"]
    report.series["latency:leaderboard_postgres"] = pg.select
    report.sections["M5 PostgreSQL plans (100k rows)"] = (
        f"With the index on (points DESC, user_id):\n```\n{pg.plan}\n```\n\n"
        f"Primary key only:\n```\n{pg.plan_plain}\n```\n"
    )
    report.sections["M5 how the updates were measured"] = (
        f"{events:,} `post.liked` events decoded and applied by the gateway's own "
        f"`CacheProjection` in this process, in batches of {BATCH}, on Redis database "
        f"{fixtures.BENCH_REDIS_DB} (the product's keys live in database 0 and were not "
        "touched). Each event is one Lua call that sets the dedupe marker and then runs "
        "ZINCRBY, the hot-posts boost and the activity-list LPUSH/LTRIM: five commands, "
        "against the single command of the anchor; decoding the JSON envelope took "
        f"{decode_share:.0%} of the time. Kafka is not in this figure (M3 measures the "
        f"consumer). redis-benchmark: p50 {zincrby.p50_ms} ms, p99 {zincrby.p99_ms} ms."
    )
