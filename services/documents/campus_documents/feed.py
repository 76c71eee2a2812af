"""The first page of each group's feed, kept in memory and dropped by the documents events.

FerretDB v1 does not push the sort and limit of a filtered find down to PostgreSQL, so a group's
feed page costs a scan of the group's posts. The first page is what nearly every reader asks
for: this process keeps it per group (LRU, with a TTL as a backstop) and drops a group's page
when anything it shows changes:

- on this instance, right after an acknowledged write (service.py calls `changed`), so the
  writer reads its own write at once;
- on every instance, when the event of a write made anywhere arrives on the documents topic,
  read by `FeedFollower` (no consumer group, from the end at start-up).

A page is served only while the follower has recently proved it is caught up (`synced`): a
follower that is down, restarting or behind makes every request read FerretDB, so a lost
follower never serves stale pages. A read that a change overtakes (`Fill.void`) is not kept.
Writes that bypass the service (straight into the database, as the bench seeds) are seen once
the TTL has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter
from pydantic import ValidationError

from campus_common.config import KafkaConfig
from campus_common.events import Event
from campus_documents.schemas import PostRead

log = logging.getLogger(__name__)

Outcome = Literal["hit", "miss", "bypass"]
# The events that change what a feed item shows (PostRead: the post and its like count).
# comment.created does not: a feed item carries no comment count.
FEED_EVENTS = frozenset({"post.created", "post.updated", "post.deleted", "post.liked"})

REQUESTS = Counter(
    "campus_documents_feed_cache_total",
    "First feed pages asked of the cache: hit, miss (read and kept) or bypass (not serving)",
    ["outcome"],
)
DROPS = Counter(
    "campus_documents_feed_cache_drops_total",
    "Cached pages dropped or fills voided, by cause",
    ["cause"],
)


def first_items(items: list[PostRead], *, more: bool, limit: int) -> tuple[list[PostRead], bool]:
    """The first `limit` of a page's items, and whether posts follow them."""
    return items[:limit], more or len(items) > limit


@dataclass
class _Entry:
    items: list[PostRead]
    more: bool  # whether the group has posts beyond `items`
    filled_at: float


@dataclass(eq=False)
class Fill:
    """A read of one group's first page from the store, kept only if nothing changed meanwhile."""

    group_id: int
    started_at: float
    void: bool = False


