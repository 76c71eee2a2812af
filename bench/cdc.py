"""M1: CDC latency, PostgreSQL commit → each store, beside the Kafka hop; M8: lag under 2x load.

M1 updates the full_name of a pool of bench users (created through POST /users) directly in
PostgreSQL, as the users service's own role, at a steady 200 writes/s. Every write carries a
unique token and its client-side commit time (taken when COMMIT returns). Four observers run
at once: a bare aiokafka consumer on campus.public.users (the Kafka hop, the anchor), and
pollers every 10 ms of Neo4j (the User node's full_name), Redis (the cache projection's
`user:{id}` entry) and the events table (the `user.updated` row). A poller's figure includes
up to one poll interval plus its query of detection delay.

M8 doubles the load (400 writes/s) and samples each projection's lag, time lag and staleness
every second from the services' GET /projections, then keeps sampling until they settle.

A full run alternates three M1 runs of 20 s (4,000 writes) with three M8 runs of 40 s, each
from idle projections; every figure is the median of its three repetitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
from neo4j import AsyncDriver, RoutingControl
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from bench import fixtures, profile
from bench.core import Figure, Report, cpu_now, cpu_spent, percentile, reps
from bench.tools import PacedRun, Visibility, Write, notes, paced, recovery_s
from campus_common import topics
from campus_gateway.cache import decode_entry, profile_key

USERS = 50
RATE = 200
POLL_S = 0.01
STRAGGLER_WAIT_S = 10.0
TARGET_P99_MS = 250.0
# How long M8 keeps sampling after its load for the projections to settle.
RECOVERY_WINDOW_S = 30.0
# How long a repetition waits for the projections to be idle before it starts.
IDLE_WAIT_S = 60.0
STORES = {"neo4j": "Neo4j (graph)", "redis": "Redis (cache)", "timeseries": "events table"}
PROJECTION_OF = {"neo4j": "graph", "redis": "cache", "timeseries": "timeseries"}


class Tokens:
    """full_name values that identify one write of this run: `bench <run> <seq>`."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:8]

    def make(self, seq: int) -> str:
        return f"bench {self.run} {seq}"

    def seq(self, value: Any) -> int | None:
        if not isinstance(value, str):
            return None
        parts = value.split(" ")
        if len(parts) != 3 or parts[0] != "bench" or parts[1] != self.run:
            return None
        return int(parts[2]) if parts[2].isdigit() else None


async def _watch_kafka(
    tokens: Tokens, seen: Visibility, stop: asyncio.Event, ready: asyncio.Event
) -> None:
    consumer = await fixtures.tail(topics.USERS)
    ready.set()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batch.values():
                for rec in records:
                    after = (orjson.loads(rec.value or b"null") or {}).get("after") or {}
                    seq = tokens.seq(after.get("full_name"))
                    if seq is not None:
                        seen.seen(int(after["id"]), seq, now)
    finally:
        await consumer.stop()


# Asks a store for the current token of each given user id: (user id, write seq or None).
Query = Callable[[list[int]], Awaitable[list[tuple[int, int | None]]]]


async def _poll(seen: Visibility, stop: asyncio.Event, query: Query) -> None:
    """Every POLL_S, ask the store for the keys with writes not yet seen there."""
    while not stop.is_set():
        keys = seen.waiting_keys()
        if keys:
            rows = await query(keys)
            now = time.time()
            for key, seq in rows:
                if seq is not None:
                    seen.seen(key, seq, now)
        await asyncio.sleep(POLL_S)


def _neo4j_query(driver: AsyncDriver, tokens: Tokens) -> Query:
    async def query(ids: list[int]) -> list[tuple[int, int | None]]:
        records, _, _ = await driver.execute_query(
            "MATCH (u:User) WHERE u.id IN $ids RETURN u.id AS id, u.full_name AS name",
            ids=ids,
            routing_=RoutingControl.READ,
        )
        return [(r["id"], tokens.seq(r["name"])) for r in records]

    return query


