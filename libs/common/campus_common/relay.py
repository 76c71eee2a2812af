"""The one outbox relay base: publish what a service stored beside its writes, then clear it.

A service that cannot put its events into PostgreSQL's WAL (the documents and graph services)
stores each event in the same atomic write as the change it describes, and a relay publishes it.
Publish first, clear second: a crash in between publishes the same event (same `Event.id`)
again on the next round, and the projections skip what they already applied.

Subclasses say only how to find pending events and how to clear the published ones; the
lifecycle (wake-ups, waiting for Kafka, backoff, health, metrics) lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge, Histogram

from campus_common import telemetry
from campus_common.config import KafkaConfig
from campus_common.kafka import ensure_topics_when_reachable, new_producer, start_with_retry
from campus_common.retry import retrying

log = logging.getLogger(__name__)

H = TypeVar("H")

PUBLISHED = Counter(
    "campus_outbox_published_total", "Outbox events published to Kafka", ["service", "topic"]
)
DELAY = Histogram(
    "campus_outbox_delay_seconds",
    "From the write that created an event to Kafka's ack",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
FAILURES = Counter(
    "campus_outbox_failures_total", "Relay rounds that failed and will retry", ["service"]
)
PENDING = Gauge("campus_outbox_pending", "Events read in the relay's last round", ["service"])


@dataclass(frozen=True, slots=True)
class Pending(Generic[H]):
    """One stored event ready to send, and what its store needs to clear it (`handle`).

    Events of one `group` (a post, or the whole outbox) are published in order, and only the
    prefix Kafka acknowledged is cleared, so order within a group survives a failed send.
    """

    topic: str
    key: bytes
    value: bytes
    occurred_at: datetime | None
    traceparent: str | None
    group: Any
    handle: H


class OutboxRelay(ABC, Generic[H]):
    """Background task: start(), notify() after a write stored an event, check(), stop()."""

    service: str
    topics: Sequence[str]

    def __init__(self, *, kafka: KafkaConfig, batch_size: int, idle_s: float) -> None:
        self.kafka = kafka
        self.batch_size = batch_size
        self.idle_s = idle_s
        self.connected = False
        self.published_total = 0
        self.last_error: str | None = None
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # what a store does ---------------------------------------------------------------------

    @abstractmethod
    async def fetch_pending(self, *, limit: int) -> list[Pending[H]]:
        """Up to about `limit` stored events, oldest first within each group."""

    @abstractmethod
    async def clear(self, published: Sequence[Pending[H]]) -> None:
        """Remove exactly these events (acknowledged by Kafka; maybe none) from the store."""

    # lifecycle -----------------------------------------------------------------------------

    def notify(self) -> None:
        """A write just stored an event: publish now rather than at the next idle tick."""
        self._wake.set()

    async def start(self) -> None:
        """Run in the background; waiting for Kafka happens there, never in the caller."""
        self._task = asyncio.create_task(self._run(), name=f"{self.service}-outbox-relay")

    async def stop(self) -> None:
        """Finish the round in flight (bounded), then close the producer."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()

    async def check(self) -> None:
        """Health: raises while the relay cannot publish (Kafka or the store is down)."""
        if self._task is None:
            raise ConnectionError("outbox relay not started: waiting for its store")
        if not self.connected or self.last_error:
            raise ConnectionError(self.last_error or "outbox relay not connected to Kafka yet")

    async def connect(self) -> None:
        """Wait until Kafka answers, ensure the topics, start the producer."""
        with contextlib.suppress(Exception):  # only a stop ends these waits
            await ensure_topics_when_reachable(
                self.kafka, self.topics, what=f"{self.service} outbox relay", stop=self._stop
            )
            producer = new_producer(self.kafka)
            await start_with_retry(producer, what=f"{self.service} outbox relay", stop=self._stop)
            self._producer = producer
            self.connected = True
            log.info("%s outbox relay publishing to %s", self.service, ", ".join(self.topics))

    # the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        await self.connect()

        def round_failed(exc: BaseException) -> bool:
            # The store or Kafka is down: everything stays pending; try again with backoff.
            FAILURES.labels(self.service).inc()
            self.last_error = f"{type(exc).__name__}: {exc}"
            return True

        while not self._stop.is_set():
            try:
                async for attempt in retrying(
                    f"{self.service} outbox relay round",
                    on=round_failed,
                    log=log,
                    stop=self._stop,
                ):
                    with attempt:
                        published = await self.run_once()
            except Exception:
                return  # stopped while the store or Kafka was down
            self.last_error = None
            if published < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_s)
                self._wake.clear()

    async def run_once(self) -> int:
        """Publish one batch of pending events; returns how many were published and cleared."""
        pending = await self.fetch_pending(limit=self.batch_size)
        PENDING.labels(self.service).set(len(pending))
        producer = await self._ready_producer() if pending else None
        acked, error = await self._send(producer, pending) if producer else ([], None)
        # Called even with nothing acked: a store may have bookkeeping to settle (see documents).
        await self.clear(acked)
        self._observe(acked)
        self.published_total += len(acked)
        if error is not None:
            await self._drop_producer()
            raise error
        return len(acked)

    async def _ready_producer(self) -> AIOKafkaProducer:
        """The producer, started anew after a failed send dropped the last one."""
        if self._producer is None:
            producer = new_producer(self.kafka)
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        # A failed send can leave the idempotent producer unusable for good: after a broker
        # restart its sequence numbers no longer match the broker's, and every later send fails
        # with OutOfOrderSequenceNumber. The next round starts a new one (a new producer id);
        # what failed is still pending and goes out again under the same event ids.
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _send(
        self, producer: AIOKafkaProducer, pending: list[Pending[H]]
    ) -> tuple[list[Pending[H]], BaseException | None]:
        """Send everything (the producer batches), wait for the acks, keep each group's prefix."""
        sent: list[tuple[Pending[H], asyncio.Future[Any]]] = []
        error: BaseException | None = None
        for event in pending:
            try:
                # The send span continues the request that stored the event; its context goes
                # into the record's headers (the aiokafka instrumentation), so projections do too.
                with telemetry.continued(event.traceparent):
                    fut = await producer.send(event.topic, event.value, key=event.key)
            except Exception as exc:
                error = exc
                break
            sent.append((event, fut))
        await asyncio.gather(*(fut for _, fut in sent), return_exceptions=True)
        acked: list[Pending[H]] = []
        broken: set[Any] = set()
        for event, fut in sent:
            if event.group in broken:
                continue
            if fut.exception() is not None:
                error = error or fut.exception()
                broken.add(event.group)  # what follows in this group waits for the next round
                continue
            acked.append(event)
        return acked, error

    def _observe(self, acked: Sequence[Pending[H]]) -> None:
        now = time.time()
        for event in acked:
            PUBLISHED.labels(self.service, event.topic).inc()
            if event.occurred_at is not None:
                DELAY.labels(self.service).observe(max(now - event.occurred_at.timestamp(), 0.0))
