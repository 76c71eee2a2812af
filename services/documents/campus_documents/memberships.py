"""Who belongs to which group, kept in memory from the CDC topic of `group_memberships`.

Not a projection: nothing is written anywhere and no offset is committed. Every instance reads
the whole (small, never-compacted-away) topic from its start into a set at start-up and then
follows it, as a Kafka Streams GlobalKTable would. Changes to one membership share its key and
so its partition, so reading each partition in order leaves the last state of each row.

The set answers only "yes": a membership it does not hold yet (the user joined a moment ago,
before Debezium delivered it) or any question before the first full read is asked live from
the users service, so someone who has just joined can post at once. A membership removed in
the users service is honoured here once its change arrives (the CDC lag, about a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from campus_common import topics
from campus_common.config import KafkaConfig
from campus_common.events import ChangeRecord

log = logging.getLogger(__name__)


class Memberships:
    """The membership facts this process holds, and the task that keeps them current."""

    def __init__(self, kafka: KafkaConfig, *, retry_s: float = 2.0) -> None:
        self.kafka = kafka
        self.retry_s = retry_s
        self._members: set[tuple[int, int]] = set()
        self._task: asyncio.Task[None] | None = None
        # Set once the topic has been read up to where it ended when reading started.
        self.caught_up = asyncio.Event()

    def holds(self, *, group_id: int, user_id: int) -> bool:
        """Whether the membership is known here (False: ask the users service)."""
        return self.caught_up.is_set() and (group_id, user_id) in self._members

    def __len__(self) -> int:
        return len(self._members)

    def apply(self, value: bytes | None) -> None:
        """One change record of the topic (a tombstone or an unreadable record changes nothing)."""
        if not value:
            return
        try:
            change = ChangeRecord.model_validate_json(value)
            row = change.row
            key = (int(row["group_id"]), int(row["user_id"]))
        except (ValidationError, ValueError, KeyError, TypeError):
            log.warning("unreadable membership change skipped")
            return
        if change.is_delete:
            self._members.discard(key)
        else:
            self._members.add(key)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow_forever(), name="memberships")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow_forever(self) -> None:
        while True:
            try:
                await self._follow()
            except Exception as exc:
                # Whatever stops the reader (Kafka away, above all), the service keeps serving:
                # every membership is asked live meanwhile.
                log.warning("membership topic unreadable (%r); retrying", exc)
            await asyncio.sleep(self.retry_s)

    async def _follow(self) -> None:
        # No consumer group: every instance reads every partition from the start, and the
        # consumer assigns itself all of them (and any added later).
        consumer = AIOKafkaConsumer(
            topics.MEMBERSHIPS,
            bootstrap_servers=self.kafka.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            # A restarted reader rebuilds the whole set; until then nothing is answered here.
            self._members.clear()
            self.caught_up.clear()
            ends: dict[TopicPartition, int] | None = None
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                for records in batch.values():
                    for record in records:
                        self.apply(record.value)
                if self.caught_up.is_set():
                    continue
                assigned = consumer.assignment()
                if not assigned:
                    continue  # the topic does not exist yet, or metadata is on its way
                if ends is None:
                    ends = await consumer.end_offsets(list(assigned))
                positions = [await consumer.position(tp) for tp in ends]
                if all(p >= end for p, end in zip(positions, ends.values(), strict=True)):
                    log.info("memberships read: %d", len(self._members))
                    self.caught_up.set()
        finally:
            await consumer.stop()