def _redis_query(redis: Redis | RedisCluster, tokens: Tokens) -> Query:
    async def query(ids: list[int]) -> list[tuple[int, int | None]]:
        keys = [profile_key("user", i) for i in ids]
        # On Redis Cluster the keys are in different slots: one MGET per node instead.
        if isinstance(redis, RedisCluster):
            raw = await redis.mget_nonatomic(keys)
        else:
            raw = await redis.mget(keys)
        out = []
        for user_id, value in zip(ids, raw, strict=True):
            entry = decode_entry(value if isinstance(value, bytes) else None)
            if entry is not None and entry.state == "V":
                out.append((user_id, tokens.seq(orjson.loads(entry.data).get("full_name"))))
        return out

    return query


def _events_query(conn: asyncpg.Connection, tokens: Tokens, seen: Visibility) -> Query:
    async def query(ids: list[int]) -> list[tuple[int, int | None]]:
        oldest = seen.oldest_pending() or time.time()
        # The row's time is PostgreSQL's commit time, never later than our view of the commit.
        since = datetime.fromtimestamp(oldest - 1.0, tz=UTC)
        rows = await conn.fetch(
            """SELECT user_id, properties->>'full_name' AS name FROM events
               WHERE event_type = 'user.updated' AND user_id = ANY($1::bigint[]) AND time >= $2""",
            ids,
            since,
        )
        return [(r["user_id"], tokens.seq(r["name"])) for r in rows]

    return query


async def _sample(
    http: httpx.AsyncClient,
    token: str | None,
    out: dict[str, list[dict[str, Any]]],
    stop: asyncio.Event,
    every_s: float = 1.0,
) -> None:
    """Each projection's lag figures every `every_s`, stamped with our clock."""
    while not stop.is_set():
        started = time.time()
        with contextlib.suppress(httpx.HTTPError):
            for name, state in (await fixtures.projections(http, token)).items():
                out.setdefault(name, []).append(
                    {
                        "t": started,
                        "lag": state.get("total_lag") or 0,
                        "time_lag_s": state.get("time_lag_s") or 0.0,
                        "staleness_s": state.get("staleness_s"),
                    }
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(every_s - (time.time() - started), 0.05))


def _writer(
    pool: asyncpg.Pool, ids: list[int], tokens: Tokens, observers: list[Visibility]
) -> Callable[[int], Awaitable[None]]:
    async def write(n: int) -> None:
        user_id = ids[n % len(ids)]
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE users SET full_name = $1, updated_at = now() WHERE id = $2",
                tokens.make(n),
                user_id,
            )
            # No await between COMMIT's return and the bookkeeping: observers cannot miss it.
            w = Write(user_id, n, time.time())
            for o in observers:
                o.committed(w)

    return write


@dataclass
class LatencyRun:
    """One M1 repetition: what each observer saw, the writes sent, the projections' samples."""

    seen: dict[str, Visibility]
    writes: PacedRun
    samples: dict[str, list[dict[str, Any]]]
    # CPU seconds of each component while the writes were sent, and how long that took.
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_window_s: float = 0.0

    def ms(self, store: str) -> list[float]:
        return [x * 1000 for x in self.seen[store].latencies]


async def _observe(
    *,
    pool: asyncpg.Pool,
    ids: list[int],
    http: httpx.AsyncClient,
    token: str | None,
    duration_s: float,
) -> LatencyRun:
    """One M1 run: RATE writes/s for `duration_s`, each one watched until it is visible."""
    tokens = Tokens()
    seen = {
        "kafka": Visibility(cumulative=False),
        "neo4j": Visibility(cumulative=True),
        "redis": Visibility(cumulative=True),
        "timeseries": Visibility(cumulative=False),
    }
    driver = fixtures.neo4j_driver()
    redis = fixtures.product_redis()
    ts = await asyncpg.connect(fixtures.ts_dsn())
    stop, sampling_done, tailing = asyncio.Event(), asyncio.Event(), asyncio.Event()
    samples: dict[str, list[dict[str, Any]]] = {}
    tasks = [
        asyncio.create_task(_watch_kafka(tokens, seen["kafka"], stop, tailing)),
        asyncio.create_task(_poll(seen["neo4j"], stop, _neo4j_query(driver, tokens))),
        asyncio.create_task(_poll(seen["redis"], stop, _redis_query(redis, tokens))),
        asyncio.create_task(
            _poll(seen["timeseries"], stop, _events_query(ts, tokens, seen["timeseries"]))
        ),
        asyncio.create_task(_sample(http, token, samples, sampling_done)),
    ]
    try:
        # Writes start once the Kafka tail sits at the end of the topic.
        await asyncio.wait_for(tailing.wait(), 30)
        _raise_if_failed(tasks)
        cpu_before, started = cpu_now(), time.monotonic()
        writes = await paced(
            RATE, duration_s, _writer(pool, ids, tokens, list(seen.values())), concurrency=8
        )
        cpu, cpu_window_s = cpu_spent(cpu_before, cpu_now()), time.monotonic() - started
        sampling_done.set()
        deadline = time.monotonic() + STRAGGLER_WAIT_S
        while time.monotonic() < deadline and any(v.unresolved for v in seen.values()):
            await asyncio.sleep(0.1)
            _raise_if_failed(tasks)
        _raise_if_failed(tasks)
    finally:
        stop.set()
        sampling_done.set()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(t, 10)
        await ts.close()
        await redis.aclose()
        await driver.close()
    if not seen["kafka"].latencies:
        raise RuntimeError("no change reached campus.public.users: is Debezium running?")
    return LatencyRun(seen, writes, samples, cpu, cpu_window_s)


