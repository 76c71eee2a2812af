"""M4: gateway requests/s and p99 at 64 connections; the documents and time-series services.

Load comes from wrk (one thread, 64 connections, a warm-up second first), the anchors from
the same run: a bare FastAPI "hello" app under uvicorn with as many workers as the gateway runs
(started here on a free loopback port, with the services' uvicorn options) and the real
redis-benchmark GET.
The gateway's rate limiter stays on; the loopback address gets an admin override for the run
so no request is refused.

Uncached GET /users/{id}: wrk walks through 50 bench users while a side task deletes their
`user:{id}` entries every 10 ms; each id comes back only every ~50 requests, so nearly every
request misses. The wrk script counts the `X-Cache` header of every answer, and the report
gives the share that really missed.

Documents: posts created through POST /groups/{id}/posts (real bench group and member, events
flowing through the relay), and the first feed page of 20 over 10k/100k posts seeded straight
into FerretDB for 100 bench-only group ids (≥ 10^12), after one read of each group (the service
keeps first pages in its feed cache: the X-Cache header of each timed answer is counted); a full
run measures at 10k, then grows the set to 100k and measures again. Time series: GET /analytics
and the timeline; in the full run the table is first topped up to 1M events with bench rows.
Everything a run adds is removed at the end, including its traces in Redis and the events table.

Repetitions (issue 16): the setup (users, groups, seeded posts, events) is done once; each
timed phase runs `reps(quick=...)` times (3 in a full run, 1 in a quick one), each repetition
measuring the figure and its anchor in turn, and every figure is the median of the repetitions
with min and max (`Figure.median_of`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from bson import ObjectId
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pymongo import AsyncMongoClient

from bench import fixtures, profile
from bench.core import (
    ROOT,
    Figure,
    Report,
    at_most,
    percentile,
    reps,
    supervised_pid,
    uvicorn_worker_pids,
)
from bench.env import settings
from bench.tools import (
    COUNT_CACHE_LUA,
    RedisBenchResult,
    WrkResult,
    notes,
    post_json_lua,
    redis_benchmark,
    rotate_paths_lua,
    wrk,
)
from campus_common import topics
from campus_documents import repository as docs_repo
from campus_documents.config import Settings as DocumentsSettings
from campus_documents.service import stored_post
from campus_gateway.cache import HOT_POSTS
from campus_gateway.config import Settings as GatewaySettings

CONNECTIONS = 64
# Load that reaches FerretDB stays below its PostgreSQL pool (20 connections): under tens of
# concurrent requests (the documents service's pool allows 50) FerretDB v1 stopped answering
# several times during development, until the documents service was restarted.
DOCS_CONNECTIONS = 16
SEED_GROUPS = 100
SEED_AUTHOR = fixtures.BENCH_ID_BASE
DIRECT_GROUP = fixtures.BENCH_ID_BASE + SEED_GROUPS  # the direct-insert anchor's posts
ANALYTICS_TARGET_ROWS = 1_000_000


@dataclass
class Bench:
    http: httpx.AsyncClient
    token: str
    users: list[int]
    author: int
    group: int
    seconds: float
    quick: bool
    # hot:posts before the run: the posts the bench's own may push out of the capped set.
    hot_before: dict[str, float] = field(default_factory=dict)


# the bare anchor app ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((fixtures.LOOPBACK, 0))
        return int(s.getsockname()[1])


def gateway_workers() -> tuple[int, str]:
    """The gateway's uvicorn workers, and where the count comes from: counted from the running
    gateway of this stack's supervisord, else CAMPUS_GATEWAY_WORKERS (the cluster topology's
    gateways are one process each, behind HAProxy)."""
    setting = settings().gateway_worker_count()
    pid = supervised_pid("gateway")
    if pid is None:
        return setting, "CAMPUS_GATEWAY_WORKERS"
    running = len(uvicorn_worker_pids(pid)) or 1
    if running != setting:
        return running, f"running (CAMPUS_GATEWAY_WORKERS says {setting}: restart the gateway)"
    return running, "running, as CAMPUS_GATEWAY_WORKERS"


@contextlib.asynccontextmanager
async def hello_app(http: httpx.AsyncClient, workers: int) -> AsyncIterator[str]:
    """bench.hello under uvicorn with `workers` workers, for the duration of the block."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "bench.hello:app",
        "--host",
        fixtures.LOOPBACK,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        *(["--workers", str(workers)] if workers > 1 else []),
        cwd=ROOT,
    )
    base = f"http://{fixtures.LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{base}/")).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.returncode is not None:
                raise RuntimeError("the hello app did not start")
            await asyncio.sleep(0.2)
        yield base
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _load(
    url: str, seconds: float, script: str | None = None, *, connections: int = CONNECTIONS
) -> WrkResult:
    await wrk(url, duration_s=1, connections=connections, script=script)  # warm-up
    return await wrk(url, duration_s=seconds, connections=connections, script=script)


# M4: the gateway -----------------------------------------------------------------------------


async def _evict_forever(keys: list[str], stop: asyncio.Event) -> None:
    redis = fixtures.redis_client()
    try:
        while not stop.is_set():
            await redis.delete(*keys)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.01)
    finally:
        await redis.aclose()


