"""The documents service's outbox relay: events wait inside the documents they describe.

The lifecycle, backoff and metrics are `campus_common.relay`'s; this module says how pending
events are found (documents flagged `pending`, their `outbox` arrays in order) and how exactly
the published ones are cleared: a post's outbox under that post's lease, which requests on every
instance also take (see locks.py). One relay publishes at a time, whichever instance holds the
relay's lease, so no event goes out once per instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pymongo
from pymongo.errors import PyMongoError

from campus_common import topics
from campus_common.config import KafkaConfig
from campus_common.relay import OutboxRelay as RelayBase
from campus_common.relay import Pending
from campus_documents import repository as repo
from campus_documents.locks import UPDATE_SLOTS, Lease, LeaseBusyError, Leases, post_key
from campus_documents.outbox import to_envelope

log = logging.getLogger(__name__)

# What clearing one event needs: its collection, its document, the event as stored.
Handle = tuple[str, dict[str, Any], dict[str, Any]]
RELAY_KEY = "relay:documents"
FETCH_TIMEOUT_S = 120.0


class OutboxRelay(RelayBase[Handle]):
    """Publishes the events of pending posts, comments and likes, then pulls exactly those."""

    service = "documents"

    def __init__(
        self,
        *,
        db: repo.Db,
        kafka: KafkaConfig,
        update_slots: asyncio.Semaphore | None = None,
        batch_size: int = 500,
        idle_s: float = 1.0,
        topic: str = topics.DOCUMENT_EVENTS,
    ) -> None:
        super().__init__(kafka=kafka, batch_size=batch_size, idle_s=idle_s)
        self.db = db
        self.update_slots = update_slots or asyncio.Semaphore(UPDATE_SLOTS)
        self.leases = Leases(db, slots=self.update_slots)
        self.topic = topic
        self.topics = (topic,)
        # The documents read this round, by collection: each is settled, published or not.
        self._fetched: dict[str, list[dict[str, Any]]] = {}

    async def run_once(self) -> int:
        """One round, if no other instance's relay is in one (then 0)."""
        lease = await self._round_lease()
        if lease is None:
            return 0
        try:
            return await super().run_once()
        finally:
            with contextlib.suppress(PyMongoError):  # else it expires after its TTL
                await self.leases.release([lease])

    async def _round_lease(self) -> Lease | None:
        # Another instance's round is short: wait for its end rather than a whole idle tick, so
        # an event a request here just stored goes out promptly. A round that outlives the
        # lease's TTL (or a relay killed in one) lets the other relay in: the same events may
        # then go out twice under the same ids, which the projections skip.
        deadline = time.monotonic() + self.idle_s
        while (lease := await self.leases.try_take(RELAY_KEY)) is None:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)
        return lease

    async def fetch_pending(self, *, limit: int) -> list[Pending[Handle]]:
        """Every event of up to `limit` pending documents per collection, oldest first."""
        self._fetched = {}
        out: list[tuple[datetime, Pending[Handle]]] = []
        for collection in repo.OUTBOX_COLLECTIONS:
            # FerretDB v1 reads every pending document to sort them (2026-12-02: ~20k posts
            # pending took longer than the 5 s socket timeout of requests); a round that timed
            # out drained nothing and left its scan running, so the backlog only grew.
            with pymongo.timeout(FETCH_TIMEOUT_S):
                docs = await repo.find_pending(self.db, collection, limit=limit)
            self._fetched[collection] = docs
            for doc in docs:
                for stored in doc.get("outbox", []):
                    try:
                        envelope = to_envelope(stored)
                    except (ValueError, KeyError, TypeError):
                        # Never written by this code; keep it (and what follows) for a human.
                        log.exception(
                            "outbox relay: unreadable event in %s %s", collection, doc["_id"]
                        )
                        break
                    at = stored["occurred_at"]
                    at = at if at.tzinfo else at.replace(tzinfo=UTC)
                    pending = Pending(
                        topic=self.topic,
                        key=envelope.key.encode(),
                        value=envelope.to_bytes(),
                        occurred_at=at,
                        traceparent=stored.get("traceparent"),
                        group=(collection, doc["_id"]),
                        handle=(collection, doc, stored),
                    )
                    out.append((at, pending))
        # A post's events live in three collections (its own outbox, its comments', its
        # likes'): in time order they reach its partition in the order they were written,
        # as far as one round sees them. Stable: one outbox keeps its own order.
        out.sort(key=lambda item: item[0])
        return [pending for _, pending in out]

    async def clear(self, published: Sequence[Pending[Handle]]) -> None:
        """Settle every document read this round with the events Kafka acknowledged."""
        acked: dict[Any, list[dict[str, Any]]] = {}
        for event in published:
            acked.setdefault(event.group, []).append(event.handle[2])
        fetched, self._fetched = self._fetched, {}
        # Comments and likes first: purging a deleted post removes only its settled comments
        # and likes, so one settled after its post would stay behind for good. (Fetched in the
        # same round as the post's delete, as every earlier write is.)
        order = sorted(fetched, key=lambda collection: collection == repo.POSTS)
        for collection in order:
            docs = fetched[collection]
            settled = [(doc, acked.get((collection, doc["_id"]), [])) for doc in docs]
            if settled:
                await self._settle(collection, settled)
                if collection == repo.REQUEUED:
                    # A requeued event's document has no other content: gone once published.
                    async with self.update_slots:
                        await repo.drop_published(
                            self.db, collection, ids=[doc["_id"] for doc in docs]
                        )

    async def _settle(
        self, collection: str, settled: list[tuple[dict[str, Any], list[dict[str, Any]]]]
    ) -> None:
        """Clear what was published: whole outboxes in one command, the rest one by one."""
        whole = [
            doc
            for doc, acked in settled
            if len(acked) == len(doc.get("outbox", [])) and doc.get("deleted_at") is None
        ]
        leases: dict[str, Lease] = {}
        if collection == repo.POSTS:
            # Requests update posts too: hold their leases (one command for the batch); a post
            # an edit holds right now is settled on its own below, after waiting for it.
            leases = await self.leases.take_many([post_key(doc["_id"]) for doc in whole])
            whole = [doc for doc in whole if post_key(doc["_id"]) in leases]
        # Comments, likes and requeued events are never updated after their insert: the relay
        # is their only writer, so they need no lease.
        whole_ids = {doc["_id"] for doc in whole}
        one_by_one = [(doc, acked) for doc, acked in settled if doc["_id"] not in whole_ids]
        try:
            async with self.update_slots:
                if not all(lease.fresh() for lease in leases.values()):
                    raise LeaseBusyError("the relay held the posts' leases too long")
                changed = set(await repo.mark_published(self.db, collection, docs=whole))
        finally:
            await self.leases.release(list(leases.values()))
        acked_by_id = {doc["_id"]: acked for doc, acked in settled}
        one_by_one += [(doc, acked_by_id[doc["_id"]]) for doc in whole if doc["_id"] in changed]
        for doc, acked in one_by_one:
            await self._settle_one(collection, doc, acked)

    async def _settle_one(
        self, collection: str, doc: dict[str, Any], acked: list[dict[str, Any]]
    ) -> None:
        if collection != repo.POSTS:
            async with self.update_slots:
                await repo.clear_published(self.db, collection, doc_id=doc["_id"], events=acked)
            return
        async with self.leases.hold(post_key(doc["_id"])) as lease:
            async with self.update_slots:
                if not lease.fresh():
                    raise LeaseBusyError(f"the relay held the lease of post {doc['_id']} too long")
                await repo.clear_published(self.db, collection, doc_id=doc["_id"], events=acked)
            if doc.get("deleted_at") is not None:
                await repo.purge_post(self.db, post_id=doc["_id"])
