"""The outbox relay: publishes (:Outbox) nodes to Kafka in order, deletes each after its ack.

A crash between the ack and the delete publishes the event again on restart; consumers dedupe
on Event.id, so at-least-once is enough here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from neo4j import AsyncDriver
from prometheus_client import Counter, Gauge

from campus_common import telemetry, topics
from campus_common.config import KafkaConfig
from campus_common.kafka import ensure_topics, new_producer, start_with_retry
from campus_graph import repository as repo

log = logging.getLogger(__name__)

PUBLISHED = Counter("campus_graph_outbox_published_total", "Outbox events published")
FAILURES = Counter("campus_graph_outbox_failures_total", "Relay rounds that failed and will retry")
PENDING = Gauge("campus_graph_outbox_pending", "Outbox events read in the last relay round")


class OutboxRelay:
    """Background task: start(), notify() after a commit, stop()."""

    def __init__(
        self, *, driver: AsyncDriver, kafka: KafkaConfig, poll_s: float, batch: int
    ) -> None:
        self.driver = driver
        self.kafka = kafka
        self.poll_s = poll_s
        self.batch = batch
        self.producer = new_producer(kafka)
        self.connected = False
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Publish now rather than at the next poll (a request just queued an event)."""
        self._wake.set()

    async def start(self) -> None:
        """Start relaying in the background (waits for Kafka there, not here)."""
        self._task = asyncio.create_task(self._run(), name="graph-outbox-relay")

    async def stop(self) -> None:
        """Stop after the round in flight; what is left stays queued for the next start."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
        if self.connected:
            await self.producer.stop()

    async def publish_pending(self) -> int:
        """Publish one batch of queued events in order; returns how many were published."""
        pending = await repo.pending_outbox(self.driver, limit=self.batch)
        PENDING.set(len(pending))
        if not pending:
            return 0
        # Enqueue all, then wait for every ack: the idempotent producer keeps them in order.
        acks = []
        for m in pending:
            # The send span continues the request that queued the event; its context goes into
            # the record's headers (the aiokafka instrumentation), so consumers continue it too.
            with telemetry.continued(m.traceparent):
                acks.append(await self.producer.send(m.topic, m.value.encode(), key=m.key.encode()))
        await asyncio.gather(*acks)
        await repo.delete_outbox(self.driver, ids=[m.id for m in pending])
        PUBLISHED.inc(len(pending))
        return len(pending)

    async def _connect(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                await ensure_topics(self.kafka, [topics.GRAPH_EVENTS])
                break
            except Exception as exc:
                log.warning("outbox relay waiting for kafka: %s", exc)
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)
        if not self._stop.is_set():
            await start_with_retry(self.producer, what="graph outbox relay", stop=self._stop)
            self.connected = True

    async def _run(self) -> None:
        try:
            await self._connect()
        except Exception:
            if self._stop.is_set():
                return  # stopped while Kafka was still down
            raise
        delay = 0.5
        while not self._stop.is_set():
            self._wake.clear()
            try:
                published = await self.publish_pending()
                delay = 0.5
            except Exception as exc:
                # Neo4j or Kafka is down: everything stays queued; try again with backoff.
                FAILURES.inc()
                log.warning("outbox relay round failed, retrying in %.1fs: %r", delay, exc)
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if published < self.batch:
                await self._sleep(self.poll_s, wake=True)

    async def _sleep(self, seconds: float, *, wake: bool = False) -> None:
        waiter = self._wake if wake else self._stop
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), seconds)