# (key, label, connections, (minimum share of bare uvicorn, minimum req/s), p99 ceiling in ms)
_GATEWAY_ROWS: list[tuple[str, str, int, tuple[float, float] | None, float | None]] = [
    ("health", "GET /health (checks every dependency when asked)", CONNECTIONS, None, None),
    ("live", "GET /health/live (no dependency)", CONNECTIONS, (0.5, 0), None),
    ("ready", "GET /health/ready (last background probe)", CONNECTIONS, (0.5, 0), None),
    ("cached", "cached GET /users/{id}", CONNECTIONS, (0.5, 1500), 25),
    ("uncached", "uncached GET /users/{id}", CONNECTIONS, (0.25, 0), None),
    ("feed", "GET /groups/{id}/posts/feed?limit=20 (enriched)", DOCS_CONNECTIONS, None, None),
]


def _with_headers(script: str, headers: dict[str, str]) -> str:
    """A wrk script that also sends `headers` (plain token text, no quotes) with every request."""
    return "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items()) + script


def _beside_floor(
    report: Report,
    *,
    floor: str,
    floor_short: str,
    floor_runs: list[WrkResult],
    figure: str,
    figure_runs: list[WrkResult],
    bare: str,
    bare_rps: list[float],
) -> None:
    """A floor measured in the run (against bare uvicorn), and a gateway figure against it."""
    floor_rps = [r.ok_per_s for r in floor_runs]
    report.add(Figure.median_of("M4", floor, floor_rps, "req/s", bare, bare_rps, digits=0))
    report.add(
        Figure.median_of(
            "M4",
            figure,
            [r.ok_per_s for r in figure_runs],
            "req/s",
            floor_short,
            floor_rps,
            digits=0,
        )
    )


def _workers(n: int) -> str:
    return f"{n} uvicorn worker{'s' if n > 1 else ''}"


def _rps_target(share: float, floor: float) -> str:
    text = f"≥ {share:.0%} of bare uvicorn"
    return f"{text} and ≥ {floor:,.0f} req/s" if floor else text