async def _latency(
    report: Report,
    *,
    pool: asyncpg.Pool,
    ids: list[int],
    http: httpx.AsyncClient,
    token: str | None,
    duration_s: float,
) -> dict[str, float]:
    """One M1 run reported (bench.tracing and bench.topologies repeat it themselves); returns
    each store's p99 in ms."""
    run = await _observe(pool=pool, ids=ids, http=http, token=token, duration_s=duration_s)
    return _report_latency(report, [run])


def _percentiles(runs: Sequence[LatencyRun], store: str, q: float) -> list[float | None]:
    """The q-th percentile (ms) of `store` in each repetition; None where nothing was seen."""
    return [percentile(ms, q) if (ms := r.ms(store)) else None for r in runs]


def _report_latency(report: Report, runs: Sequence[LatencyRun]) -> dict[str, float]:
    """M1's figures, each the median of the repetitions' percentile; returns each store's
    median p99 in ms."""
    # Every run saw Kafka (_observe fails otherwise): one value per repetition.
    k50s = [percentile(r.ms("kafka"), 50) for r in runs]
    k99s = [percentile(r.ms("kafka"), 99) for r in runs]
    label = f"{RATE} writes/s, {sum(r.writes.sent for r in runs):,} writes"
    for q, values in ((99, k99s), (50, k50s)):
        report.add(
            Figure.median_of(
                "M1",
                f"commit → Kafka record, bare consumer (the Kafka hop) p{q} ({label})",
                values,
                "ms",
                digits=1,
            )
        )
    p99s = {"kafka": statistics.median(k99s)}
    for store, name in STORES.items():
        p50, p99 = _percentiles(runs, store, 50), _percentiles(runs, store, 99)
        measured = [i for i, v in enumerate(p99) if v is not None]
        if len(measured) < len(runs):
            report.errors[f"bench.cdc M1 {store}"] = (
                f"no write became visible in {len(runs) - len(measured)} of {len(runs)} repetitions"
            )
        if not measured:
            continue
        unresolved = sum(r.seen[store].unresolved for r in runs)
        figure = Figure.median_of(
            "M1",
            f"commit → visible in {name} p99 ({label})",
            [p99[i] or 0.0 for i in measured],
            "ms",
            "commit → Kafka p99",
            [k99s[i] for i in measured],
            "p99 ≤ 250 ms; adds ≤ 2x the Kafka hop",
            met=lambda value, anchor: (
                anchor is not None and value <= TARGET_P99_MS and value - anchor <= 2 * anchor
            ),
            note=f"{unresolved} writes unseen after {STRAGGLER_WAIT_S:g} s" if unresolved else "",
            digits=1,
        )
        report.add(figure)
        p99s[store] = figure.value
        report.add(
            Figure.median_of(
                "M1",
                f"commit → visible in {name} p50 ({label})",
                [p50[i] or 0.0 for i in measured],
                "ms",
                "commit → Kafka p50",
                [k50s[i] for i in measured],
                digits=1,
            )
        )
    for store in runs[0].seen:
        report.series[f"latency:cdc_{store}"] = [x for r in runs for x in r.seen[store].latencies]
    stale = [_staleness_p99(r.samples) for r in runs]
    for name in sorted({n for per_run in stale for n in per_run}):
        with_value = [i for i, per_run in enumerate(stale) if name in per_run]
        report.add(
            Figure.median_of(
                "M1",
                f"staleness of `{name}` p99, sampled every 1 s at {RATE} writes/s",
                [stale[i][name] * 1000 for i in with_value],
                "ms",
                "commit → Kafka p99",
                [k99s[i] for i in with_value],
                "≤ 1 s",
                met=lambda value, _: value <= 1000,
                digits=1,
            )
        )
    late = max(
        (percentile(r.writes.late_s, 99) * 1000 for r in runs if r.writes.late_s), default=0.0
    )
    each = ", ".join(f"{r.writes.sent:,} at {r.writes.rate:.0f}/s" for r in runs)
    repeated = (
        f"{len(runs)} repetitions of {runs[0].writes.sent:,} writes; every figure is the median "
        "of the repetitions' p50 or p99 (min and max beside it), the projections idle before "
        "each repetition. "
        if len(runs) > 1
        else ""
    )
    report.sections["M1 CDC latency: how it was measured"] = (
        f"{repeated}UPDATEs of `users.full_name` over {USERS} bench users ({each} achieved; "
        f"worst p99 lateness of a send against its schedule {late:.1f} ms), 8 connections as "
        "`campus_users`, autocommit. Commit time = when "
        "COMMIT returned to the client. Kafka: a group-less aiokafka consumer on every "
        f"partition of `{topics.USERS}`. Neo4j, Redis and the events table are polled every "
        f"{POLL_S * 1000:g} ms for the users with writes not yet seen there; Neo4j and Redis "
        "keep only the newest value, so a newer token seen also settles older writes to that "
        "user. Target check: p99 ≤ 250 ms and (store p99 - Kafka p99) ≤ 2 x Kafka p99. "
        "For scale, Debezium's own published figure is 499 ms p99 commit → Kafka at 6k ops/s "
        "(not measured here). Staleness comes from the heartbeat row (1 s interval) as each "
        "service reports it."
    )
    if table := _cpu_table(runs):
        report.sections["M1 CPU during the writes"] = table
    return p99s


