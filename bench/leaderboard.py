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

Repetitions. The bench members, the PostgreSQL tables and the warm-up happen once; then every
timed phase (the reads, the UPDATE loop, redis-benchmark, the projection, the pipelined
ZINCRBY) runs once per repetition, each beside its anchor, and each figure is the median of
the repetitions. The flame graph of the projection is taken once afterwards, untimed.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka.structs import ConsumerRecord
from redis.asyncio import Redis

from bench import fixtures, profile
from bench.core import Figure, Report, at_most, percentile, reps
from bench.env import settings
from bench.tools import RedisBenchResult, redis_benchmark
from campus_common import runtime, topics
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


TOP10 = "SELECT user_id, points FROM {table} ORDER BY points DESC, user_id LIMIT 10"
INDEXED = TOP10.format(table="bench_leaderboard")
PLAIN = TOP10.format(table="bench_leaderboard_plain")


async def _postgres_tables(conn: asyncpg.Connection) -> None:
    """The brief's 100k-row leaderboard in campus_bench, with and without an index on points
    (kept across runs of the same size)."""
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


async def _pg_updates(dsn: str, seconds: float) -> float:
    """UPDATE points = points + 1 on random rows from 4 connections for `seconds`: updates/s."""
    conns = [await asyncpg.connect(dsn) for _ in range(4)]
    done = 0
    deadline = time.monotonic() + seconds

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
    return done / (time.monotonic() - started)


