"""The fault suite's faults, shared by the e2e tests and `campus chaos`.

Each fault runs under the mixed load (load.py), proves that it happened (the process id gone and
its port closed; for `kill -9`, a batch in flight that Kafka has not seen committed), brings the
component back and waits until it is ready. `run_fault` then waits for every projection to catch
up and checks the outcome: every acknowledged write in every store (`load.verify`), the full
reconcile at 0 in every category, and the error rate while the fault lasted.

Only this checkout's stack is touched: its own supervisord (.stack/run/supervisord.conf) and
the ports of its own .env.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from campus_cli import dlq
from campus_cli.load import MixedLoad, verify
from campus_cli.reconcile import CATEGORIES, Drift, reconcile, total
from campus_cli.stores import StoreSettings
from campus_common import topics
from campus_common.config import ROOT, PostgresDsn
from campus_common.events import Event
from campus_common.internal_auth import OperatorAuth, Signer

SERVICES = ("users", "documents", "graph", "timeseries", "gateway")
PROJECTION_HOST = {"graph": "graph", "cache": "gateway", "timeseries": "timeseries"}


class FaultSettings(StoreSettings):
    """The stores, plus the admin (projection status on the gateway) and the superuser (locks)."""

    admin_email: str
    admin_password: SecretStr
    pg_superuser_password: SecretStr
    operator_signing_key: SecretStr

    def operator_auth(self) -> OperatorAuth:
        """Signs the operator's service tokens for the internal services' ports."""
        signer = Signer(issuer="operator", private_key=self.operator_signing_key.get_secret_value())
        return OperatorAuth(signer, self.service_ports())

    def port_of(self, component: str) -> int:
        ports = {
            "postgres": self.pg_port,
            "redis": self.redis_port,
            "kafka": self.kafka_port,
            "connect": self.connect_port,
            "neo4j": self.neo4j_bolt_port,
            "ferretdb": self.mongo_port,
        }
        return ports[component] if component in ports else int(getattr(self, f"{component}_port"))


# --- processes ---------------------------------------------------------------------------------


def sctl(*args: str) -> str:
    """This checkout's supervisorctl (never another stack's)."""
    conf = ROOT / ".stack" / "run" / "supervisord.conf"
    out = subprocess.run(  # noqa: S603 (our own supervisorctl, fixed arguments)
        [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return out.stdout + out.stderr


def pid_of(component: str) -> int:
    """The running process id of a component, from its supervisord."""
    out = sctl("pid", component).strip()
    if not out.isdigit() or out == "0":
        raise RuntimeError(f"{component} is not running: {out!r}")
    return int(out)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); its state in /proc says it is gone.
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"
    return True


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def ready(component: str) -> bool:
    """The component's own readiness check (stack/<component>/ready.sh)."""
    folder = "services" if component in SERVICES else component
    script = ROOT / "stack" / folder / "ready.sh"
    done = subprocess.run([str(script), component], capture_output=True, check=False)  # noqa: S603
    return done.returncode == 0


async def wait_until(probe: Callable[[], Any], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(probe):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout}s")
        await asyncio.sleep(0.2)


async def wait_down(s: FaultSettings, component: str, pid: int, timeout: float = 60) -> str:
    """Proof that the component is down: its pid gone and its port closed."""
    port = s.port_of(component)
    await wait_until(lambda: not pid_alive(pid), f"{component} pid {pid} gone", timeout)
    await wait_until(
        lambda: not port_open(s.host, port), f"{component} port {port} closed", timeout
    )
    return f"pid {pid} gone, port {port} closed"


async def wait_back(s: FaultSettings, component: str, old_pid: int, timeout: float = 240) -> str:
    """Proof that the component is back: a new pid and its readiness check passing."""

    def new_pid() -> bool:
        try:
            return pid_of(component) != old_pid
        except RuntimeError:
            return False

    await wait_until(new_pid, f"{component} restarted", timeout)
    await wait_until(lambda: ready(component), f"{component} ready", timeout)
    return f"back as pid {pid_of(component)}, ready"


# --- projections -------------------------------------------------------------------------------


_ADMIN_TOKENS: dict[str, tuple[float, str]] = {}