def _cpu_table(runs: Sequence[LatencyRun]) -> str:
    """Where the cores went while the writes were sent: each component's share of the
    machine's CPU time over the repetitions' write windows, and its CPU per write."""
    window = sum(r.cpu_window_s for r in runs)
    writes = sum(r.writes.sent for r in runs)
    if not window or not writes:
        return ""
    spent: dict[str, float] = {}
    for r in runs:
        for name, seconds in r.cpu.items():
            spent[name] = spent.get(name, 0.0) + seconds
    capacity = window * (os.cpu_count() or 1)
    rows = [
        f"Over {window:.0f} s of writes ({writes:,} writes) on {os.cpu_count()} cores:",
        "",
        "| component | share of all cores | CPU ms per write |",
        "|---|---|---|",
    ]
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        rows.append(f"| {name} | {seconds / capacity:.1%} | {seconds * 1000 / writes:.2f} |")
    total = sum(spent.values())
    rows.append(f"| **total** | {total / capacity:.1%} | {total * 1000 / writes:.2f} |")
    return "\n".join(rows)


PROFILED = {"graph": "graph", "timeseries": "timeseries", "gateway": "cache"}


async def _profiled_projections(report: Report, *, pool: asyncpg.Pool, ids: list[int]) -> None:
    """Flame graphs of the three services that run the projections, over 8 s of the M1 load
    (200 writes/s), after the measured phases: samplers would share the cores with them."""
    if not profile.available():
        report.errors["bench.cdc flame graphs"] = "py-spy is missing: uv sync (dev dependency)"
        return
    load = paced(RATE, 8, _writer(pool, ids, Tokens(), []), concurrency=8)
    lines = []
    samplers = [
        profile.during(
            report,
            name=f"projection_{projection}",
            pid=profile.service_pid(service),
            seconds=8,
            work=asyncio.sleep(0),
        )
        for service, projection in PROFILED.items()
    ]
    found, _ = await asyncio.gather(asyncio.gather(*samplers), load)
    for (service, projection), (_, line) in zip(PROFILED.items(), found, strict=True):
        lines.append(f"- `flame_projection_{projection}.svg`: the {service} service; {line}")
    report.sections["M1 flame graphs (py-spy), 200 writes/s"] = "\n".join(lines)


