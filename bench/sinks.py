"""M7: sink writes through the projections vs direct writes; projection catch-up from a backlog.

The projections' own classes (the graph service's GraphProjection, the time-series service's
TimeseriesProjection) run in this process against the real Neo4j and campus_ts, fed with
Debezium-shaped change records or event envelopes. Nothing goes to the product's topics:
- M7 calls decode + apply directly, batch by batch (the runner's batch sizes), beside the
  direct write of the same data: an UNWIND MERGE in Neo4j, a COPY into the events table;
- the backlog runs put records on a bench topic first, then run a real ProjectionRunner
  (its own consumer group) until all are applied: the catch-up rate after an outage.
A full run repeats each timed phase (figure, then anchor) three times from the same state (no
bench node, no bench row; the backlog read again from offset 0) and reports the median.
Neo4j bench nodes have ids ≥ 10^12 and events rows source `bench`; all are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from neo4j import AsyncDriver
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bench import fixtures, profile
from bench.core import Figure, Report, reps
from bench.env import settings
from campus_common import topics
from campus_common.config import TS_DB
from campus_common.consumer import Delivered, Projection, ProjectionRunner
from campus_graph.projection import GraphProjection
from campus_timeseries.config import Settings as TimeseriesSettings
from campus_timeseries.projection import TimeseriesProjection

T = TypeVar("T")
BASE = fixtures.BENCH_ID_BASE
# Disjoint bench id ranges, so each run writes new nodes (as a first delivery does).
DIRECT_MEMBERSHIPS, PROJECTED_MEMBERSHIPS = BASE + 1_000_000_000, BASE + 2_000_000_000
BACKLOG_USERS, DIRECT_USERS = BASE + 3_000_000_000, BASE + 4_000_000_000
WARM_UP, PROFILED_USERS = BASE + 5_000_000_000, BASE + 6_000_000_000
GRAPH_BATCH = 1000  # the graph service's runner: ProjectionRunner's default max_batch
GROUPS = 100
SOURCE = "bench"

MERGE_MEMBERSHIPS = """
UNWIND $rows AS row
MERGE (u:User {id: row.user_id})
MERGE (g:Group {id: row.group_id})
MERGE (u)-[m:MEMBER_OF]->(g)
SET m.role = row.role, m.joined_at = datetime(row.joined_at), m.lsn = row.lsn
"""
MERGE_USERS = """
UNWIND $rows AS row
MERGE (u:User {id: row.id})
SET u.email = row.email, u.full_name = row.full_name, u.created_at = datetime(row.created_at),
    u.updated_at = datetime(row.updated_at), u.lsn = row.lsn