async def _gateway(report: Report, b: Bench) -> None:
    gw = fixtures.url("gateway")
    paths = [f"/users/{i}" for i in b.users]
    for p in paths:  # fill the cache
        (await b.http.get(f"{gw}{p}")).raise_for_status()
    seconds = max(3.0, b.seconds / 2)
    n = reps(quick=b.quick)
    counted = rotate_paths_lua(paths) + COUNT_CACHE_LUA
    s = settings()
    # Per key, one wrk result per repetition.
    keys = ("hello", "hello_redis", "users_service", *(r[0] for r in _GATEWAY_ROWS))
    results: dict[str, list[WrkResult]] = {k: [] for k in keys}
    # The anchor app's one Redis GET per request, over the same 50 cached profiles.
    redis_paths = rotate_paths_lua([f"/redis/user:{i}" for i in b.users])
    gets: list[RedisBenchResult] = []
    workers, counted_from = gateway_workers()
    async with hello_app(b.http, workers) as hello_url:
        # Each repetition runs the anchor and every endpoint once, in the same order, so that
        # drift over the minutes this takes (other load on the host) reaches all of them.
        for _ in range(n):
            results["hello"].append(await _load(f"{hello_url}/", seconds))
            results["hello_redis"].append(await _load(f"{hello_url}/redis", seconds, redis_paths))
            results["health"].append(await _load(f"{gw}/health", seconds))
            results["live"].append(await _load(f"{gw}/health/live", seconds))
            results["ready"].append(await _load(f"{gw}/health/ready", seconds))
            results["cached"].append(await _load(f"{gw}/users", seconds, counted))
            async with _evicting(b.users):
                results["uncached"].append(await _load(f"{gw}/users", seconds, counted))
            # What an uncached read waits for: the users service itself, asked directly with
            # the operator's token (signed now: it lives 60 s, longer than one wrk run).
            results["users_service"].append(
                await _load(
                    f"{fixtures.url('users')}/users",
                    seconds,
                    _with_headers(rotate_paths_lua(paths), s.operator_headers("users")),
                )
            )
            results["feed"].append(
                await _load(
                    f"{gw}/groups/{b.group}/posts/feed?limit=20",
                    seconds,
                    connections=DOCS_CONNECTIONS,
                )
            )
            gets.append(
                await redis_benchmark(
                    host=s.redis_host,
                    port=s.redis_port,
                    password=s.redis_password.get_secret_value(),
                    requests=100_000,
                    clients=CONNECTIONS,
                    args=["-t", "get"],
                )
            )

    hello = results["hello"]
    hello_rps = [r.ok_per_s for r in hello]
    bare = f"bare uvicorn JSON app, {_workers(workers)}, {CONNECTIONS} connections"
    for key, label, connections, rps_target, p99_target in _GATEWAY_ROWS:
        runs = results[key]
        report.add(
            Figure.median_of(
                "M4",
                f"gateway {label}, {connections} connections",
                [r.ok_per_s for r in runs],
                "req/s",
                bare,
                hello_rps,
                _rps_target(*rps_target) if rps_target else None,
                met=_rps_met(rps_target) if rps_target else None,
                note=_notes(runs),
                digits=0,
            )
        )
        # A run in which no request completed has no latency (wrk prints 0): its p99 is left
        # out of the median, and with no answered run at all the target is not judged.
        answered = [r.p99_ms for r in runs if r.requests]
        report.add(
            Figure.median_of(
                "M4",
                f"gateway {label} p99",
                answered or [r.p99_ms for r in runs],
                "ms",
                "bare uvicorn p99",
                [r.p99_ms for r in hello if r.requests] or [r.p99_ms for r in hello],
                f"≤ {p99_target:g} ms" if p99_target else None,
                met=at_most(p99_target) if p99_target and answered else None,
            )
        )
    # What the uncached read wraps: the users service answering the same reads by itself.
    _beside_floor(
        report,
        floor=f"users service GET /users/{{id}} asked directly, {CONNECTIONS} connections",
        floor_short="users service GET /users/{id} asked directly",
        floor_runs=results["users_service"],
        figure="uncached GET /users/{id} through the gateway, beside the users service it calls",
        figure_runs=results["uncached"],
        bare=bare,
        bare_rps=hello_rps,
    )
    # The floor of this design: what uvicorn, FastAPI and redis-py cost for one Redis round
    # trip per request, before the gateway's own middleware, rate limit, auth and tracing.
    _beside_floor(
        report,
        floor=f"bare uvicorn JSON app + one pipelined Redis GET per request, {CONNECTIONS} "
        "connections",
        floor_short="bare uvicorn + one pipelined Redis GET per request",
        floor_runs=results["hello_redis"],
        figure="cached GET /users/{id} through the gateway, beside the Redis floor",
        figure_runs=results["cached"],
        bare=bare,
        bare_rps=hello_rps,
    )
    report.add(
        Figure.median_of(
            "M4",
            "cached GET /users/{id} through the gateway",
            [r.ok_per_s for r in results["cached"]],
            "req/s",
            f"redis-benchmark GET ({CONNECTIONS} clients)",
            [g.requests_per_s for g in gets],
            digits=0,
        )
    )
    hello50 = sorted(r.p50_ms for r in hello)[len(hello) // 2]
    get99 = sorted(g.p99_ms for g in gets)[len(gets) // 2]
    report.sections["M4 load generator"] = (
        f"Gateway: {_workers(workers)} ({counted_from}); the bare uvicorn anchor: the same "
        f"{_workers(workers)}. "
        f"wrk 4.1, 1 thread, {CONNECTIONS} connections, runs of {seconds:g} s after a 1 s "
        f"warm-up each; {n} repetition{'s' if n > 1 else ''}, each running the bare uvicorn "
        "anchor, every gateway endpoint and redis-benchmark once in turn; each figure is the "
        "median of the repetitions (min and max beside it). "
        "The second anchor is the same app answering each request with one pipelined Redis "
        "GET of a cached profile (bench/hello.py), rotating over the same 50 users. "
        f"Bare uvicorn p50 {hello50:.2f} ms (median); redis-benchmark GET ({100_000:,} "
        f"requests) p99 {get99} ms (median). "
        "The cached profile rotates over 50 bench users; the uncached one deletes their cache "
        "entries every 10 ms meanwhile (hit/miss counts from the X-Cache header, over all "
        "repetitions, are in the notes). "
        f"The feed, which reaches FerretDB, runs at {DOCS_CONNECTIONS} connections: under "
        "tens of concurrent requests FerretDB v1 stopped answering during development."
    )


@contextlib.asynccontextmanager
async def _evicting(users: list[int]) -> AsyncIterator[None]:
    """The bench users' profile cache entries deleted every 10 ms for the duration."""
    stop = asyncio.Event()
    evictor = asyncio.create_task(_evict_forever([f"user:{i}" for i in users], stop))
    try:
        yield
    finally:
        stop.set()
        await evictor


def _rps_met(target: tuple[float, float]) -> Callable[[float, float | None], bool]:
    share, floor = target
    return lambda value, anchor: anchor is not None and value >= share * anchor and value >= floor


async def _flame_graphs(report: Report, b: Bench) -> None:
    """Where the cached read and the post creation spend their time (py-spy, issue 16)."""
    if not profile.available():
        report.errors["bench.api flame graphs"] = "py-spy is missing: uv sync (dev dependency)"
        return
    paths = [f"/users/{i}" for i in b.users]
    body = orjson.dumps(
        {"author_id": b.author, "type": "note", "title": "Bench profile", "tags": ["bench"]}
    ).decode()
    cached = await profile.flame_graph(
        report,
        name="gateway_cached_get",
        service="gateway",
        url=f"{fixtures.url('gateway')}/users",
        script=rotate_paths_lua(paths),
        connections=CONNECTIONS,
    )
    # The same load with the bench users' cache entries deleted every 10 ms (as M4's uncached
    # row): nearly every request misses, so the graph shows what a miss adds to the path.
    async with _evicting(b.users):
        uncached = await profile.flame_graph(
            report,
            name="gateway_uncached_get",
            service="gateway",
            url=f"{fixtures.url('gateway')}/users",
            script=rotate_paths_lua(paths),
            connections=CONNECTIONS,
        )
    # Its posts are the bench author's: removed with M4's at the end of the run.
    create = await profile.flame_graph(
        report,
        name="documents_create_post",
        service="documents",
        url=f"{fixtures.url('documents')}/groups/{b.group}/posts",
        script=post_json_lua(body, settings().operator_headers("documents")),
        connections=DOCS_CONNECTIONS,
    )
    report.sections["Flame graphs (py-spy)"] = "\n".join(
        [
            "One untimed run each, sampled at the service while wrk loads it.",
            f"{cached} (the cached read, as M4's cached row: 50 bench users rotated)",
            f"{uncached} (the uncached read, as M4's uncached row: the same users with their "
            "cache entries deleted every 10 ms, so a request mostly misses and asks the users "
            "service; set beside the cached graph, the users service call's share and the "
            "hottest frames show where a miss spends its time)",
            f"{create} (post creation through the documents service)",
        ]
    )


def _notes(runs: Sequence[WrkResult]) -> str:
    """Cache misses, non-2xx answers and socket errors, summed over every repetition."""
    if not any(r.requests for r in runs):
        return "no request completed within the run"
    parts = []
    if sum(not r.requests for r in runs):
        parts.append(f"{sum(not r.requests for r in runs)} runs without a completed request")
    hits = sum(r.extra.get("hits", 0) for r in runs)
    misses = sum(r.extra.get("misses", 0) for r in runs)
    if hits + misses:
        parts.append(f"{misses / (hits + misses):.0%} cache misses")
    if non_2xx := sum(r.non_2xx for r in runs):
        parts.append(f"{non_2xx} non-2xx answers")
    if errors := sum(r.socket_errors for r in runs):
        parts.append(f"{errors} socket errors")
    return "; ".join(parts)


# documents: creating posts with events flowing -------------------------------------------------


@dataclass
class Created:
    result: WrkResult
    events: int
    event_ids: list[str]
    post_ids: list[str]
    relay_tail_s: float


def _post_body(author: int) -> dict[str, Any]:
    """What every bench POST of a post sends."""
    return {
        "author_id": author,
        "type": "note",
        "title": "Bench post",
        "body": "Notes from the benchmark run. " * 8,
        "tags": ["bench"],
    }


async def _create_posts(b: Bench, seconds: float) -> Created:
    docs = fixtures.url("documents")
    body = orjson.dumps(_post_body(b.author)).decode()
    consumer = await fixtures.tail(topics.DOCUMENT_EVENTS)
    event_ids: list[str] = []
    post_ids: list[str] = []
    last = 0.0
    expected = sys.maxsize
    stop, enough = asyncio.Event(), asyncio.Event()

    async def count() -> None:
        nonlocal last
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=5000)
            for records in batch.values():
                for rec in records:
                    event = orjson.loads(rec.value or b"null") or {}
                    payload = event.get("payload") or {}
                    if (
                        event.get("type") == "post.created"
                        and payload.get("group_id") == b.group
                        and payload.get("author_id") == b.author
                    ):
                        event_ids.append(str(event["id"]))
                        post_ids.append(str(payload["post_id"]))
                        last = time.time()
            if len(event_ids) >= expected:
                enough.set()

    counter = asyncio.create_task(count())
    try:
        result = await _load(
            f"{docs}/groups/{b.group}/posts",
            seconds,
            # The documents service answers only the gateway and the operator (a service token).
            post_json_lua(body, settings().operator_headers("documents")),
            connections=DOCS_CONNECTIONS,
        )
        ended = time.time()
        expected = result.requests - result.non_2xx
        if len(event_ids) >= expected:
            enough.set()
        # The warm-up second created posts too: wait for at least the timed ones' events.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), 60)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(counter, 10)
        await consumer.stop()
    return Created(result, len(event_ids), event_ids, post_ids, max(last - ended, 0.0))


def _seed_doc(i: int, group: int, at: datetime, author: int = SEED_AUTHOR) -> dict[str, Any]:
    """A post shaped as the documents service stores it (no pending event: never relayed)."""
    oid = ObjectId()
    return stored_post(
        oid=oid,
        author_id=author,
        group_id=group,
        content={
            "type": "note",
            "title": f"Bench post {i}",
            "body": "Seeded for the feed benchmark. " * 10,
            "tags": ["bench"],
            "attachments": [],
        },
        at=at,
        idempotency_key=f"bench:{oid}",
        request_hash="bench",
    )


async def _direct_inserts(db: Any, seconds: float) -> float:
    """Anchor: insert_one/s straight into FerretDB with the same concurrency."""
    deadline = time.monotonic() + seconds
    done = 0
    at = datetime.now(UTC)

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await db[docs_repo.POSTS].insert_one(_seed_doc(done, DIRECT_GROUP, at))
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(DOCS_CONNECTIONS)))
    return done / (time.monotonic() - started)


