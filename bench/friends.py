"""M6: friend-of-friend top 10 in Neo4j and in PostgreSQL SQL, on the same generated data.

Both stores get the same users and the same undirected friendships (stored in both directions),
with proper indexes: Neo4j a uniqueness constraint on :BenchUser(id); PostgreSQL a primary key on
(user_id, friend_id) and a reverse index on (friend_id, user_id). The data lives apart from the
product's (label :BenchUser, database campus_bench) and is reused across runs of the same size.
Each size is loaded once; the sampling of users and the timed queries are repeated (a fresh
sample of users per repetition), and each figure is the median of the repetitions.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from neo4j import AsyncDriver, AsyncGraphDatabase

from bench.core import Figure, Report, percentile, reps
from bench.env import settings

FRIENDS_PER_USER = 50

# The brief's query: the anti-join is a pattern check per candidate row.
CYPHER_BRIEF = """
MATCH (me:BenchUser {id: $id})-[:FRIEND]->(f)-[:FRIEND]->(fof)
WHERE fof <> me AND NOT (me)-[:FRIEND]->(fof)
WITH fof, count(*) AS mutual
ORDER BY mutual DESC, fof.id LIMIT 10
RETURN fof.id AS id, mutual
"""

# Tuned: collect my friends once, then the anti-join is a list membership test.
CYPHER = """
MATCH (me:BenchUser {id: $id})-[:FRIEND]->(f)
WITH me, collect(f) AS friends
UNWIND friends AS f
MATCH (f)-[:FRIEND]->(fof)
WHERE fof <> me AND NOT fof IN friends
WITH fof, count(*) AS mutual
ORDER BY mutual DESC, fof.id LIMIT 10
RETURN fof.id AS id, mutual
"""

SQL = """
SELECT f2.friend_id AS id, count(*) AS mutual
FROM bench_friend f1
JOIN bench_friend f2 ON f2.user_id = f1.friend_id
WHERE f1.user_id = $1
  AND f2.friend_id <> $1
  AND NOT EXISTS (SELECT 1 FROM bench_friend f3
                  WHERE f3.user_id = $1 AND f3.friend_id = f2.friend_id)
GROUP BY f2.friend_id
ORDER BY mutual DESC, id
LIMIT 10
"""


def edges(n_users: int, seed: int = 42) -> list[tuple[int, int]]:
    """Undirected friendships, each user with about FRIENDS_PER_USER friends."""
    rng = random.Random(seed)
    pairs: set[tuple[int, int]] = set()
    target = n_users * FRIENDS_PER_USER // 2
    while len(pairs) < target:
        a, b = rng.randint(1, n_users), rng.randint(1, n_users)
        if a != b:
            pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


async def _pg_load(conn: asyncpg.Connection, n: int, pairs: list[tuple[int, int]]) -> None:
    loaded = (
        await conn.fetchval("SELECT n FROM bench_meta WHERE what = 'friends'")
        if await conn.fetchval("SELECT to_regclass('bench_meta') IS NOT NULL")
        else None
    )
    if loaded == n:
        return
    await conn.execute("""
        DROP TABLE IF EXISTS bench_friend, bench_user, bench_meta;
        CREATE TABLE bench_user (id bigint PRIMARY KEY, full_name text NOT NULL);
        CREATE TABLE bench_friend (user_id bigint NOT NULL, friend_id bigint NOT NULL,
                                   PRIMARY KEY (user_id, friend_id));
        CREATE TABLE bench_meta (what text PRIMARY KEY, n int NOT NULL);
    """)
    await conn.copy_records_to_table(
        "bench_user", records=[(i, f"Student {i}") for i in range(1, n + 1)]
    )
    both = [(a, b) for a, b in pairs] + [(b, a) for a, b in pairs]
    await conn.copy_records_to_table("bench_friend", records=both)
    await conn.execute("""
        CREATE INDEX bench_friend_reverse_idx ON bench_friend (friend_id, user_id);
        ANALYZE bench_user; ANALYZE bench_friend;
    """)
    await conn.execute("INSERT INTO bench_meta VALUES ('friends', $1)", n)


async def _neo_load(driver: AsyncDriver, n: int, pairs: list[tuple[int, int]]) -> None:
    records, _, _ = await driver.execute_query(
        "MATCH (m:BenchMeta {what: 'friends'}) RETURN m.n AS n"
    )
    if records and records[0]["n"] == n:
        return
    await driver.execute_query(
        "CREATE CONSTRAINT bench_user_id IF NOT EXISTS FOR (u:BenchUser) REQUIRE u.id IS UNIQUE"
    )
    # Delete in chunks: one huge transaction would not fit the heap. 500 students take ~50,000
    # relationships with them; 5,000 (the 100k graph's, ~500,000) ran out of Neo4j's
    # transaction memory (dbms.memory.transaction.total.max) in the run of 2026-12-02 13:40.
    while True:
        _, summary, _ = await driver.execute_query(
            "MATCH (u:BenchUser) WITH u LIMIT 500 DETACH DELETE u"
        )
        if summary.counters.nodes_deleted == 0:
            break
    for start in range(1, n + 1, 20_000):
        ids = list(range(start, min(start + 20_000, n + 1)))
        await driver.execute_query(
            "UNWIND $ids AS id CREATE (:BenchUser {id: id, full_name: 'Student ' + toString(id)})",
            ids=ids,
        )
    for start in range(0, len(pairs), 10_000):
        chunk = [[a, b] for a, b in pairs[start : start + 10_000]]
        await driver.execute_query(
            """UNWIND $pairs AS p
               MATCH (a:BenchUser {id: p[0]}), (b:BenchUser {id: p[1]})
               CREATE (a)-[:FRIEND]->(b), (b)-[:FRIEND]->(a)""",
            pairs=chunk,
        )
    await driver.execute_query("MERGE (m:BenchMeta {what: 'friends'}) SET m.n = $n", n=n)


@dataclass
class Rep:
    """One repetition's latencies (seconds) of each query over the same sampled users."""

    neo: list[float] = field(default_factory=list)
    pg: list[float] = field(default_factory=list)
    brief: list[float] = field(default_factory=list)

    def ms(self, which: str, q: float) -> float:
        return percentile([x * 1000 for x in getattr(self, which)], q)


