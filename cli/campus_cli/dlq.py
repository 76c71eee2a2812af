"""Dead letters: list what a projection could not apply, and replay it once the cause is fixed.

Replay republishes the original bytes to the original topic with the original key; every
projection is idempotent, so the ones that had applied it see no change. A consumer group per
projection (`campus-dlq-replay-<projection>`) remembers what was replayed, so nothing is
replayed twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from campus_cli.client import settings
from campus_common import topics
from campus_common.kafka import ensure_topics, new_producer, topic_partitions


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    error: str
    original_topic: str
    original_partition: int
    original_offset: int
    key: bytes | None
    value: bytes | None
    replayed: bool


def _letter(rec: ConsumerRecord[bytes, bytes], replayed_upto: dict[int, int]) -> DeadLetter:
    h = {k: v.decode(errors="replace") for k, v in rec.headers}
    return DeadLetter(
        rec.partition,
        rec.offset,
        h.get("error", "?"),
        h.get("original_topic", "?"),
        int(h.get("original_partition", -1)),
        int(h.get("original_offset", -1)),
        rec.key,
        rec.value,
        rec.offset < replayed_upto.get(rec.partition, 0),
    )


async def _read_all(projection: str) -> tuple[list[ConsumerRecord[bytes, bytes]], dict[int, int]]:
    kafka = settings().kafka
    topic = topics.dead_letter(projection)
    await ensure_topics(kafka, [topic])
    group = f"campus-dlq-replay-{projection}"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        parts = await topic_partitions(kafka, [topic])
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        replayed = {tp.partition: (await consumer.committed(tp)) or 0 for tp in parts}
        for tp in parts:
            consumer.seek(tp, 0)
        records: list[ConsumerRecord[bytes, bytes]] = []

        async def behind() -> bool:
            return any([(await consumer.position(tp)) < ends[tp] for tp in parts])

        idle = 0
        while await behind() and idle < 10:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
            # Trailing offsets without records (transaction markers) never close the gap.
            idle = 0 if any(batch.values()) else idle + 1
        return records, replayed
    finally:
        await consumer.stop()


async def list_letters(projection: str) -> list[DeadLetter]:
    """Every dead letter of a projection, with whether it was replayed already."""
    records, replayed = await _read_all(projection)
    return [_letter(r, replayed) for r in records]


async def replay(projection: str, only: set[tuple[int, int]] | None = None) -> list[DeadLetter]:
    """Republish not-yet-replayed dead letters (or just `only`: (partition, offset) pairs)."""
    kafka = settings().kafka
    topic = topics.dead_letter(projection)
    records, replayed = await _read_all(projection)
    todo = [r for r in records if r.offset >= replayed.get(r.partition, 0)]
    if only is not None:
        todo = [r for r in todo if (r.partition, r.offset) in only]
    if not todo:
        return []
    producer = new_producer(kafka)
    await producer.start()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=f"campus-dlq-replay-{projection}",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        for rec in todo:
            letter = _letter(rec, replayed)
            await producer.send_and_wait(letter.original_topic, rec.value, key=rec.key)
            # Remember it at once: a crash after this point replays nothing twice. With `only`,
            # earlier letters of the partition are skipped for good (replay them first if needed).
            tp = TopicPartition(topic, rec.partition)
            consumer.assign([tp])
            await consumer.commit({tp: rec.offset + 1})
        return [_letter(r, replayed) for r in todo]
    finally:
        await consumer.stop()
        await producer.stop()


def run_list(projection: str) -> list[DeadLetter]:
    return asyncio.run(list_letters(projection))


def run_replay(projection: str, only: set[tuple[int, int]] | None = None) -> list[DeadLetter]:
    return asyncio.run(replay(projection, only))