async def _writes(report: Report, b: Bench, db: Any) -> None:
    # Each repetition: posts through the service, then the direct-insert anchor, then every
    # trace of both removed, so the next one starts from the same collection and stores.
    seconds, direct_s = (b.seconds, 3.0) if b.quick else (10.0, 5.0)
    created: list[Created] = []
    direct: list[float] = []
    floor: list[WrkResult] = []
    body = post_json_lua(orjson.dumps(_post_body(b.author)).decode())
    # The floor of an HTTP service storing posts: bench.hello, one worker as the documents
    # service runs, parsing each body and storing it with one insert_one (nothing else).
    async with hello_app(b.http, 1) as hello_url:
        for _ in range(reps(quick=b.quick)):
            try:
                created.append(await _create_posts(b, seconds))
                direct.append(await _direct_inserts(db, direct_s))
                url = f"{hello_url}/posts/{DIRECT_GROUP}/{SEED_AUTHOR}"
                floor.append(await _load(url, seconds, body, connections=DOCS_CONNECTIONS))
            finally:
                await _forget_posts(b, db)
                await db[docs_repo.POSTS].delete_many({"author_id": SEED_AUTHOR})
    # The same posts with every request traced (the classroom default, issue 14): its cost.
    traced: list[Created] = []
    async with fixtures.tracing_mode("100 %"):
        for _ in range(reps(quick=b.quick)):
            try:
                traced.append(await _create_posts(b, seconds))
            finally:
                await _forget_posts(b, db)
    results = [c.result for c in created]
    posts_per_s = [r.ok_per_s for r in results]
    report.add(
        Figure.median_of(
            "M4",
            f"posts created/s through the documents service, {DOCS_CONNECTIONS} connections",
            posts_per_s,
            "posts/s",
            "insert_one/s straight into FerretDB, same concurrency",
            direct,
            "≥ 50 % of direct insert_one",
            met=lambda value, anchor: anchor is not None and value >= 0.5 * anchor,
            note=_notes(results),
            digits=0,
        )
    )
    report.add(
        Figure.median_of(
            "M4",
            "POST /groups/{id}/posts p99",
            [r.p99_ms for r in results],
            "ms",
            "p50",
            [r.p50_ms for r in results],
            "≤ 100 ms",
            met=at_most(100.0),
        )
    )
    floor_rates = [r.ok_per_s for r in floor]
    report.add(
        Figure.median_of(
            "M4",
            f"bare uvicorn app + one insert_one per POST (1 worker), {DOCS_CONNECTIONS} "
            "connections",
            floor_rates,
            "posts/s",
            "insert_one/s straight into FerretDB, same concurrency",
            direct,
            digits=0,
        )
    )
    report.add(
        Figure.median_of(
            "M4",
            "posts created/s through the documents service, beside the insert floor",
            posts_per_s,
            "posts/s",
            "bare uvicorn + one insert_one per POST",
            floor_rates,
            digits=0,
        )
    )
    full = [c.result for c in traced]
    report.add(
        Figure.median_of(
            "M4",
            "posts created/s through the documents service, tracing 100 %",
            [r.ok_per_s for r in full],
            "posts/s",
            f"same, tracing {fixtures.BENCH_TRACING} (the run's)",
            posts_per_s,
            digits=0,
        )
    )
    report.add(
        Figure.median_of(
            "M4",
            "POST /groups/{id}/posts p99, tracing 100 %",
            [r.p99_ms for r in full],
            "ms",
            f"same, tracing {fixtures.BENCH_TRACING} (the run's)",
            [r.p99_ms for r in results],
        )
    )
    n = len(created)
    report.sections["M4 documents writes"] = (
        f"{n} repetition{'s' if n > 1 else ''}, each: posts created for {seconds:g} s (after a "
        "1 s warm-up) by one bench member of one bench group (each POST asks the users service "
        f"about the membership), then {direct_s:g} s of insert_one straight into FerretDB, "
        f"then the same POST body for {seconds:g} s (after a 1 s warm-up) to bench/hello.py's "
        "floor app (uvicorn, 1 worker, storing each as a post with one insert_one), then the "
        "posts deleted through the service (their post.deleted takes them back out of the "
        "projections) and the others straight from FerretDB. After the repetitions the five "
        "services were restarted with "
        "tracing at 100 % (the classroom default) and the posts through the service made and "
        "deleted as many times again, then restarted as the run has them. Posts per repetition: "
        + ", ".join(f"{c.result.requests:,}" for c in created)
        + "; post.created events the relay published for them (the warm-up second's "
        "included): "
        + ", ".join(f"{c.events:,}" for c in created)
        + "; the last reached Kafka "
        + ", ".join(f"{c.relay_tail_s:.1f}" for c in created)
        + " s after the load stopped."
    )


