"""M9: where a graph database should win: depth-3 reach and shortest paths, Neo4j against
PostgreSQL recursive CTEs, on the same generated friendship graph (issue 16, item 6).

The graph is generated here, deterministically (Holme-Kim: preferential attachment with triad
closure, so a few students have hundreds of friends, most have a handful, and friends of friends
are often friends). It is loaded into Neo4j as :BenchStudent nodes with undirected
:BENCH_FRIEND relationships (stored once, traversed both ways), and into a scratch PostgreSQL
database as an edges table holding both directions with a primary key on (a, b). Both are
created by this module and dropped again at the end, also when a run fails: the bench leaves
nothing behind, and it checks that it did not.

Queries, the same semantics in both stores, checked against each other and against a BFS in
this process (a mismatch fails the benchmark):
- reach at depth k: the students whose shortest distance from the start student is exactly k
  (depth 2: friends of friends, neither the start nor a direct friend; depth 3: friends of
  those, none of the nearer ones), answered as their number and the sum of their ids;
- shortest path: the number of hops between two different students, at most MAX_HOPS (no
  answer when they are further apart).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any, LiteralString

import asyncpg
from neo4j import AsyncDriver, Query, RoutingControl
from neo4j.exceptions import ClientError

from bench.core import Figure, Report
from bench.env import settings
from bench.fixtures import neo4j_driver

METRIC = "M9"
TITLE = "M9: where a graph database should win (depth-3 reach, shortest path)"
SEED = 16
# Each new student befriends M existing ones: about 2*M friends each on average.
M = 5
TRIAD = 0.5
REPS = 3
TIMEOUT_S = 30.0
# A query that times out this many times at one size is not run again at that size.
GIVE_UP_AFTER = 3
MAX_HOPS = 8
# Within this ratio neither store wins.
TIE = 1.1
SCRATCH_DB = "campus_bench_graphdepth"
NEO4J = "Neo4j"
POSTGRES = "PostgreSQL"
QUERIES = ("reach at depth 2", "reach at depth 3", "shortest path")


# the graph -----------------------------------------------------------------------------------


def friendships(
    n: int, *, m: int = M, triad: float = TRIAD, seed: int = SEED
) -> list[tuple[int, int]]:
    """Undirected friendships (a < b) among students 1..n, the same for the same arguments."""
    if n <= m:
        raise ValueError("n must exceed m")
    rng = random.Random(seed)
    adj: list[list[int]] = [[] for _ in range(n + 1)]
    # Every endpoint of every edge once: a uniform pick from it is a pick by degree.
    ends: list[int] = []
    pairs: list[tuple[int, int]] = []

    def link(a: int, b: int) -> None:
        adj[a].append(b)
        adj[b].append(a)
        ends.extend((a, b))
        pairs.append((min(a, b), max(a, b)))

    for a in range(1, m + 2):  # a small clique to start from
        for b in range(a + 1, m + 2):
            link(a, b)
    for new in range(m + 2, n + 1):
        chosen: list[int] = []
        last: int | None = None
        while len(chosen) < m:
            pick = None
            # Triad closure: befriend a friend of the student just befriended.
            if last is not None and rng.random() < triad:
                friends = adj[last]
                candidate = friends[rng.randrange(len(friends))]
                if candidate != new and candidate not in chosen:
                    pick = candidate
            while pick is None:
                candidate = ends[rng.randrange(len(ends))]
                if candidate not in chosen:
                    pick = candidate
            chosen.append(pick)
            last = pick
        for c in chosen:
            link(new, c)
    return pairs


def adjacency(n: int, pairs: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Friends of each student 1..n (index 0 unused)."""
    adj: list[list[int]] = [[] for _ in range(n + 1)]
    for a, b in pairs:
        adj[a].append(b)
        adj[b].append(a)
    return adj


def levels(adj: Sequence[Sequence[int]], start: int, depth: int) -> list[set[int]]:
    """BFS levels 0..depth from start: level k holds the students exactly k hops away."""
    out = [{start}]
    seen = {start}
    for _ in range(depth):
        nxt = {f for s in out[-1] for f in adj[s] if f not in seen}
        seen |= nxt
        out.append(nxt)
    return out