async def admin_token(s: FaultSettings, http: httpx.AsyncClient) -> str:
    """The admin's access token, reused for five minutes: status polls must not trip the login
    rate limit, and logins fail closed while Redis is held or down."""
    cached = _ADMIN_TOKENS.get(s.admin_email)
    if cached and time.monotonic() - cached[0] < 300:
        return cached[1]
    r = await http.post(
        f"{s.service_url('gateway')}/auth/token",
        data={"username": s.admin_email, "password": s.admin_password.get_secret_value()},
    )
    r.raise_for_status()
    token = str(r.json()["access_token"])
    _ADMIN_TOKENS[s.admin_email] = (time.monotonic(), token)
    return token


async def projection(s: FaultSettings, http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    """One projection's status from the service that runs it."""
    host = PROJECTION_HOST[name]
    headers = {}
    if host == "gateway":
        headers["Authorization"] = f"Bearer {await admin_token(s, http)}"
    r = await http.get(f"{s.service_url(host)}/projections/{name}", headers=headers)
    r.raise_for_status()
    return dict(r.json())


async def lags(s: FaultSettings) -> dict[str, int]:
    out: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=10, auth=s.operator_auth()) as http:
        for name in PROJECTION_HOST:
            try:
                p = await projection(s, http, name)
                # Heartbeats arrive every second: that topic is never quite caught up.
                parts = [q for q in p["partitions"] if q["topic"] != topics.HEARTBEATS]
                out[name] = sum(q["lag"] for q in parts) if parts else -1
            except (httpx.HTTPError, ValueError):
                out[name] = -1
    return out


async def outbox_pending(s: FaultSettings) -> int:
    """Events still waiting in the documents and graph outboxes."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(**s.mongo_options())
    try:
        db = client[s.docs_db_name]
        n = await db.posts.count_documents({"pending": True})
        n += await db.comments.count_documents({"pending": True})
        n += await db.likes.count_documents({"pending": True})
        n += await db.requeued.count_documents({"pending": True})
    finally:
        await client.close()
    async with s.neo4j() as d:
        recs, _, _ = await d.execute_query("MATCH (o:Outbox) RETURN count(o) AS n")
        n += int(recs[0]["n"])
    return n


async def converge(s: FaultSettings, timeout: float = 240) -> list[Drift]:
    """Wait until the outboxes are empty, every lag is 0 and the reconcile is clean.

    Returns the last reconcile (not clean if the stores never agreed within the timeout).
    """
    deadline = time.monotonic() + timeout
    drifts: list[Drift] = []
    while time.monotonic() < deadline:
        try:
            settled = await outbox_pending(s) == 0 and all(v == 0 for v in (await lags(s)).values())
        except Exception:  # a store still coming back
            settled = False
        if settled:
            drifts = await reconcile()
            if all(d.clean for d in drifts):
                return drifts
        await asyncio.sleep(2)
    return drifts or await reconcile()


async def committed(s: FaultSettings, group: str, topic: str, partition: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    meta = offsets.get(TopicPartition(topic, partition))
    return -1 if meta is None else int(meta.offset)


# --- faults ------------------------------------------------------------------------------------


@dataclass
class Ctx:
    s: FaultSettings
    load: MixedLoad
    http: httpx.AsyncClient
    proof: list[str] = field(default_factory=list)
    start: float = 0.0
    end: float = 0.0


FaultFn = Callable[[Ctx], Awaitable[None]]


async def _stop_for(ctx: Ctx, component: str, seconds: float) -> None:
    pid = pid_of(component)
    ctx.start = time.monotonic()
    out = await asyncio.to_thread(sctl, "stop", component)
    if "stopped" not in out:
        raise AssertionError(f"supervisorctl stop {component}: {out}")
    ctx.proof.append(f"{component} {await wait_down(ctx.s, component, pid)}")
    acked = len(ctx.load.acked)
    await asyncio.sleep(seconds)
    ctx.proof.append(f"{len(ctx.load.acked) - acked} writes acknowledged while it was down")
    out = await asyncio.to_thread(sctl, "start", component)
    if "started" not in out:
        raise AssertionError(f"supervisorctl start {component}: {out}")
    ctx.proof.append(f"{component} {await wait_back(ctx.s, component, pid)}")
    ctx.end = time.monotonic()


def stop_for(component: str, seconds: float) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        await _stop_for(ctx, component, seconds)

    return fault


async def _probe_user(ctx: Ctx) -> tuple[int, str]:
    """A user of the fault's own, whose next change the held lock will block."""
    base = ctx.s.service_url("gateway")
    email = f"probe-{uuid.uuid4().hex[:10]}@university.edu"
    r = await ctx.http.post(
        f"{base}/users", json={"email": email, "full_name": "Probe", "password": "probe-pw-123"}
    )
    r.raise_for_status()
    tok = await ctx.http.post(
        f"{base}/auth/token", data={"username": email, "password": "probe-pw-123"}
    )
    tok.raise_for_status()
    return int(r.json()["id"]), str(tok.json()["access_token"])


