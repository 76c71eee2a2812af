"""The `graph` projection: users, groups and memberships from Debezium into Neo4j."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

from neo4j import AsyncDriver
from neo4j.exceptions import (
    ClientError,
    CypherSyntaxError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)
from pydantic import BaseModel, ConfigDict, Field

from campus_common import topics
from campus_common.consumer import (
    Delivered,
    PoisonRecordError,
    Projection,
    on_change,
    on_heartbeat,
)
from campus_common.events import ChangeRecord, Heartbeat
from campus_common.web import MAX_ID
from campus_graph import repository as repo

log = logging.getLogger(__name__)

Kind = Literal["user", "group", "membership", "heartbeat"]
PROJECTION = "graph"


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


Id = Field(gt=0, le=MAX_ID)


class UserKey(_Row):
    id: int = Id


class UserRow(UserKey):
    email: str
    full_name: str
    created_at: datetime
    updated_at: datetime


class GroupKey(_Row):
    id: int = Id


class GroupRow(GroupKey):
    name: str
    course_code: str


class MembershipKey(_Row):
    user_id: int = Id
    group_id: int = Id


class MembershipRow(MembershipKey):
    role: str
    joined_at: datetime


# (the model of a delete's key-only row, the model of a full row), by kind.
_MODELS: dict[str, tuple[type[_Row], type[_Row]]] = {
    "user": (UserKey, UserRow),
    "group": (GroupKey, GroupRow),
    "membership": (MembershipKey, MembershipRow),
}


@dataclass(frozen=True, slots=True)
class GraphChange:
    """One decoded CDC change, reduced to what the graph keeps."""

    kind: Kind
    key: tuple[int, ...]
    lsn: int
    deleted: bool
    props: dict[str, Any]


def tombstone_key(kind: str, key: tuple[int, ...]) -> str:
    """The unique key of the tombstone a delete of this entity leaves."""
    return ":".join([kind, *map(str, key)])


def from_heartbeat(beat: Heartbeat) -> GraphChange:
    """One freshness marker per projection, whatever the heartbeat row's id."""
    return GraphChange("heartbeat", (), beat.lsn, False, {"beat_at": beat.beat_at})


def to_change(kind: Kind, change: ChangeRecord) -> GraphChange | None:
    """Validate one Debezium change for `kind`; None when it carries nothing to apply."""
    # A delete's `before` holds only the primary key (replica identity default); one
    # validation gives the key and the columns together.
    model = _MODELS[kind][0 if change.is_delete else 1]
    # Times go to Neo4j as validated ISO-8601 text that Cypher's datetime() parses: packing
    # Python datetimes is the Neo4j driver's most expensive step (pure Python), and the text
    # parses on the server's core instead.
    row = model.model_validate(change.row).model_dump(mode="json")
    key = (row["user_id"], row["group_id"]) if kind == "membership" else (row["id"],)
    props = {} if change.is_delete else row
    lsn = change.position
    return GraphChange(kind, key, lsn, change.is_delete, props)


def latest_per_key(changes: Iterable[GraphChange]) -> list[GraphChange]:
    """Keep only the highest-LSN change per entity (the later one on a tie), in LSN order."""
    latest: dict[tuple[str, tuple[int, ...]], GraphChange] = {}
    for change in changes:
        k = (change.kind, change.key)
        current = latest.get(k)
        if current is None or change.lsn >= current.lsn:
            latest[k] = change
    return sorted(latest.values(), key=lambda c: c.lsn)


def plan_writes(
    changes: Iterable[GraphChange],
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any] | None]:
    """Group reduced changes into UNWIND parameter lists ("kind.op" → rows) plus freshness."""
    writes: dict[str, list[dict[str, Any]]] = {}
    freshness: dict[str, Any] | None = None
    for c in changes:
        if c.kind == "heartbeat":
            if freshness is None or c.lsn >= freshness["lsn"]:
                freshness = {"lsn": c.lsn, **c.props}
            continue
        row: dict[str, Any] = {**c.props, "lsn": c.lsn, "tomb": tombstone_key(c.kind, c.key)}
        if c.kind == "membership":
            row["user_id"], row["group_id"] = c.key
            row["user_tomb"] = tombstone_key("user", c.key[:1])
            row["group_tomb"] = tombstone_key("group", c.key[1:])
        else:
            row["id"] = c.key[0]
        writes.setdefault(f"{c.kind}.{'delete' if c.deleted else 'upsert'}", []).append(row)
    return writes, freshness


def is_data_error(exc: Neo4jError) -> bool:
    """Whether Neo4j refused the data itself (not our query, the server or the credentials)."""
    if isinstance(exc, CypherSyntaxError):
        return False
    code = exc.code or ""
    return code.startswith(("Neo.ClientError.Statement.", "Neo.ClientError.Schema."))


class GraphProjection(Projection[GraphChange]):
    """Debezium changes of users, groups and memberships → Neo4j nodes and MEMBER_OF edges."""

    name = PROJECTION
    routes = {
        topics.USERS: on_change(partial(to_change, "user")),
        topics.GROUPS: on_change(partial(to_change, "group")),
        topics.MEMBERSHIPS: on_change(partial(to_change, "membership")),
        topics.HEARTBEATS: on_heartbeat(from_heartbeat),
    }

    def __init__(self, driver: AsyncDriver) -> None:
        self.driver = driver

    async def apply(self, batch: Sequence[Delivered[GraphChange]]) -> None:
        """Write the batch in one transaction; a redelivered or older change changes nothing."""
        writes, freshness = plan_writes(latest_per_key(d.value for d in batch))
        try:
            await repo.apply_projection(
                self.driver, writes=writes, freshness=freshness, projection=PROJECTION
            )
        except ClientError as exc:
            if is_data_error(exc):
                raise PoisonRecordError(f"{exc.code}: {exc.message}") from exc
            raise

    async def reset(self) -> None:
        """Drop what CDC projected; FRIEND/FOLLOWS edges (Neo4j is their source) stay."""
        for query in (
            "MATCH (g:Group) CALL (g) { DETACH DELETE g } IN TRANSACTIONS OF 5000 ROWS",
            "MATCH (t:Tombstone) CALL (t) { DELETE t } IN TRANSACTIONS OF 5000 ROWS",
            "MATCH (f:Freshness {projection: $p}) DELETE f",
            "MATCH (u:User) CALL (u) { REMOVE u.lsn, u.email, u.full_name, u.created_at,"
            " u.updated_at } IN TRANSACTIONS OF 5000 ROWS",
        ):
            async with self.driver.session() as session:
                await session.run(query, p=PROJECTION)

    def is_transient(self, exc: BaseException) -> bool:
        """Neo4j down or busy means wait; only data Neo4j refuses is poison."""
        if isinstance(exc, ServiceUnavailable | SessionExpired | TransientError | OSError):
            return True
        if isinstance(exc, DriverError | Neo4jError):
            # Anything else from the driver (auth, a query bug): waiting loses nothing,
            # dead-lettering would drop good data until someone replays it.
            return True
        return super().is_transient(exc)
