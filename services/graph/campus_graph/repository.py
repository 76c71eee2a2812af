"""Cypher against Neo4j; the only module that touches it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, LiteralString

from neo4j import AsyncDriver, AsyncManagedTransaction, RoutingControl
from neo4j.time import DateTime

EdgeType = Literal["FRIEND", "FOLLOWS"]

SCHEMA: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT user_id_unique IF NOT EXISTS FOR (u:User) REQUIRE u.id IS UNIQUE",
    "CREATE CONSTRAINT group_id_unique IF NOT EXISTS FOR (g:Group) REQUIRE g.id IS UNIQUE",
    "CREATE CONSTRAINT tombstone_key_unique IF NOT EXISTS "
    "FOR (t:Tombstone) REQUIRE t.key IS UNIQUE",
    "CREATE CONSTRAINT freshness_projection_unique IF NOT EXISTS "
    "FOR (f:Freshness) REQUIRE f.projection IS UNIQUE",
    "CREATE CONSTRAINT outbox_id_unique IF NOT EXISTS FOR (o:Outbox) REQUIRE o.id IS UNIQUE",
    "CREATE INDEX outbox_created_at IF NOT EXISTS FOR (o:Outbox) ON (o.created_at)",
)


def _native(value: Any) -> Any:
    return value.to_native() if isinstance(value, DateTime) else value


def _rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _native(v) for k, v in r.items()} for r in records]


async def ensure_schema(driver: AsyncDriver) -> None:
    """Create the constraints and indexes that do not exist yet (idempotent)."""
    for statement in SCHEMA:
        await driver.execute_query(statement)


async def ping(driver: AsyncDriver) -> None:
    await driver.execute_query("RETURN 1", routing_=RoutingControl.READ)


# --- the CDC projection -------------------------------------------------------------------
# Every write compares LSNs: the node/edge or its tombstone remembers the position of the change
# that last wrote it, and a change older than that is dropped. A missing lsn (a bare node merged
# for an edge before its own change arrived) counts as older than everything.

# MERGE, then the node's own LSN check: one index lookup per row, not a MATCH and a MERGE (a
# node MERGE creates has no lsn yet, so it passes; an existing newer one is left as it is).
UPSERT_USERS: LiteralString = """
UNWIND $rows AS row
OPTIONAL MATCH (t:Tombstone {key: row.tomb})
WITH row, t WHERE coalesce(t.lsn, -1) < row.lsn
MERGE (u:User {id: row.id})
WITH row, t, u WHERE coalesce(u.lsn, -1) <= row.lsn
SET u.email = row.email, u.full_name = row.full_name, u.created_at = datetime(row.created_at),
    u.updated_at = datetime(row.updated_at), u.lsn = row.lsn
WITH t WHERE t IS NOT NULL
DELETE t
"""

UPSERT_GROUPS: LiteralString = """
UNWIND $rows AS row
OPTIONAL MATCH (t:Tombstone {key: row.tomb})
WITH row, t WHERE coalesce(t.lsn, -1) < row.lsn
MERGE (g:Group {id: row.id})
WITH row, t, g WHERE coalesce(g.lsn, -1) <= row.lsn
SET g.name = row.name, g.course_code = row.course_code, g.lsn = row.lsn
WITH t WHERE t IS NOT NULL
DELETE t
"""

# A membership whose user or group was deleted later (their tombstone is newer) is dropped,
# so a late membership change cannot bring a deleted user back as a bare node.
UPSERT_MEMBERSHIPS: LiteralString = """
UNWIND $rows AS row
OPTIONAL MATCH (t:Tombstone {key: row.tomb})
OPTIONAL MATCH (tu:Tombstone {key: row.user_tomb})
OPTIONAL MATCH (tg:Tombstone {key: row.group_tomb})
WITH row, t
WHERE coalesce(t.lsn, -1) < row.lsn
  AND coalesce(tu.lsn, -1) < row.lsn AND coalesce(tg.lsn, -1) < row.lsn