async def _rename(ctx: Ctx, uid: int, token: str) -> None:
    r = await ctx.http.put(
        f"{ctx.s.service_url('gateway')}/users/{uid}",
        json={"full_name": f"Probe {uuid.uuid4().hex[:6]}"},
        headers={"Authorization": f"Bearer {token}"},
    )
    r.raise_for_status()


class _Hold:
    """Something that makes the projection's store write wait (so a batch stays in flight)."""

    async def __aenter__(self) -> _Hold:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Neo4jLock(_Hold):
    def __init__(self, s: FaultSettings, uid: int) -> None:
        self.s, self.uid = s, uid

    async def __aenter__(self) -> _Neo4jLock:
        self.driver = self.s.neo4j()
        self.session = self.driver.session()
        self.tx = await self.session.begin_transaction()
        # An uncommitted write holds the node's lock: the projection's MERGE on it waits.
        await (
            await self.tx.run("MATCH (u:User {id: $id}) SET u._held = true", id=self.uid)
        ).consume()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.tx.rollback()
        await self.session.close()
        await self.driver.close()


class _TableLock(_Hold):
    def __init__(self, s: FaultSettings) -> None:
        self.s = s

    async def __aenter__(self) -> _TableLock:
        dsn = PostgresDsn(
            host=self.s.ts_pg_host,
            port=self.s.ts_pg_port,
            database="campus_ts",
            user="postgres",
            password=self.s.pg_superuser_password,
        ).dsn()
        self.conn = await asyncpg.connect(dsn)
        self.tx = self.conn.transaction()
        await self.tx.start()
        # Inserts wait for this lock; reads (the analytics API) do not.
        await self.conn.execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.tx.rollback()
        await self.conn.close()


class _RedisPause(_Hold):
    def __init__(self, s: FaultSettings) -> None:
        self.s = s

    async def __aenter__(self) -> _RedisPause:
        self.r = self.s.redis()
        # Write commands wait (up to 3 min, or until UNPAUSE) while reads go on; on a busy
        # machine the change can take a minute to reach the projection.
        await self.r.execute_command("CLIENT", "PAUSE", "180000", "WRITE")
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.r.execute_command("CLIENT", "UNPAUSE")
        await self.r.aclose()


def kill9_mid_batch(name: str) -> FaultFn:
    """kill -9 the process running projection `name` while one of its batches is in flight."""
    service = PROJECTION_HOST[name]

    async def fault(ctx: Ctx) -> None:
        uid, token = await _probe_user(ctx)
        if name == "graph":
            # The probe's node must exist before its lock can be held.
            async with ctx.s.neo4j() as d:
                for _ in range(300):
                    recs, _, _ = await d.execute_query(
                        "MATCH (u:User {id: $id}) WHERE u.lsn IS NOT NULL RETURN u.id", id=uid
                    )
                    if recs:
                        break
                    await asyncio.sleep(0.2)
            hold: _Hold = _Neo4jLock(ctx.s, uid)
        elif name == "timeseries":
            hold = _TableLock(ctx.s)
        else:
            hold = _RedisPause(ctx.s)
        pid = pid_of(service)
        # Signed in before the hold: a held Redis refuses logins (they fail closed).
        await admin_token(ctx.s, ctx.http)
        async with hold:
            await _rename(ctx, uid, token)
            batch: dict[str, Any] | None = None
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    batch = (await projection(ctx.s, ctx.http, name)).get("batch_in_flight")
                if batch and time.time() - batch["since"] > 0.5:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"{name} never reported a batch in flight")
            ctx.start = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            ctx.proof.append(f"{service} {await wait_down(ctx.s, service, pid)}")
            ctx.proof.append(
                f"killed with batch {batch['topic']}[{batch['partition']}]"
                f"@{batch['first_offset']}..{batch['last_offset']} in flight for "
                f"{time.time() - batch['since']:.1f}s"
            )
            done = await committed(ctx.s, f"campus-{name}", batch["topic"], batch["partition"])
            if done > batch["first_offset"]:
                raise AssertionError(f"the batch was committed ({done}) before the kill landed")
            ctx.proof.append(f"group committed offset {done} ≤ batch start: it will be redelivered")
        ctx.proof.append(f"{service} {await wait_back(ctx.s, service, pid)}")
        ctx.end = time.monotonic()

    return fault


