"""The `timeseries` projection: every CDC change and domain event becomes one row of `events`.

Exactly one row per source event rests on a dedupe key that is the same however often, and by
whichever path, the event arrives (`ON CONFLICT DO NOTHING` on (dedupe_key, time)):
- domain events: the envelope id, with `occurred_at` as the time; a relay that republishes
  after a crash sends the same id.
- CDC creates (`c`) and snapshot reads (`r`): `cdc:<table>:created:<pk>` at the row's own
  `created_at`/`joined_at`. A connector re-snapshot re-reads every row with a new LSN and a new
  `ts_ms`, so neither may be in the key: the row's identity and creation time are what stay.
  A membership left and joined again has a new `joined_at`, hence a new row.
- CDC updates and deletes: `cdc:<table>:<updated|deleted>:<lsn>:<pk>` at the commit time. A
  redelivery (consumer crash, connector restart from the slot) carries the same LSN and commit
  time; a re-snapshot does not replay them, so they cannot come back under another key.
Heartbeats are not events: the newest one applied goes to `projection_freshness`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
import psycopg
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from campus_common import topics
from campus_common.consumer import Delivered, Projection, on_change, on_event, on_heartbeat
from campus_common.events import ChangeRecord, Event, Heartbeat
from campus_common.telemetry import TRACE_COLUMN
from campus_timeseries import repository as repo
from campus_timeseries.repository import EventRow

ROWS = Counter(
    "campus_timeseries_rows_total", "Events offered to the store, by outcome", ["outcome"]
)
BIGINT_MAX = 2**63 - 1


Decoded = EventRow | Heartbeat


@dataclass(frozen=True, slots=True)
class CdcTable:
    table: str
    entity: str
    pk: tuple[str, ...]
    actor: str | None  # the column holding the user the change is about
    created: str  # the column holding the row's creation time


CDC_TABLES = {
    topics.USERS: CdcTable("users", "user", ("id",), "id", "created_at"),
    topics.GROUPS: CdcTable("groups", "group", ("id",), None, "created_at"),
    topics.MEMBERSHIPS: CdcTable(
        "group_memberships", "membership", ("user_id", "group_id"), "user_id", "joined_at"
    ),
}
_VERB = {"c": "created", "r": "created", "u": "updated", "d": "deleted"}


def sanitize(value: Any) -> Any:
    """Drop every field named like password*; strip NUL characters PostgreSQL cannot store."""
    if isinstance(value, dict):
        return {
            sanitize(k): sanitize(v) for k, v in value.items() if "password" not in str(k).lower()
        }
    if isinstance(value, list):
        return [sanitize(v) for v in value]
    if isinstance(value, str):
        return value.replace("\x00", "")
    return value


def clean(properties: dict[str, Any]) -> dict[str, Any]:
    """sanitize(), skipped when the serialized form shows nothing to remove (the common case)."""
    raw = orjson.dumps(properties)
    if b"\\u0000" in raw or b"password" in raw.lower():
        cleaned: dict[str, Any] = sanitize(properties)
        return cleaned
    return properties


def parse_time(value: Any) -> datetime:
    """A Debezium temporal value: ISO-8601 text (timestamptz) or epoch microseconds."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        parsed = datetime.fromtimestamp(value / 1_000_000, tz=UTC)
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _user_id(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= BIGINT_MAX:
        raise ValueError(f"user id out of range: {value!r}")
    return value


def from_change(topic: str, change: ChangeRecord) -> EventRow | None:
    """Map a Debezium change of a captured table to a row; None for what is not an event."""
    if change.op not in _VERB:
        return None  # truncate and logical-decoding messages carry no row
    table = CDC_TABLES.get(topic)
    if table is None:
        raise ValueError(f"no CDC mapping for topic {topic}")
    row = change.row
    pk = ":".join(str(row[c]) for c in table.pk)
    verb = _VERB[change.op]
    if verb == "created":
        time = parse_time(row[table.created])
        key = f"cdc:{table.table}:created:{pk}"
    else:
        time = change.committed_at
        key = f"cdc:{table.table}:{verb}:{change.position}:{pk}"
    # A delete's old row holds only the key (replica identity default); Debezium fills the
    # other columns with placeholders ('' and 1970), which are not facts worth storing.
    # The trace context is for the projections' spans, not a fact about the entity.
    props = (
        {c: row[c] for c in table.pk}
        if verb == "deleted"
        else {k: v for k, v in row.items() if k != TRACE_COLUMN}
    )
    return EventRow(
        time=time,
        user_id=_user_id(row.get(table.actor)) if table.actor else None,
        event_type=f"{table.entity}.{verb}",
        properties=clean(props),
        source=f"cdc:{table.table}",
        dedupe_key=key,
    )


def from_event(event: Event) -> EventRow:
    """Map a domain event envelope to a row."""
    if not event.type.strip():
        raise ValueError("event without a type")
    occurred = event.occurred_at
    return EventRow(
        time=occurred if occurred.tzinfo else occurred.replace(tzinfo=UTC),
        user_id=_user_id(event.user_id),
        event_type=event.type.replace("\x00", ""),
        properties=clean(event.payload),
        source=event.source.replace("\x00", ""),
        dedupe_key=str(event.id),
    )


class TimeseriesProjection(Projection[Decoded]):
    """Appends every event to `events`, once."""

    name = "timeseries"
    routes = {
        **{topic: on_change(partial(from_change, topic)) for topic in CDC_TABLES},
        topics.HEARTBEATS: on_heartbeat(lambda beat: beat),
        **{topic: on_event(from_event) for topic in topics.DOMAIN_TOPICS},
    }

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def apply(self, batch: Sequence[Delivered[Decoded]]) -> None:
        rows = [d.value for d in batch if isinstance(d.value, EventRow)]
        beats = [d.value.beat_at for d in batch if isinstance(d.value, Heartbeat)]
        async with self.pool.connection() as conn:  # one transaction, committed on exit
            inserted = await repo.insert_events(conn, rows=rows) if rows else 0
            if beats:
                await repo.record_heartbeat(conn, projection=self.name, beat_at=max(beats))
        ROWS.labels("inserted").inc(inserted)
        ROWS.labels("duplicate").inc(len(rows) - inserted)

    async def reset(self) -> None:
        """Empty the table (every row is replayable from Kafka) and the rollups."""
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM events")
            await conn.execute(
                "DELETE FROM projection_freshness WHERE projection = %s", (self.name,)
            )
        async with self.pool.connection() as conn:
            await conn.execute("SELECT refresh_rollups()")

    def is_transient(self, exc: BaseException) -> bool:
        # Bad values and constraint violations repeat forever: dead-letter them. Anything
        # else from the store (connection lost, missing grant, pool timeout) is worth a retry.
        if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
            return False
        return bool(super().is_transient(exc))
