"""What the benchmarks share with the running stack: connections, bench-only data, cleanup.

Bench data is marked so it can never be mistaken for the product's: users with emails
`…@bench.university.edu`, groups named `bench-…` with course code BENCH, entity ids at or
above BENCH_ID_BASE where a benchmark writes a store directly (no product id gets that high),
Kafka topics `bench.*`, consumer groups `bench-*`, and the database campus_bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, LiteralString

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from neo4j import AsyncDriver, AsyncGraphDatabase
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from bench.core import ROOT
from bench.env import PROJECTION_SERVICES, settings
from campus_common.kafka import ensure_topics

log = logging.getLogger(__name__)

BENCH_ID_BASE = 10**12
BENCH_DOMAIN = "bench.university.edu"
BENCH_COURSE = "BENCH"
# A logical Redis database nothing else uses: projections run in-process write there, so
# the product's keys (db 0) never see bench events.
BENCH_REDIS_DB = 15
LOOPBACK = "127.0.0.1"


# connections ---------------------------------------------------------------------------------


def users_dsn() -> str:
    """The users service's own role on its database (it may write its tables)."""
    return settings().users_dsn()


def ts_dsn() -> str:
    """The time-series service's own role on campus_ts."""
    return settings().ts_dsn()


def neo4j_driver() -> AsyncDriver:
    s = settings()
    return AsyncGraphDatabase.driver(s.neo4j_uri, auth=s.neo4j_auth)


def redis_client(db: int = 0) -> Redis:
    """A plain Redis client of one logical database (the single topology's Redis)."""
    if settings().redis_cluster:
        raise RuntimeError(
            "this benchmark uses Redis databases by number, which Redis Cluster does not have: "
            "run it on the single topology"
        )
    return Redis(**settings().redis_client_options(), db=db, max_connections=64)


def product_redis() -> Redis | RedisCluster:
    """The product's Redis (database 0): a Redis Cluster client on the cluster topology (any
    node leads to all of them; a cluster has no other database, so no `db=` there)."""
    if settings().redis_cluster:
        return RedisCluster(**settings().redis_client_options(), max_connections=64)
    return redis_client()


def http_client(timeout: float = 30.0) -> httpx.AsyncClient:
    # The operator's signed tokens for the internal services; the gateway's own auth otherwise.
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(max_connections=100),
        auth=settings().operator_auth(),
    )


def url(service: str) -> str:
    return settings().service_url(service)


async def ensure_bench_db() -> None:
    """campus_bench, for tables that must live apart from the product (superuser creates it)."""
    admin = await asyncpg.connect(settings().superuser_dsn("postgres"))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'campus_bench'"):
            await admin.execute("CREATE DATABASE campus_bench")
    finally:
        await admin.close()


# bench users and groups, through the users service's API -------------------------------------


def bench_email(prefix: str, i: int) -> str:
    return f"{prefix}-{i}@{BENCH_DOMAIN}"


async def _ids_by_email(emails: Sequence[str]) -> dict[str, int]:
    conn = await asyncpg.connect(users_dsn())
    try:
        rows = await conn.fetch(
            "SELECT id, lower(email::text) AS email FROM users WHERE lower(email::text) = ANY($1)",
            [e.lower() for e in emails],
        )
    finally:
        await conn.close()
    return {r["email"]: r["id"] for r in rows}


async def bench_users(http: httpx.AsyncClient, n: int, prefix: str = "bench-user") -> list[int]:
    """n bench users, created through POST /users the first time and reused afterwards."""
    emails = [bench_email(prefix, i) for i in range(n)]
    found = await _ids_by_email(emails)
    missing = [e for e in emails if e.lower() not in found]
    # The users service hashes at most two passwords at once and answers 429 past a short
    # queue (a busy machine reaches it even at a few concurrent sign-ups): wait and retry.
    slots = asyncio.Semaphore(2)

    async def create(email: str) -> None:
        async with slots:
            body = {
                "email": email,
                "full_name": f"Bench {email.split('@')[0]}",
                "password": secrets.token_urlsafe(16),
            }
            for _ in range(30):
                resp = await http.post(f"{url('users')}/users", json=body)
                if resp.status_code != 429:
                    break
                await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
            if resp.status_code not in (201, 409):
                raise RuntimeError(f"creating {email}: {resp.status_code} {resp.text[:200]}")

    await asyncio.gather(*(create(e) for e in missing))
    if missing:
        found = await _ids_by_email(emails)
    return [found[e.lower()] for e in emails]


async def bench_group(http: httpx.AsyncClient, purpose: str) -> int:
    """The group `bench-<purpose>` (course BENCH), created through POST /groups once."""
    name = f"bench-{purpose}"
    conn = await asyncpg.connect(users_dsn())
    try:
        gid = await conn.fetchval(
            "SELECT min(id) FROM groups WHERE name = $1 AND course_code = $2", name, BENCH_COURSE
        )
    finally:
        await conn.close()
    if gid is not None:
        return int(gid)
    resp = await http.post(
        f"{url('users')}/groups", json={"name": name, "course_code": BENCH_COURSE}
    )
    resp.raise_for_status()
    return int(resp.json()["id"])