def distance(adj: Sequence[Sequence[int]], a: int, b: int, *, max_hops: int) -> int | None:
    """Hops on a shortest path from a to b, None when it is longer than max_hops."""
    if a == b:
        return 0
    seen = {a}
    queue: deque[tuple[int, int]] = deque([(a, 0)])
    while queue:
        node, d = queue.popleft()
        if d == max_hops:
            continue
        for f in adj[node]:
            if f == b:
                return d + 1
            if f not in seen:
                seen.add(f)
                queue.append((f, d + 1))
    return None


def degree_facts(adj: Sequence[Sequence[int]]) -> dict[str, float]:
    degrees = sorted(len(f) for f in adj[1:])
    return {
        "mean": round(sum(degrees) / len(degrees), 2),
        "median": degrees[len(degrees) // 2],
        "p99": degrees[min(len(degrees) - 1, int(len(degrees) * 0.99))],
        "max": degrees[-1],
    }


# statistics and the verdict ------------------------------------------------------------------


def pct(samples: Sequence[float | None], q: float) -> float:
    """The q-th percentile, a timed-out sample (None) counting as slower than any other:
    math.inf when the percentile reaches one."""
    if not samples:
        raise ValueError("no samples")
    finite = sorted(s for s in samples if s is not None)
    ordered = finite + [math.inf] * (len(samples) - len(finite))
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    if math.isinf(ordered[hi]):
        return math.inf
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


@dataclass
class Spread:
    """One figure over the repetitions: their median, min and max (inf: timed out)."""

    values: list[float]

    @property
    def median(self) -> float:
        return median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    @property
    def timed_out(self) -> bool:
        return math.isinf(self.median)


@dataclass
class Result:
    """One query in one store at one size: latencies (s) per repetition, None = timed out."""

    store: str
    variant: str
    reps: list[list[float | None]] = field(default_factory=list)
    # Set when the query gave up after GIVE_UP_AFTER timeouts.
    gave_up: bool = False

    @property
    def timeouts(self) -> int:
        return sum(s is None for rep in self.reps for s in rep)

    @property
    def done(self) -> bool:
        return bool(self.reps) and not self.gave_up

    def spread(self, q: float) -> Spread:
        """The q-th percentile of each repetition, in ms."""
        return Spread([pct(rep, q) * 1000 for rep in self.reps])


def best(results: Sequence[Result], store: str) -> Result | None:
    """The store's fastest completed variant by median p50 (the fairest one to compare)."""
    done = [r for r in results if r.store == store and r.done]
    return min(done, key=lambda r: r.spread(50).median, default=None)


def fmt_ms(v: float) -> str:
    if math.isinf(v):
        return f"> {TIMEOUT_S:g} s"
    return f"{v:.3g} ms" if v < 100 else f"{v:,.0f} ms"


def verdict(neo: Result | None, pg: Result | None) -> str:
    """Which store answered faster at p50, by what ratio, and whether the repetitions agree."""
    if neo is None and pg is None:
        return "neither store finished (each timed out or failed)"
    if neo is None or neo.spread(50).timed_out:
        return f"{POSTGRES} wins: {NEO4J} did not finish within {TIMEOUT_S:g} s"
    if pg is None or pg.spread(50).timed_out:
        return f"{NEO4J} wins: {POSTGRES} did not finish within {TIMEOUT_S:g} s"
    n, p = neo.spread(50), pg.spread(50)
    if n.median <= 0 or p.median <= 0:
        return "not comparable"
    ratio = p.median / n.median
    figures = f"p50 {NEO4J} {fmt_ms(n.median)}, {POSTGRES} {fmt_ms(p.median)}"
    if 1 / TIE < ratio < TIE:
        return f"no winner: within {TIE:g}x ({figures})"
    winner, loser, factor = (NEO4J, p, ratio) if ratio > 1 else (POSTGRES, n, 1 / ratio)
    fast = n if ratio > 1 else p
    # A win is clear when every repetition of the winner beat every repetition of the other.
    clear = "" if fast.high < loser.low else "; the repetitions overlap"
    return f"{winner} {factor:.1f}x faster ({figures}{clear})"


# the two stores --------------------------------------------------------------------------------

# BFS one level per recursion step. On an undirected graph a friend of a student k hops away is
# k-1, k or k+1 hops away, so the next level is the current level's friends minus the current
# and the previous level: two arrays carry all the visited set a level needs. EXCEPT is a
# hashed set difference, so no step compares element by element.
SQL_REACH_LEVELS = """
WITH RECURSIVE bfs(depth, frontier, previous) AS (
    SELECT 0, ARRAY[$1::int], '{}'::int[]
  UNION ALL
    SELECT bfs.depth + 1, nxt.ids, bfs.frontier
    FROM bfs
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(n.id), '{}') AS ids
        FROM (
            SELECT e.b AS id
            FROM unnest(bfs.frontier) AS f(id)
            JOIN bench_edge AS e ON e.a = f.id
            EXCEPT SELECT unnest(bfs.frontier)
            EXCEPT SELECT unnest(bfs.previous)
        ) AS n
    ) AS nxt
    WHERE bfs.depth < $2 AND cardinality(bfs.frontier) > 0
)
SELECT cardinality(frontier) AS n,
       coalesce((SELECT sum(id) FROM unnest(frontier) AS id), 0) AS s
FROM bfs WHERE depth = $2
"""

# The textbook recursive CTE: every (student, hops) pair a walk reaches, then each student's
# smallest. UNION drops repeated pairs, but a walk may go back and forth.
SQL_REACH_WALK = """
WITH RECURSIVE walk(id, depth) AS (
    SELECT $1::int, 0
  UNION
    SELECT e.b, walk.depth + 1
    FROM walk JOIN bench_edge AS e ON e.a = walk.id
    WHERE walk.depth < $2
)
SELECT count(*) AS n, coalesce(sum(id), 0) AS s
FROM (SELECT id FROM walk GROUP BY id HAVING min(depth) = $2) AS reached
"""

SQL_PATH_LEVELS = """
WITH RECURSIVE bfs(depth, frontier, previous) AS (
    SELECT 0, ARRAY[$1::int], '{}'::int[]
  UNION ALL
    SELECT bfs.depth + 1, nxt.ids, bfs.frontier
    FROM bfs
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(n.id), '{}') AS ids
        FROM (
            SELECT e.b AS id
            FROM unnest(bfs.frontier) AS f(id)
            JOIN bench_edge AS e ON e.a = f.id
            EXCEPT SELECT unnest(bfs.frontier)
            EXCEPT SELECT unnest(bfs.previous)
        ) AS n
    ) AS nxt
    WHERE bfs.depth < $3 AND cardinality(bfs.frontier) > 0 AND NOT $2::int = ANY (bfs.frontier)
)
SELECT min(depth) AS hops FROM bfs WHERE $2::int = ANY (frontier)
"""

# Bidirectional BFS: each step grows the smaller of the two frontiers by one level; the first
# time the new level meets the other side's frontier, the path has da + db hops (no earlier
# level can meet, or they would have met a step before).
SQL_PATH_BOTH = """
WITH RECURSIVE bfs(da, fa, pa, db, fb, pb, met) AS (
    SELECT 0, ARRAY[$1::int], '{}'::int[], 0, ARRAY[$2::int], '{}'::int[], $1::int = $2::int
  UNION ALL
    SELECT
        CASE WHEN s.a THEN bfs.da + 1 ELSE bfs.da END,
        CASE WHEN s.a THEN nxt.ids ELSE bfs.fa END,
        CASE WHEN s.a THEN bfs.fa ELSE bfs.pa END,
        CASE WHEN s.a THEN bfs.db ELSE bfs.db + 1 END,
        CASE WHEN s.a THEN bfs.fb ELSE nxt.ids END,
        CASE WHEN s.a THEN bfs.pb ELSE bfs.fb END,
        EXISTS (SELECT unnest(nxt.ids)
                INTERSECT SELECT unnest(CASE WHEN s.a THEN bfs.fb ELSE bfs.fa END))
    FROM bfs
    CROSS JOIN LATERAL (SELECT cardinality(bfs.fa) <= cardinality(bfs.fb) AS a) AS s
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(n.id), '{}') AS ids
        FROM (
            SELECT e.b AS id
            FROM unnest(CASE WHEN s.a THEN bfs.fa ELSE bfs.fb END) AS f(id)
            JOIN bench_edge AS e ON e.a = f.id
            EXCEPT SELECT unnest(CASE WHEN s.a THEN bfs.fa ELSE bfs.fb END)
            EXCEPT SELECT unnest(CASE WHEN s.a THEN bfs.pa ELSE bfs.pb END)
        ) AS n
    ) AS nxt
    WHERE NOT bfs.met AND bfs.da + bfs.db < $3
      AND cardinality(bfs.fa) > 0 AND cardinality(bfs.fb) > 0
)
SELECT da + db AS hops FROM bfs WHERE met
"""

# Each reachable student once, by a shortest path (Neo4j runs a BFS from the start for this).
CYPHER_REACH: dict[int, LiteralString] = {
    2: """
MATCH (me:BenchStudent {id: $id})
MATCH p = ANY SHORTEST (me)-[:BENCH_FRIEND]-{0,2}(x:BenchStudent)
WITH x, length(p) AS hops WHERE hops = 2
RETURN count(x) AS n, coalesce(sum(x.id), 0) AS s
""",
    3: """
MATCH (me:BenchStudent {id: $id})
MATCH p = ANY SHORTEST (me)-[:BENCH_FRIEND]-{0,3}(x:BenchStudent)
WITH x, length(p) AS hops WHERE hops = 3
RETURN count(x) AS n, coalesce(sum(x.id), 0) AS s
""",
}

# Level by level as in the SQL above, with lists for the visited levels.
CYPHER_REACH_LEVELS: dict[int, LiteralString] = {
    2: """
MATCH (me:BenchStudent {id: $id})-[:BENCH_FRIEND]-(f1)
WITH me, collect(f1) AS l1
UNWIND l1 AS f1
MATCH (f1)-[:BENCH_FRIEND]-(f2)
WHERE f2 <> me AND NOT f2 IN l1
WITH DISTINCT f2
RETURN count(f2) AS n, coalesce(sum(f2.id), 0) AS s
""",
    3: """
MATCH (me:BenchStudent {id: $id})-[:BENCH_FRIEND]-(f1)
WITH me, collect(f1) AS l1
UNWIND l1 AS f1
MATCH (f1)-[:BENCH_FRIEND]-(f2)
WHERE f2 <> me AND NOT f2 IN l1
WITH me, l1, collect(DISTINCT f2) AS l2
UNWIND l2 AS f2
MATCH (f2)-[:BENCH_FRIEND]-(f3)
WHERE f3 <> me AND NOT f3 IN l1 AND NOT f3 IN l2
WITH DISTINCT f3
RETURN count(f3) AS n, coalesce(sum(f3.id), 0) AS s
""",
}

# shortestPath() searches from both ends at once.
CYPHER_PATH = """
MATCH (a:BenchStudent {id: $a}), (b:BenchStudent {id: $b})
MATCH p = shortestPath((a)-[:BENCH_FRIEND*..8]-(b))
RETURN length(p) AS hops
"""

Answer = tuple[int, int] | int | None
Run = Callable[[tuple[int, ...]], Awaitable[Answer]]


@dataclass(frozen=True)
class Variant:
    store: str
    name: str
    run: Run


class TimedOut(Exception):
    """The store cancelled the statement at TIMEOUT_S."""


class Mismatch(Exception):
    """A store answered differently from the BFS in this process: the benchmark fails."""


class Stores:
    """The scratch copies of the graph in both stores, and the queries against them."""

    def __init__(self, pg: asyncpg.Connection, neo: AsyncDriver) -> None:
        self.pg = pg
        self.neo = neo

    async def _sql(self, sql: str, *args: int) -> asyncpg.Record | None:
        try:
            # The server cancels at TIMEOUT_S; the client waits a little longer, never forever.
            return await asyncio.wait_for(self.pg.fetchrow(sql, *args), TIMEOUT_S + 15)
        except (asyncpg.exceptions.QueryCanceledError, TimeoutError) as exc:
            raise TimedOut from exc

    async def _cypher(self, text: LiteralString, **params: int) -> list[Any]:
        try:
            records, _, _ = await asyncio.wait_for(
                self.neo.execute_query(
                    Query(text, timeout=TIMEOUT_S), params, routing_=RoutingControl.READ
                ),
                TIMEOUT_S + 15,
            )
        except TimeoutError as exc:
            raise TimedOut from exc
        except ClientError as exc:
            if "TimedOut" in (exc.code or ""):
                raise TimedOut from exc
            raise
        return list(records)

    def reach_variants(self, depth: int) -> list[Variant]:
        async def neo(args: tuple[int, ...]) -> Answer:
            rows = await self._cypher(CYPHER_REACH[depth], id=args[0])
            return (int(rows[0]["n"]), int(rows[0]["s"]))

        async def neo_levels(args: tuple[int, ...]) -> Answer:
            rows = await self._cypher(CYPHER_REACH_LEVELS[depth], id=args[0])
            return (int(rows[0]["n"]), int(rows[0]["s"]))

        async def pg_levels(args: tuple[int, ...]) -> Answer:
            row = await self._sql(SQL_REACH_LEVELS, args[0], depth)
            return (int(row["n"]), int(row["s"])) if row else (0, 0)

        async def pg_walk(args: tuple[int, ...]) -> Answer:
            row = await self._sql(SQL_REACH_WALK, args[0], depth)
            return (int(row["n"]), int(row["s"])) if row else (0, 0)

        return [
            Variant(NEO4J, "Cypher ANY SHORTEST", neo),
            Variant(NEO4J, "Cypher level by level", neo_levels),
            Variant(POSTGRES, "recursive CTE, BFS level by level", pg_levels),
            Variant(POSTGRES, "recursive CTE, textbook (student, hops) walk", pg_walk),
        ]

    def path_variants(self) -> list[Variant]:
        async def neo(args: tuple[int, ...]) -> Answer:
            rows = await self._cypher(CYPHER_PATH, a=args[0], b=args[1])
            return int(rows[0]["hops"]) if rows else None

        async def pg_one(args: tuple[int, ...]) -> Answer:
            row = await self._sql(SQL_PATH_LEVELS, args[0], args[1], MAX_HOPS)
            return None if row is None or row["hops"] is None else int(row["hops"])

        async def pg_both(args: tuple[int, ...]) -> Answer:
            row = await self._sql(SQL_PATH_BOTH, args[0], args[1], MAX_HOPS)
            return None if row is None or row["hops"] is None else int(row["hops"])

        return [
            Variant(NEO4J, "Cypher shortestPath()", neo),
            Variant(POSTGRES, "recursive CTE, BFS from one end", pg_one),
            Variant(POSTGRES, "recursive CTE, BFS from both ends", pg_both),
        ]


# loading and dropping ------------------------------------------------------------------------


async def drop_neo4j(driver: AsyncDriver) -> None:
    """Delete every :BenchStudent with its friendships, then the constraint."""
    # In chunks: one transaction over 100k nodes could outgrow Neo4j's heap.
    while True:
        _, summary, _ = await driver.execute_query(
            "MATCH (s:BenchStudent) WITH s LIMIT 5000 DETACH DELETE s"
        )
        if summary.counters.nodes_deleted == 0:
            break
    await driver.execute_query("DROP CONSTRAINT bench_student_id IF EXISTS")


async def neo4j_leftovers(driver: AsyncDriver) -> int:
    """Nodes, relationships and constraints of this benchmark still in Neo4j."""
    left = 0
    for query in _LEFTOVERS:
        records, _, _ = await driver.execute_query(query)
        left += int(records[0]["c"])
    return left


_LEFTOVERS: tuple[LiteralString, ...] = (
    "MATCH (s:BenchStudent) RETURN count(s) AS c",
    "MATCH ()-[r:BENCH_FRIEND]->() RETURN count(r) AS c",
    "SHOW CONSTRAINTS YIELD name WHERE name = 'bench_student_id' RETURN count(*) AS c",
)


async def load_neo4j(driver: AsyncDriver, n: int, pairs: Sequence[tuple[int, int]]) -> None:
    await driver.execute_query(
        "CREATE CONSTRAINT bench_student_id IF NOT EXISTS "
        "FOR (s:BenchStudent) REQUIRE s.id IS UNIQUE"
    )
    await driver.execute_query("CALL db.awaitIndexes(300)")
    for start in range(1, n + 1, 20_000):
        await driver.execute_query(
            "UNWIND $ids AS id CREATE (:BenchStudent {id: id})",
            ids=list(range(start, min(start + 20_000, n + 1))),
        )
    for start in range(0, len(pairs), 10_000):
        await driver.execute_query(
            "UNWIND $pairs AS p "
            "MATCH (a:BenchStudent {id: p[0]}), (b:BenchStudent {id: p[1]}) "
            "CREATE (a)-[:BENCH_FRIEND]->(b)",
            pairs=[list(p) for p in pairs[start : start + 10_000]],
        )


async def drop_postgres() -> None:
    admin = await asyncpg.connect(settings().superuser_dsn("postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
    finally:
        await admin.close()


async def postgres_leftovers() -> int:
    admin = await asyncpg.connect(settings().superuser_dsn("postgres"))
    try:
        return int(
            await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", SCRATCH_DB)
        )
    finally:
        await admin.close()


async def load_postgres(pairs: Sequence[tuple[int, int]]) -> asyncpg.Connection:
    """A fresh scratch database with the edges both ways; returns a connection to it."""
    await drop_postgres()
    admin = await asyncpg.connect(settings().superuser_dsn("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {SCRATCH_DB}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(
        settings().superuser_dsn(SCRATCH_DB),
        server_settings={"statement_timeout": f"{int(TIMEOUT_S * 1000)}"},
    )
    await conn.execute("CREATE TABLE bench_edge (a int NOT NULL, b int NOT NULL)")
    both = [*pairs, *((b, a) for a, b in pairs)]
    await conn.copy_records_to_table("bench_edge", records=both)
    # The key after the load (faster); VACUUM sets the visibility map for index-only scans.
    await conn.execute("ALTER TABLE bench_edge ADD CONSTRAINT bench_edge_pkey PRIMARY KEY (a, b)")
    await conn.execute("VACUUM ANALYZE bench_edge")
    return conn


# measuring -----------------------------------------------------------------------------------


@dataclass
class Case:
    """One query at one size: its samples, the right answers, and each variant's timings."""

    query: str
    n: int
    samples: list[tuple[int, ...]]
    truth: list[Answer]
    results: list[Result] = field(default_factory=list)


async def _measure(case: Case, variants: Sequence[Variant]) -> None:
    results = {v.name: Result(v.store, v.name) for v in variants}
    case.results = list(results.values())
    warm = case.samples[: min(3, len(case.samples))]
    for v in variants:  # plans and caches warm, not timed
        for args in warm:
            try:
                await v.run(args)
            except TimedOut:
                break
    for rep in range(REPS):
        for r in results.values():
            if not r.gave_up:
                r.reps.append([])
        for i, (args, want) in enumerate(zip(case.samples, case.truth, strict=True)):
            # Alternate which store goes first so neither always meets the warmer cache.
            order = variants if (i + rep) % 2 == 0 else list(reversed(variants))
            for v in order:
                r = results[v.name]
                if r.gave_up:
                    continue
                t = time.perf_counter()
                try:
                    got = await v.run(args)
                except TimedOut:
                    r.reps[-1].append(None)
                    if r.timeouts >= GIVE_UP_AFTER:
                        r.gave_up = True
                    continue
                r.reps[-1].append(time.perf_counter() - t)
                if got != want:
                    raise Mismatch(
                        f"{case.query} at {case.n:,}: {v.store} ({v.name}) answered {got} for "
                        f"{args}, the BFS in this process {want}"
                    )


def _samples(n: int, count: int, seed: int) -> tuple[list[int], list[tuple[int, int]]]:
    rng = random.Random(seed)
    starts = [rng.randint(1, n) for _ in range(count)]
    pairs: list[tuple[int, int]] = []
    while len(pairs) < count:
        a, b = rng.randint(1, n), rng.randint(1, n)
        if a != b:  # shortestPath() refuses a path from a node to itself
            pairs.append((a, b))
    return starts, pairs


async def measure_size(n: int, samples: int) -> tuple[list[Case], dict[str, Any]]:
    """Load a graph of n students into both stores, time every query, drop both again."""
    pairs = friendships(n)
    adj = adjacency(n, pairs)
    starts, path_pairs = _samples(n, samples, seed=SEED + n)
    reach = {s: levels(adj, s, 3) for s in starts}
    cases = [
        Case(QUERIES[0], n, [(s,) for s in starts], [_sized(reach[s][2]) for s in starts]),
        Case(QUERIES[1], n, [(s,) for s in starts], [_sized(reach[s][3]) for s in starts]),
        Case(
            QUERIES[2],
            n,
            list(path_pairs),
            [distance(adj, a, b, max_hops=MAX_HOPS) for a, b in path_pairs],
        ),
    ]
    facts: dict[str, Any] = {
        "friendships": len(pairs),
        "degree": degree_facts(adj),
        "depth 3 sizes": sorted(len(reach[s][3]) for s in starts),
        "path lengths": sorted(d for d in cases[2].truth if isinstance(d, int)),
    }
    driver = neo4j_driver()
    conn: asyncpg.Connection | None = None
    try:
        await drop_neo4j(driver)  # what a killed run may have left
        t = time.perf_counter()
        conn = await load_postgres(pairs)
        facts["load PostgreSQL s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        await load_neo4j(driver, n, pairs)
        facts["load Neo4j s"] = round(time.perf_counter() - t, 1)
        stores = Stores(conn, driver)
        await _measure(cases[0], stores.reach_variants(2))
        await _measure(cases[1], stores.reach_variants(3))
        await _measure(cases[2], stores.path_variants())
    finally:
        if conn is not None:
            await conn.close()
        try:
            await drop_neo4j(driver)
            facts["left in Neo4j"] = await neo4j_leftovers(driver)
        finally:
            await driver.close()
            await drop_postgres()
            facts["left in PostgreSQL"] = await postgres_leftovers()
    return cases, facts


def _sized(ids: set[int]) -> tuple[int, int]:
    return (len(ids), sum(ids))


# the report ----------------------------------------------------------------------------------


def _cell(r: Result | None) -> str:
    if r is None:
        return "—"
    if not r.done:
        return f"timed out ({r.timeouts}x > {TIMEOUT_S:g} s)"
    s = r.spread(50)
    return f"{fmt_ms(s.median)} ({fmt_ms(s.low)} to {fmt_ms(s.high)})"


def guide_table(cases: Sequence[Case]) -> str:
    """The short table for the teaching guide: each store's fastest query, and the verdict."""
    rows = [
        f"| query | students | {NEO4J} p50 (min to max) | {POSTGRES} p50 (min to max) | verdict |",
        "|---|---|---|---|---|",
    ]
    for c in cases:
        neo, pg = best(c.results, NEO4J), best(c.results, POSTGRES)
        rows.append(
            f"| {c.query} | {c.n // 1000}k | {_cell(neo)} | {_cell(pg)} | {verdict(neo, pg)} |"
        )
    return "\n".join(rows)


def summary(cases: Sequence[Case]) -> str:
    """Which store won at each depth, across the sizes measured, computed from the table."""
    lines = []
    for q in QUERIES:
        wins = []
        for c in (c for c in cases if c.query == q):
            v = verdict(best(c.results, NEO4J), best(c.results, POSTGRES))
            wins.append(f"{c.n // 1000}k: {v}")
        if wins:
            lines.append(f"- {q}: " + "; ".join(wins))
    return "\n".join(lines)


def details(cases: Sequence[Case]) -> str:
    """Every variant's p50 and p99: median of the repetitions, min and max."""
    rows = [
        "| query | students | store | query as written | p50 median (min to max) | "
        "p99 median (min to max) | timeouts |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        for r in c.results:
            if r.done:
                p50, p99 = r.spread(50), r.spread(99)
                cells = (
                    f"{fmt_ms(p50.median)} ({fmt_ms(p50.low)} to {fmt_ms(p50.high)}) | "
                    f"{fmt_ms(p99.median)} ({fmt_ms(p99.low)} to {fmt_ms(p99.high)})"
                )
            else:
                cells = f"gave up after {r.timeouts} timeouts | —"
            rows.append(
                f"| {c.query} | {c.n // 1000}k | {r.store} | {r.variant} | {cells} | {r.timeouts} |"
            )
    return "\n".join(rows)


def _figures(report: Report, cases: Sequence[Case], samples: int) -> None:
    for c in cases:
        neo, pg = best(c.results, NEO4J), best(c.results, POSTGRES)
        for r in c.results:
            if not r.done:
                continue
            other = pg if r.store == NEO4J else neo
            for q in (50, 99):
                s = r.spread(q)
                if s.timed_out:
                    continue
                anchor = other.spread(q) if other is not None else None
                usable = anchor is not None and not anchor.timed_out
                report.add(
                    Figure(
                        METRIC,
                        f"{c.query}, {r.store} {r.variant} p{q} ({c.n // 1000}k students)",
                        round(s.median, 2),
                        "ms",
                        f"the other store's fastest p{q}" if usable else None,
                        round(anchor.median, 2) if anchor is not None and usable else None,
                        note=(
                            f"median of {len(s.values)} repetitions of {samples} samples: "
                            f"min {fmt_ms(s.low)}, max {fmt_ms(s.high)}; "
                            f"{r.timeouts} timed out"
                        ),
                    )
                )


async def run(report: Report, *, quick: bool) -> None:
    sizes = (10_000,) if quick else (10_000, 100_000)
    # Other processes' load moves every figure here: the report says how busy the machine was.
    load_before = os.getloadavg()[0]
    samples = 10 if quick else 20
    cases: list[Case] = []
    facts: dict[int, dict[str, Any]] = {}
    for n in sizes:
        measured, facts[n] = await measure_size(n, samples)
        cases += measured
        for key in ("left in Neo4j", "left in PostgreSQL"):
            if facts[n][key]:
                raise RuntimeError(f"{key}: {facts[n][key]} after the {n:,}-student run")
    _figures(report, cases, samples)
    load = (
        f"load average (1 min) {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    graph = "\n".join(
        f"- {n:,} students: {f['friendships']:,} friendships; friends per student mean "
        f"{f['degree']['mean']}, median {f['degree']['median']}, p99 {f['degree']['p99']}, "
        f"max {f['degree']['max']}; students at depth 3 from the sampled starts: "
        f"{f['depth 3 sizes'][0]:,} to {f['depth 3 sizes'][-1]:,} (median "
        f"{f['depth 3 sizes'][len(f['depth 3 sizes']) // 2]:,}); shortest paths sampled: "
        f"{_histogram(f['path lengths'])}; load: PostgreSQL {f['load PostgreSQL s']} s, "
        f"Neo4j {f['load Neo4j s']} s; left behind afterwards: Neo4j "
        f"{f['left in Neo4j']}, PostgreSQL {f['left in PostgreSQL']}"
        for n, f in facts.items()
    )
    report.sections[TITLE] = (
        f"Each store's fastest query, p50 in ms: median of {REPS} repetitions over {samples} "
        f"sampled students (pairs for the shortest path), min and max of the repetitions. "
        f"Every answer of both stores equalled a BFS in the benchmark's process. Statement "
        f"timeout {TIMEOUT_S:g} s; a query that timed out {GIVE_UP_AFTER} times is not run "
        f"again at that size. Machine: {report.machine['cores']} cores, {load}."
        f"\n\n{guide_table(cases)}\n\n**Verdict** (winner by p50, tie within "
        f"{TIE:g}x):\n\n{summary(cases)}\n\nEvery query as written:\n\n{details(cases)}\n\n"
        f"The graphs (Holme-Kim, {M} new friendships per student, triad closure {TRIAD}, "
        f"seed {SEED}):\n\n{graph}\n"
    )


def _histogram(lengths: Sequence[int]) -> str:
    counts: dict[int, int] = {}
    for d in lengths:
        counts[d] = counts.get(d, 0) + 1
    return ", ".join(f"{counts[d]}x {d} hops" for d in sorted(counts)) or "none within reach"
