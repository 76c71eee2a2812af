"""Failover on the cluster topology: a member killed with SIGKILL under the mixed gateway write
load (campus_cli.load.MixedLoad); each test ends with every acknowledged write found in every
store that projects it and the full `campus reconcile` at 0 in every category."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio.cluster import RedisCluster

from campus_cli.faults import sctl
from campus_common import topics
from tests.cluster.conftest import (
    ROOT,
    WriteLoad,
    env_value,
    instance_auth,
    instance_port,
    kill_9,
    log,
    record,
    settled,
    wait_ready,
)
from tests.conftest import StackSettings
from tests.integration.documents.docs_support import check_hammered, hammer_one_post, open_tail

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


async def _leaders(stack: StackSettings) -> tuple[Counter[int], list[tuple[str, int, list[int]]]]:
    """Partitions led per broker id, and every partition's in-sync replicas."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka.bootstrap_servers)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if not t.startswith("__")]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    leaders: Counter[int] = Counter()
    isr = []
    for t in described:
        for p in t["partitions"]:
            leaders[p["leader"]] += 1
            isr.append((t["topic"], p["partition"], sorted(p["isr"])))
    return leaders, isr


async def test_kill_9_the_broker_leading_most_partitions(
    stack: StackSettings, write_load: WriteLoad, admin_token: str
) -> None:
    leaders, _ = await _leaders(stack)
    broker = leaders.most_common(1)[0][0]
    fault_at = write_load.timeline.fault_at = time.monotonic()
    await asyncio.to_thread(kill_9, f"kafka-{broker}")
    await asyncio.sleep(15)  # writes go on against the two survivors meanwhile
    # Acknowledged writes continued during the outage (and none of them is lost: `settled`).
    assert write_load.acked_since(fault_at) > 0, write_load.error_statuses(fault_at)
    resumed = write_load.timeline.writes_resumed_s()
    errors = write_load.error_statuses(fault_at, time.monotonic())
    lag_zero = await settled(stack, admin_token, write_load)
    lag_zero_after = round(time.monotonic() - fault_at, 2)
    await asyncio.to_thread(wait_ready, f"kafka-{broker}", 300)
    record(
        "kill -9 the broker leading most partitions",
        writes_resumed_s=resumed,
        writes_failed_during=sum(errors.values()),
        lag_zero_after_s=lag_zero_after,
        lag_wait_s=lag_zero,
    )


async def test_kill_9_the_connect_worker_running_the_debezium_task(
    stack: StackSettings, write_load: WriteLoad, admin_token: str
) -> None:
    ports = {stack.connect_port: "connect-1", int(env_value("connect_2_port")): "connect-2"}

    async def task_worker(http: httpx.AsyncClient) -> str | None:
        status = (await http.get("/connectors/campus-users/status")).json()
        tasks = status.get("tasks") or []
        if tasks and tasks[0].get("state") == "RUNNING":
            return str(tasks[0]["worker_id"])
        return None

    url = f"http://{stack.host}:{stack.connect_port}"
    auth = (stack.connect_user, stack.connect_password.get_secret_value())
    async with httpx.AsyncClient(base_url=url, auth=auth, timeout=10) as http:
        worker = await task_worker(http)
        assert worker is not None
        victim = ports[int(worker.rsplit(":", 1)[1])]
        survivor_port = next(p for p, n in ports.items() if n != victim)
        write_load.timeline.fault_at = time.monotonic()
        await asyncio.to_thread(kill_9, victim)
        # supervisord would restart it and the group would give it its task back: keep it
        # down, as a machine that died would be, until the task runs on the survivor.
        await asyncio.to_thread(sctl, "stop", victim)
    # Ask the survivor: the victim's REST API is gone with it.
    survivor = f"http://{stack.host}:{survivor_port}"
    async with httpx.AsyncClient(base_url=survivor, auth=auth, timeout=10) as http:
        deadline = time.monotonic() + 240
        moved_to = None
        while time.monotonic() < deadline:
            try:
                moved_to = await task_worker(http)
            except httpx.HTTPError:
                moved_to = None
            if moved_to is not None and moved_to != worker:
                break
            await asyncio.sleep(1)
    moved_s = round(time.monotonic() - write_load.timeline.fault_at, 2)
    await asyncio.to_thread(sctl, "start", victim)
    await asyncio.to_thread(wait_ready, victim)
    assert moved_to == f"{stack.host}:{survivor_port}", moved_to
    await settled(stack, admin_token, write_load)
    record("kill -9 the Connect worker running the Debezium task", task_running_again_s=moved_s)