async def join(http: httpx.AsyncClient, group_id: int, user_id: int) -> None:
    resp = await http.post(
        f"{url('users')}/groups/{group_id}/members", json={"user_id": user_id, "role": "member"}
    )
    if resp.status_code not in (201, 409):
        raise RuntimeError(f"join failed: {resp.status_code} {resp.text[:200]}")


# the gateway: admin token, rate limits, projection status -----------------------------------


async def admin_token(http: httpx.AsyncClient) -> str:
    s = settings()
    resp = await http.post(
        f"{url('gateway')}/auth/token",
        data={"username": s.admin_email, "password": s.admin_password.get_secret_value()},
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


@contextlib.asynccontextmanager
async def rate_limit_lifted(
    http: httpx.AsyncClient, token: str, *, ttl_s: int
) -> AsyncIterator[None]:
    """Give the loopback address a limit no benchmark reaches, through the admin API, so the
    gateway still runs its limiter on every request (the cost stays in the figures) but never
    answers 429; the override lapses by itself after ttl_s if we die before removing it."""
    path = f"{url('gateway')}/admin/rate-limits/address/{LOOPBACK}"
    auth = {"Authorization": f"Bearer {token}"}
    resp = await http.put(
        path, json={"limit": 1_000_000, "window_s": 60, "ttl_s": ttl_s}, headers=auth
    )
    resp.raise_for_status()
    try:
        yield
    finally:
        with contextlib.suppress(httpx.HTTPError):
            await http.delete(path, headers=auth)


async def projections(http: httpx.AsyncClient, token: str | None) -> dict[str, dict[str, Any]]:
    """Every projection's state from the service that runs it (graph, timeseries, and the
    gateway's cache when an admin token is given). On the cluster topology each graph and
    timeseries instance is asked on its own port (through HAProxy one would answer for its
    own partitions only): the lags are summed, the time lag and staleness the worst of the two,
    and a projection one instance of which does not answer is left out (so nobody takes it for
    idle). The cache comes from the gateway's /admin/consumers, which answers for the whole
    consumer group whichever gateway worker or instance takes the request (its /projections
    would give that worker's partitions only)."""
    s = settings()
    sources: list[tuple[str, str]] = []
    for svc in PROJECTION_SERVICES:
        if svc == "gateway":
            continue
        ports = s.instance_ports(svc)
        host = getattr(s, f"{svc}_host")
        bases = [f"http://{host}:{p}" for p in ports] if ports else [url(svc)]
        sources += [(svc, f"{base}/projections") for base in bases]
    calls = [http.get(address, timeout=5) for _, address in sources]
    if token:
        sources.append(("gateway", f"{url('gateway')}/admin/consumers"))
        calls.append(
            http.get(sources[-1][1], headers={"Authorization": f"Bearer {token}"}, timeout=5)
        )
    replies = await asyncio.gather(*calls, return_exceptions=True)
    by_name: dict[str, list[dict[str, Any]]] = {}
    silent: set[str] = set()
    for (svc, _), reply in zip(sources, replies, strict=True):
        if isinstance(reply, httpx.Response) and reply.status_code == 200:
            for p in reply.json():
                # /admin/consumers also relays the other services' projections: only the
                # gateway's own is taken from it.
                if svc != "gateway" or p.get("service") == "gateway":
                    by_name.setdefault(p["name"], []).append(p | {"_service": svc})
        else:
            silent.add(svc)
    return {
        name: _merged(rows)
        for name, rows in by_name.items()
        if not any(r["_service"] in silent for r in rows)
    }


def _merged(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One projection's state from its instances' (one row on the single topology)."""
    rows = [{k: v for k, v in r.items() if k != "_service"} for r in rows]
    if len(rows) == 1:
        return rows[0]

    def worst(key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return max(values) if values else None

    return rows[0] | {
        "total_lag": sum(r.get("total_lag") or 0 for r in rows),
        "time_lag_s": worst("time_lag_s"),
        "staleness_s": worst("staleness_s"),
    }


async def wait_idle(
    http: httpx.AsyncClient, token: str | None, names: Iterable[str], *, timeout_s: float
) -> bool:
    """Wait until the named projections have no lag; False on timeout."""
    wanted = set(names)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = await projections(http, token)
        if wanted <= state.keys() and all(state[n]["total_lag"] == 0 for n in wanted):
            return True
        await asyncio.sleep(0.5)
    return False


# Kafka ----------------------------------------------------------------------------------------


async def bench_topic(purpose: str) -> str:
    topic = f"bench.{purpose}.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings().kafka, [topic])
    return topic


async def drop_topics(names: Sequence[str]) -> None:
    """Delete bench topics (they keep everything forever otherwise)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings().kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    except Exception as exc:  # a leftover bench topic is untidy, not a failed benchmark
        log.warning("could not delete %s: %s", names, exc)
    finally:
        await admin.close()


async def topics_under(*prefixes: str) -> list[str]:
    """The topics whose names start with one of `prefixes`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings().kafka.bootstrap_servers)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.startswith(prefixes))
    finally:
        await admin.close()


async def drop_leftover_topics(prefix: str) -> list[str]:
    """Delete the topics earlier runs left under `prefix`; returns their names."""
    names = await topics_under(prefix)
    if names:
        await drop_topics(names)
    return names


async def tail(topic: str) -> AIOKafkaConsumer:
    """A bare consumer (no group) on every partition of `topic`, positioned at its end."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings().kafka.bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    deadline = time.monotonic() + 10
    while not consumer.assignment():
        if time.monotonic() > deadline:
            await consumer.stop()
            raise RuntimeError(f"no partitions of {topic} assigned")
        await asyncio.sleep(0.05)
    # Resolve the end offsets now, before any write we are going to time.
    for tp in consumer.assignment():
        await consumer.position(tp)
    return consumer


# Neo4j ---------------------------------------------------------------------------------------


async def delete_bench_graph(driver: AsyncDriver) -> None:
    """Remove every :User/:Group node with a bench id, with its edges and tombstones."""
    # In chunks: one transaction over every bench node could outgrow Neo4j's heap.
    for query in _DELETE_BENCH_GRAPH:
        while True:
            _, summary, _ = await driver.execute_query(query, base=BENCH_ID_BASE)
            if summary.counters.nodes_deleted == 0:
                break


_DELETE_BENCH_GRAPH: tuple[LiteralString, ...] = (
    "MATCH (n:User) WHERE n.id >= $base WITH n LIMIT 5000 DETACH DELETE n",
    "MATCH (n:Group) WHERE n.id >= $base WITH n LIMIT 5000 DETACH DELETE n",
    "MATCH (t:Tombstone) WHERE t.id >= $base OR t.user_id >= $base OR t.group_id >= $base "
    "WITH t LIMIT 5000 DELETE t",
)


# Tracing settings for a measurement (issue 14: 100 % by default for the classroom, lower for
# benchmarks), written to an override file stack/services/run.sh reads after .env.
TRACING_OVERRIDE = ROOT / ".stack" / "run" / "tracing.env"
SERVICES = ["users", "documents", "graph", "timeseries", "gateway"]
TRACING_MODES: dict[str, str] = {
    "off": "CAMPUS_OTEL_ENABLED=false\n",
    "10 %": "CAMPUS_OTEL_ENABLED=true\nCAMPUS_OTEL_SAMPLE_RATIO=0.1\n",
    "100 %": "CAMPUS_OTEL_ENABLED=true\nCAMPUS_OTEL_SAMPLE_RATIO=1.0\n",
}
# What `make bench` runs the services with; T1/T2 (bench.tracing) and the "tracing 100 %"
# figures measure the classroom default beside it.
BENCH_TRACING = "10 %"
# The mode a run set for all its modules (None: the services as .env starts them), which a
# block measuring another mode restores afterwards.
_run_tracing: str | None = None


def restart_services(override: str | None) -> None:
    """Restart the services with `override` (None: .env alone) and wait until they answer."""
    if override is None:
        TRACING_OVERRIDE.unlink(missing_ok=True)
    else:
        TRACING_OVERRIDE.write_text(override)
    conf = ROOT / ".stack" / "run" / "supervisord.conf"
    sctl = [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(conf)]
    subprocess.run([*sctl, "restart", *SERVICES], check=True, capture_output=True, timeout=180)
    ready = ROOT / "stack" / "services" / "ready.sh"
    deadline = time.monotonic() + 120
    for name in SERVICES:
        while subprocess.run([str(ready), name], capture_output=True, check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after restart")
            time.sleep(0.5)


def restart_for_run() -> None:
    """Restart the services as the run left them: in its tracing mode, else with .env alone."""
    restart_services(TRACING_MODES[_run_tracing] if _run_tracing else None)


@contextlib.asynccontextmanager
async def tracing_mode(mode: str) -> AsyncIterator[None]:
    """The services restarted with one of TRACING_MODES for the block, then as the run has
    them (`run_tracing`)."""
    await asyncio.to_thread(restart_services, TRACING_MODES[mode])
    try:
        yield
    finally:
        await asyncio.to_thread(restart_for_run)


@contextlib.asynccontextmanager
async def run_tracing(mode: str) -> AsyncIterator[None]:
    """The whole run with the services in one tracing mode, then with .env again."""
    global _run_tracing
    _run_tracing = mode
    await asyncio.to_thread(restart_services, TRACING_MODES[mode])
    try:
        yield
    finally:
        _run_tracing = None
        await asyncio.to_thread(restart_services, None)