def _raise_if_failed(tasks: list[asyncio.Task[None]]) -> None:
    """An observer that died would leave its writes unseen: fail loudly instead."""
    for t in tasks:
        if t.done() and not t.cancelled() and (exc := t.exception()) is not None:
            raise exc


def _staleness_p99(samples: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    out = {}
    for name, rows in samples.items():
        values = [r["staleness_s"] for r in rows if r["staleness_s"] is not None]
        if values:
            out[name] = percentile(values, 99)
    return out


@dataclass
class LagRun:
    """One M8 repetition: each projection's samples around a load of `writes`."""

    samples: dict[str, list[dict[str, Any]]]
    writes: PacedRun
    load_start: float
    load_end: float

    def during(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.samples.get(name, []) if self.load_start <= r["t"] <= self.load_end]

    def steady_after(self, name: str) -> float | None:
        return _steady_since(self.samples.get(name, []), self.load_start, self.load_end)


async def _observe_lag(
    *,
    pool: asyncpg.Pool,
    ids: list[int],
    http: httpx.AsyncClient,
    token: str | None,
    duration_s: float,
) -> LagRun:
    """One M8 run: 2 x RATE writes/s for `duration_s` after a 3 s baseline, sampled until
    every projection is back to steady (at most RECOVERY_WINDOW_S)."""
    samples: dict[str, list[dict[str, Any]]] = {}
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(http, token, samples, stop))
    try:
        await asyncio.sleep(3.0)  # a short baseline before the load
        load_start = time.time()
        writes = await paced(2 * RATE, duration_s, _writer(pool, ids, Tokens(), []), concurrency=16)
        load_end = time.time()
        while time.time() < load_end + RECOVERY_WINDOW_S:
            await asyncio.sleep(1.0)
            if all(
                _steady_since(rows, load_start, load_end) is not None for rows in samples.values()
            ):
                break
    finally:
        stop.set()
        await sampler
    return LagRun(samples, writes, load_start, load_end)


def _report_lag(
    report: Report, runs: Sequence[LagRun], *, duration_s: float, m1_p99_ms: dict[str, list[float]]
) -> None:
    """M8's figures, each the median of the repetitions'; `duration_s` is the load of all of
    them together (the figure's name), m1_p99_ms each store's M1 p99 per repetition."""
    rate = 2 * RATE
    names = sorted({name for r in runs for name in r.samples})
    if not names:
        report.errors["bench.cdc M8"] = "no projection answered GET /projections"
        return
    for name in names:
        loaded = [r for r in runs if r.during(name)]
        if not loaded:
            continue
        store = next(s for s, p in PROJECTION_OF.items() if p == name)
        behind = ", ".join(str(max(row["lag"] for row in r.during(name))) for r in loaded)
        report.add(
            Figure.median_of(
                "M8",
                f"`{name}` max time lag at {rate} writes/s for {duration_s:g} s",
                [max(row["time_lag_s"] for row in r.during(name)) for r in loaded],
                "s",
                "M1 p99 of the same store",
                [ms / 1000 for ms in m1_p99_ms.get(store, [])],
                "max ≤ 1 s",
                met=lambda value, _: value <= 1.0,
                note=f"max {behind} records behind"
                + (" (per repetition)" if len(loaded) > 1 else ""),
                digits=3,
            )
        )
        backs = [r.steady_after(name) for r in loaded]
        unsettled = sum(b is None for b in backs)
        report.add(
            Figure.median_of(
                "M8",
                f"`{name}` back to steady after the load stopped",
                [RECOVERY_WINDOW_S if b is None else b for b in backs],
                "s",
                None,
                None,
                "≤ 30 s",
                met=_settled(unsettled, len(backs)),
                note=f"{unsettled} of {len(backs)} repetitions not steady within "
                f"{RECOVERY_WINDOW_S:g} s"
                if unsettled
                else "",
                digits=3,
            )
        )
        report.series[f"m8_time_lag_s_{name}"] = [
            row["time_lag_s"] for r in runs for row in r.samples.get(name, [])
        ]
        report.series[f"m8_records_behind_{name}"] = [
            float(row["lag"]) for r in runs for row in r.samples.get(name, [])
        ]
    if "cache" not in names:
        report.sections["M8 note"] = (
            "The gateway's `cache` projection was not sampled: its GET /projections needs the "
            "admin token, which could not be obtained."
        )
    each = ", ".join(
        f"{r.writes.sent:,} at {r.writes.rate:.0f}/s in {r.load_end - r.load_start:.0f} s"
        for r in runs
    )
    repeated = (
        f"{len(runs)} repetitions of {duration_s / len(runs):g} s ({duration_s:g} s of load in "
        "all), the projections idle before each; every figure is the median of the "
        "repetitions' (min and max beside it). "
        if len(runs) > 1
        else ""
    )
    report.sections["M8 lag under 2x load: how it was measured"] = (
        f"{repeated}User UPDATEs at {rate}/s ({each} achieved), each run after a 3 s baseline; "
        "every projection's GET /projections sampled each second "
        "(plots `m8_*`: one point per second, load from about sample 3, the repetitions one "
        "after the other). Steady = no record older than 1 s waiting and at most as many "
        "records behind as in the baseline (or 5)."
    )