FEED_GROUPS = [fixtures.BENCH_ID_BASE + g for g in range(SEED_GROUPS)]


async def _seed_feed(db: Any, first: int, last: int, now: datetime) -> float:
    """Insert seeded posts first..last-1 across the bench groups (post j is j minutes older
    than `now`, so growing the set adds older posts behind the same first pages); returns the
    seconds it took."""
    started = time.monotonic()
    for i in range(first, last, 1000):
        await db[docs_repo.POSTS].insert_many(
            [
                _seed_doc(j, FEED_GROUPS[j % SEED_GROUPS], now - timedelta(minutes=j))
                for j in range(i, min(i + 1000, last))
            ],
            ordered=False,
        )
    return time.monotonic() - started


@dataclass
class Feed:
    service: list[float]  # seconds per first page at the service
    direct: list[float]  # seconds per same query straight from FerretDB
    hits: int  # timed pages the service answered from its feed cache (X-Cache: hit)


async def _feed(db: Any, b: Bench, requests: int, budget_s: float, seed: int) -> Feed:
    """One repetition over the seeded posts: time the first feed page at the service, then the
    same query straight from FerretDB for the same groups (up to `requests` each, fewer when
    they do not fit in `budget_s` each, but at least 30)."""
    rng = random.Random(seed)
    docs = fixtures.url("documents")
    picks = [rng.choice(FEED_GROUPS) for _ in range(requests)]
    # Warm-up: every group's first page once, a few at a time, so the timed requests see a
    # warm feed cache (what a miss costs is the direct figure); the X-Cache header of each
    # timed answer counts the hits, so a cold or bypassed cache shows in the report. Each
    # repetition warms again: the cache's TTL may have dropped the pages since the last.
    warming = asyncio.Semaphore(4)

    async def warm(g: int) -> None:
        async with warming:
            await b.http.get(f"{docs}/groups/{g}/posts/feed", params={"limit": 20})

    # After a restart (the 100 % tracing phase of the writes ends with one) the service answers
    # 503 until its store is ready: wait for that, not for a fixed time.
    for _ in range(240):  # at most 2 minutes
        feed = await b.http.get(f"{docs}/groups/{picks[0]}/posts/feed", params={"limit": 20})
        if feed.status_code != 503:
            break
        await asyncio.sleep(0.5)
    await asyncio.gather(*(warm(g) for g in FEED_GROUPS))
    service, direct, hits = [], [], 0
    deadline = time.monotonic() + budget_s
    for n, g in enumerate(picks):
        if n >= 30 and time.monotonic() > deadline:
            break
        t = time.perf_counter()
        resp = await b.http.get(f"{docs}/groups/{g}/posts/feed", params={"limit": 20})
        service.append(time.perf_counter() - t)
        if resp.status_code != 200 or len(resp.json()["items"]) != 20:
            raise RuntimeError(f"feed: {resp.status_code} {resp.text[:200]}")
        hits += resp.headers.get("X-Cache") == "hit"
    deadline = time.monotonic() + budget_s
    for n, g in enumerate(picks[: len(service)]):
        if n >= 30 and time.monotonic() > deadline:
            break
        t = time.perf_counter()
        await docs_repo.find_posts(db, where={"group_id": g}, after=None, limit=21)
        direct.append(time.perf_counter() - t)
    return Feed(service, direct, hits)


