"""The projection runner against real Kafka, with a small projection writing to real Redis.

Redis counts how many times each record was applied, so "none lost, none applied twice" is
checked by the store itself.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import orjson
import prometheus_client
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from campus_common import topics
from campus_common.consumer import (
    Delivered,
    PoisonRecordError,
    Projection,
    ProjectionRunner,
    Route,
)
from tests.conftest import StackSettings
from tests.helpers import eventually

pytestmark = pytest.mark.integration


class CountingProjection(Projection[dict[str, int]]):
    """Counts applications per record id in Redis; can simulate its store being down."""

    def __init__(self, redis: aioredis.Redis, topic: str) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}"
        self.routes = {topic: Route(_counter, _same)}
        self.redis = redis
        self.key = f"test:applied:{self.name}"
        self.store_down = False
        # The partitions each apply was handed.
        self.applied_partitions: list[set[int]] = []

    async def apply(self, batch: Sequence[Delivered[dict[str, int]]]) -> None:
        if self.store_down:
            raise ConnectionError("store is down")
        if any(item.value["n"] < 0 for item in batch):
            raise PoisonRecordError("negative n can never be applied")
        self.applied_partitions.append({item.partition for item in batch})
        pipe = self.redis.pipeline(transaction=True)
        for item in batch:
            pipe.hincrby(self.key, str(item.value["n"]), 1)
        await pipe.execute()

    async def counts(self) -> dict[int, int]:
        raw = await self.redis.hgetall(self.key)
        return {int(k): int(v) for k, v in raw.items()}


def _counter(raw: bytes) -> dict[str, int]:
    value = orjson.loads(raw)
    if not isinstance(value, dict) or "n" not in value:
        raise ValueError("not a counter record")
    return value


def _same(value: dict[str, int]) -> dict[str, int]:
    return value


@pytest.fixture
async def redis(stack: StackSettings) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis(
        **stack.redis_client_options(),
    )
    yield r
    await r.aclose()


@pytest.fixture
async def producer(stack: StackSettings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=stack.kafka.bootstrap_servers)
    await p.start()
    yield p
    await p.stop()


async def send(producer: AIOKafkaProducer, topic: str, values: Sequence[object]) -> None:
    for i, v in enumerate(values):
        raw = v if isinstance(v, bytes) else orjson.dumps(v)
        await producer.send(topic, raw, key=str(i % 7).encode())
    await producer.flush()


async def test_every_record_applied_once_and_poison_dead_lettered(
    stack: StackSettings, redis: aioredis.Redis, producer: AIOKafkaProducer
) -> None:
    topic = f"test.consumer.{uuid.uuid4().hex[:8]}"
    proj = CountingProjection(redis, topic)
    runner = ProjectionRunner(proj, kafka=stack.kafka, max_batch=50)
    await runner.start()
    try:
        # Both kinds of poison: undecodable bytes, and a record the projection refuses.
        await send(
            producer,
            topic,
            [{"n": i} for i in range(100)]
            + [b"garbage", {"n": -1}]
            + [{"n": i} for i in range(100, 200)],
        )
        counts = await eventually(proj.counts, until=lambda c: len(c) == 200, timeout=30)
        assert set(counts) == set(range(200)) and set(counts.values()) == {1}
    finally:
        await runner.stop()

    dlq = AIOKafkaConsumer(
        topics.dead_letter(proj.name),
        bootstrap_servers=stack.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await dlq.start()
    try:
        found: list[ConsumerRecord[bytes, bytes]] = []

        async def fetch() -> int:
            for recs in (await dlq.getmany(timeout_ms=500)).values():
                found.extend(recs)
            return len(found)

        await eventually(fetch, until=lambda n: n >= 2, timeout=15)
        errors = {dict(r.headers)["error"].decode().split(":")[0] for r in found}
        assert errors == {"JSONDecodeError", "PoisonRecordError"}
        assert {dict(r.headers)["original_topic"].decode() for r in found} == {topic}
        assert sorted(r.value for r in found) == sorted([b"garbage", orjson.dumps({"n": -1})])
    finally:
        await dlq.stop()


async def test_a_backlog_is_applied_in_batches_spanning_partitions(
    stack: StackSettings, redis: aioredis.Redis, producer: AIOKafkaProducer
) -> None:
    topic = f"test.consumer.{uuid.uuid4().hex[:8]}"
    proj = CountingProjection(redis, topic)
    # The backlog is there before the runner starts: seven keys over the topic's partitions.
    await send(producer, topic, [{"n": i} for i in range(600)])
    runner = ProjectionRunner(proj, kafka=stack.kafka, max_batch=1000)
    await runner.start()
    try:
        counts = await eventually(proj.counts, until=lambda c: len(c) == 600, timeout=30)
        assert set(counts.values()) == {1}
        # One apply (one store round trip) for records of several partitions, each committed.
        assert max(len(parts) for parts in proj.applied_partitions) > 1
        assert await eventually(lambda: _lag(runner), until=lambda lag: lag == 0) == 0
    finally:
        await runner.stop()


async def test_the_consumer_waits_while_the_store_is_down(
    stack: StackSettings, redis: aioredis.Redis, producer: AIOKafkaProducer
) -> None:
    topic = f"test.consumer.{uuid.uuid4().hex[:8]}"
    proj = CountingProjection(redis, topic)
    proj.store_down = True
    runner = ProjectionRunner(proj, kafka=stack.kafka, max_backoff_s=0.5)
    await runner.start()
    try:
        await send(producer, topic, [{"n": i} for i in range(50)])
        await eventually(lambda: _lag(runner), until=lambda lag: lag == 50, timeout=15)
        assert await proj.counts() == {}
        # The gauges follow the runner, not /projections: a scrape now shows the backlog.
        records, seconds = await eventually(
            lambda: _gauges(proj.name), until=lambda g: g[0] == 50 and g[1] > 0, timeout=15
        )
        assert (records, seconds > 0) == (50, True)
        proj.store_down = False
        counts = await eventually(proj.counts, until=lambda c: len(c) == 50, timeout=15)
        assert set(counts.values()) == {1}
        assert await eventually(lambda: _lag(runner), until=lambda lag: lag == 0) == 0
        assert await eventually(lambda: _gauges(proj.name), until=lambda g: g == (0, 0)) == (0, 0)
    finally:
        await runner.stop()


async def test_pause_resume_and_restart_resume_from_committed_offsets(
    stack: StackSettings, redis: aioredis.Redis, producer: AIOKafkaProducer
) -> None:
    topic = f"test.consumer.{uuid.uuid4().hex[:8]}"
    proj = CountingProjection(redis, topic)
    runner = ProjectionRunner(proj, kafka=stack.kafka, max_batch=20)
    await runner.start()
    await send(producer, topic, [{"n": i} for i in range(60)])
    await eventually(proj.counts, until=lambda c: len(c) == 60, timeout=20)

    runner.pause()
    await send(producer, topic, [{"n": i} for i in range(60, 90)])
    assert await eventually(lambda: _lag(runner), until=lambda lag: lag == 30, timeout=10) == 30
    assert len(await proj.counts()) == 60
    runner.resume()
    await eventually(proj.counts, until=lambda c: len(c) == 90, timeout=20)
    await runner.stop()

    # A new instance in the same group starts from the committed offsets: nothing re-applied.
    await send(producer, topic, [{"n": i} for i in range(90, 120)])
    again = ProjectionRunner(proj, kafka=stack.kafka, max_batch=20)
    await again.start()
    try:
        counts = await eventually(proj.counts, until=lambda c: len(c) == 120, timeout=30)
        assert set(counts.values()) == {1}
    finally:
        await again.stop()


async def _gauges(projection: str) -> tuple[float, float]:
    """campus_projection_lag_records and _seconds as a Prometheus scrape would read them."""
    registry = prometheus_client.REGISTRY
    labels = {"projection": projection}
    records = registry.get_sample_value("campus_projection_lag_records", labels)
    seconds = registry.get_sample_value("campus_projection_lag_seconds", labels)
    return (records or 0.0, seconds or 0.0)


async def _lag(runner: ProjectionRunner[dict[str, int]]) -> int:
    parts = await runner.partitions()
    return sum(p.lag for p in parts) if parts else -1


async def test_a_pause_reaches_every_instance_and_a_new_one_starts_paused(
    stack: StackSettings, redis: aioredis.Redis, producer: AIOKafkaProducer
) -> None:
    """Two members of one group (two instances of a service): a pause sent to one stops both,
    a member started while paused applies nothing, a resume sent to the other frees all."""
    topic = f"test.consumer.{uuid.uuid4().hex[:8]}"
    proj = CountingProjection(redis, topic)
    members = [ProjectionRunner(proj, kafka=stack.kafka, max_batch=20) for _ in range(2)]
    for member in members:
        await member.start()
    try:
        await send(producer, topic, [{"n": i} for i in range(30)])
        await eventually(proj.counts, until=lambda c: len(c) == 30, timeout=30)

        await members[0].set_paused(True)
        assert await eventually(lambda: _paused(members[1]), timeout=10)
        await send(producer, topic, [{"n": i} for i in range(30, 60)])
        late = ProjectionRunner(proj, kafka=stack.kafka, max_batch=20)
        members.append(late)
        await late.start()
        assert await eventually(lambda: _paused(late), timeout=20)
        # The three members share the partitions after the rebalance; none applies anything.
        lag = await eventually(
            lambda: _group_lag(members), until=lambda total: total == 30, timeout=30
        )
        assert (lag, len(await proj.counts())) == (30, 30)

        await members[1].set_paused(False)
        for member in members:
            assert not await eventually(lambda m=member: _paused(m), until=lambda p: not p)
        counts = await eventually(proj.counts, until=lambda c: len(c) == 60, timeout=30)
        assert set(counts.values()) == {1}
    finally:
        for member in members:
            await member.stop()


async def _paused(runner: ProjectionRunner[dict[str, int]]) -> bool:
    return runner.paused


async def _group_lag(members: Sequence[ProjectionRunner[dict[str, int]]]) -> int:
    return sum([await _lag(m) for m in members])
