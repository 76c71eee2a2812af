"""Kafka plumbing shared by producers and consumers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from campus_common.config import KafkaConfig
from campus_common.events import Event
from campus_common.retry import retrying

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 3
# Projections rebuild by replaying from offset 0, so domain and CDC topics keep everything.
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


async def ensure_topics(
    kafka: KafkaConfig, topics: Iterable[str], *, partitions: int = DEFAULT_PARTITIONS
) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        configs = {**KEEP_FOREVER, "min.insync.replicas": str(kafka.min_insync_replicas)}
        new = [
            NewTopic(
                t,
                num_partitions=partitions,
                replication_factor=kafka.replication_factor,
                topic_configs=configs,
            )
            for t in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another service won the race
            await admin.create_topics(new)
    finally:
        await admin.close()


async def topic_partitions(kafka: KafkaConfig, names: Iterable[str]) -> list[TopicPartition]:
    """Every partition of the named topics (from the broker, not a client's metadata cache)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(list(names))
    finally:
        await admin.close()
    return sorted(
        (TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]),
        key=lambda tp: (tp.topic, tp.partition),
    )


def new_producer(kafka: KafkaConfig) -> AIOKafkaProducer:
    """An idempotent producer that waits for the broker's ack."""
    return AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=10_000,
    )


async def start_with_retry(
    client: AIOKafkaProducer, *, what: str, stop: asyncio.Event | None = None
) -> None:
    """Start a Kafka client, waiting (with backoff) while the broker is down."""
    # Any failure to start means the broker is unreachable: wait, never give up silently.
    async for attempt in retrying(f"kafka for {what}", on=Exception, log=log, stop=stop):
        with attempt:
            await client.start()


async def ensure_topics_when_reachable(
    kafka: KafkaConfig,
    topics: Iterable[str],
    *,
    what: str,
    stop: asyncio.Event | None = None,
    partitions: int = DEFAULT_PARTITIONS,
) -> None:
    """`ensure_topics`, waiting while the broker is unreachable (until `stop` is set)."""
    names = list(topics)
    async for attempt in retrying(f"kafka for {what}", on=Exception, log=log, stop=stop):
        with attempt:
            await ensure_topics(kafka, names, partitions=partitions)


async def reachable(kafka: KafkaConfig) -> None:
    """A TCP handshake with any broker of the bootstrap list: cheap enough for every /health.
    Raises OSError when none answers (on the cluster, one dead broker is not an outage)."""
    error: OSError | None = None
    for broker in kafka.bootstrap_servers.split(","):
        host, _, port = broker.strip().rpartition(":")
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError as exc:
            error = exc
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise error or OSError("no Kafka broker configured")


async def publish(producer: AIOKafkaProducer, topic: str, event: Event) -> None:
    """Send one event keyed by `event.key` and wait for the ack."""
    await producer.send_and_wait(topic, event.to_bytes(), key=event.key.encode())