async def delete_seeded(db: Any) -> None:
    """Delete the seeded posts in chunks: FerretDB v1 fails a delete of more than 65,535."""
    posts = db[docs_repo.POSTS]
    while True:
        # An equality filter: FerretDB v1 pushes it down to PostgreSQL (a range would not be).
        ids = [
            d["_id"] async for d in posts.find({"author_id": SEED_AUTHOR}, {"_id": 1}).limit(10_000)
        ]
        if not ids:
            return
        await posts.delete_many({"_id": {"$in": ids}})


async def _feed_at_service(report: Report, b: Bench, db: Any) -> None:
    # The targets: p99 ≤ 20 ms at 10k posts, ≤ 30 ms at 100k. A full run measures at
    # 10k, then grows the same set to 100k and measures again; a quick run stops at 10k.
    sizes = [(10_000, 20)] if b.quick else [(10_000, 20), (100_000, 30)]
    requests, budget_s = (200, 20.0) if b.quick else (1000, 20.0)
    n = reps(quick=b.quick)
    now = datetime.now(UTC)
    seeded, text = 0, []
    shares: list[float] = []
    hits = timed = 0
    try:
        for posts, target_ms in sizes:
            seeded_s = await _seed_feed(db, seeded, posts, now)
            seeded = posts
            runs = [await _feed(db, b, requests, budget_s, seed=9 + r) for r in range(n)]
            for q in (50, 99):
                report.add(
                    Figure.median_of(
                        "M4",
                        f"feed page of 20 at the documents service p{q} ({posts:,} posts, "
                        f"{SEED_GROUPS} groups)",
                        [percentile(f.service, q) * 1000 for f in runs],
                        "ms",
                        f"the same query straight from FerretDB (pymongo) p{q}",
                        [percentile(f.direct, q) * 1000 for f in runs],
                        f"p99 ≤ {target_ms} ms" if q == 99 else None,
                        met=at_most(target_ms) if q == 99 else None,
                    )
                )
            shares += [100 * f.hits / len(f.service) for f in runs]
            hits += sum(f.hits for f in runs)
            timed += sum(len(f.service) for f in runs)
            report.series["latency:documents_feed"] = [t for f in runs for t in f.service]
            text.append(
                f"{posts:,} posts ({seeded_s:.0f} s of inserts to reach them): per repetition "
                + ", ".join(
                    f"{len(f.service)} pages at the service ({f.hits} from its feed cache) "
                    f"and {len(f.direct)} straight from FerretDB"
                    for f in runs
                )
                + "."
            )
    finally:
        await delete_seeded(db)
    report.add(
        Figure.median_of(
            "M4",
            "feed pages of 20 answered from the documents feed cache (X-Cache: hit)",
            shares,
            "%",
            note=f"{hits} of {timed} timed requests, over every size and repetition",
            digits=1,
        )
    )
    report.sections["M4 feed data"] = (
        f"Posts inserted straight into FerretDB for group ids {fixtures.BENCH_ID_BASE}…"
        f"+{SEED_GROUPS - 1} (no events), "
        + (
            "10,000 first, measured, then grown to 100,000 (older posts behind the same first "
            "pages) and measured again. "
            if len(sizes) > 1
            else "10,000 of them. "
        )
        + f"{n} repetition{'s' if n > 1 else ''} per size, each: every group's first page read "
        f"once (warm-up), then up to {requests} sequential first pages of random groups timed "
        f"at the service (at most {budget_s:g} s, at least 30), then the same queries straight "
        f"from FerretDB (the same limits). "
        + " ".join(text)
        + " The posts were deleted afterwards."
    )