def restart(component: str, down_s: float = 5) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        await _stop_for(ctx, component, down_s)

    return fault


async def rebalance(ctx: Ctx) -> None:
    """A second timeseries instance joins the group, takes partitions, then is killed -9."""
    with socket.socket() as probe:
        probe.bind((ctx.s.host, 0))
        port = probe.getsockname()[1]
    log_path = ROOT / ".stack" / "logs" / "timeseries-second.log"
    if isinstance(ctx.http.auth, OperatorAuth):
        ctx.http.auth.ports[port] = "timeseries"  # the second instance is a timeseries service too
    ctx.start = time.monotonic()
    with log_path.open("wb") as log:
        second = subprocess.Popen(  # noqa: S603, ASYNC220 (our own service; Popen returns at once)
            [
                sys.executable,
                "-m",
                "uvicorn",
                "campus_timeseries.main:app",
                "--host",
                ctx.s.host,
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env={**os.environ, "CAMPUS_ENVIRONMENT": "development"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            mine: dict[str, Any] = {}
            for _ in range(180):
                await asyncio.sleep(1)
                with contextlib.suppress(httpx.HTTPError, ValueError, IndexError):
                    mine = (await ctx.http.get(f"http://{ctx.s.host}:{port}/projections")).json()[0]
                    if mine["partitions"]:
                        break
            else:
                raise AssertionError("the second instance never got partitions")
            theirs = await projection(ctx.s, ctx.http, "timeseries")
            split = {(p["topic"], p["partition"]) for p in mine["partitions"]}
            other = {(p["topic"], p["partition"]) for p in theirs["partitions"]}
            if not split or split & other:
                raise AssertionError(f"partitions not split: {split} / {other}")
            ctx.proof.append(
                f"second instance held {len(split)} partitions, the first {len(other)}"
            )
            await asyncio.sleep(3)
            second.send_signal(signal.SIGKILL)
            second.wait(timeout=10)
            await wait_until(lambda: not port_open(ctx.s.host, port), "second port closed", 30)
            ctx.proof.append(f"second instance pid {second.pid} killed -9, port {port} closed")
        finally:
            if second.poll() is None:
                second.kill()
    # The survivor takes every partition back.
    for _ in range(120):
        parts = (await projection(ctx.s, ctx.http, "timeseries"))["partitions"]
        if {(p["topic"], p["partition"]) for p in parts} >= other | split:
            break
        await asyncio.sleep(1)
    else:
        raise AssertionError("the first instance never took the partitions back")
    ctx.proof.append("first instance holds every partition again")
    ctx.end = time.monotonic()


async def poison(ctx: Ctx) -> None:
    """An unparseable record on the users topic: dead-lettered by all three, the rest flows."""
    marker = f"poison-{uuid.uuid4().hex}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=ctx.s.kafka.bootstrap_servers)
    await producer.start()
    ctx.start = time.monotonic()
    try:
        await producer.send_and_wait(topics.USERS, b"{" + marker, key=b'{"id":1}')
    finally:
        await producer.stop()
    for name in PROJECTION_HOST:
        for _ in range(200):
            found = [d for d in await dlq.list_letters(name) if d.value and marker in d.value]
            if found:
                break
            await asyncio.sleep(0.3)
        else:
            raise AssertionError(f"{name} did not dead-letter the poison record")
        if len(found) != 1:
            raise AssertionError(f"{name} dead-lettered it {len(found)} times")
        ctx.proof.append(f"{name}: dead-lettered once ({found[0].error[:40]})")
    await ctx.load.wait_for_acks(10)
    ctx.proof.append("the load went on being applied after the poison record")
    ctx.end = time.monotonic()


async def dlq_replay(ctx: Ctx) -> None:
    """A valid event dead-lettered earlier, replayed once its cause is fixed: applied once."""
    event = Event(type="test.replayed", source="chaos", key="replay", payload={"why": "fixed"})
    producer = AIOKafkaProducer(bootstrap_servers=ctx.s.kafka.bootstrap_servers)
    await producer.start()
    ctx.start = time.monotonic()
    try:
        meta = await producer.send_and_wait(
            topics.dead_letter("timeseries"),
            event.to_bytes(),
            key=b"replay",
            headers=[
                ("error", b"RuntimeError: a bug, since fixed"),
                ("original_topic", topics.DOCUMENT_EVENTS.encode()),
                ("original_partition", b"0"),
                ("original_offset", b"0"),
            ],
        )
    finally:
        await producer.stop()
    done = await dlq.replay("timeseries", {(meta.partition, meta.offset)})
    if [d.offset for d in done] != [meta.offset]:
        raise AssertionError(f"replay sent {done}")
    again = await dlq.replay("timeseries", {(meta.partition, meta.offset)})
    if again:
        raise AssertionError("a second replay sent it again")
    ctx.proof.append("replayed once; the second replay sent nothing")
    conn = await asyncpg.connect(ctx.s.ts_dsn())
    try:
        for _ in range(150):
            n = await conn.fetchval(
                "SELECT count(*) FROM events WHERE dedupe_key=$1", str(event.id)
            )
            if n:
                break
            await asyncio.sleep(0.2)
        if n != 1:
            raise AssertionError(f"replayed event stored {n} times")
    finally:
        await conn.close()
    ctx.proof.append("the replayed event is one row of the time-series store")
    ctx.end = time.monotonic()


@dataclass(frozen=True)
class Fault:
    name: str
    kind: str  # the README table's row
    run: FaultFn
    # The bound on failed writes while the fault lasts, and why that much may fail.
    max_error_rate: float
    why: str


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "kill9-graph",
            "kill -9 of a projection mid-batch",
            kill9_mid_batch("graph"),
            0.5,
            "friend/follow writes get 503/504 while the graph service restarts",
        ),
        Fault(
            "kill9-cache",
            "kill -9 of a projection mid-batch",
            kill9_mid_batch("cache"),
            1.0,
            "the cache projection runs in the gateway: every write is refused while it restarts",
        ),
        Fault(
            "kill9-timeseries",
            "kill -9 of a projection mid-batch",
            kill9_mid_batch("timeseries"),
            0.1,
            "no write path goes through timeseries",
        ),
        Fault(
            "restart-kafka",
            "Kafka, Kafka Connect, PostgreSQL stopped and started",
            restart("kafka"),
            0.1,
            "writes never wait for Kafka (WAL and outboxes hold them)",
        ),
        Fault(
            "restart-connect",
            "Kafka, Kafka Connect, PostgreSQL stopped and started",
            restart("connect"),
            0.1,
            "writes never wait for Kafka Connect",
        ),
        Fault(
            "restart-postgres",
            "Kafka, Kafka Connect, PostgreSQL stopped and started",
            restart("postgres"),
            1.0,
            "users, groups, memberships and every author check need PostgreSQL",
        ),
        Fault(
            "stop-neo4j",
            "Neo4j, Redis, FerretDB stopped for 20 s",
            stop_for("neo4j", 20),
            0.5,
            "friend/follow writes answer 503",
        ),
        Fault(
            "stop-redis",
            "Neo4j, Redis, FerretDB stopped for 20 s",
            stop_for("redis", 20),
            0.1,
            "the gateway falls back to the services; rate limits fail open",
        ),
        Fault(
            "stop-ferretdb",
            "Neo4j, Redis, FerretDB stopped for 20 s",
            stop_for("ferretdb", 20),
            0.8,
            "post, comment and like writes answer 503",
        ),
        Fault(
            "rebalance",
            "a second projection instance joins, then is killed -9",
            rebalance,
            0.1,
            "no write path goes through timeseries",
        ),
        Fault(
            "poison",
            "a poison record → dead-letter topic, the projections carry on",
            poison,
            0.1,
            "nothing on the write path reads Kafka",
        ),
        Fault(
            "dlq-replay",
            "a dead letter replayed after its fix (`campus dlq replay`)",
            dlq_replay,
            0.1,
            "nothing on the write path reads Kafka",
        ),
    )
}