async def test_kill_9_a_redis_master(
    stack: StackSettings, write_load: WriteLoad, admin_token: str
) -> None:
    redis = RedisCluster(**stack.redis_client_options())
    try:
        # The master holding the leaderboard: every new user's points land there.
        await redis.initialize()
        node = redis.get_node_from_key("leaderboard:points")
        assert node is not None
        port = int(node.port)
    finally:
        await redis.aclose()
    ports = {stack.redis_port: "redis-1"} | {
        int(env_value(f"redis_{n}_port")): f"redis-{n}" for n in range(2, 7)
    }
    write_load.timeline.fault_at = time.monotonic()
    await asyncio.to_thread(kill_9, ports[port])
    await asyncio.sleep(10)  # the cluster notices (node timeout 3 s) and promotes the replica
    # Redis replicates asynchronously: a write the dead master acknowledged but had not sent
    # to its replica is lost by design; the reconcile's repair of Redis restores it.
    await settled(stack, admin_token, write_load, repair_redis_first=True)
    record(
        "kill -9 a Redis master",
        projections_caught_up_after_s=round(time.monotonic() - write_load.timeline.fault_at, 2),
    )


async def test_kill_9_one_gateway_and_one_instance_of_each_projection(
    stack: StackSettings, write_load: WriteLoad, admin_token: str
) -> None:
    answered = failed = 0

    async def read_through_haproxy() -> None:
        nonlocal answered, failed
        async with httpx.AsyncClient(base_url=stack.service_url("gateway"), timeout=5) as http:
            while True:
                try:
                    r = await http.get("/health/live")
                    answered += r.status_code == 200
                except httpx.HTTPError:
                    failed += 1
                await asyncio.sleep(0.1)

    reader = asyncio.create_task(read_through_haproxy())
    try:
        await asyncio.sleep(2)
        write_load.timeline.fault_at = time.monotonic()
        for victim in ("gateway-1", "graph-1", "timeseries-1"):
            await asyncio.to_thread(kill_9, victim)
        await asyncio.sleep(10)
        during = answered
        await asyncio.sleep(5)
    finally:
        reader.cancel()
    # HAProxy retries a refused connection on the other gateway: requests kept being answered.
    assert answered > during > 0
    fault_at = write_load.timeline.fault_at
    assert write_load.acked_since(fault_at) > 0, write_load.error_statuses(fault_at)
    writes_failed = sum(write_load.error_statuses(fault_at).values())
    for victim in ("gateway-1", "graph-1", "timeseries-1"):
        await asyncio.to_thread(wait_ready, victim, 180)
    lag_s = await settled(stack, admin_token, write_load)
    record(
        "kill -9 one gateway and one instance of each projection",
        requests_failed=failed,
        writes_failed=writes_failed,
        lag_zero_after_s=round(time.monotonic() - write_load.timeline.fault_at, 2),
        lag_wait_s=lag_s,
    )


async def test_a_broker_restarted_with_its_data_wiped_rejoins(
    stack: StackSettings, write_load: WriteLoad, admin_token: str
) -> None:
    await asyncio.to_thread(sctl, "stop", "kafka-3")
    shutil.rmtree(ROOT / ".stack" / "data" / "kafka-3")
    started = time.monotonic()
    await asyncio.to_thread(sctl, "start", "kafka-3")
    await asyncio.to_thread(wait_ready, "kafka-3", 300)
    deadline = time.monotonic() + 300
    lagging: list[tuple[str, int, list[int]]] = []
    while time.monotonic() < deadline:
        _, isr = await _leaders(stack)
        lagging = [p for p in isr if 3 not in p[2]]
        if not lagging:
            break
        await asyncio.sleep(2)
    assert not lagging, f"partitions without broker 3 in sync: {lagging[:10]}"
    record(
        "broker restarted with its data wiped", back_in_sync_s=round(time.monotonic() - started, 2)
    )
    await settled(stack, admin_token, write_load)


def test_instances_answer_on_their_own_ports(stack: StackSettings) -> None:
    """Both instances of every service run, each on its port, behind the shared one."""
    for svc in ("gateway", "users", "documents", "graph", "timeseries"):
        for n in (1, 2):
            url = f"http://{stack.host}:{instance_port(stack, svc, n)}/health/live"
            r = httpx.get(url, timeout=5)
            assert r.status_code == 200, (svc, n, r.status_code)


async def test_both_documents_instances_take_likes_comments_and_edits_of_one_post_at_once(
    stack: StackSettings,
) -> None:
    """Many likes (every liker on both instances), comments and edits of one post, sent to the
    two documents instances' own ports at once: the like count is the number of likers on both,
    every like, comment and edit is published exactly once and the stored post is the last edit
    the stream carries (FerretDB: inserts with unique keys, leases that span instances)."""
    urls = [f"http://{stack.host}:{instance_port(stack, 'documents', n)}" for n in (1, 2)]
    async with (
        httpx.AsyncClient(timeout=30, auth=instance_auth(stack)) as http,
        open_tail(stack.kafka, topics.DOCUMENT_EVENTS, from_start=False) as events,
    ):
        hammered = await hammer_one_post(http, urls, users_url=stack.service_url("users"))
        resent = await check_hammered(http, urls, hammered, events)
        log.info("records that repeated an event id: %d", resent)