"""
COPY_EVENTS = (
    "COPY events (time, user_id, event_type, properties, source, dedupe_key) FROM STDIN "
    "(FORMAT BINARY)"
)
COPY_TYPES = ["timestamptz", "int8", "text", "jsonb", "text", "text"]


class OnBenchTopic(Projection[T], Generic[T]):
    """A real projection fed from a bench topic: its records are handed over as if they had
    come from `as_topic`, the product topic the projection knows how to read."""

    def __init__(self, inner: Projection[T], *, topic: str, as_topic: str) -> None:
        self.inner = inner
        self.name = f"bench-{inner.name}"
        # The product topic's route, under the bench topic's name.
        self.routes = {topic: inner.routes[as_topic]}
        self.as_topic = as_topic

    async def apply(self, batch: Sequence[Delivered[T]]) -> None:
        await self.inner.apply([dataclasses.replace(d, topic=self.as_topic) for d in batch])

    def is_transient(self, exc: BaseException) -> bool:
        return self.inner.is_transient(exc)


def _record(topic: str, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, offset, 0, 0, None, value, None, 0, len(value), ())


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# Debezium-shaped changes and event envelopes -------------------------------------------------


def _source(table: str, lsn: int, at: datetime) -> dict[str, Any]:
    return {"table": table, "ts_ms": int(at.timestamp() * 1000), "lsn": lsn, "txId": lsn}


def membership_rows(first_user: int, n: int, at: datetime) -> list[dict[str, Any]]:
    """n memberships: each user in 10 of GROUPS groups (group ids from first_user as well)."""
    return [
        {
            "user_id": first_user + j // 10,
            "group_id": first_user + j % GROUPS,
            "role": "member",
            "joined_at": _iso(at),  # ISO text, as Debezium and the projection send it
            "lsn": 1_000_000 + j,
        }
        for j in range(n)
    ]


def membership_change(row: dict[str, Any]) -> bytes:
    after = dict(row)
    lsn = after.pop("lsn")
    return orjson.dumps(
        {
            "op": "c",
            "before": None,
            "after": after,
            "source": _source("group_memberships", lsn, datetime.fromisoformat(row["joined_at"])),
        }
    )


def user_rows(first: int, n: int, at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": first + i,
            "email": f"backlog-{first + i}@{fixtures.BENCH_DOMAIN}",
            "full_name": f"Backlog user {i}",
            "created_at": _iso(at),  # ISO text, as Debezium and the projection send it
            "updated_at": _iso(at),
            "lsn": 2_000_000 + i,
        }
        for i in range(n)
    ]


def user_change(row: dict[str, Any]) -> bytes:
    after = dict(row)
    lsn = after.pop("lsn")
    return orjson.dumps(
        {
            "op": "c",
            "before": None,
            "after": after,
            "source": _source("users", lsn, datetime.fromisoformat(row["created_at"])),
        }
    )


@dataclasses.dataclass(frozen=True, slots=True)
class BenchEvent:
    id: str
    at: datetime
    user_id: int
    type: str
    payload: dict[str, Any]

    def envelope(self) -> bytes:
        """The Event envelope (campus_common.events.Event), built without pydantic for speed."""
        return orjson.dumps(
            {
                "id": self.id,
                "type": self.type,
                "occurred_at": _iso(self.at),
                "schema_version": 1,
                "source": SOURCE,
                "key": self.id,
                "user_id": self.user_id,
                "payload": self.payload,
            }
        )

    def row(self, key_prefix: str) -> tuple[Any, ...]:
        """The same event as a row of `events`, for the direct COPY (its own dedupe key)."""
        return (
            self.at,
            self.user_id,
            self.type,
            Jsonb(self.payload),
            SOURCE,
            f"{key_prefix}{self.id}",
        )


def bench_events(n: int, kind: str, at: datetime) -> Iterator[BenchEvent]:
    for i in range(n):
        yield BenchEvent(
            id=str(uuid.uuid4()),
            at=at + timedelta(microseconds=i),
            user_id=BASE + i % 1000,
            type=f"bench.{kind}",
            payload={"n": i, "post_id": f"bench{i % 5000:05d}", "group_id": BASE + i % GROUPS},
        )


# M7: one sink write at a time -----------------------------------------------------------------


async def _neo4j_m7(driver: AsyncDriver, n: int) -> tuple[float, float]:
    """(relationships/s direct, relationships/s through GraphProjection.decode + apply)."""
    at = datetime.now(UTC)
    projection = GraphProjection(driver)

    async def direct(first: int, count: int) -> float:
        rows = membership_rows(first, count, at)
        started = time.perf_counter()
        for i in range(0, count, GRAPH_BATCH):
            await driver.execute_query(MERGE_MEMBERSHIPS, rows=rows[i : i + GRAPH_BATCH])
        return count / (time.perf_counter() - started)

    async def projected(first: int, count: int) -> float:
        values = [membership_change(r) for r in membership_rows(first, count, at)]
        started = time.perf_counter()
        for i in range(0, count, GRAPH_BATCH):
            batch = []
            for offset, value in enumerate(values[i : i + GRAPH_BATCH], start=i):
                change = projection.decode(_record(topics.MEMBERSHIPS, offset, value))
                if change is not None:
                    batch.append(Delivered(topics.MEMBERSHIPS, 0, offset, 0, None, change))
            await projection.apply(batch)
        return count / (time.perf_counter() - started)

    # One batch each first, on ids of their own: query plans and caches warm for both.
    await direct(WARM_UP, GRAPH_BATCH)
    await projected(WARM_UP + 10_000_000, GRAPH_BATCH)
    return await direct(DIRECT_MEMBERSHIPS, n), await projected(PROJECTED_MEMBERSHIPS, n)


def _ts_pool(size: int = 2) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        fixtures.ts_dsn(),
        min_size=1,
        max_size=size,
        open=False,
        kwargs={"options": "-c statement_timeout=120000"},
    )


async def _copy(conn: AsyncConnection[Any], events: Iterator[BenchEvent], prefix: str) -> int:
    n = 0
    async with conn.cursor() as cur, cur.copy(COPY_EVENTS) as copy:
        copy.set_types(COPY_TYPES)
        for e in events:
            await copy.write_row(e.row(prefix))
            n += 1
    await conn.commit()
    return n


async def _timeseries_m7(pool: AsyncConnectionPool, n: int, batch: int) -> tuple[float, float]:
    """(rows/s by one COPY, rows/s through TimeseriesProjection.decode + apply)."""
    at = datetime.now(UTC)
    async with pool.connection() as conn:
        started = time.perf_counter()
        await _copy(conn, bench_events(n, "sink", at), "bench-copy:")
        direct = n / (time.perf_counter() - started)

    projection = TimeseriesProjection(pool)
    values = [e.envelope() for e in bench_events(n, "sink", at)]
    started = time.perf_counter()
    for i in range(0, n, batch):
        items = []
        for offset, value in enumerate(values[i : i + batch], start=i):
            decoded = projection.decode(_record(topics.DOCUMENT_EVENTS, offset, value))
            if decoded is not None:
                items.append(Delivered(topics.DOCUMENT_EVENTS, 0, offset, 0, None, decoded))
        await projection.apply(items)
    projected = n / (time.perf_counter() - started)
    return direct, projected


# backlogs: a real ProjectionRunner catching up ----------------------------------------------


async def _produce(topic: str, values: Iterator[bytes]) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings().kafka.bootstrap_servers,
        linger_ms=20,
        max_batch_size=512_000,
    )
    await producer.start()
    n = 0
    try:
        pending = []
        for value in values:
            pending.append(await producer.send(topic, value, key=str(n).encode()))
            n += 1
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending = []
        await producer.flush()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n


async def _backlog(purpose: str, values: Iterator[bytes]) -> str:
    """A new bench topic holding `values`: the backlog every catch-up reads from offset 0."""
    topic = await fixtures.bench_topic(purpose)
    try:
        await _produce(topic, values)
    except BaseException:
        await fixtures.drop_topics([topic])
        raise
    return topic


@dataclasses.dataclass
class CatchUp:
    records: int
    startup_s: float
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


async def _catch_up(
    projection: Projection[Any], n: int, *, max_batch: int, timeout_s: float
) -> CatchUp:
    """Run the projection from offset 0 of its bench topic until n records are applied."""
    runner = ProjectionRunner(
        projection,
        kafka=settings().kafka,
        # A new group each time: no committed offset, so it starts from offset 0.
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        max_batch=max_batch,
    )
    runner.dead_letter_topic = f"bench.dlq.{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    await runner.start()
    try:
        # Joining a fresh consumer group takes seconds (the broker's initial rebalance delay);
        # the catch-up rate is timed from the moment partitions are assigned.
        assigned = None
        deadline = started + timeout_s
        while runner.applied_total < n:
            if assigned is None and runner.consumer is not None and runner.consumer.assignment():
                assigned = time.perf_counter()
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{runner.applied_total:,} of {n:,} applied in {timeout_s:g} s")
            if not runner.running:
                raise RuntimeError("the projection runner stopped")
            await asyncio.sleep(0.01)
        done = time.perf_counter()
        assigned = assigned or started
        return CatchUp(n, assigned - started, done - assigned)
    finally:
        await runner.stop()
        await fixtures.drop_topics([runner.dead_letter_topic])


def _graph_catch_up(driver: AsyncDriver, topic: str, n: int) -> Awaitable[CatchUp]:
    wrapped = OnBenchTopic(GraphProjection(driver), topic=topic, as_topic=topics.USERS)
    return _catch_up(wrapped, n, max_batch=GRAPH_BATCH, timeout_s=60 + n / 500)


def _timeseries_catch_up(
    pool: AsyncConnectionPool, topic: str, n: int, batch: int
) -> Awaitable[CatchUp]:
    wrapped = OnBenchTopic(TimeseriesProjection(pool), topic=topic, as_topic=topics.DOCUMENT_EVENTS)
    return _catch_up(wrapped, n, max_batch=batch, timeout_s=60 + n / 2000)


async def _graph_backlogs(
    driver: AsyncDriver, n: int, repetitions: int
) -> tuple[list[CatchUp], list[float]]:
    """The graph projection catching up n user changes, then the direct UNWIND MERGE of the
    same users, `repetitions` times over one backlog; each repetition starts without any bench
    node, so both create every node again."""
    at = datetime.now(UTC)
    caught, direct = [], []
    topic = await _backlog(
        "graph-backlog", (user_change(r) for r in user_rows(BACKLOG_USERS, n, at))
    )
    try:
        for _ in range(repetitions):
            await fixtures.delete_bench_graph(driver)
            caught.append(await _graph_catch_up(driver, topic, n))
            rows = user_rows(DIRECT_USERS, n, at)
            started = time.perf_counter()
            for i in range(0, n, GRAPH_BATCH):
                await driver.execute_query(MERGE_USERS, rows=rows[i : i + GRAPH_BATCH])
            direct.append(n / (time.perf_counter() - started))
    finally:
        await fixtures.drop_topics([topic])
    return caught, direct


async def _timeseries_backlogs(
    pool: AsyncConnectionPool, n: int, batch: int, repetitions: int, *, since: datetime
) -> tuple[list[CatchUp], list[float]]:
    """The timeseries projection catching up n events, then one COPY of the same rows,
    `repetitions` times over one backlog; each repetition starts without any bench row (else
    ON CONFLICT DO NOTHING would skip every event a second time)."""
    at = datetime.now(UTC)
    caught, copy = [], []
    topic = await _backlog("ts-backlog", (e.envelope() for e in bench_events(n, "backlog", at)))
    try:
        for _ in range(repetitions):
            await _delete_bench_events(pool, since)
            caught.append(await _timeseries_catch_up(pool, topic, n, batch))
            async with pool.connection() as conn:
                started = time.perf_counter()
                await _copy(conn, bench_events(n, "backlog", at), "bench-copy:")
                copy.append(n / (time.perf_counter() - started))
    finally:
        await fixtures.drop_topics([topic])
    return caught, copy


async def _profiled_backlogs(
    report: Report, driver: AsyncDriver, pool: AsyncConnectionPool, ts_batch: int
) -> None:
    """Flame graphs of this process while each projection catches up a second, smaller
    backlog (not timed: the sampler shares the two cores with the measured run otherwise).
    The backlog is on its topic before the sampler and the runner start, so the graph shows
    the catch-up only, not the producing."""
    if not profile.available():
        report.errors["bench.sinks flame graphs"] = "py-spy is missing: uv sync (dev dependency)"
        return
    me = os.getpid()
    at = datetime.now(UTC)
    topic = await _backlog(
        "graph-profiled", (user_change(r) for r in user_rows(PROFILED_USERS, 20_000, at))
    )
    try:
        _, graph = await profile.during(
            report,
            name="graph_backlog",
            pid=me,
            seconds=6,
            work=_graph_catch_up(driver, topic, 20_000),
        )
    finally:
        await fixtures.drop_topics([topic])
    topic = await _backlog(
        "ts-profiled", (e.envelope() for e in bench_events(200_000, "profiled", at))
    )
    try:
        _, ts = await profile.during(
            report,
            name="timeseries_backlog",
            pid=me,
            seconds=6,
            work=_timeseries_catch_up(pool, topic, 200_000, ts_batch),
        )
    finally:
        await fixtures.drop_topics([topic])
    report.sections["M7 flame graphs (py-spy)"] = (
        "One untimed run each, sampled from the runner's start for 6 s (the backlog was "
        "produced before).\n"
        f"- `flame_graph_backlog.svg`: the graph projection catching up 20,000 user changes; "
        f"{graph}\n- `flame_timeseries_backlog.svg`: the timeseries projection catching up "
        f"200,000 events; {ts}"
    )


async def _delete_bench_events(pool: AsyncConnectionPool, since: datetime) -> None:
    """Remove the bench rows, then VACUUM `events`: the next repetition's inserts of the same
    keys then meet no dead index entries, as the first one's did."""
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM events WHERE source = %s AND time >= %s", (SOURCE, since))
    # VACUUM cannot run in a transaction block, and only the tables' owner (the superuser,
    # who ran the migrations) may run it: its own autocommit connection.
    dsn = settings().superuser_dsn(TS_DB)
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("VACUUM events")