async def _measure(n: int, samples: int, repetitions: int, report: Report) -> None:
    s = settings()
    pairs = edges(n)
    conn = await asyncpg.connect(s.superuser_dsn("campus_bench"))
    driver = AsyncGraphDatabase.driver(s.neo4j_uri, auth=s.neo4j_auth)
    try:
        t = time.perf_counter()
        await _pg_load(conn, n, pairs)
        await _neo_load(driver, n, pairs)
        load_s = time.perf_counter() - t
        # The first repetition samples the users earlier runs did (seed 7); each later one
        # draws its own sample, so the spread covers the choice of users too.
        samples_by_rep = [
            [rng.randint(1, n) for _ in range(samples)]
            for rng in (random.Random(7 + rep) for rep in range(repetitions))
        ]
        ids = samples_by_rep[0]
        for i in ids[:20]:  # warm both caches and plans
            await conn.fetch(SQL, i)
            await driver.execute_query(CYPHER, id=i)
        runs: list[Rep] = []
        agree = 0
        for sample in samples_by_rep:
            rep = Rep()
            runs.append(rep)
            for i in sample:
                t = time.perf_counter()
                await driver.execute_query(CYPHER_BRIEF, id=i)
                rep.brief.append(time.perf_counter() - t)
                t = time.perf_counter()
                recs, _, _ = await driver.execute_query(CYPHER, id=i)
                rep.neo.append(time.perf_counter() - t)
                t = time.perf_counter()
                rows = await conn.fetch(SQL, i)
                rep.pg.append(time.perf_counter() - t)
                agree += [(r["id"], r["mutual"]) for r in recs] == [
                    (r["id"], r["mutual"]) for r in rows
                ]
        label = f"{n // 1000}k users x ~{FRIENDS_PER_USER} friends"
        for q in (50, 99):
            report.add(
                Figure.median_of(
                    "M6",
                    f"friend-of-friend top 10, Neo4j p{q} ({label})",
                    [r.ms("neo", q) for r in runs],
                    "ms",
                    f"same query in PostgreSQL p{q}",
                    [r.ms("pg", q) for r in runs],
                    "Neo4j p50 ≤ PostgreSQL p50 (and ≤ 10 ms)" if q == 50 else None,
                    met=(
                        (lambda value, anchor: anchor is not None and value <= anchor)
                        if q == 50
                        else None
                    ),
                )
            )
        report.add(
            Figure.median_of(
                "M6",
                f"friend-of-friend top 10, Neo4j with the brief's query p50 ({label})",
                [r.ms("brief", 50) for r in runs],
                "ms",
                "tuned Cypher p50",
                [r.ms("neo", 50) for r in runs],
            )
        )
        report.series[f"latency:fof_neo4j_{n}"] = [x for r in runs for x in r.neo]
        report.series[f"latency:fof_postgres_{n}"] = [x for r in runs for x in r.pg]
        explained = await conn.fetch("EXPLAIN ANALYZE " + SQL.replace("$1", str(ids[0])))
        plan_pg = "\n".join(r[0] for r in explained)
        _, summary, _ = await driver.execute_query("PROFILE " + CYPHER, id=ids[0])
        plan = summary.profile or {}

        def hits(p: dict[str, Any]) -> int:
            return int(p.get("dbHits", 0)) + sum(hits(c) for c in p.get("children", []))

        queried = repetitions * samples
        report.sections[f"M6 query plans ({label})"] = (
            f"{repetitions} repetition{'s' if repetitions > 1 else ''} of {samples} sampled "
            "users each (a fresh sample per repetition), every user asked of the brief's "
            "Cypher, the tuned Cypher and the SQL in turn; each figure is the median of the "
            "repetitions' percentiles. "
            f"Both stores returned the same top 10 for {agree}/{queried} sampled users "
            "(ties broken by id in both). "
            f"Load time (both stores, first run only): {load_s:.0f} s.\n\n"
            f"PostgreSQL `EXPLAIN ANALYZE`:\n```\n{plan_pg}\n```\n\n"
            f"Neo4j `PROFILE` of the tuned query: {hits(plan)} db hits in total.\n"
        )
    finally:
        await conn.close()
        await driver.close()


async def run(report: Report, *, quick: bool) -> None:
    admin = await asyncpg.connect(settings().superuser_dsn("postgres"))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'campus_bench'"):
            await admin.execute("CREATE DATABASE campus_bench")
    finally:
        await admin.close()
    repetitions = reps(quick=quick)
    await _measure(10_000, 100 if quick else 300, repetitions, report)
    if not quick:
        await _measure(100_000, 300, repetitions, report)