MERGE (u:User {id: row.user_id})
MERGE (g:Group {id: row.group_id})
MERGE (u)-[m:MEMBER_OF]->(g)
WITH row, t, m WHERE coalesce(m.lsn, -1) <= row.lsn
SET m.role = row.role, m.joined_at = datetime(row.joined_at), m.lsn = row.lsn
WITH t WHERE t IS NOT NULL
DELETE t
"""

DELETE_USERS: LiteralString = """
UNWIND $rows AS row
OPTIONAL MATCH (t:Tombstone {key: row.tomb})
OPTIONAL MATCH (u:User {id: row.id})
WITH row, t, u
WHERE coalesce(t.lsn, -1) < row.lsn AND coalesce(u.lsn, -1) <= row.lsn
DETACH DELETE u
MERGE (nt:Tombstone {key: row.tomb})
SET nt.kind = 'user', nt.id = row.id, nt.lsn = row.lsn
"""

DELETE_GROUPS: LiteralString = """
UNWIND $rows AS row
OPTIONAL MATCH (t:Tombstone {key: row.tomb})
OPTIONAL MATCH (g:Group {id: row.id})
WITH row, t, g
WHERE coalesce(t.lsn, -1) < row.lsn AND coalesce(g.lsn, -1) <= row.lsn
DETACH DELETE g
MERGE (nt:Tombstone {key: row.tomb})
SET nt.kind = 'group', nt.id = row.id, nt.lsn = row.lsn
"""

DELETE_MEMBERSHIPS: LiteralString = """
UNWIND $rows AS row
OPTIONAL MATCH (t:Tombstone {key: row.tomb})
OPTIONAL MATCH (:User {id: row.user_id})-[m:MEMBER_OF]->(:Group {id: row.group_id})
WITH row, t, m
WHERE coalesce(t.lsn, -1) < row.lsn AND coalesce(m.lsn, -1) <= row.lsn
DELETE m
MERGE (nt:Tombstone {key: row.tomb})
SET nt.kind = 'membership', nt.user_id = row.user_id, nt.group_id = row.group_id,
    nt.lsn = row.lsn
"""

UPSERT_FRESHNESS: LiteralString = """
MERGE (f:Freshness {projection: $projection})
WITH f WHERE coalesce(f.lsn, -1) <= $lsn
SET f.beat_at = $beat_at, f.applied_at = datetime.realtime(), f.lsn = $lsn
"""

# Upserts before deletes, so a delete later in the same batch wins over an earlier upsert.
PROJECTION_QUERIES: dict[str, LiteralString] = {
    "user.upsert": UPSERT_USERS,
    "group.upsert": UPSERT_GROUPS,
    "membership.upsert": UPSERT_MEMBERSHIPS,
    "membership.delete": DELETE_MEMBERSHIPS,
    "user.delete": DELETE_USERS,
    "group.delete": DELETE_GROUPS,
}


async def apply_projection(
    driver: AsyncDriver,
    *,
    writes: Mapping[str, list[dict[str, Any]]],
    freshness: dict[str, Any] | None,
    projection: str,
) -> None:
    """Apply one batch in one transaction: one UNWIND query per entity kind and operation."""

    async def work(tx: AsyncManagedTransaction) -> None:
        for name, query in PROJECTION_QUERIES.items():
            rows = writes.get(name)
            if rows:
                await (await tx.run(query, rows=rows)).consume()
        if freshness is not None:
            await (await tx.run(UPSERT_FRESHNESS, projection=projection, **freshness)).consume()

    async with driver.session() as session:
        await session.execute_write(work)


# --- edges the graph service owns -----------------------------------------------------------

# Concurrent changes to the same pair queue up on these locks (taken in id order, so two
# requests cannot deadlock); the outbox timestamps taken after them then follow commit order.
_MERGE_USERS: LiteralString = "UNWIND $ids AS id MERGE (:User {id: id})"

_LOCK_USERS: LiteralString = """
MATCH (u:User) WHERE u.id IN $ids
WITH u ORDER BY u.id
SET u._lock = true
REMOVE u._lock
"""

_TOMBSTONED: LiteralString = """
MATCH (t:Tombstone) WHERE t.key IN $keys RETURN t.id AS id
"""

_ADD_FRIEND: LiteralString = """
MATCH (a:User {id: $a}), (b:User {id: $b})
WITH a, b, COUNT { (a)-[:FRIEND]->(b) } + COUNT { (b)-[:FRIEND]->(a) } AS existing
MERGE (a)-[r:FRIEND]->(b) ON CREATE SET r.created_at = datetime.realtime()
MERGE (b)-[s:FRIEND]->(a) ON CREATE SET s.created_at = r.created_at
RETURN existing < 2 AS changed, r.created_at AS created_at
"""

_ADD_FOLLOW: LiteralString = """
MATCH (a:User {id: $a}), (b:User {id: $b})
WITH a, b, COUNT { (a)-[:FOLLOWS]->(b) } AS existing
MERGE (a)-[r:FOLLOWS]->(b) ON CREATE SET r.created_at = datetime.realtime()
RETURN existing = 0 AS changed, r.created_at AS created_at
"""

_REMOVE_FRIEND: LiteralString = """
OPTIONAL MATCH (:User {id: $a})-[r:FRIEND]-(:User {id: $b})
DELETE r
RETURN count(r) > 0 AS changed
"""

_REMOVE_FOLLOW: LiteralString = """
OPTIONAL MATCH (:User {id: $a})-[r:FOLLOWS]->(:User {id: $b})
DELETE r
RETURN count(r) > 0 AS changed
"""

_OUTBOX: LiteralString = """
CREATE (:Outbox {id: $id, topic: $topic, key: $key, value: $value, traceparent: $traceparent,
                 created_at: datetime.realtime()})