def _spread(values: Sequence[float], digits: int = 1) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


async def run(report: Report, *, quick: bool) -> None:
    m7 = 10_000 if quick else 100_000
    graph_backlog = 20_000 if quick else 100_000
    ts_backlog = 100_000 if quick else 1_000_000
    n = reps(quick=quick)
    ts_batch = TimeseriesSettings().ts_projection_batch
    since = datetime.now(UTC) - timedelta(minutes=1)
    driver = fixtures.neo4j_driver()
    pool = _ts_pool()
    await pool.open(wait=True, timeout=10)
    neo_direct, neo_projected, ts_direct, ts_projected = [], [], [], []
    try:
        for _ in range(n):
            # Every repetition starts without bench nodes or rows (leftovers of an interrupted
            # run before the first): each writes new nodes and rows, as a first delivery does.
            await fixtures.delete_bench_graph(driver)
            direct, projected = await _neo4j_m7(driver, m7)
            neo_direct.append(direct)
            neo_projected.append(projected)
        for _ in range(n):
            await _delete_bench_events(pool, since)
            direct, projected = await _timeseries_m7(pool, m7, ts_batch)
            ts_direct.append(direct)
            ts_projected.append(projected)
        graph_caught, graph_direct = await _graph_backlogs(driver, graph_backlog, n)
        ts_caught, ts_copy = await _timeseries_backlogs(pool, ts_backlog, ts_batch, n, since=since)
        await _profiled_backlogs(report, driver, pool, ts_batch)
    finally:
        await fixtures.delete_bench_graph(driver)
        await _delete_bench_events(pool, since)
        await pool.close()
        await driver.close()

    report.add(
        Figure.median_of(
            "M7",
            f"Neo4j MEMBER_OF relationships/s via the graph projection ({m7:,}, batches of "
            f"{GRAPH_BATCH})",
            neo_projected,
            "rels/s",
            "direct UNWIND MERGE of the same relationships",
            neo_direct,
            "≥ 30 % of the direct write",
            met=lambda value, anchor: anchor is not None and value >= 0.3 * anchor,
            digits=0,
        )
    )
    report.add(
        Figure.median_of(
            "M7",
            f"events rows/s via the timeseries projection ({m7:,}, batches of {ts_batch})",
            ts_projected,
            "rows/s",
            "COPY of the same rows into `events`",
            ts_direct,
            "≥ 30 % of the direct write",
            met=lambda value, anchor: anchor is not None and value >= 0.3 * anchor,
            digits=0,
        )
    )
    report.add(
        Figure.median_of(
            "M7",
            f"graph projection catching up a backlog of {graph_backlog:,} user changes",
            [c.rate for c in graph_caught],
            "changes/s",
            "direct UNWIND MERGE of the same users",
            graph_direct,
            "≥ 5,000/s",
            met=lambda value, _: value >= 5000,
            digits=0,
        )
    )
    report.add(
        Figure.median_of(
            "M7",
            f"timeseries projection catching up a backlog of {ts_backlog:,} events",
            [c.rate for c in ts_caught],
            "events/s",
            "COPY of the same rows",
            ts_copy,
            "≥ 20,000/s",
            met=lambda value, _: value >= 20_000,
            digits=0,
        )
    )
    section = "M7 sink writes: how they were measured"
    report.sections[section] = (
        (
            f"Every M7 figure is the median of {n} repetitions of its timed phase, each "
            "measuring the figure and then its anchor; min and max beside it. "
            if n > 1
            else "One run of each timed phase, the figure and then its anchor. "
        )
        + "M7 rows: decode + apply of the projection classes called batch by batch in this "
        "process (no Kafka), beside the direct write of the same data (Neo4j: one UNWIND MERGE "
        f"transaction per {GRAPH_BATCH} relationships; PostgreSQL: one binary COPY of all rows). "
        "The graph projection also checks tombstones and LSNs per row; the timeseries one "
        "COPYs into a temporary table and merges with ON CONFLICT DO NOTHING. Backlog rows: a "
        "real ProjectionRunner with its own consumer group reads a bench topic from offset 0 "
        "until every record is applied; the rate is timed from partition assignment (joining "
        f"the group took {_spread([c.startup_s for c in graph_caught])} s for the graph and "
        f"{_spread([c.startup_s for c in ts_caught])} s for the timeseries repetitions). "
        "Each backlog is produced once; every repetition reads all of it again with a new "
        "consumer group. Every repetition starts from the same state: before each one the "
        "bench nodes (ids ≥ 10^12) are deleted from Neo4j, and the bench rows from `events` "
        "followed by a VACUUM of it, so the projection and the direct write create every node "
        "and insert every row again (a second delivery of the same rows would otherwise be "
        "skipped as already applied)."
    )
    if statistics.median(neo_projected) >= statistics.median(neo_direct):
        report.sections[section] += (
            " The graph projection's per-row tombstone and LSN checks cost nothing measurable "
            "here: Neo4j's MERGE of new nodes and edges dominates both writes."
        )
