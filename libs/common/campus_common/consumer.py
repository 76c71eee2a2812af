"""The one Kafka consumer base every projection runs on.

The idiom (aiokafka's, with auto-commit off): fetch a batch per partition, apply it to the
store, then commit `offset + 1` for that partition. A crash between the two re-delivers the
batch, so every projection must be idempotent and order-safe; nothing is ever skipped:
- a store that is down is retried with backoff until it is back (the consumer waits);
- a record that can never be applied goes to the projection's dead-letter topic with its
  error attached, and the partition moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Tracer
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel, ValidationError

from campus_common import telemetry, topics
from campus_common.config import KafkaConfig
from campus_common.events import ChangeRecord, Event, Heartbeat
from campus_common.kafka import (
    ensure_topics,
    ensure_topics_when_reachable,
    new_producer,
    start_with_retry,
    topic_partitions,
)
from campus_common.retry import retrying

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M")
# Untraced changes in one batch that each get a root span of their own (see `_traced`).
UNTRACED_SPANS_PER_BATCH = 100
# Fewer records than this behind, a batch is applied as soon as it is fetched: waiting for the
# rest would cost more latency than the store round trip it saves.
FILL_FROM_BACKLOG = 100
Batches = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]

RECORDS = Counter("campus_projection_records_total", "Records handled", ["projection", "outcome"])
BATCH_SECONDS = Histogram(
    "campus_projection_batch_seconds", "Time to apply one partition batch", ["projection"]
)
RETRIES = Counter(
    "campus_projection_retries_total", "Batches retried because the store was down", ["projection"]
)
LAG_RECORDS = Gauge(
    "campus_projection_lag_records",
    "Records not yet applied, over the partitions this instance holds (after every batch)",
    ["projection"],
)
LAG_SECONDS = Gauge(
    "campus_projection_lag_seconds",
    "Age of the oldest record not yet applied: 0 when caught up (after every batch)",
    ["projection"],
)
STALENESS_DELAY = Gauge(
    "campus_projection_heartbeat_delay_seconds",
    "Commit-to-applied delay of the newest CDC heartbeat",
    ["projection"],
)
PAUSED = Gauge("campus_projection_paused", "1 while the projection is paused", ["projection"])


@dataclass(frozen=True, slots=True)
class Delivered(Generic[T]):
    """A decoded record plus where it came from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: T


class PoisonRecordError(Exception):
    """Raised by a projection for a record that can never be applied."""


@dataclass(frozen=True, slots=True)
class Route(Generic[M, T]):
    """One line of a projection's topic table: the typed model a topic carries, and the
    handler that turns one such model into what the projection applies (None skips it)."""

    parse: Callable[[bytes], M | None]
    handle: Callable[[M], T | None]


def fill_size(
    have: int, backlog: int, *, max_batch: int, fill_from: int = FILL_FROM_BACKLOG
) -> int:
    """How many more records to fetch into a batch of `have` before applying it (0: apply now):
    none while the backlog is small, up to `max_batch` in all while it is big."""
    if backlog < fill_from:
        return 0
    return max(min(backlog, max_batch - have), 0)


def _change(raw: bytes) -> ChangeRecord | None:
    change = ChangeRecord.from_bytes(raw)
    # A TRUNCATE names no rows and a logical message is not a row change: nothing to apply.
    return None if change.op in ("t", "m") else change


def _heartbeat(raw: bytes) -> Heartbeat | None:
    change = _change(raw)
    return Heartbeat.from_change(change) if change is not None else None


def on_change(handle: Callable[[ChangeRecord], T | None]) -> Route[ChangeRecord, T]:
    """A Debezium change topic, handled one `ChangeRecord` at a time."""
    return Route(_change, handle)


def on_event(handle: Callable[[Event], T | None]) -> Route[Event, T]:
    """A domain-event topic, handled one `Event` envelope at a time."""
    return Route(Event.from_bytes, handle)