"""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: str
    topic: str
    key: str
    value: str
    # The request that queued it: the relay publishes in its name (Kafka headers).
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class EdgeChange:
    changed: bool
    created_at: Any = None


class DeletedUserError(Exception):
    """One of the users was deleted (the projection left a tombstone)."""

    def __init__(self, user_id: int) -> None:
        super().__init__(user_id)
        self.user_id = user_id


async def change_edge(
    driver: AsyncDriver,
    *,
    edge: EdgeType,
    add: bool,
    a: int,
    b: int,
    message: OutboxMessage,
) -> EdgeChange:
    """Add or remove an edge and, only when it changed, queue `message` in the same transaction."""

    async def work(tx: AsyncManagedTransaction) -> EdgeChange:
        if add:
            dead = await (await tx.run(_TOMBSTONED, keys=[f"user:{a}", f"user:{b}"])).data()
            if dead:
                raise DeletedUserError(dead[0]["id"])
            await (await tx.run(_MERGE_USERS, ids=[a, b])).consume()
        await (await tx.run(_LOCK_USERS, ids=[a, b])).consume()
        if add:
            query = _ADD_FRIEND if edge == "FRIEND" else _ADD_FOLLOW
        else:
            query = _REMOVE_FRIEND if edge == "FRIEND" else _REMOVE_FOLLOW
        record = await (await tx.run(query, a=a, b=b)).single(strict=True)
        result = EdgeChange(
            changed=bool(record["changed"]), created_at=_native(record.get("created_at"))
        )
        if result.changed:
            await (
                await tx.run(
                    _OUTBOX,
                    id=message.id,
                    topic=message.topic,
                    key=message.key,
                    value=message.value,
                    traceparent=message.traceparent,
                )
            ).consume()
        return result

    async with driver.session() as session:
        return await session.execute_write(work)


async def pending_outbox(driver: AsyncDriver, *, limit: int) -> list[OutboxMessage]:
    """The oldest queued events, in the order their transactions wrote them."""
    records, _, _ = await driver.execute_query(
        "MATCH (o:Outbox) RETURN o.id AS id, o.topic AS topic, o.key AS key, o.value AS value, "
        "o.traceparent AS traceparent ORDER BY o.created_at, o.id LIMIT $limit",
        limit=limit,
        routing_=RoutingControl.READ,
    )
    return [OutboxMessage(**r.data()) for r in records]


async def delete_outbox(driver: AsyncDriver, *, ids: list[str]) -> None:
    await driver.execute_query("MATCH (o:Outbox) WHERE o.id IN $ids DELETE o", ids=ids)


# --- reads ----------------------------------------------------------------------------------


async def user_in_graph(driver: AsyncDriver, *, user_id: int) -> bool:
    records, _, _ = await driver.execute_query(
        "MATCH (u:User {id: $id}) RETURN u.id AS id", id=user_id, routing_=RoutingControl.READ
    )
    return bool(records)


async def friends(
    driver: AsyncDriver, *, user_id: int, after: int, limit: int
) -> list[dict[str, Any]]:
    records, _, _ = await driver.execute_query(
        """
        MATCH (:User {id: $id})-[r:FRIEND]->(f:User)
        WHERE f.id > $after
        RETURN f.id AS id, f.full_name AS full_name, f.email AS email, r.created_at AS since
        ORDER BY f.id LIMIT $limit
        """,
        id=user_id,
        after=after,
        limit=limit,
        routing_=RoutingControl.READ,
    )
    return _rows(records)


async def relationships(driver: AsyncDriver, *, offset: int, limit: int) -> list[dict[str, Any]]:
    """Friendships once each (lower id first), then follows; stable order for paging."""
    records, _, _ = await driver.execute_query(
        """
        MATCH (a:User)-[r:FRIEND|FOLLOWS]->(b:User)
        WHERE type(r) = 'FOLLOWS' OR a.id < b.id
        RETURN type(r) AS type, a.id AS from_id, a.full_name AS from_name,
               b.id AS to_id, b.full_name AS to_name, r.created_at AS created_at
        ORDER BY type, from_id, to_id SKIP $offset LIMIT $limit
        """,
        offset=offset,
        limit=limit,
        routing_=RoutingControl.READ,
    )
    return _rows(records)


async def graph(
    driver: AsyncDriver, *, limit: int, edge_limit: int
) -> dict[str, list[dict[str, Any]]]:
    """The `limit` best-connected users and groups and the edges among them."""
    records, _, _ = await driver.execute_query(
        """
        MATCH (n) WHERE n:User OR n:Group
        WITH n, COUNT { (n)-[:FRIEND|FOLLOWS|MEMBER_OF]-() } AS degree
        ORDER BY degree DESC, n.id LIMIT $limit
        WITH collect(n) AS picked
        CALL (picked) {
          UNWIND picked AS a
          MATCH (a)-[r:FRIEND|FOLLOWS|MEMBER_OF]->(b)
          WHERE b IN picked AND (type(r) <> 'FRIEND' OR a.id < b.id)
          RETURN collect({source: a, target: b, type: type(r)})[..$edge_limit] AS edges
        }
        RETURN [n IN picked | {
                  kind: CASE WHEN n:User THEN 'user' ELSE 'group' END, entity_id: n.id,
                  label: coalesce(n.full_name, n.name)}] AS nodes,
               [e IN edges | {
                  source: CASE WHEN e.source:User THEN 'user:' ELSE 'group:' END
                          + toString(e.source.id),
                  target: CASE WHEN e.target:User THEN 'user:' ELSE 'group:' END
                          + toString(e.target.id),
                  type: e.type}] AS edges
        """,
        limit=limit,
        edge_limit=edge_limit,
        routing_=RoutingControl.READ,
    )
    record = records[0]
    return {"nodes": record["nodes"], "edges": record["edges"]}


# Both signals for every candidate, so each strategy only changes the ranking. My friends are
# collected once so "not already a friend" is a list test, not a pattern match per candidate
# (bench/friends.py measures both forms; they were within 10 % of each other in the full run).
_FRIEND_CANDIDATES: LiteralString = """
MATCH (me:User {id: $id})
OPTIONAL MATCH (me)-[:FRIEND]->(friend:User)
WITH me, collect(friend) AS friends
CALL (me, friends) {
  UNWIND friends AS f
  MATCH (f)-[:FRIEND]->(c:User)
  WHERE c <> me AND NOT c IN friends
  RETURN c, count(DISTINCT f) AS mutual, 0 AS common
  UNION ALL
  MATCH (me)-[:MEMBER_OF]->(g:Group)<-[:MEMBER_OF]-(c:User)
  WHERE c <> me AND NOT c IN friends
  RETURN c, 0 AS mutual, count(DISTINCT g) AS common
}
WITH c, sum(mutual) AS mutual, sum(common) AS common
WITH c, mutual, common,
     CASE $strategy WHEN 'mutual' THEN mutual WHEN 'groups' THEN common
                    ELSE 2 * mutual + common END AS score
