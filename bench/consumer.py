"""M3: our consumer base (no-op handler) against a bare aiokafka getmany loop, same topic.

The topic is filled once; each repetition reads all of it from the start again, in a fresh
consumer group for each reader (the bare loop and the runner alternate which goes first).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.core import Figure, Report, reps
from bench.env import settings
from bench.fixtures import drop_leftover_topics, drop_topics
from campus_common import topics
from campus_common.consumer import Delivered, Projection, ProjectionRunner, Route
from campus_common.kafka import ensure_topics


class NoOp(Projection[int]):
    def __init__(self, topic: str) -> None:
        self.name = f"bench-noop-{uuid.uuid4().hex[:6]}"
        self.routes = {topic: Route(len, _same)}

    async def apply(self, batch: Sequence[Delivered[int]]) -> None:
        return None


def _same(n: int) -> int:
    return n


async def _fill(topic: str, n: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings().kafka.bootstrap_servers, linger_ms=20, max_batch_size=256_000
    )
    await producer.start()
    try:
        payload = b'{"op":"c","after":{"id":%d,"email":"bench@university.edu"},"pad":"' + b"x" * 120
        futures = [
            await producer.send(
                topic, payload.replace(b"%d", str(i).encode()) + b'"}', key=str(i).encode()
            )
            for i in range(n)
        ]
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _bare(topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings().kafka.bootstrap_servers,
        group_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < n:
            batch = await consumer.getmany(timeout_ms=200, max_records=1000)
            for tp, recs in batch.items():
                seen += len(recs)
                await consumer.commit({tp: recs[-1].offset + 1})
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def _runner(topic: str, n: int) -> float:
    runner = ProjectionRunner(NoOp(topic), kafka=settings().kafka, max_batch=1000)
    # The runner creates its dead-letter topic at start: a bench-only name, dropped afterwards
    # (it used to leave a campus.dlq.bench-noop-* topic behind at every run).
    runner.dead_letter_topic = f"bench.dlq.{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    await runner.start()
    try:
        while runner.applied_total < n:  # noqa: ASYNC110 (polling the runner's counter is the point)
            await asyncio.sleep(0.01)
        return n / (time.perf_counter() - started)
    finally:
        await runner.stop()
        await drop_topics([runner.dead_letter_topic])


async def run(report: Report, *, quick: bool) -> None:
    n = 100_000 if quick else 500_000
    repetitions = reps(quick=quick)
    # Runs before this fix named their dead-letter topic after the no-op projection.
    await drop_leftover_topics(topics.dead_letter("bench-noop-"))
    topic = f"bench.consumer.{uuid.uuid4().hex[:6]}"
    await ensure_topics(settings().kafka, [topic])
    await _fill(topic, n)
    bare: list[float] = []
    ours: list[float] = []
    try:
        for rep in range(repetitions):
            # A fresh group per read starts at the earliest offset: every repetition reads the
            # same records. Alternate which reader goes first so drift (and the page cache)
            # does not always favour the same one.
            if rep % 2 == 0:
                bare.append(await _bare(topic, n))
                ours.append(await _runner(topic, n))
            else:
                ours.append(await _runner(topic, n))
                bare.append(await _bare(topic, n))
    finally:
        await drop_topics([topic])
    report.add(
        Figure.median_of(
            "M3",
            f"consumer base, no-op handler ({n:,} records)",
            ours,
            "records/s",
            "bare aiokafka getmany + commit",
            bare,
            "≥ 70 % of bare",
            met=lambda value, anchor: anchor is not None and value >= 0.7 * anchor,
            digits=0,
        )
    )
    report.sections["M3 how the consumer was measured"] = (
        f"{n:,} records of ~170 bytes written once to a bench topic; "
        f"{repetitions} repetition{'s' if repetitions > 1 else ''}, each reading all of them "
        "from the earliest offset in a fresh consumer group, once with the consumer base "
        "(ProjectionRunner, no-op handler, batches of 1000) and once with a bare aiokafka "
        "getmany loop committing after every batch, alternating which reads first. The figure "
        "is the median records/s of the repetitions."
    )
