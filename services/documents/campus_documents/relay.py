"""The outbox relay: publishes the events waiting inside documents, then clears exactly those.

Publish first, clear second. A crash in between publishes the same event (same Event.id) again
on the next run; consumers dedupe by id. While Kafka is down the events simply stay pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Histogram

from campus_common import telemetry, topics
from campus_common.config import KafkaConfig
from campus_common.kafka import ensure_topics, new_producer, start_with_retry
from campus_documents import repository as repo
from campus_documents.locks import UPDATE_SLOTS, KeyedLocks
from campus_documents.outbox import to_envelope

log = logging.getLogger(__name__)

PUBLISHED = Counter(
    "campus_outbox_published_total", "Outbox events published to Kafka", ["service", "collection"]
)
DELAY = Histogram(
    "campus_outbox_delay_seconds",
    "From the write that created an event to Kafka's ack",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class OutboxRelay:
    """Background task: find pending documents, publish their events in order, clear them."""

    def __init__(
        self,
        *,
        db: repo.Db,
        kafka: KafkaConfig,
        locks: KeyedLocks,
        update_slots: asyncio.Semaphore | None = None,
        batch_size: int = 500,
        idle_s: float = 1.0,
        topic: str = topics.DOCUMENT_EVENTS,
    ) -> None:
        self.db = db
        self.kafka = kafka
        self.locks = locks
        self.update_slots = update_slots or asyncio.Semaphore(UPDATE_SLOTS)
        self.batch_size = batch_size
        self.idle_s = idle_s
        self.topic = topic
        self.connected = False
        self.published_total = 0
        self.last_error: str | None = None
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # lifecycle -----------------------------------------------------------------------------

    def notify(self) -> None:
        """A write just stored an event: publish now rather than at the next idle tick."""
        self._wake.set()

    async def start(self) -> None:
        """Run in the background; waiting for Kafka happens there, never in the caller."""
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Finish the batch in flight (bounded), then close the producer."""
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
            raise ConnectionError("outbox relay not started: waiting for the document store")
        if not self.connected or self.last_error:
            raise ConnectionError(self.last_error or "outbox relay not connected to Kafka yet")

    # the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        await self.connect()
        delay = 0.5
        while not self._stop.is_set():
            try:
                published = await self.run_once()
                delay = 0.5
                self.last_error = None
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "outbox relay: %s; events stay pending, retrying in %.1fs",
                    self.last_error,
                    delay,
                )
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if published < self.batch_size:
                await self._sleep(self.idle_s, wakeable=True)

    async def connect(self) -> None:
        """Wait until Kafka answers (backing off), ensure the topic, start the producer."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                await ensure_topics(self.kafka, [self.topic])
                break
            except Exception as exc:
                self.last_error = f"kafka unreachable: {type(exc).__name__}: {exc}"
                log.warning("outbox relay waiting for kafka: %s", exc)
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)
        if self._stop.is_set():
            return
        self._producer = new_producer(self.kafka)
        await start_with_retry(self._producer, what="outbox relay", stop=self._stop)
        self.connected = True
        log.info("outbox relay publishing to %s", self.topic)

    async def _sleep(self, seconds: float, *, wakeable: bool = False) -> None:
        waiter = self._wake if wakeable else self._stop
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), seconds)
        if wakeable:
            self._wake.clear()

    # one round -----------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Publish one batch per collection; returns how many events were published."""
        if self._producer is None:
            raise RuntimeError("outbox relay producer not started")
        total = 0
        for collection in repo.OUTBOX_COLLECTIONS:
            docs = await repo.find_pending(self.db, collection, limit=self.batch_size)
            if docs:
                total += await self._publish(collection, docs)
        return total

    async def _publish(self, collection: str, docs: list[dict[str, Any]]) -> int:
        assert self._producer is not None
        # Send everything first (the producer batches), then wait for the acks.
        sent: list[tuple[dict[str, Any], list[tuple[dict[str, Any], asyncio.Future[Any]]]]] = []
        send_error: Exception | None = None
        for doc in docs:
            futures = []
            for stored in doc.get("outbox", []):
                try:
                    envelope = to_envelope(stored)
                except (ValueError, KeyError, TypeError):
                    # Never written by this code; keep it (and what follows) for a human.
                    log.exception("outbox relay: unreadable event in %s %s", collection, doc["_id"])
                    break
                try:
                    # The send continues the request that queued the event (see graph's relay).
                    with telemetry.continued(stored.get("traceparent")):
                        fut = await self._producer.send(
                            self.topic, envelope.to_bytes(), key=envelope.key.encode()
                        )
                except Exception as exc:
                    send_error = exc
                    break
                futures.append((stored, fut))
            sent.append((doc, futures))
            if send_error is not None:
                break
        await asyncio.gather(*(f for _, fs in sent for _, f in fs), return_exceptions=True)

        published = 0
        ack_error: BaseException | None = None
        settled: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        for doc, futures in sent:
            acked = []
            # Only the prefix that Kafka acknowledged is cleared, so order within a post holds.
            for stored, fut in futures:
                if fut.exception() is not None:
                    ack_error = ack_error or fut.exception()
                    break
                acked.append(stored)
            settled.append((doc, acked))
            published += len(acked)
            self._observe(collection, acked)
        await self._settle(collection, settled)
        self.published_total += published
        if send_error is not None:
            raise send_error
        if ack_error is not None:
            raise ack_error
        return published

    async def _settle(
        self, collection: str, settled: list[tuple[dict[str, Any], list[dict[str, Any]]]]
    ) -> None:
        """Clear what was published: whole outboxes in one command, the rest one by one."""
        whole = [
            doc
            for doc, acked in settled
            if len(acked) == len(doc.get("outbox", [])) and doc.get("deleted_at") is None
        ]
        whole_ids = {doc["_id"] for doc in whole}
        one_by_one = [(doc, acked) for doc, acked in settled if doc["_id"] not in whole_ids]
        # Posts are also updated by requests: hold their locks (see locks.py); comments are
        # never updated after their insert, the relay is their only writer.
        keys = [str(doc["_id"]) for doc in whole] if collection == repo.POSTS else []
        async with self.locks.hold_many(keys), self.update_slots:
            changed = set(await repo.mark_published(self.db, collection, docs=whole))
        acked_by_id = {doc["_id"]: acked for doc, acked in settled}
        one_by_one += [(doc, acked_by_id[doc["_id"]]) for doc in whole if doc["_id"] in changed]
        for doc, acked in one_by_one:
            await self._settle_one(collection, doc, acked)

    async def _settle_one(
        self, collection: str, doc: dict[str, Any], acked: list[dict[str, Any]]
    ) -> None:
        keys = [str(doc["_id"])] if collection == repo.POSTS else []
        async with self.locks.hold_many(keys):
            async with self.update_slots:
                await repo.clear_published(self.db, collection, doc_id=doc["_id"], events=acked)
            if collection == repo.POSTS and doc.get("deleted_at") is not None:
                await repo.purge_post(self.db, post_id=doc["_id"])

    def _observe(self, collection: str, acked: list[dict[str, Any]]) -> None:
        if not acked:
            return
        PUBLISHED.labels("documents", collection).inc(len(acked))
        now = time.time()
        for stored in acked:
            at: datetime = stored["occurred_at"]
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            DELAY.labels("documents").observe(max(now - at.timestamp(), 0.0))