@dataclass
class Outcome:
    fault: str
    kind: str
    proof: list[str]
    acked: int
    errors: int
    acked_during: int
    attempts_during: int
    errors_during: int
    error_rate_during: float
    max_error_rate: float
    statuses_during: dict[str, int]
    statuses_500: int
    errors_by_op: dict[str, int]
    errors_by_op_during: dict[str, int]
    lost: int  # acknowledged writes missing from a store that projects them
    problems: list[str]
    drift: dict[str, int]
    seconds: float

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and not any(self.drift.values())
            and self.statuses_500 == 0
            and self.error_rate_during <= self.max_error_rate
        )

    def line(self) -> str:
        d = " ".join(f"{k} {v}" for k, v in self.drift.items())
        return (
            f"{self.fault}: acked {self.acked} errors {self.errors} "
            f"(during fault {self.errors_during}/{self.attempts_during}, "
            f"{self.error_rate_during:.0%} ≤ {self.max_error_rate:.0%}) lost {self.lost} "
            f"reconcile: {d} → {'ok' if self.ok else 'FAILED'}"
        )


async def run_fault(
    name: str,
    *,
    s: FaultSettings | None = None,
    load: MixedLoad | None = None,
    rate: float = 12.0,
) -> Outcome:
    """Inject one fault under the mixed load (a new one unless given), then check everything."""
    s = s or FaultSettings()
    fault = FAULTS[name]
    began = time.monotonic()
    owned = load is None
    load = load or MixedLoad(s.service_url("gateway"), rate=rate)
    async with httpx.AsyncClient(timeout=10, auth=s.operator_auth()) as http:
        ctx = Ctx(s, load, http)
        if owned:
            await load.__aenter__()
        try:
            await load.wait_for_acks(10)
            await fault.run(ctx)
            await load.wait_for_acks(10)
        finally:
            if owned:
                await load.__aexit__(None, None, None)
    drifts = await converge(s)
    problems = await verify(load) if owned else []
    window = load.window(ctx.start, ctx.end)
    failed = [a for a in window if not a.ok]
    statuses: dict[str, int] = {}
    for a in failed:
        statuses[str(a.status)] = statuses.get(str(a.status), 0) + 1
    outcome = Outcome(
        fault=name,
        kind=fault.kind,
        proof=ctx.proof,
        acked=len(load.acked),
        errors=len(load.errors),
        acked_during=len(window) - len(failed),
        attempts_during=len(window),
        errors_during=len(failed),
        error_rate_during=len(failed) / len(window) if window else 0.0,
        max_error_rate=fault.max_error_rate,
        statuses_during=statuses,
        statuses_500=sum(a.status == 500 for a in load.attempts),
        errors_by_op=dict(Counter(f"{a.op} {a.status}" for a in load.errors).most_common(12)),
        errors_by_op_during=dict(Counter(f"{a.op} {a.status}" for a in failed)),
        lost=len(problems),
        problems=problems[:20],
        drift=total(drifts),
        seconds=round(time.monotonic() - began, 1),
    )
    record(outcome)
    return outcome


def record(outcome: Outcome) -> None:
    """Append to .stack/faults.jsonl: the README's reliability table is built from real runs."""
    path = ROOT / ".stack" / "faults.jsonl"
    with path.open("a") as f:
        f.write(json.dumps({**asdict(outcome), "at": time.time()}) + "\n")


__all__ = ["CATEGORIES", "FAULTS", "Fault", "FaultSettings", "Outcome", "converge", "run_fault"]
