"""The documents service's outbox relay: events wait inside the documents they describe.

The lifecycle, backoff and metrics are `campus_common.relay`'s; this module says how pending
events are found (documents flagged `pending`, their `outbox` arrays in order) and how exactly
the published ones are cleared, under the post locks requests also take.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from campus_common import topics
from campus_common.config import KafkaConfig
from campus_common.relay import OutboxRelay as RelayBase
from campus_common.relay import Pending
from campus_documents import repository as repo
from campus_documents.locks import UPDATE_SLOTS, KeyedLocks
from campus_documents.outbox import to_envelope

log = logging.getLogger(__name__)

# What clearing one event needs: its collection, its document, the event as stored.
Handle = tuple[str, dict[str, Any], dict[str, Any]]


class OutboxRelay(RelayBase[Handle]):
    """Publishes the events of pending posts and comments, then pulls exactly those."""

    service = "documents"

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
        super().__init__(kafka=kafka, batch_size=batch_size, idle_s=idle_s)
        self.db = db
        self.locks = locks
        self.update_slots = update_slots or asyncio.Semaphore(UPDATE_SLOTS)
        self.topic = topic
        self.topics = (topic,)
        # The documents read this round, by collection: each is settled, published or not.
        self._fetched: dict[str, list[dict[str, Any]]] = {}

    async def fetch_pending(self, *, limit: int) -> list[Pending[Handle]]:
        """Every event of up to `limit` pending documents per collection, in outbox order."""
        self._fetched = {}
        out: list[Pending[Handle]] = []
        for collection in repo.OUTBOX_COLLECTIONS:
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
                    out.append(
                        Pending(
                            topic=self.topic,
                            key=envelope.key.encode(),
                            value=envelope.to_bytes(),
                            occurred_at=at if at.tzinfo else at.replace(tzinfo=UTC),
                            traceparent=stored.get("traceparent"),
                            group=(collection, doc["_id"]),
                            handle=(collection, doc, stored),
                        )
                    )
        return out

    async def clear(self, published: Sequence[Pending[Handle]]) -> None:
        """Settle every document read this round with the events Kafka acknowledged."""
        acked: dict[Any, list[dict[str, Any]]] = {}
        for event in published:
            acked.setdefault(event.group, []).append(event.handle[2])
        fetched, self._fetched = self._fetched, {}
        for collection, docs in fetched.items():
            settled = [(doc, acked.get((collection, doc["_id"]), [])) for doc in docs]
            if settled:
                await self._settle(collection, settled)

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
