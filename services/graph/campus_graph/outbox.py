"""The graph service's outbox relay: `(:Outbox)` nodes written in the edge's own transaction.

The lifecycle, backoff and metrics are `campus_common.relay`'s; this module says how queued
events are read (in the order their transactions wrote them) and deleted once Kafka has them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

import orjson
from neo4j import AsyncDriver

from campus_common import topics
from campus_common.config import KafkaConfig
from campus_common.relay import OutboxRelay as RelayBase
from campus_common.relay import Pending
from campus_graph import repository as repo


def _occurred_at(value: str) -> datetime | None:
    # Only for the delay metric: an envelope without a readable time is still published.
    with contextlib.suppress(Exception):
        return datetime.fromisoformat(orjson.loads(value)["occurred_at"])
    return None


class OutboxRelay(RelayBase[str]):
    """Publishes `(:Outbox)` nodes in order and deletes each after its ack."""

    service = "graph"
    topics = (topics.GRAPH_EVENTS,)

    def __init__(
        self, *, driver: AsyncDriver, kafka: KafkaConfig, poll_s: float, batch: int
    ) -> None:
        super().__init__(kafka=kafka, batch_size=batch, idle_s=poll_s)
        self.driver = driver

    async def fetch_pending(self, *, limit: int) -> list[Pending[str]]:
        """The oldest queued events; the events of one key stay in order (one partition)."""
        return [
            Pending(
                topic=m.topic,
                key=m.key.encode(),
                value=m.value.encode(),
                occurred_at=_occurred_at(m.value),
                traceparent=m.traceparent,
                group=m.key,
                handle=m.id,
            )
            for m in await repo.pending_outbox(self.driver, limit=limit)
        ]

    async def clear(self, published: Sequence[Pending[str]]) -> None:
        """Delete the nodes Kafka acknowledged."""
        if published:
            await repo.delete_outbox(self.driver, ids=[p.handle for p in published])