async def _zincrby_benchmark() -> RedisBenchResult:
    """The real redis-benchmark doing ZINCRBY on a bench key of database 15, then dropped."""
    s = settings()
    result = await redis_benchmark(
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
    return result


@dataclass
class Rep:
    """One repetition of every timed phase (latencies in seconds)."""

    gateway: list[float] = field(default_factory=list)
    live: list[float] = field(default_factory=list)  # the gateway's /health/live
    # The same two, the services restarted with every request traced (after every repetition
    # above).
    gateway_traced: list[float] = field(default_factory=list)
    live_traced: list[float] = field(default_factory=list)
    redis: list[float] = field(default_factory=list)
    select: list[float] = field(default_factory=list)  # top 10 with the index on points
    select_plain: list[float] = field(default_factory=list)  # the brief's table: pk only
    pg_updates_per_s: float = 0.0
    zincrby: RedisBenchResult | None = None
    through: float = 0.0  # events/s through the cache projection
    decode_share: float = 0.0
    pipelined: float = 0.0

    def ms(self, which: str, q: float) -> float:
        return percentile([x * 1000 for x in getattr(self, which)], q)

    @property
    def zincrby_per_s(self) -> float:
        return self.zincrby.requests_per_s if self.zincrby else 0.0


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
        # The 100k records are this bench's input, not the projection's heap: out of the
        # collector's way, as a service's start-up objects are (campus_common.runtime).
        runtime.settle_heap()
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
    # Each repetition's UPDATE loop: 20 s in a single full run before the repetitions.
    update_s = 5.0 if quick else 10.0
    repetitions = reps(quick=quick)
    await fixtures.ensure_bench_db()
    dsn = settings().superuser_dsn("campus_bench")
    conn = await asyncpg.connect(dsn)
    redis = fixtures.redis_client()
    members: list[str] = []
    runs: list[Rep] = []
    flames: list[str] = []
    try:
        await _postgres_tables(conn)
        real_above = await redis.zcount(LEADERBOARD, 0, "+inf")
        members = await _seed(redis)
        size = await redis.zcard(LEADERBOARD)
        async with fixtures.http_client() as http:
            token = await fixtures.admin_token(http)
            # Ten real (named) bench users right above the unnamed bench members: the top 10
            # then holds only named users, as on a campus with ten users with points, and the
            # gateway reads their names from the cache instead of asking the users service
            # for names nobody has on every request.
            named = [str(u) for u in await fixtures.bench_users(http, 10, prefix="bench-leader")]
            await redis.zadd(LEADERBOARD, {u: -0.5 for u in named})
            members += named
            # Long enough for every repetition; removed on the way out.
            async with fixtures.rate_limit_lifted(http, token, ttl_s=1800):
                lb_url = f"{fixtures.url('gateway')}/recommendations/leaderboard"

                async def gateway() -> None:
                    resp = await http.get(lb_url, params={"limit": 10})
                    if resp.status_code != 200:
                        raise RuntimeError(f"leaderboard: {resp.status_code} {resp.text[:200]}")

                live_url = f"{fixtures.url('gateway')}/health/live"

                async def live() -> None:
                    # The floor of any route of this gateway, from this client: the same
                    # middleware (metrics, tracing) and no dependency at all.
                    resp = await http.get(live_url)
                    if resp.status_code != 200:
                        raise RuntimeError(f"live: {resp.status_code} {resp.text[:200]}")

                async def direct() -> None:
                    await redis.zrevrange(LEADERBOARD, 0, 9, withscores=True)

                # Warm the pools, the cached names and the plans, untimed.
                await _timed(50, gateway)
                await _timed(50, live)
                await _timed(50, lambda: conn.fetch(INDEXED))
                await _timed(5, lambda: conn.fetch(PLAIN))
                for _ in range(repetitions):
                    rep = Rep()
                    rep.gateway = await _timed(requests, gateway)
                    rep.live = await _timed(requests, live)
                    rep.redis = await _timed(requests, direct)
                    rep.select = await _timed(requests, lambda: conn.fetch(INDEXED))
                    rep.select_plain = await _timed(
                        max(requests // 3, 50), lambda: conn.fetch(PLAIN)
                    )
                    rep.pg_updates_per_s = await _pg_updates(dsn, update_s)
                    rep.zincrby = await _zincrby_benchmark()
                    rep.through, rep.decode_share, rep.pipelined = await _projection(events)
                    runs.append(rep)
                # The same reads with every request traced (the classroom default, issue 14):
                # what it costs this route. One restart for all repetitions.
                async with fixtures.tracing_mode("100 %"):
                    await _timed(50, gateway)
                    await _timed(50, live)
                    for rep in runs:
                        rep.gateway_traced = await _timed(requests, gateway)
                        rep.live_traced = await _timed(requests, live)
                if profile.available():
                    # Untimed, after the repetitions: where a sequential top-10 read spends the
                    # gateway's CPU.
                    _, gateway_found = await profile.during(
                        report,
                        name="gateway_leaderboard",
                        pid=profile.service_pid("gateway"),
                        seconds=5,
                        work=_timed(requests, gateway),
                    )
                    flames.append(
                        f"- `flame_gateway_leaderboard.svg`: the gateway serving {requests} "
                        f"sequential top-10 reads; {gateway_found}"
                    )
        plans = []
        for query in (INDEXED, PLAIN):
            rows = await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + query)
            plans.append("\n".join(r[0] for r in rows))
    finally:
        await _unseed(redis, members)
        await redis.aclose()
        await conn.close()

    if profile.available():
        # A further, untimed run under the sampler (it would share the cores with a timed one).
        _, found = await profile.during(
            report, name="cache_projection", pid=os.getpid(), seconds=4, work=_projection(events)
        )
        flames.append(
            f"- `flame_cache_projection.svg`: {events:,} `post.liked` events through the cache "
            f"projection in this process; {found}"
        )
    if flames:
        report.sections["M5 flame graphs (py-spy)"] = "\n".join(flames)

    if real_above < 10:
        report.sections["M5 note"] = (
            f"Only {real_above} real users have points, so ten named bench users (score -0.5, "
            "above the unnamed bench members) filled the rest of the top 10 during the run."
        )
    report.sections["M5 tracing 100 %"] = (
        "After the repetitions the five services were restarted with tracing at 100 % (every "
        f"request traced, the classroom default), and each repetition's {requests} sequential "
        "top-10 reads and /health/live reads were made again; then the services were "
        "restarted as the run has them."
    )
    report.sections["M5 leaderboard size"] = (
        f"`{LEADERBOARD}` held {size:,} members during the top-10 run "
        f"({MEMBERS:,} unnamed bench members and ten named bench users, all with negative "
        "scores, removed afterwards)."
    )
    label = f"{MEMBERS // 1000}k members, {requests} sequential requests"
    pg99 = [r.ms("select", 99) for r in runs]
    zincrby = [r.zincrby_per_s for r in runs]
    report.add(
        Figure.median_of(
            "M5",
            f"leaderboard top 10 at the gateway p99 ({label})",
            [r.ms("gateway", 99) for r in runs],
            "ms",
            "PostgreSQL ORDER BY points DESC LIMIT 10, indexed, p99",
            pg99,
            "≤ 5 ms",
            met=lambda value, _anchor: value <= 5.0,
        )
    )
    report.add(
        Figure.median_of(
            "M5",
            f"leaderboard top 10 at the gateway p50 ({label})",
            [r.ms("gateway", 50) for r in runs],
            "ms",
            "PostgreSQL p50",
            [r.ms("select", 50) for r in runs],
            "≤ 2 ms",
            met=lambda value, _anchor: value <= 2.0,
        )
    )
    for q in (50, 99):
        report.add(
            Figure.median_of(
                "M5",
                f"gateway GET /health/live p{q}, sequential (no dependency: the floor of any "
                "gateway route from this client)",
                [r.ms("live", q) for r in runs],
                "ms",
                f"leaderboard top 10 at the gateway p{q}",
                [r.ms("gateway", q) for r in runs],
            )
        )
    for q, limit in ((50, 2.0), (99, 5.0)):
        report.add(
            Figure.median_of(
                "M5",
                f"leaderboard top 10 at the gateway p{q}, tracing 100 %",
                [r.ms("gateway_traced", q) for r in runs],
                "ms",
                f"gateway GET /health/live p{q}, tracing 100 %",
                [r.ms("live_traced", q) for r in runs],
                f"≤ {limit:g} ms",
                met=at_most(limit),
            )
        )
    report.add(
        Figure.median_of(
            "M5",
            "top 10 straight from Redis (ZREVRANGE from this process) p99",
            [r.ms("redis", 99) for r in runs],
            "ms",
            "PostgreSQL p99",
            pg99,
        )
    )
    report.add(
        Figure.median_of(
            "M5",
            f"point updates/s through the cache projection (post.liked, batches of {BATCH})",
            [r.through for r in runs],
            "updates/s",
            "redis-benchmark ZINCRBY (50 clients)",
            zincrby,
            "≥ 30 % of raw ZINCRBY",
            met=lambda value, anchor: anchor is not None and value >= 0.3 * anchor,
            digits=0,
        )
    )
    report.add(
        Figure.median_of(
            "M5",
            f"ZINCRBY/s pipelined from this process (batches of {BATCH})",
            [r.pipelined for r in runs],
            "updates/s",
            "redis-benchmark ZINCRBY",
            zincrby,
            digits=0,
        )
    )
    report.add(
        Figure.median_of(
            "M5",
            "PostgreSQL top 10 without an index on points (the brief's table) p99",
            [r.ms("select_plain", 99) for r in runs],
            "ms",
            "with the index p99",
            pg99,
        )
    )
    report.add(
        Figure.median_of(
            "M5",
            "PostgreSQL UPDATE points = points + 1, 4 connections",
            [r.pg_updates_per_s for r in runs],
            "updates/s",
            "redis-benchmark ZINCRBY",
            zincrby,
            digits=0,
        )
    )
    report.series["latency:leaderboard_gateway"] = [x for r in runs for x in r.gateway]
    report.series["latency:leaderboard_postgres"] = [x for r in runs for x in r.select]
    report.sections["M5 PostgreSQL plans (100k rows)"] = (
        f"With the index on (points DESC, user_id):\n```\n{plans[0]}\n```\n\n"
        f"Primary key only:\n```\n{plans[1]}\n```\n"
    )
    benches = [r.zincrby for r in runs if r.zincrby]
    times = "once" if repetitions == 1 else f"{repetitions} times"
    report.sections["M5 how the updates were measured"] = (
        f"Every timed phase ran {times}, in this order per repetition, and each figure is "
        f"the median of the repetitions: {requests} sequential top-10 requests at the gateway, "
        f"as many ZREVRANGE from this process and indexed PostgreSQL SELECTs, "
        f"{max(requests // 3, 50)} SELECTs on the brief's table; {update_s:g} s of UPDATE "
        "from 4 connections (the rows keep their increments from one repetition to the "
        "next); redis-benchmark ZINCRBY (100,000 "
        f"requests, 50 clients); then {events:,} `post.liked` events decoded and applied by "
        f"the gateway's own `CacheProjection` in this process, in batches of {BATCH}, on Redis "
        f"database {fixtures.BENCH_REDIS_DB} (the product's keys live in database 0 and were "
        "not touched; every repetition starts from an empty database 15, fresh event ids and "
        "dedupe markers), and as many ZINCRBY pipelined from here. A batch is one Lua call; "
        "for each event it sets the dedupe marker and then runs ZINCRBY, the hot-posts boost "
        "and the activity-list LPUSH (four commands, against the single command of the "
        "anchor), and it caps each activity list it pushed to once (LTRIM); "
        "decoding the JSON envelope took "
        f"{statistics.median(r.decode_share for r in runs):.0%} of the time (median). Kafka "
        "is not in this figure (M3 measures the consumer). redis-benchmark (median of the "
        f"repetitions): p50 {statistics.median(b.p50_ms for b in benches):g} ms, "
        f"p99 {statistics.median(b.p99_ms for b in benches):g} ms."
    )