def _settled(unsettled: int, n: int) -> Callable[[float, float | None], bool]:
    """Back to steady met: a repetition that never settled counts as the window, so the
    median one must have settled within it (more than half of the n)."""
    return lambda value, _: value <= RECOVERY_WINDOW_S and unsettled <= (n - 1) // 2


def _steady_since(rows: list[dict[str, Any]], load_start: float, load_end: float) -> float | None:
    base = [r["lag"] for r in rows if r["t"] < load_start]
    allowed = max(max(base, default=0) * 2, 5)
    marks = [(r["t"], r["time_lag_s"] <= 1.0 and r["lag"] <= allowed) for r in rows]
    if not any(t >= load_end for t, _ in marks):
        return None
    return recovery_s(marks, load_end=load_end)


async def run(report: Report, *, quick: bool) -> None:
    n = reps(quick=quick)
    # A full run's 60 s of M1 (12,000 writes) and 120 s of M8 load, in n repetitions.
    latency_s, lag_s = (15.0, 30.0) if quick else (60.0 / n, 120.0 / n)
    async with fixtures.http_client() as http:
        ids = await fixtures.bench_users(http, USERS)
        try:
            token: str | None = await fixtures.admin_token(http)
        except httpx.HTTPError:
            token = None
        names = ["graph", "timeseries", "cache"] if token else ["graph", "timeseries"]
        pool = await asyncpg.create_pool(fixtures.users_dsn(), min_size=4, max_size=16)
        busy = 0
        try:
            latency: list[LatencyRun] = []
            lag: list[LagRun] = []
            # M1 and M8 alternate, so M8's anchor (M1's p99) is measured beside it; each
            # repetition starts with the projections idle, as the first does.
            for _ in range(n):
                busy += not await fixtures.wait_idle(http, token, names, timeout_s=IDLE_WAIT_S)
                latency.append(
                    await _observe(pool=pool, ids=ids, http=http, token=token, duration_s=latency_s)
                )
                busy += not await fixtures.wait_idle(http, token, names, timeout_s=IDLE_WAIT_S)
                lag.append(
                    await _observe_lag(pool=pool, ids=ids, http=http, token=token, duration_s=lag_s)
                )
            _report_latency(report, latency)
            m1_p99_ms = {
                store: [v for v in _percentiles(latency, store, 99) if v is not None]
                for store in STORES
            }
            _report_lag(report, lag, duration_s=lag_s * n, m1_p99_ms=m1_p99_ms)
            if busy:
                report.sections["M8 lag under 2x load: how it was measured"] += (
                    f" {busy} of the {2 * n} M1 and M8 runs started before every projection "
                    f"was idle (waited {IDLE_WAIT_S:g} s)."
                )
            await _profiled_projections(report, pool=pool, ids=ids)
            for metric in ("M1", "M8"):
                if text := notes(report.figures, metric):
                    report.sections[f"{metric} notes"] = text
        finally:
            # The bench users' user.updated rows stay: they are on the log, which the
            # events table mirrors (`campus reconcile` derives it from there).
            await pool.close()