def on_heartbeat(handle: Callable[[Heartbeat], T | None]) -> Route[Heartbeat, T]:
    """The CDC heartbeat topic; the runner also reads each beat for the staleness figure."""
    return Route(_heartbeat, handle)


def ignore(_: object) -> None:
    """A handler for a topic a projection reads only for the runner (heartbeats, say)."""
    return None


class Projection(ABC, Generic[T]):
    """A Kafka-fed view in one store: a topic → handler table, and how to apply a batch.

    `routes` is the whole of a projection's subscription: the runner subscribes to its topics,
    parses each record into the route's typed model (a parse error makes the record poison) and
    hands that model to the route's handler.
    """

    name: str
    routes: Mapping[str, Route[Any, T]]

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics this projection reads: the keys of its table."""
        return tuple(self.routes)

    def decode(self, record: ConsumerRecord[bytes, bytes]) -> T | None:
        """The record through its route; None skips it (e.g. a tombstone)."""
        return self.decode_with_beat(record)[0]

    def decode_with_beat(
        self, record: ConsumerRecord[bytes, bytes]
    ) -> tuple[T | None, Heartbeat | None]:
        """`decode`, plus the heartbeat the record carries (parsed once, here)."""
        if record.value is None:
            return None, None
        route = self.routes[record.topic]
        model = route.parse(record.value)
        if model is None:
            return None, None
        return route.handle(model), model if isinstance(model, Heartbeat) else None

    @abstractmethod
    async def apply(self, batch: Sequence[Delivered[T]]) -> None:
        """Apply a batch idempotently; PoisonRecordError for bad data, anything else retries."""

    async def reset(self) -> None:
        """Remove everything this projection wrote, before a rebuild replays all records."""
        raise NotImplementedError(f"projection {self.name} cannot be rebuilt")

    def is_transient(self, exc: BaseException) -> bool:
        """Whether a failure means 'the store is unavailable, wait and retry'."""
        return not isinstance(exc, PoisonRecordError | ValueError | TypeError | KeyError)


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    topic: str
    partition: int
    committed: int
    end: int
    lag: int


class ControlRecord(BaseModel):
    """A pause or resume of one projection on topics.PROJECTION_CONTROL (key: its name)."""

    paused: bool
    at: float


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ProjectionRunner[Any]) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Wait for the batch in flight to be applied and committed before giving partitions up.
        async with self.runner.batch_lock:
            for tp in revoked:  # their lag is the new owner's to report
                self.runner._next_offset.pop(tp, None)
                self.runner._in_flight_ts_ms.pop(tp, None)
                self.runner._last_applied_ts_ms.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # A pause is a property of the projection, not of the partitions it held before.
        if self.runner.paused and assigned and self.runner.consumer is not None:
            self.runner.consumer.pause(*assigned)


class ProjectionRunner(Generic[T]):
    """Runs one projection: start(), pause()/resume(), status(), stop()."""

    def __init__(
        self,
        projection: Projection[T],
        *,
        kafka: KafkaConfig,
        group_id: str | None = None,
        max_batch: int = 1000,
        poll_timeout_ms: int = 200,
        fill_wait_ms: int = 20,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.projection = projection
        self.kafka = kafka
        self.group_id = group_id or f"campus-{projection.name}"
        self.max_batch = max_batch
        self.poll_timeout_ms = poll_timeout_ms
        self.fill_wait_ms = fill_wait_ms
        self.max_backoff_s = max_backoff_s
        self.consumer: AIOKafkaConsumer | None = None
        self.batch_lock = asyncio.Lock()
        self.paused = False
        self.applied_total = 0
        self.last_applied_at: float | None = None
        # The batch between fetch and commit, if any: what a crash now would redeliver.
        self.in_flight: dict[str, Any] | None = None
        # Freshness: the newest CDC heartbeat applied, and when (see staleness()).
        self.last_beat_at: float | None = None
        self.last_beat_applied_at: float | None = None
        self.heartbeat_interval_s = 1.0
        self._probe: AIOKafkaConsumer | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Follows the control topic, so a pause reaches every member of the group; the
        # consumer starts only once the newest control record has been read (a restarted
        # member of a paused projection applies nothing first).
        self._control_task: asyncio.Task[None] | None = None
        self._control_read = asyncio.Event()
        self._dlq: AIOKafkaProducer | None = None
        self.dead_letter_topic = topics.dead_letter(projection.name)
        self.recent_writes = telemetry.RecentWrites()
        self._tracer: Tracer | None = None
        # What the lag gauges are computed from, per partition this instance holds.
        self._next_offset: dict[TopicPartition, int] = {}
        self._in_flight_ts_ms: dict[TopicPartition, int] = {}
        self._last_applied_ts_ms: dict[TopicPartition, int] = {}

    # lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start consuming in the background (waits for Kafka there, not here)."""
        name = self.projection.name
        self._control_task = asyncio.create_task(self._follow_control(), name=f"control-{name}")
        self._task = asyncio.create_task(self._run(), name=f"projection-{name}")

    async def stop(self) -> None:
        """Finish the batch in flight, commit it, and leave the group."""
        self._stop.set()
        for task in (self._task, self._control_task):
            if task is None:
                continue
            try:
                await asyncio.wait_for(task, timeout=15)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._dlq is not None:
            await self._dlq.stop()
        if self._probe is not None:
            await self._probe.stop()

    async def rebuild(self) -> None:
        """Empty the store, rewind the group to the first offset, and replay everything.

        Needs this instance to be the group's only member: the rewind is a commit by the group.
        """
        await self.stop()
        self._stop = asyncio.Event()
        self._task = None
        rewind = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
        )
        await rewind.start()
        try:
            parts = await topic_partitions(self.kafka, self.projection.topics)
            rewind.assign(parts)
            starts = await rewind.beginning_offsets(parts)
            await rewind.commit({tp: max(off, 0) for tp, off in starts.items()})
        finally:
            await rewind.stop()
        await self.projection.reset()
        self.applied_total = 0
        self.last_beat_at = self.last_beat_applied_at = None
        self._dlq = self._probe = None
        await self.start()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def set_paused(self, paused: bool) -> None:
        """Pause or resume the projection in every instance that runs it: the record goes to
        the control topic, which every member follows, and applies here at once."""
        await ensure_topics(self.kafka, [topics.PROJECTION_CONTROL], partitions=1)
        producer = new_producer(self.kafka)
        await producer.start()
        try:
            record = ControlRecord(paused=paused, at=time.time())
            await producer.send_and_wait(
                topics.PROJECTION_CONTROL,
                record.model_dump_json().encode(),
                key=self.projection.name.encode(),
                partition=0,
            )
        finally:
            await producer.stop()
        if paused:
            self.pause()
        else:
            self.resume()

    def pause(self) -> None:
        """Stop fetching in this instance; records pile up in Kafka (it stays in its group)."""
        self.paused = True
        PAUSED.labels(self.projection.name).set(1)
        if self.consumer is not None:
            self.consumer.pause(*self.consumer.assignment())

    def resume(self) -> None:
        """Fetch again from the committed offsets (this instance)."""
        self.paused = False
        PAUSED.labels(self.projection.name).set(0)
        if self.consumer is not None:
            self.consumer.resume(*self.consumer.assignment())

    # status --------------------------------------------------------------------------------

    async def partitions(self) -> list[PartitionStatus]:
        """Committed offset, end offset and lag for every partition this instance holds."""
        consumer = self.consumer
        if consumer is None:
            return []
        assigned = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        if not assigned:
            return []
        ends = await consumer.end_offsets(assigned)
        out = []
        for tp in assigned:
            committed = await consumer.committed(tp) or 0
            end = ends.get(tp, 0)
            out.append(
                PartitionStatus(tp.topic, tp.partition, committed, end, max(end - committed, 0))
            )
        return out

    # the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        # Any failure outside a batch (broker gone, commit refused in a rebalance) restarts the
        # consumer from its committed offsets; what was applied but not committed is re-applied.
        await self._until_stopped("restarting its consumer", self._consume, with_traceback=True)

    async def _follow_control(self) -> None:
        await self._until_stopped(f"following {topics.PROJECTION_CONTROL}", self._read_control)

    async def _until_stopped(
        self, doing: str, body: Callable[[], Awaitable[None]], *, with_traceback: bool = False
    ) -> None:
        """Run `body` again after every failure, until stop() is called."""
        name = self.projection.name
        try:
            async for attempt in retrying(
                f"projection {name} ({doing})",
                on=Exception,
                log=log,
                stop=self._stop,
                cap_s=self.max_backoff_s,
                with_traceback=with_traceback,
            ):
                with attempt:
                    await body()
        except Exception:
            if not self._stop.is_set():
                raise
            log.info("projection %s stopped while %s", name, doing)

    async def _read_control(self) -> None:
        name = self.projection.name
        await ensure_topics_when_reachable(
            self.kafka,
            [topics.PROJECTION_CONTROL],
            what=f"projection {name} control",
            stop=self._stop,
            partitions=1,
        )
        tp = TopicPartition(topics.PROJECTION_CONTROL, 0)
        # No group: every instance reads every record, from the first.
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap_servers,
            client_id=f"campus-{name}-control",
            enable_auto_commit=False,
        )
        await start_with_retry(reader, what=f"projection {name} control", stop=self._stop)
        try:
            reader.assign([tp])
            first = (await reader.beginning_offsets([tp]))[tp]
            end = (await reader.end_offsets([tp]))[tp]
            reader.seek(tp, first)
            if first >= end:
                self._control_read.set()
            while not self._stop.is_set():
                found = await reader.getmany(tp, timeout_ms=500)
                for rec in found.get(tp, []):
                    if rec.key == name.encode():
                        self._apply_control(rec)
                    if rec.offset + 1 >= end:
                        self._control_read.set()
        finally:
            await reader.stop()

    def _apply_control(self, rec: ConsumerRecord[bytes, bytes]) -> None:
        try:
            control = ControlRecord.model_validate_json(rec.value or b"")
        except ValidationError as exc:  # nobody but set_paused writes here; say so, go on
            log.error("projection %s: unreadable control record @%d: %s", rec.key, rec.offset, exc)
            return
        if control.paused and not self.paused:
            self.pause()
        elif not control.paused and self.paused:
            self.resume()

    async def _consume(self) -> None:
        name = self.projection.name
        await ensure_topics_when_reachable(
            self.kafka,
            [*self.projection.topics, self.dead_letter_topic],
            what=f"projection {name}",
            stop=self._stop,
        )
        stopping = asyncio.create_task(self._stop.wait())
        reading = asyncio.create_task(self._control_read.wait())
        await asyncio.wait({stopping, reading}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        reading.cancel()
        if self._stop.is_set():
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"campus-{name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            metadata_max_age_ms=10_000,
        )
        consumer.subscribe(list(self.projection.topics), listener=_Rebalance(self))
        await start_with_retry(consumer, what=f"projection {name}", stop=self._stop)
        self.consumer = consumer
        log.info("projection %s consuming %s as %s", name, self.projection.topics, self.group_id)
        # While a backlog is applied, the next batch is fetched and decoded meanwhile (the
        # store works on one batch while this process parses the next); applies and commits
        # stay one at a time, in order.
        upcoming: asyncio.Task[_Prepared[T]] | None = None
        try:
            while not self._stop.is_set():
                if upcoming is not None:
                    prepared, upcoming = await upcoming, None
                else:
                    prepared = await self._prepare(consumer)
                if self.paused and prepared.batches:
                    # Fetched for partitions a rebalance assigned before the listener paused
                    # them (a third member joining a paused group left 21 of 30 records
                    # unconsumed, not 30), or prefetched before the pause: give them back, so
                    # they come again after the resume.
                    for tp, records in prepared.batches.items():
                        consumer.seek(tp, records[0].offset)
                    continue
                for tp, records in prepared.batches.items():
                    # Where each partition stands, for the lag gauges, before the batch waits.
                    self._next_offset[tp] = records[0].offset
                    self._in_flight_ts_ms[tp] = records[0].timestamp
                if prepared.batches and not self._stop.is_set():
                    async with self.batch_lock:
                        # Partitions revoked while we waited: the new owner re-reads them.
                        assigned = consumer.assignment()
                        if any(tp not in assigned for tp in prepared.batches):
                            prepared = self._decode(
                                {tp: r for tp, r in prepared.batches.items() if tp in assigned}
                            )
                        if prepared.batches:
                            backlog = self._backlog(consumer, prepared.batches)
                            if backlog >= FILL_FROM_BACKLOG:
                                upcoming = asyncio.create_task(self._prepare(consumer))
                            await self._apply_and_commit(consumer, prepared)
                self._observe_lag()
        except _Stopping:
            log.info("projection %s stopping mid-batch; the batch will be redelivered", name)
        finally:
            if upcoming is not None:
                # Fetched but not applied: nothing was committed for it, it is read again.
                upcoming.cancel()
                with contextlib.suppress(BaseException):
                    await upcoming
            self.in_flight = None
            await consumer.stop()
            self.consumer = None

    async def _gather(self, consumer: AIOKafkaConsumer) -> Batches:
        """The next batch, over every partition: what is fetched now when the projection is
        caught up (latency first); when it is behind, more fetches, each waiting at most
        `fill_wait_ms`, up to `max_batch` records (throughput first: one store round trip and
        one commit for all of them)."""
        batches: Batches = {
            tp: list(records)
            for tp, records in (
                await consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=self.max_batch)
            ).items()
        }
        have = sum(map(len, batches.values()))
        while have and not self._stop.is_set():
            more = fill_size(have, self._backlog(consumer, batches), max_batch=self.max_batch)
            if not more:
                break
            extra = await consumer.getmany(timeout_ms=self.fill_wait_ms, max_records=more)
            if not extra:
                break  # the records behind are not fetched yet: apply what is here
            for tp, records in extra.items():
                batches.setdefault(tp, []).extend(records)
                have += len(records)
        return batches

    def _backlog(self, consumer: AIOKafkaConsumer, batches: Batches) -> int:
        """Records on the broker beyond this batch, over the partitions this instance reads
        (from the end offsets the last fetches reported: no round trip)."""
        behind = 0
        paused = consumer.paused()
        for tp in consumer.assignment():
            if tp in paused:
                continue
            end = consumer.last_stable_offset(tp) or consumer.highwater(tp)
            fetched = batches.get(tp)
            upto = fetched[-1].offset + 1 if fetched else self._next_offset.get(tp)
            if end is not None and upto is not None:
                behind += max(end - upto, 0)
        return behind

    async def _apply_and_commit(self, consumer: AIOKafkaConsumer, prepared: _Prepared[T]) -> None:
        """Apply one batch (every partition's records in one call to the store), then commit
        `offset + 1` of every partition in one request."""
        batches = prepared.batches
        parts = [
            {
                "topic": tp.topic,
                "partition": tp.partition,
                "first_offset": records[0].offset,
                "last_offset": records[-1].offset,
            }
            for tp, records in batches.items()
        ]
        # The first partition's range at the top level (what `campus faults` reads), all of
        # them under "partitions".
        self.in_flight = {**parts[0], "partitions": parts, "since": time.time()}
        await self._process(prepared)
        # Commit only after the side effect: a crash before this line redelivers the batch.
        await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
        self.in_flight = None
        for tp, records in batches.items():
            self._next_offset[tp] = records[-1].offset + 1
            self._last_applied_ts_ms[tp] = records[-1].timestamp
            self._in_flight_ts_ms.pop(tp, None)

    def _observe_lag(self) -> None:
        """Set both lag gauges from what this consumer already knows (no broker round trip),
        after every batch and before every wait for a store that is down, so a scrape shows
        the lag now, not the lag of the last `/projections` call."""
        consumer = self.consumer
        if consumer is None:
            return
        records = 0
        seconds = 0.0
        now = time.time()
        for tp in consumer.assignment():
            end = consumer.last_stable_offset(tp) or consumer.highwater(tp)
            next_offset = self._next_offset.get(tp)
            if end is None or next_offset is None:
                continue  # nothing fetched from this partition yet
            behind = max(end - next_offset, 0)
            records += behind
            # The oldest record not applied: the first of the batch in flight, else one no
            # older than the last record applied.
            oldest_ms = self._in_flight_ts_ms.get(tp) or self._last_applied_ts_ms.get(tp)
            if behind and oldest_ms is not None:
                seconds = max(seconds, now - oldest_ms / 1000)
        LAG_RECORDS.labels(self.projection.name).set(records)
        LAG_SECONDS.labels(self.projection.name).set(round(seconds, 3) if records else 0.0)

    def _decode(self, batches: Batches) -> _Prepared[T]:
        """Parse every record of a batch through its route (no I/O)."""
        prepared: _Prepared[T] = _Prepared(batches)
        for records in batches.values():
            for rec in records:
                try:
                    value, beat = self.projection.decode_with_beat(rec)
                except Exception as exc:
                    prepared.poison.append((rec, exc))
                    continue
                if beat is not None:
                    prepared.beats.append(beat)
                if value is None:
                    prepared.skipped += 1
                    continue
                prepared.decoded.append(
                    Delivered(rec.topic, rec.partition, rec.offset, rec.timestamp, rec.key, value)
                )
        return prepared

    async def _prepare(self, consumer: AIOKafkaConsumer) -> _Prepared[T]:
        """The next batch, fetched and decoded."""
        return self._decode(await self._gather(consumer))

    async def _process(self, prepared: _Prepared[T]) -> None:
        name = self.projection.name
        records = [r for recs in prepared.batches.values() for r in recs]
        decoded, beats = prepared.decoded, prepared.beats
        for rec, exc in prepared.poison:
            await self._dead_letter(rec, exc)
        if prepared.skipped:
            RECORDS.labels(name, "skipped").inc(prepared.skipped)
        if not decoded:
            self._note_heartbeats(beats)
            return
        started = time.perf_counter()
        with self._traced(records, decoded):
            try:
                await self._apply_with_retry(decoded)
            except _PoisonInBatchError:
                # Isolate the bad record(s): apply one by one, dead-letter what cannot be applied.
                for item in decoded:
                    try:
                        await self._apply_with_retry([item])
                    except _PoisonInBatchError as poison:
                        raw = next(
                            r
                            for r in records
                            if (r.topic, r.partition, r.offset)
                            == (item.topic, item.partition, item.offset)
                        )
                        await self._dead_letter(raw, poison.__cause__ or poison)
        BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)
        RECORDS.labels(name, "applied").inc(len(decoded))
        self.applied_total += len(decoded)
        self.last_applied_at = time.time()
        self._note_heartbeats(beats)

    @contextlib.contextmanager
    def _traced(
        self, records: list[ConsumerRecord[bytes, bytes]], decoded: Sequence[Delivered[T]]
    ) -> Iterator[None]:
        """The apply span: a child of the write's request for one record, else linked to each.

        In a batch, every traced write also gets a span in its own trace, spanning the batch's
        apply (and linked to it), so each write's trace shows when it reached this store.
        Heartbeats are not writes: they are not traced.
        """
        if not telemetry.enabled():
            yield
            return
        applied = {
            (d.topic, d.partition, d.offset) for d in decoded if d.topic != topics.HEARTBEATS
        }
        if not applied:
            yield
            return
        if self._tracer is None:
            name = self.projection.name
            self._tracer = telemetry.tracer("campus.projection", service=f"{name}-projection")
        parents: list[tuple[ConsumerRecord[bytes, bytes], Context | None]] = [
            (
                r,
                telemetry.context_from_traceparent(
                    telemetry.record_traceparent(r.headers, r.value)
                ),
            )
            for r in records
            if (r.topic, r.partition, r.offset) in applied
        ]
        first = parents[0][0]
        # A batch spans partitions (and topics): the batch span names the first record's; each
        # write's own span names its own.
        span_name = f"process {first.topic}"
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": first.topic,
            "messaging.destination.partition.id": str(first.partition),
            "messaging.consumer.group.name": self.group_id,
            "campus.projection": self.projection.name,
        }
        started_ns = telemetry.now_ns()
        if len(parents) == 1:
            rec, parent = parents[0]
            attributes["messaging.kafka.offset"] = rec.offset
            attributes["messaging.kafka.message.key"] = _key_text(rec.key)
            with self._tracer.start_as_current_span(
                span_name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
            ) as span:
                yield
                own = span.get_span_context()
        else:
            attributes["messaging.batch.message_count"] = len(parents)
            links = [telemetry.link_to(ctx) for _, ctx in parents if ctx is not None]
            with self._tracer.start_as_current_span(
                span_name, kind=SpanKind.CONSUMER, attributes=attributes, links=links
            ) as span:
                yield
                own = span.get_span_context()
            ended_ns = telemetry.now_ns()
            # A change nobody traced (a psql UPDATE) starts a trace of its own, found by its key
            # like any other; in a backlog-sized batch the batch's own trace stands for them all,
            # so a replay of a million changes does not become a million traces.
            untraced_own = sum(ctx is None for _, ctx in parents) <= UNTRACED_SPANS_PER_BATCH
            for rec, ctx in parents:
                if ctx is None and not untraced_own:
                    continue
                self._tracer.start_span(
                    f"process {rec.topic}",
                    context=ctx or Context(),
                    kind=SpanKind.CONSUMER,
                    attributes={
                        **attributes,
                        "messaging.destination.name": rec.topic,
                        "messaging.destination.partition.id": str(rec.partition),
                        "messaging.kafka.offset": rec.offset,
                        "messaging.kafka.message.key": _key_text(rec.key),
                    },
                    links=[Link(own)],
                    start_time=started_ns,
                ).end(end_time=ended_ns)
        applied_at = time.time()
        own_trace = format(own.trace_id, "032x")
        for rec, ctx in parents:
            # A change nobody traced, in a batch, has only the batch's trace: not worth listing.
            if ctx is None and len(parents) > 1:
                continue
            self.recent_writes.add(
                telemetry.AppliedWrite(
                    trace_id=telemetry.trace_id_of(ctx) if ctx is not None else own_trace,
                    topic=rec.topic,
                    key=_key_text(rec.key),
                    in_kafka_s=round(max(applied_at - rec.timestamp / 1000, 0.0), 3),
                    applied_at=applied_at,
                )
            )

    def _note_heartbeats(self, beats: Sequence[Heartbeat]) -> None:
        """Remember the newest heartbeat now in the store (they were applied with the batch)."""
        for beat in beats:
            beat_at = beat.beat_at.timestamp()
            if self.last_beat_at is None or beat_at > self.last_beat_at:
                self.last_beat_at, self.last_beat_applied_at = beat_at, time.time()
                STALENESS_DELAY.labels(self.projection.name).set(
                    self.last_beat_applied_at - beat_at
                )

    def staleness(self) -> float | None:
        """Seconds the store may be behind PostgreSQL, from the heartbeat row flowing through CDC.

        The newest applied heartbeat took `delay` to arrive; once no newer one arrives within the
        heartbeat interval, the store is at least `now - beat_at - interval` behind.
        """
        if self.last_beat_at is None or self.last_beat_applied_at is None:
            return None
        delay = self.last_beat_applied_at - self.last_beat_at
        overdue = time.time() - self.last_beat_at - self.heartbeat_interval_s
        return round(max(delay, overdue, 0.0), 3)

    async def time_lag(self, parts: Sequence[PartitionStatus]) -> float:
        """Age in seconds of the oldest record not yet applied (0 when caught up)."""
        lagging = [p for p in parts if p.lag > 0]
        if not lagging:
            return 0.0
        if self._probe is None:
            self._probe = AIOKafkaConsumer(
                bootstrap_servers=self.kafka.bootstrap_servers,
                enable_auto_commit=False,
                group_id=None,
                client_id=f"campus-{self.projection.name}-probe",
            )
            await self._probe.start()
        tps = [TopicPartition(p.topic, p.partition) for p in lagging]
        self._probe.assign(tps)
        for p, tp in zip(lagging, tps, strict=True):
            self._probe.seek(tp, p.committed)
        oldest: float | None = None
        batch = await self._probe.getmany(*tps, timeout_ms=1000, max_records=len(tps) * 5)
        for recs in batch.values():
            if recs:
                ts = recs[0].timestamp / 1000
                oldest = ts if oldest is None else min(oldest, ts)
        return round(max(time.time() - oldest, 0.0), 3) if oldest is not None else 0.0

    async def _apply_with_retry(self, batch: Sequence[Delivered[T]]) -> None:
        name = self.projection.name

        def store_unavailable(exc: BaseException) -> bool:
            if self.projection.is_transient(exc):
                RETRIES.labels(name).inc()
                self._observe_lag()  # the lag grows while we wait: let a scrape see it
                return True
            return False

        try:
            async for attempt in retrying(
                f"projection {name}: applying to the store",
                on=store_unavailable,
                log=log,
                stop=self._stop,
                initial_s=0.2,
                cap_s=self.max_backoff_s,
            ):
                with attempt:
                    await self.projection.apply(batch)
        except Exception as exc:
            if not self.projection.is_transient(exc):
                raise _PoisonInBatchError() from exc
            raise _Stopping() from exc  # only a stop ends the waiting for the store

    async def _dead_letter(self, rec: ConsumerRecord[bytes, bytes], exc: BaseException) -> None:
        if self._dlq is None:
            producer = new_producer(self.kafka)
            await start_with_retry(producer, what="dead-letter producer", stop=self._stop)
            self._dlq = producer
        headers = [
            ("error", f"{type(exc).__name__}: {exc}"[:2000].encode()),
            ("projection", self.projection.name.encode()),
            ("original_topic", rec.topic.encode()),
            ("original_partition", str(rec.partition).encode()),
            ("original_offset", str(rec.offset).encode()),
        ]
        await self._dlq.send_and_wait(
            self.dead_letter_topic, rec.value, key=rec.key, headers=headers
        )
        RECORDS.labels(self.projection.name, "dead_lettered").inc()
        log.error(
            "projection %s: %s[%d]@%d dead-lettered: %s",
            self.projection.name,
            rec.topic,
            rec.partition,
            rec.offset,
            exc,
        )


def _key_text(key: bytes | None) -> str:
    return (key or b"").decode("utf-8", "replace")[:200]


@dataclass(slots=True)
class _Prepared(Generic[T]):
    """A fetched batch, decoded: what to apply, and what to dead-letter or skip."""

    batches: Batches
    decoded: list[Delivered[T]] = field(default_factory=list)
    beats: list[Heartbeat] = field(default_factory=list)
    poison: list[tuple[ConsumerRecord[bytes, bytes], BaseException]] = field(default_factory=list)
    skipped: int = 0


class _PoisonInBatchError(Exception):
    pass


class _Stopping(Exception):
    pass