async def _seed_group_feed(db: Any, b: Bench, posts: int = 40) -> None:
    """A feed for the gateway run: the bench member's posts in the bench group (no events)."""
    now = datetime.now(UTC)
    await db[docs_repo.POSTS].insert_many(
        [_seed_doc(i, b.group, now - timedelta(minutes=i), author=b.author) for i in range(posts)]
    )


async def _forget_posts(b: Bench, db: Any) -> None:
    """Remove the bench member's posts without leaving the projections at odds with the log.

    Posts made through the service had their post.created on Kafka, and every projection
    applied it (points, hot posts, activity, events rows); a log is not rewritten, so they are
    deleted through the service as any author would, and their post.deleted takes them back
    out of Redis's rankings and lands in the events table beside the creation, which is what
    `campus reconcile` derives from the log. The seeded posts never had an event (no outbox):
    they are removed straight from the collection."""
    posts = db[docs_repo.POSTS]
    live = {"author_id": b.author, "request_hash": {"$ne": "bench"}, "deleted_at": None}
    ids = [str(d["_id"]) async for d in posts.find(live, {"_id": 1})]
    docs = fixtures.url("documents")
    gate = asyncio.Semaphore(DOCS_CONNECTIONS)

    async def delete(post_id: str) -> None:
        async with gate:
            r = await b.http.delete(f"{docs}/posts/{post_id}", headers={"X-User-Id": str(b.author)})
            if r.status_code not in (204, 404):  # 404: already gone (purged by an earlier run)
                r.raise_for_status()

    await asyncio.gather(*(delete(i) for i in ids))
    await posts.delete_many({"author_id": b.author, "request_hash": "bench"})
    # The next repetition starts once the relay has purged them and the projections are idle.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not await posts.count_documents({"author_id": b.author}):
            break
        await asyncio.sleep(0.5)
    await fixtures.wait_idle(b.http, b.token, ["cache", "timeseries"], timeout_s=120)
    await _restore_hot_posts(b, db)


async def _restore_hot_posts(b: Bench, db: Any) -> None:
    """Put back the live posts the bench's pushed out of hot:posts.

    The set is capped at its top N; a post pushed out does not come back when the posts that
    pushed it out are deleted (nothing tells the projection about it again), while `campus
    reconcile` expects every live post while there are at most N. The bench's posts displaced
    them, so the bench puts them back, with their score, as `campus reconcile --repair` would."""
    if not b.hot_before:
        return
    ids = [ObjectId(p) for p in b.hot_before if ObjectId.is_valid(p)]
    live = {
        str(d["_id"])
        async for d in db[docs_repo.POSTS].find(
            {"_id": {"$in": ids}, "deleted_at": None}, {"_id": 1}
        )
    }
    redis = fixtures.product_redis()
    try:
        await redis.zadd(HOT_POSTS, {p: sc for p, sc in b.hot_before.items() if p in live}, gt=True)
        await redis.zremrangebyrank(HOT_POSTS, 0, -GatewaySettings().hot_posts_max - 1)
    finally:
        await redis.aclose()


# time series: analytics at (up to) 1M events --------------------------------------------------


ANALYTICS_PATHS = [
    ("analytics", "/analytics"),
    ("timeline", "/analytics/timeline?bucket=1m"),
    ("health", "/health"),
]