class FeedCache:
    """First feed pages by group; every method is synchronous, so the event loop orders them."""

    def __init__(
        self,
        *,
        groups: int,
        page: int,
        ttl_s: float,
        max_lag_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.groups = groups
        self.page = page
        self.ttl_s = ttl_s
        self.max_lag_s = max_lag_s
        self.clock = clock
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._fills: set[Fill] = set()
        # When the follower last proved every event published before then was applied.
        self._synced_at: float | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def usable(self) -> bool:
        """Whether the follower is recent enough for cached pages to be served."""
        return self._synced_at is not None and self.clock() - self._synced_at <= self.max_lag_s

    def get(self, group_id: int, *, limit: int) -> tuple[list[PostRead], bool] | None:
        """The first `limit` items and whether more follow, or None (not cached or not usable)."""
        entry = self._entries.get(group_id)
        if entry is None or limit > self.page or not self.usable():
            return None
        if self.clock() - entry.filled_at > self.ttl_s:
            del self._entries[group_id]
            DROPS.labels("ttl").inc()
            return None
        self._entries.move_to_end(group_id)
        return first_items(entry.items, more=entry.more, limit=limit)

    @contextlib.contextmanager
    def filling(self, group_id: int) -> Iterator[Fill | None]:
        """A fill to pass to `put` after reading the group's first page (None: do not keep it)."""
        if not self.usable():
            yield None
            return
        fill = Fill(group_id, self.clock())
        self._fills.add(fill)
        try:
            yield fill
        finally:
            self._fills.discard(fill)

    def put(self, fill: Fill, items: list[PostRead], *, more: bool) -> bool:
        """Keep what `fill` read (up to `page` items), unless a change overtook it; whether kept."""
        if fill.void or not self.usable():
            return False
        kept, more = first_items(items, more=more, limit=self.page)
        self._entries[fill.group_id] = _Entry(kept, more, fill.started_at)
        self._entries.move_to_end(fill.group_id)
        while len(self._entries) > self.groups:
            self._entries.popitem(last=False)
            DROPS.labels("evicted").inc()
        return True

    def changed(self, group_id: int, *, cause: str = "write") -> None:
        """Something the group's feed shows changed: drop its page and void reads under way."""
        if self._entries.pop(group_id, None) is not None:
            DROPS.labels(cause).inc()
        for fill in self._fills:
            if fill.group_id == group_id:
                fill.void = True

    def clear(self) -> None:
        """Drop every page and void every read under way."""
        self._entries.clear()
        for fill in self._fills:
            fill.void = True

    def synced(self, at: float) -> None:
        """The follower applied every event published before `at`."""
        if self._synced_at is None or at > self._synced_at:
            self._synced_at = at

    def unsynced(self) -> None:
        """The follower starts over from the topic's end: what it skipped is unknown."""
        self._synced_at = None
        self.clear()

    def apply(self, value: bytes | None) -> None:
        """One record of the documents topic: drop the page of the group a feed event names."""
        if value is None:
            return
        try:
            event = Event.from_bytes(value)
        except ValidationError:
            # It may have changed any group: forget them all rather than risk a stale page.
            log.warning("unreadable documents event: every cached feed page dropped")
            self.clear()
            return
        if event.type not in FEED_EVENTS:
            return
        group_id = event.payload.get("group_id")
        if group_id is None:
            return  # a post outside any group is in no group feed
        if not isinstance(group_id, int):
            log.warning("documents event %s names group %r: every page dropped", event.id, group_id)
            self.clear()
            return
        self.changed(group_id, cause="event")


class FeedFollower:
    """Follows the documents topic into a FeedCache and tells it how far it has caught up."""

    def __init__(
        self,
        cache: FeedCache,
        *,
        kafka: KafkaConfig,
        topic: str,
        check_s: float = 1.0,
        retry_s: float = 2.0,
    ) -> None:
        self.cache = cache
        self.kafka = kafka
        self.topic = topic
        self.check_s = check_s
        self.retry_s = retry_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow_forever(), name="feed-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.cache.unsynced()

    async def _follow_forever(self) -> None:
        while True:
            try:
                await self._follow()
            except Exception as exc:
                # The cache stops serving at once; the feed is read from FerretDB meanwhile.
                log.warning("documents topic unreadable for the feed cache (%r); retrying", exc)
            self.cache.unsynced()
            await asyncio.sleep(self.retry_s)

    async def _follow(self) -> None:
        # No consumer group: every instance reads every partition, from the end it finds.
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.kafka.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            isolation_level="read_committed",
            # A topic created after start-up is found within seconds, not the default 5 min.
            metadata_max_age_ms=10_000,
        )
        await consumer.start()
        try:
            self.cache.unsynced()
            # (when the end offsets were asked, the end offsets): proved once positions reach them.
            check: tuple[float, dict[TopicPartition, int]] | None = None
            next_check = 0.0
            known: set[TopicPartition] = set()
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=1000)
                for records in batch.values():
                    for record in records:
                        self.cache.apply(record.value)
                assigned = consumer.assignment()
                if assigned != known:
                    # A partition that appeared is read from its end: what it already held is
                    # unknown here, so start over as at start-up.
                    known = set(assigned)
                    self.cache.unsynced()
                    check = None
                if check is not None:
                    asked_at, ends = check
                    positions = [await consumer.position(tp) for tp in ends]
                    if all(p >= end for p, end in zip(positions, ends.values(), strict=True)):
                        self.cache.synced(asked_at)
                        check = None
                if check is None and assigned and self.cache.clock() >= next_check:
                    # Positions first: at start-up this fixes where reading begins, so every
                    # event published after `asked_at` lies at or beyond them and is read.
                    for tp in assigned:
                        await consumer.position(tp)
                    asked_at = self.cache.clock()
                    check = (asked_at, await consumer.end_offsets(list(assigned)))
                    next_check = asked_at + self.check_s
        finally:
            await consumer.stop()