WHERE score > 0
RETURN c.id AS id, c.full_name AS full_name, mutual AS mutual_friends,
       common AS common_groups, score
ORDER BY score DESC, id LIMIT $limit
"""


async def recommend_friends(
    driver: AsyncDriver, *, user_id: int, strategy: str, limit: int
) -> list[dict[str, Any]]:
    records, _, _ = await driver.execute_query(
        _FRIEND_CANDIDATES,
        id=user_id,
        strategy=strategy,
        limit=limit,
        routing_=RoutingControl.READ,
    )
    return _rows(records)


async def recommend_groups(
    driver: AsyncDriver, *, user_id: int, limit: int
) -> list[dict[str, Any]]:
    records, _, _ = await driver.execute_query(
        """
        MATCH (me:User {id: $id})-[:FRIEND]->(f:User)-[:MEMBER_OF]->(g:Group)
        WHERE NOT (me)-[:MEMBER_OF]->(g)
        WITH g, count(DISTINCT f) AS friends
        RETURN g.id AS id, g.name AS name, g.course_code AS course_code,
               friends AS friends_in_group
        ORDER BY friends_in_group DESC, id LIMIT $limit
        """,
        id=user_id,
        limit=limit,
        routing_=RoutingControl.READ,
    )
    return _rows(records)