async def _analytics(report: Report, b: Bench) -> None:
    ts = fixtures.url("timeseries")
    conn = await AsyncConnection.connect(fixtures.ts_dsn(), autocommit=True)
    added = 0
    since = datetime.now(UTC) - timedelta(days=1, minutes=5)
    try:
        row = await (await conn.execute("SELECT count(*) FROM events")).fetchone()
        total = int(row[0]) if row else 0
        if not b.quick and total < ANALYTICS_TARGET_ROWS:
            added = ANALYTICS_TARGET_ROWS - total
            await _add_events(conn, added)
            await conn.execute("SELECT refresh_rollups()")
        requests = 100 if b.quick else 300
        # Per endpoint, each repetition's samples; a repetition times the three in turn.
        timings: dict[str, list[list[float]]] = {name: [] for name, _ in ANALYTICS_PATHS}
        for _ in range(reps(quick=b.quick)):
            for name, path in ANALYTICS_PATHS:
                for _ in range(10):
                    await b.http.get(f"{ts}{path}")
                out = []
                for _ in range(requests):
                    t = time.perf_counter()
                    resp = await b.http.get(f"{ts}{path}")
                    out.append(time.perf_counter() - t)
                    if resp.status_code != 200:
                        raise RuntimeError(f"{path}: {resp.status_code} {resp.text[:200]}")
                timings[name].append(out)
    finally:
        if added:
            await conn.execute(
                "DELETE FROM events WHERE source = 'bench' AND event_type = 'bench.analytics' "
                "AND time >= %s",
                (since,),
            )
            await conn.execute("SELECT refresh_rollups()")
        await conn.close()
    rows = total + added
    health99 = [percentile(run, 99) * 1000 for run in timings["health"]]
    for name, label in [
        ("analytics", "GET /analytics"),
        ("timeline", "GET /analytics/timeline?bucket=1m"),
    ]:
        report.add(
            Figure.median_of(
                "M4",
                f"{label} at the time-series service p99 ({rows:,} events)",
                [percentile(run, 99) * 1000 for run in timings[name]],
                "ms",
                "GET /health of the same service (one SELECT 1) p99",
                health99,
                "≤ 50 ms",
                met=at_most(50),
            )
        )
        report.series[f"latency:{name}"] = [t for run in timings[name] for t in run]
    n = len(health99)
    report.sections["M4 analytics requests"] = (
        f"{n} repetition{'s' if n > 1 else ''}, each: GET /analytics, the timeline and /health "
        f"in turn, {requests} sequential requests each after 10 untimed ones."
    )
    if added:
        report.sections["M4 analytics data"] = (
            f"The events table held {total:,} rows; {added:,} bench rows (source `bench`, spread "
            "over the last 24 h) were added for the run, the rollups refreshed, and both "
            "removed again afterwards."
        )


async def _add_events(conn: AsyncConnection[Any], n: int) -> None:
    now = datetime.now(UTC)
    rng = random.Random(13)
    kinds = ["post.created", "post.liked", "comment.created", "user.updated", "friend.added"]
    async with (
        conn.cursor() as cur,
        cur.copy(
            "COPY events (time, user_id, event_type, properties, source, dedupe_key) FROM STDIN "
            "(FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["timestamptz", "int8", "text", "jsonb", "text", "text"])
        for i in range(n):
            await copy.write_row(
                (
                    now - timedelta(seconds=rng.uniform(0, 86_400)),
                    fixtures.BENCH_ID_BASE + rng.randrange(10_000),
                    "bench.analytics",
                    Jsonb({"kind": rng.choice(kinds), "n": i}),
                    "bench",
                    f"bench-analytics:{i}:{now}",
                )
            )


# the module ------------------------------------------------------------------------------------


async def run(report: Report, *, quick: bool) -> None:
    seconds = 5.0 if quick else 20.0
    docs_settings = DocumentsSettings()
    # The bulk seeding and clean-up of 100k posts takes FerretDB v1 far longer than a request.
    options = {**docs_settings.mongo_options(), "socketTimeoutMS": 600_000}
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(**options)
    db = mongo[docs_settings.docs_db_name]
    async with fixtures.http_client() as http:
        token = await fixtures.admin_token(http)
        users = await fixtures.bench_users(http, 50)
        (author,) = await fixtures.bench_users(http, 1, prefix="bench-author")
        group = await fixtures.bench_group(http, "feed")
        await fixtures.join(http, group, author)
        b = Bench(http, token, users, author, group, seconds, quick)
        redis = fixtures.product_redis()
        try:
            hot = await redis.zrange(HOT_POSTS, 0, -1, withscores=True)
            b.hot_before = {bytes(m).decode(): float(sc) for m, sc in hot}
        finally:
            await redis.aclose()
        try:
            await db[docs_repo.POSTS].delete_many({"author_id": SEED_AUTHOR})  # leftovers
            # Lapses by itself if the run dies. Longer than this module ever takes: a lift that
            # lapsed mid-run (the 10:43 full run of 2026-12-02) let 429s into the read figures.
            lifted_s = 3 * 3600
            async with fixtures.rate_limit_lifted(http, token, ttl_s=lifted_s):
                await _writes(report, b, db)
                await _feed_at_service(report, b, db)
                await _seed_group_feed(db, b)
                await _gateway(report, b)
                await _flame_graphs(report, b)
            await _analytics(report, b)
            if text := notes(report.figures, "M4"):
                report.sections["M4 notes"] = text
        finally:
            await _forget_posts(b, db)
            await mongo.close()
