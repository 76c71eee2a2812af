"""`campus reconcile`: derive every projected fact from its source and compare it with the store.

Sources: PostgreSQL (users, groups, memberships), the Kafka topics the projections consume (the
CDC topics and the two domain-event topics, read from offset 0) and the documents database.
Each store's content is recomputed from them, independently of the projection code, and every
difference lands in one of four categories:
- `missing`: a fact the source implies that the store lacks (or a score lower than derived);
- `extra`: a fact the store holds that no source implies;
- `duplicated`: one source fact applied more than once (two rows with one dedupe key, two edges
  for one friendship, a leaderboard score or hot-post score above what the events add up to);
- `stale`: the store holds an older value or an older WAL position than the source.

Checked:
- neo4j: users, groups, memberships against PostgreSQL (values and WAL position); FRIEND and
  FOLLOWS edges against the graph service's own event log (`campus.graph.events`), both
  directions, no duplicates;
- redis: cached profiles against PostgreSQL; `leaderboard:points`, `hot:posts` and every
  `recent:group:*` list recomputed from the event log, each event counted once;
- timeseries: one row per CDC change (create, update, delete) and per domain event, by its
  dedupe key;
- documents: every post, comment and like in the documents database has exactly one event on
  `campus.documents.events` (one event id; a republish of the same id is counted as a note).

The log is folded record by record as it is read (`Log`), and the time-series store's expected
rows are spooled into that store and compared there (`RowSpool`), so memory grows with the facts,
not with the length of the log.

Records a projection dead-lettered (and that were not replayed) are left out of what that
projection is expected to hold. Run it once the projections have caught up (lag 0): facts in
flight show up as missing. `--repair` rewrites each reported fact from its source (a lost
documents event is queued again for the documents relay, see `_repair_documents`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from pymongo import AsyncMongoClient
from redis.asyncio.cluster import RedisCluster

from campus_cli.stores import StoreSettings
from campus_common import topics
from campus_common.events import ChangeRecord, Event
from campus_common.kafka import ensure_topics, topic_partitions

CATEGORIES = ("missing", "extra", "duplicated", "stale")
PROJECTIONS = ("graph", "cache", "timeseries")

# The cache projection's points and hot-post boosts (services/gateway/.../projection.py), spelled
# again on purpose: the reconcile must not share the code it checks.
POINTS = {"join": 5, "post": 10, "comment": 2, "like_received": 1, "friend": 1, "follower": 1}
HOT_BOOST_S = {"comment": 3600, "like": 600}
LEADERBOARD = "leaderboard:points"
HOT_POSTS = "hot:posts"
CDC_TABLES = {topics.USERS: "users", topics.GROUPS: "groups", topics.MEMBERSHIPS: "memberships"}
TOLERANCE = 1e-3


@dataclass
class Drift:
    """What one store gets wrong; each item is (kind, key)."""

    store: str
    checked: int = 0
    missing: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    duplicated: list[Any] = field(default_factory=list)
    stale: list[Any] = field(default_factory=list)
    repaired: int = 0
    # Informational counts that are not drift (republished ids, events still pending, ...).
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.duplicated or self.stale)

    def as_json(self) -> dict[str, Any]:
        """Counts per category and per kind of fact, for `--json`, tests and the dashboard."""
        out: dict[str, Any] = {"store": self.store, "checked": self.checked}
        for cat in CATEGORIES:
            items = getattr(self, cat)
            out[cat] = len(items)
            out[f"{cat}_by_kind"] = dict(Counter(str(i[0]) for i in items))
            out[f"{cat}_sample"] = [str(i) for i in items[:5]]
        out["repaired"] = self.repaired
        out["notes"] = self.notes
        out["clean"] = self.clean
        return out


# --- sources -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    topic: str
    partition: int
    offset: int
    record: ChangeRecord


@dataclass(frozen=True, slots=True)
class Published:
    topic: str
    partition: int
    offset: int
    event: Event


Where = tuple[str, int, int]  # (topic, partition, offset) of one record


@dataclass
class Source:
    users: dict[int, str]
    groups: dict[int, str]
    memberships: dict[tuple[int, int], str]
    position: int


async def stream_topics(
    s: StoreSettings, names: Iterable[str]
) -> AsyncGenerator[list[ConsumerRecord[Any, Any]]]:
    """Every record now in these topics, from offset 0 to the end offsets read at the start, one
    fetched batch at a time (each partition in offset order); nothing is kept between batches."""
    names = list(names)
    await ensure_topics(s.kafka, names)
    parts = await topic_partitions(s.kafka, names)
    if not parts:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        todo = {tp for tp in parts if ends[tp] > starts[tp]}
        # Explicit offsets, not seek_to_beginning(): that one only marks the partition for a
        # reset, and position() on a partition not fetched yet could then resolve it to the end
        # (the "latest" default), ending its read before one record was read.
        for tp in parts:
            consumer.seek(tp, starts[tp])
        idle = 0
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                yield [r for r in records if r.offset < ends[tp]]
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
            # A read that stalls must fail, not end early: a partial log reads as "missing"
            # facts, and --repair would then publish them a second time.
            idle = 0 if any(batch.values()) else idle + 1
            if idle >= 30:
                stuck = {f"{tp.topic}[{tp.partition}]": ends[tp] for tp in todo}
                raise TimeoutError(f"topic read stalled before the end offsets {stuck}")
    finally:
        await consumer.stop()


async def _dead_letters(s: StoreSettings) -> dict[str, set[Where]]:
    from campus_cli import dlq

    out: dict[str, set[Where]] = {}
    for projection in PROJECTIONS:
        out[projection] = {
            (d.original_topic, d.original_partition, d.original_offset)
            for d in await dlq.list_letters(projection)
            if not d.replayed
        }
    return out


async def read_log(s: StoreSettings, *, timeseries: bool = False) -> Log:
    """The CDC and domain topics, folded as they are read; unparseable records (poison) are
    counted, not used. With `timeseries`, the rows that store must hold are spooled into it
    (`RowSpool`; close it with `log.close()`)."""
    log = Log(dead=await _dead_letters(s))
    if timeseries:
        log.rows = await RowSpool.open(s)
    try:
        async with aclosing(stream_topics(s, [*CDC_TABLES, *topics.DOMAIN_TOPICS])) as batches:
            async for batch in batches:
                for rec in batch:
                    await log.add(rec)
        if log.rows is not None:
            await log.rows.done()
    except BaseException:
        await log.close()
        raise
    return log


async def read_source(s: StoreSettings) -> Source:
    conn = await asyncpg.connect(s.users_dsn())
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            # Read before the snapshot's rows: every change visible below is at or before it.
            position = int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
            users = {
                r["id"]: r["full_name"] for r in await conn.fetch("SELECT id, full_name FROM users")
            }
            groups = {r["id"]: r["name"] for r in await conn.fetch("SELECT id, name FROM groups")}
            members = {
                (r["user_id"], r["group_id"]): r["role"]
                for r in await conn.fetch("SELECT user_id, group_id, role FROM group_memberships")
            }
        return Source(users, groups, members, position)
    finally:
        await conn.close()


@dataclass
class Log:
    """What the topics the projections consume imply, folded record by record as they are read.

    No record is kept once folded, so memory grows with the facts (live rows, edges, scores,
    documents), not with the length of the log: a log of millions of changes to rows long deleted
    costs little. The time-series store's rows, one per record, go into that store (`RowSpool`).
    Each partition is folded in offset order, the only order the projections rely on (the facts
    about one row, pair or post share a key, hence a partition).
    """

    # Records each projection dead-lettered and never replayed: left out of what it must hold.
    dead: dict[str, set[Where]] = field(default_factory=dict)
    unparseable: int = 0
    records: int = 0  # read, and their values' size in bytes
    bytes: int = 0
    # Graph: the WAL position of the newest change of every live row, by (table, key).
    positions: dict[tuple[str, tuple[int, ...]], int] = field(default_factory=dict)
    # Graph: the last friend/follow event of every pair (True: added), each event id once.
    friends: dict[tuple[int, int], bool] = field(default_factory=dict)
    follows: dict[tuple[int, int], bool] = field(default_factory=dict)
    graph_ids: set[str] = field(default_factory=set)
    cache: Derived = field(default_factory=lambda: Derived())
    documents: DocumentFacts = field(default_factory=lambda: DocumentFacts())
    rows: RowSpool | None = None

    def live(self, projection: str, where: Where) -> bool:
        return where not in self.dead.get(projection, ())

    async def add(self, rec: ConsumerRecord[Any, Any]) -> None:
        """Fold one record into every projection's expectations."""
        if rec.value is None:
            return
        self.records += 1
        self.bytes += len(rec.value)
        where = (rec.topic, rec.partition, rec.offset)
        item: Change | Published
        try:
            if rec.topic in CDC_TABLES:
                change = ChangeRecord.from_bytes(rec.value)
                if change.op not in ("c", "r", "u", "d"):
                    return
                item = Change(*where, change)
                key = change_key(item)
                if self.live("graph", where):
                    self._position(item)
                if self.live("cache", where):
                    self.cache.add_change(item)
            else:
                item = Published(*where, Event.from_bytes(rec.value))
                if rec.topic == topics.DOCUMENT_EVENTS:
                    self.documents.add(item.event)
                else:
                    self._edge(item.event)
                if self.live("cache", where):
                    self.cache.add_event(item.event)
                key = str(item.event.id)
        except ValueError:
            self.unparseable += 1
            return
        if self.rows is not None and self.live("timeseries", where):
            await self.rows.add((key, row_time(item)), item)

    def _position(self, c: Change) -> None:
        key = (CDC_TABLES[c.topic], _pk(c.topic, c.record.row))
        if c.record.op == "d":
            # A row deleted in the source must be gone from the store (checked as `extra`), so
            # its position is no longer needed; only live rows are remembered.
            self.positions.pop(key, None)
        elif c.record.source.lsn is not None:
            self.positions[key] = max(self.positions.get(key, -1), c.record.source.lsn)

    def _edge(self, e: Event) -> None:
        if str(e.id) in self.graph_ids:
            return  # a relay republish: the same fact, once
        self.graph_ids.add(str(e.id))
        p = e.payload
        if e.type in ("friend.added", "friend.removed"):
            a, b = int(p["user_id"]), int(p["other_id"])
            self.friends[(min(a, b), max(a, b))] = e.type == "friend.added"
        elif e.type in ("follow.added", "follow.removed"):
            self.follows[(int(p["follower_id"]), int(p["followee_id"]))] = e.type == "follow.added"

    async def close(self) -> None:
        if self.rows is not None:
            await self.rows.close()
            self.rows = None


def _pk(topic: str, row: dict[str, Any]) -> tuple[int, ...]:
    if topic == topics.MEMBERSHIPS:
        return (int(row["user_id"]), int(row["group_id"]))
    return (int(row["id"]),)


def compare(
    drift: Drift, kind: str, want: dict[Any, Any], have: dict[Any, Any], counts: dict[Any, int]
) -> None:
    """Fill the categories for one kind of fact (`counts`: how often the store holds each)."""
    drift.checked += len(want)
    drift.missing += [(kind, k) for k in want if k not in have]
    drift.extra += [(kind, k) for k in have if k not in want]
    drift.stale += [(kind, k) for k in want if k in have and have[k] != want[k]]
    drift.duplicated += [(kind, k) for k, n in counts.items() if n > 1]


# --- neo4j -------------------------------------------------------------------------------------


def live_edges(
    log: Log, users: dict[int, str]
) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """FRIEND (both directions) and FOLLOWS edges the graph event log implies, by last event.

    Edges of a deleted user go with the user's node (no event), so they are left out.
    """
    alive = set(users)
    friend_edges = {
        edge
        for (a, b), on in log.friends.items()
        if on and a in alive and b in alive
        for edge in ((a, b), (b, a))
    }
    follow_edges = {k for k, on in log.follows.items() if on and k[0] in alive and k[1] in alive}
    return friend_edges, follow_edges


async def check_neo4j(s: StoreSettings, src: Source, log: Log, *, repair: bool) -> Drift:
    drift = Drift("neo4j")
    positions = log.positions
    friend_want, follow_want = live_edges(log, src.users)
    async with s.neo4j() as d:
        recs, _, _ = await d.execute_query(
            "MATCH (u:User) WHERE u.lsn IS NOT NULL "
            "RETURN u.id AS id, u.full_name AS v, u.lsn AS lsn"
        )
        users = {r["id"]: r["v"] for r in recs}
        lsns: dict[tuple[str, tuple[int, ...]], int] = {
            ("users", (r["id"],)): r["lsn"] for r in recs
        }
        recs, _, _ = await d.execute_query(
            "MATCH (g:Group) WHERE g.lsn IS NOT NULL RETURN g.id AS id, g.name AS v, g.lsn AS lsn"
        )
        groups = {r["id"]: r["v"] for r in recs}
        lsns |= {("groups", (r["id"],)): r["lsn"] for r in recs}
        recs, _, _ = await d.execute_query(
            "MATCH (u:User)-[m:MEMBER_OF]->(g:Group) "
            "RETURN u.id AS u, g.id AS g, m.role AS v, m.lsn AS lsn"
        )
        members = {(r["u"], r["g"]): r["v"] for r in recs}
        member_counts = Counter((r["u"], r["g"]) for r in recs)
        lsns |= {("memberships", (r["u"], r["g"])): r["lsn"] for r in recs}
        edges: dict[str, Counter[tuple[int, int]]] = {}
        for rel in ("FRIEND", "FOLLOWS"):
            recs, _, _ = await d.execute_query(
                f"MATCH (a:User)-[:{rel}]->(b:User) RETURN a.id AS a, b.id AS b, count(*) AS n"
            )
            edges[rel] = Counter({(r["a"], r["b"]): r["n"] for r in recs})

        compare(drift, "user", src.users, users, {})
        compare(drift, "group", src.groups, groups, {})
        compare(drift, "membership", src.memberships, members, member_counts)
        for (table, key), lsn in positions.items():
            have = lsns.get((table, key))
            kind = {"users": "user", "groups": "group", "memberships": "membership"}[table]
            k: Any = key if table == "memberships" else key[0]
            if have is not None and have < lsn and (kind, k) not in drift.stale:
                drift.stale.append((kind, k))
        for kind, rel, want in (
            ("friend", "FRIEND", friend_want),
            ("follow", "FOLLOWS", follow_want),
        ):
            have_edges = edges[rel]
            drift.checked += len(want)
            drift.missing += [(kind, e) for e in sorted(want) if e not in have_edges]
            drift.extra += [(kind, e) for e in sorted(have_edges) if e not in want]
            drift.duplicated += [(kind, e) for e, n in sorted(have_edges.items()) if n > 1]
        if repair and not drift.clean:
            drift.repaired = await _repair_neo4j(d, src, drift)
    return drift


async def _repair_neo4j(d: Any, src: Source, drift: Drift) -> int:
    # Rewritten at the current WAL position, so any later change still wins over the repair.
    pos = src.position
    fix = {
        kind: [k for kn, k in drift.missing + drift.stale if kn == kind]
        for kind in ("user", "group", "membership", "friend", "follow")
    }
    await d.execute_query(
        "UNWIND $rows AS r MERGE (u:User {id: r.id}) SET u.full_name = r.name, u.lsn = $pos",
        rows=[{"id": k, "name": src.users[k]} for k in fix["user"]],
        pos=pos,
    )
    await d.execute_query(
        "UNWIND $rows AS r MERGE (g:Group {id: r.id}) SET g.name = r.name, g.lsn = $pos",
        rows=[{"id": k, "name": src.groups[k]} for k in fix["group"]],
        pos=pos,
    )
    await d.execute_query(
        """UNWIND $rows AS r MATCH (u:User {id: r.u}), (g:Group {id: r.g})
           MERGE (u)-[m:MEMBER_OF]->(g) SET m.role = r.role, m.lsn = $pos""",
        rows=[{"u": u, "g": g, "role": src.memberships[(u, g)]} for u, g in fix["membership"]],
        pos=pos,
    )
    for kind, rel in (("friend", "FRIEND"), ("follow", "FOLLOWS")):
        await d.execute_query(
            f"""UNWIND $rows AS r MATCH (a:User {{id: r.a}}), (b:User {{id: r.b}})
                MERGE (a)-[e:{rel}]->(b) ON CREATE SET e.created_at = datetime.realtime()""",
            rows=[{"a": a, "b": b} for a, b in fix[kind]],
        )
    for kind, key in drift.duplicated:
        rel = {"friend": "FRIEND", "follow": "FOLLOWS", "membership": "MEMBER_OF"}[kind]
        label = "Group" if kind == "membership" else "User"
        # Keep the oldest copy of the edge, drop the rest.
        await d.execute_query(
            f"""MATCH (:User {{id: $a}})-[e:{rel}]->(:{label} {{id: $b}})
                WITH e ORDER BY elementId(e) WITH collect(e) AS es
                UNWIND es[1..] AS dup DELETE dup""",
            a=key[0],
            b=key[1],
        )
    for kind, k in drift.extra:
        if kind in ("friend", "follow"):
            rel = "FRIEND" if kind == "friend" else "FOLLOWS"
            await d.execute_query(
                f"MATCH (:User {{id: $a}})-[e:{rel}]->(:User {{id: $b}}) DELETE e", a=k[0], b=k[1]
            )
            continue
        if kind == "membership":
            await d.execute_query(
                "MATCH (:User {id: $u})-[m:MEMBER_OF]->(:Group {id: $g}) DELETE m", u=k[0], g=k[1]
            )
            key = f"membership:{k[0]}:{k[1]}"
        else:
            label = "User" if kind == "user" else "Group"
            await d.execute_query(f"MATCH (n:{label} {{id: $id}}) DETACH DELETE n", id=k)
            key = f"{kind}:{k}"
        # The tombstone keeps an older change from bringing it back on replay.
        await d.execute_query("MERGE (t:Tombstone {key: $key}) SET t.lsn = $pos", key=key, pos=pos)
    return sum(len(v) for v in fix.values()) + len(drift.duplicated) + len(drift.extra)


# --- redis -------------------------------------------------------------------------------------


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _canon(entry: dict[str, Any]) -> str:
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode()


@dataclass
class Derived:
    """What the cache projection must have built from the log, folded one record at a time."""

    points: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    hot: dict[str, float] = field(default_factory=dict)
    activity: dict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    # Each join and each event counted once (a relay republish repeats an event id).
    once: set[str] = field(default_factory=set)

    def _first(self, key: str) -> bool:
        if key in self.once:
            return False
        self.once.add(key)
        return True

    def _activity(self, group_id: Any, entry: dict[str, Any]) -> None:
        if group_id is not None:
            self.activity[int(group_id)][_canon(entry)] += 1

    def add_change(self, c: Change) -> None:
        """Leaderboard points and group activity of one membership change."""
        if c.topic != topics.MEMBERSHIPS:
            return
        row, lsn = c.record.row, c.record.position
        u, g = int(row["user_id"]), int(row["group_id"])
        if c.record.op in ("c", "r"):
            joined_at = row.get("joined_at") or str(lsn)
            if self._first(f"join:{u}:{g}:{joined_at}"):
                self.points[u] += POINTS["join"]
                self._activity(
                    g, {"type": "join", "user_id": u, "role": row.get("role"), "at": joined_at}
                )
        elif c.record.op == "d" and self._first(f"leave:{u}:{g}:{lsn}"):
            at = _iso(c.record.committed_at)
            self._activity(g, {"type": "leave", "user_id": u, "at": at})

    def add_event(self, e: Event) -> None:
        """Leaderboard points, hot-post scores and group activity of one domain event."""
        if not self._first(str(e.id)):
            return
        p, at = e.payload, _iso(e.occurred_at)
        match e.type:
            case "post.created":
                post = str(p["post_id"])
                self.points[int(p["author_id"])] += POINTS["post"]
                self.hot.setdefault(post, e.occurred_at.timestamp())
                self._activity(
                    p.get("group_id"),
                    {
                        "type": "post",
                        "user_id": int(p["author_id"]),
                        "post_id": post,
                        "title": p.get("title"),
                        "at": at,
                    },
                )
            case "post.deleted":
                self.points[int(p["author_id"])] -= POINTS["post"]
                self.hot.pop(str(p["post_id"]), None)
            case "comment.created":
                post = str(p["post_id"])
                self.points[int(p["author_id"])] += POINTS["comment"]
                if post in self.hot:
                    self.hot[post] += HOT_BOOST_S["comment"]
                self._activity(
                    p.get("group_id"),
                    {"type": "comment", "user_id": int(p["author_id"]), "post_id": post, "at": at},
                )
            case "post.liked":
                post = str(p["post_id"])
                self.points[int(p["author_id"])] += POINTS["like_received"]
                if post in self.hot:
                    self.hot[post] += HOT_BOOST_S["like"]
                self._activity(
                    p.get("group_id"),
                    {"type": "like", "user_id": int(p["user_id"]), "post_id": post, "at": at},
                )
            case "friend.added" | "friend.removed":
                delta = POINTS["friend"] * (1 if e.type == "friend.added" else -1)
                self.points[int(p["user_id"])] += delta
                self.points[int(p["other_id"])] += delta
            case "follow.added" | "follow.removed":
                delta = POINTS["follower"] * (1 if e.type == "follow.added" else -1)
                self.points[int(p["followee_id"])] += delta


async def check_redis(s: StoreSettings, src: Source, log: Log, *, repair: bool) -> Drift:
    drift = Drift("redis")
    want = log.cache
    r = s.redis()
    try:
        await _check_profiles(r, src, drift)
        # Leaderboard: a deleted user's row leaves the ranking, so only live users are compared.
        board = {int(m): sc for m, sc in (await _zset(r, LEADERBOARD)).items()}
        for uid in sorted(set(board) | set(want.points)):
            if uid not in src.users:
                continue
            drift.checked += 1
            have, expect = board.get(uid), want.points.get(uid, 0.0)
            if have is None:
                if abs(expect) > TOLERANCE:
                    drift.missing.append(("leaderboard", uid))
            elif have > expect + TOLERANCE:
                drift.duplicated.append(("leaderboard", uid))
            elif have < expect - TOLERANCE:
                drift.missing.append(("leaderboard", uid))
        # Hot posts: trimmed to the top N by score, so absence is only checked below N.
        hot = {m.decode(): sc for m, sc in (await _zset(r, HOT_POSTS)).items()}
        complete = len(want.hot) <= s.hot_posts_max
        drift.checked += len(want.hot)
        for post, expect in want.hot.items():
            have = hot.get(post)
            if have is None:
                if complete:
                    drift.missing.append(("hot", post))
            elif have > expect + TOLERANCE:
                drift.duplicated.append(("hot", post))
            elif have < expect - TOLERANCE:
                drift.missing.append(("hot", post))
        drift.extra += [("hot", p) for p in hot if p not in want.hot]
        # Activity lists: a multiset of entries per group, trimmed to the newest N arrivals.
        lists: dict[int, Counter[str]] = {}
        async for key in r.scan_iter(match="recent:group:*", count=1000):
            gid = int(bytes(key).rsplit(b":", 1)[1])
            lists[gid] = Counter(_canon(orjson.loads(v)) for v in await r.lrange(key, 0, -1))
        for gid in sorted(set(lists) | set(want.activity)):
            have_c, want_c = lists.get(gid, Counter()), want.activity.get(gid, Counter())
            drift.checked += sum(want_c.values())
            full = sum(want_c.values()) <= s.activity_list_max
            for entry, n in have_c.items():
                if entry not in want_c:
                    drift.extra.append(("activity", (gid, entry)))
                elif n > want_c[entry]:
                    drift.duplicated.append(("activity", (gid, entry)))
            if full:
                drift.missing += [
                    ("activity", (gid, e)) for e, n in want_c.items() if have_c.get(e, 0) < n
                ]
        if repair and not drift.clean:
            drift.repaired = await _repair_redis(r, s, src, want, drift)
    finally:
        await r.aclose()
    return drift


async def _zset(r: Any, key: str) -> dict[bytes, float]:
    rows = await r.zrange(key, 0, -1, withscores=True)
    return {bytes(m): float(sc) for m, sc in rows}


async def _mget(r: Any, keys: list[Any]) -> list[Any]:
    """The values of `keys`; on Redis Cluster one MGET per slot (one MGET must not span slots)."""
    if not keys:
        return []
    if isinstance(r, RedisCluster):
        return list(await r.mget_nonatomic(keys))
    return list(await r.mget(keys))


async def _check_profiles(r: Any, src: Source, drift: Drift) -> None:
    # Profiles are cache-aside (absent is fine); an entry present must match PostgreSQL.
    for kind, truth, field_name in (
        ("user", src.users, "full_name"),
        ("group", src.groups, "name"),
    ):
        keys = [k async for k in r.scan_iter(match=f"{kind}:*", count=1000)]
        values = await _mget(r, keys)
        for key, raw in zip(keys, values, strict=True):
            if raw is None:
                continue
            entity = int(bytes(key).split(b":", 1)[1])
            state, _, payload = bytes(raw).split(b":", 2)
            drift.checked += 1
            if state == b"V":
                value = orjson.loads(payload).get(field_name)
                if entity not in truth:
                    drift.extra.append((kind, entity))
                elif value != truth[entity]:
                    drift.stale.append((kind, entity))
            elif state == b"D" and entity in truth:
                drift.stale.append((kind, entity))


async def _repair_redis(r: Any, s: StoreSettings, src: Source, want: Derived, drift: Drift) -> int:
    items = drift.missing + drift.extra + drift.duplicated + drift.stale
    kinds = {k for k, _ in items}
    # Stale or extra profiles are dropped: cache-aside refills them from the services.
    doomed = [f"{k}:{v}" for k, v in items if k in ("user", "group")]
    if doomed:
        await r.delete(*doomed)
    if "leaderboard" in kinds:
        for kind, uid in items:
            if kind == "leaderboard":
                await r.zadd(LEADERBOARD, {str(uid): want.points.get(uid, 0.0)})
    if "hot" in kinds:
        for kind, post in items:
            if kind != "hot":
                continue
            if post in want.hot:
                await r.zadd(HOT_POSTS, {post: want.hot[post]})
            else:
                await r.zrem(HOT_POSTS, post)
    groups = {key[0] for kind, key in items if kind == "activity"}
    for gid in groups:
        # Rebuilt newest first, as the projection's LPUSH leaves it after in-order arrival.
        entries = sorted(
            want.activity.get(gid, Counter()).elements(),
            key=lambda e: str(orjson.loads(e).get("at")),
            reverse=True,
        )[: s.activity_list_max]
        key = f"recent:group:{gid}"
        await r.delete(key)
        if entries:
            await r.rpush(key, *entries)
    return len(items)


# --- timeseries --------------------------------------------------------------------------------


def _ts_table(topic: str) -> str:
    return {
        topics.USERS: "users",
        topics.GROUPS: "groups",
        topics.MEMBERSHIPS: "group_memberships",
    }[topic]


def change_key(c: Change) -> str:
    """The dedupe key of the row a CDC change must produce (see the timeseries projection)."""
    table = _ts_table(c.topic)
    pk = ":".join(map(str, _pk(c.topic, c.record.row)))
    if c.record.op in ("c", "r"):
        return f"cdc:{table}:created:{pk}"
    verb = "updated" if c.record.op == "u" else "deleted"
    return f"cdc:{table}:{verb}:{c.record.position}:{pk}"


RowKey = tuple[str, datetime]


def _at(raw: Any) -> datetime:
    if isinstance(raw, str):
        at = datetime.fromisoformat(raw)
    else:
        at = datetime.fromtimestamp(int(raw) / 1_000_000, tz=UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def row_time(item: Change | Published) -> datetime:
    """The time the projection files a row under (part of its unique key with the dedupe key)."""
    if isinstance(item, Published):
        at = item.event.occurred_at
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    rec = item.record
    if rec.op in ("c", "r"):
        column = "joined_at" if item.topic == topics.MEMBERSHIPS else "created_at"
        return _at(rec.row[column])
    return rec.committed_at


class RowSpool:
    """The rows the time-series store must hold, one per record of the log, copied into a
    temporary table of that store while the log streams by. The comparison then runs there, as
    anti-joins on the events table's primary key, instead of as two sets of millions of keys here.
    A log record repeated (a relay republish) spools its row twice; the first one counts.
    """

    CHUNK = 10_000
    COLUMNS = ("seq", "time", "user_id", "event_type", "properties", "source", "dedupe_key")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.pending: list[tuple[Any, ...]] = []
        self.seq = 0

    @classmethod
    async def open(cls, s: StoreSettings) -> RowSpool:
        conn = await asyncpg.connect(s.ts_dsn())
        await conn.execute(
            """CREATE TEMP TABLE reconcile_want (
                   seq bigint NOT NULL, time timestamptz NOT NULL, user_id bigint,
                   event_type text NOT NULL, properties text NOT NULL, source text NOT NULL,
                   dedupe_key text COLLATE "C" NOT NULL)"""
        )
        return cls(conn)

    async def add(self, rk: RowKey, item: Change | Published) -> None:
        at, user_id, event_type, props, source, key = _row(rk, item)
        properties = orjson.dumps(props, default=str).decode()
        self.pending.append((self.seq, at, user_id, event_type, properties, source, key))
        self.seq += 1
        if len(self.pending) >= self.CHUNK:
            await self._flush()

    async def _flush(self) -> None:
        if self.pending:
            await self.conn.copy_records_to_table(
                "reconcile_want", records=self.pending, columns=self.COLUMNS
            )
            self.pending = []

    async def done(self) -> None:
        """The log is read: index the spool for the comparison."""
        await self._flush()
        await self.conn.execute("CREATE INDEX ON reconcile_want (dedupe_key, time, seq)")
        await self.conn.execute("ANALYZE reconcile_want")

    async def close(self) -> None:
        await self.conn.close()


# Spooled rows the events table lacks (the first copy of each).
_MISSING = """
    SELECT DISTINCT ON (w.dedupe_key, w.time) w.*
    FROM reconcile_want w
    WHERE NOT EXISTS (
        SELECT 1 FROM events e WHERE e.dedupe_key = w.dedupe_key AND e.time = w.time)
    ORDER BY w.dedupe_key, w.time, w.seq"""

# Rows of the events table no spooled row stands for, and whether their dedupe key is spooled
# under another time. The bench writes straight into the table on purpose; its rows have their
# own prefix.
_WRONG = """
    SELECT e.dedupe_key, e.time,
           EXISTS (SELECT 1 FROM reconcile_want w WHERE w.dedupe_key = e.dedupe_key) AS known
    FROM events e
    WHERE e.dedupe_key NOT LIKE 'bench%'
      AND NOT EXISTS (
        SELECT 1 FROM reconcile_want w WHERE w.dedupe_key = e.dedupe_key AND w.time = e.time)
    ORDER BY e.dedupe_key, e.time"""


# A constant built from constants: no input reaches this text.
_INSERT_MISSING = (
    "INSERT INTO events (time, user_id, event_type, properties, source, dedupe_key) "  # noqa: S608
    f"SELECT time, user_id, event_type, properties::jsonb, source, dedupe_key FROM ({_MISSING}) m "
    "ON CONFLICT DO NOTHING"
)


async def check_timeseries(s: StoreSettings, log: Log, *, repair: bool) -> Drift:
    drift = Drift("timeseries")
    if log.rows is None:
        raise ValueError("check_timeseries needs a log read with read_log(..., timeseries=True)")
    conn = log.rows.conn
    drift.checked = int(
        await conn.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT dedupe_key, time FROM reconcile_want) w"
        )
    )
    drift.missing = [("row", (r["dedupe_key"], r["time"])) for r in await conn.fetch(_MISSING)]
    # (dedupe_key, time) is the table's primary key, so a fact stored twice shows up as its key
    # filed under a second time.
    for r in await conn.fetch(_WRONG):
        target = drift.duplicated if r["known"] else drift.extra
        target.append(("row", (r["dedupe_key"], r["time"])))
    if repair and not drift.clean:
        drift.repaired = await _repair_ts(conn, drift)
    return drift


def _row(rk: RowKey, item: Change | Published) -> tuple[Any, ...]:
    key, at = rk
    if isinstance(item, Published):
        e = item.event
        return (at, e.user_id, e.type, e.payload, e.source, key)
    rec, table = item.record, _ts_table(item.topic)
    entity = {"users": "user", "groups": "group", "group_memberships": "membership"}[table]
    row = rec.row
    actor = {"users": "id", "group_memberships": "user_id"}.get(table)
    if rec.op in ("c", "r"):
        verb, props = "created", row
    else:
        verb = "updated" if rec.op == "u" else "deleted"
        pk_cols = ("user_id", "group_id") if table == "group_memberships" else ("id",)
        props = row if rec.op == "u" else {c: row[c] for c in pk_cols}
    props = {k: v for k, v in props.items() if "password" not in k.lower()}
    user_id = row.get(actor) if actor else None
    return (at, user_id, f"{entity}.{verb}", props, f"cdc:{table}", key)


async def _repair_ts(conn: asyncpg.Connection, drift: Drift) -> int:
    await conn.execute(_INSERT_MISSING)
    extra = drift.extra + drift.duplicated
    for _, (key, at) in extra:
        await conn.execute("DELETE FROM events WHERE dedupe_key = $1 AND time = $2", key, at)
    return len(drift.missing) + len(extra)


# --- documents ---------------------------------------------------------------------------------


@dataclass
class DocumentFacts:
    """The documents topic, folded: the event ids of every fact (a republish repeats an id),
    deleted posts, and the post of every comment."""

    facts: dict[tuple[Any, ...], list[str]] = field(default_factory=lambda: defaultdict(list))
    republished: int = 0
    deleted: set[str] = field(default_factory=set)
    comment_post: dict[str, str] = field(default_factory=dict)
    _ids: set[str] = field(default_factory=set)

    def add(self, e: Event) -> None:
        p = e.payload
        if str(e.id) in self._ids:
            self.republished += 1
        self._ids.add(str(e.id))
        match e.type:
            case "post.created":
                self.facts[("post", str(p["post_id"]))].append(str(e.id))
            case "comment.created":
                self.facts[("comment", str(p["comment_id"]))].append(str(e.id))
                self.comment_post[str(p["comment_id"])] = str(p["post_id"])
            case "post.liked":
                self.facts[("like", (str(p["post_id"]), int(p["user_id"])))].append(str(e.id))
            case "post.deleted":
                self.deleted.add(str(p["post_id"]))


async def check_documents(s: StoreSettings, log: Log, *, repair: bool) -> Drift:
    drift = Drift("documents")
    published = log.documents
    facts, deleted, comment_post = published.facts, published.deleted, published.comment_post
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(**s.mongo_options())
    try:
        db = client[s.docs_db_name]
        want: dict[tuple[Any, ...], bool] = {}  # fact → its event is still pending in the outbox
        pending_posts: set[str] = set()
        # post.liked events still queued in a post's outbox: likes made before likes had
        # documents of their own go out with their post.
        liked_in_post: dict[str, set[int]] = {}
        async for post in db.posts.find({}, {"liked_by": 1, "pending": 1, "outbox": 1}):
            pid = str(post["_id"])
            outbox = post.get("outbox", [])
            queued = {o.get("type") for o in outbox}
            if post.get("pending"):
                pending_posts.add(pid)
            want[("post", pid)] = "post.created" in queued
            liked_in_post[pid] = {
                int(o["payload"]["user_id"]) for o in outbox if o.get("type") == "post.liked"
            }
            # Likes still inside a post that the documents service has not moved out yet.
            for uid in post.get("liked_by", []):
                want[("like", (pid, int(uid)))] = int(uid) in liked_in_post[pid]
        async for like in db.likes.find({}, {"post_id": 1, "user_id": 1, "pending": 1}):
            pid, uid = str(like["post_id"]), int(like["user_id"])
            queued_with_post = uid in liked_in_post.get(pid, set())
            want[("like", (pid, uid))] = bool(like.get("pending")) or queued_with_post
        async for c in db.comments.find({}, {"pending": 1, "post_id": 1}):
            want[("comment", str(c["_id"]))] = bool(c.get("pending"))
        # Events an earlier --repair queued again, not published yet: their facts are pending.
        async for doc in db.requeued.find({"pending": True}, {"outbox": 1}):
            for queued in doc.get("outbox", []):
                fact = _fact_of(queued.get("type"), queued.get("payload") or {})
                if fact in want:
                    want[fact] = True
        drift.checked = len(want)
        drift.notes = {
            "republished_records": published.republished,
            "pending_events": sum(want.values()),
        }
        for fact, pending in want.items():
            n = len(set(facts.get(fact, ())))
            if n == 0 and not pending:
                drift.missing.append(fact)
            elif n > 1:
                drift.duplicated.append(fact)
        for fact in facts:
            kind, key = fact
            post = {"post": key, "like": key[0], "comment": comment_post.get(key)}[kind]
            # A purged post (its post.deleted went out) takes its likes and comments with it.
            if fact not in want and post not in deleted:
                drift.extra.append(fact)
        if repair and drift.missing:
            drift.repaired = await _repair_documents(db, drift.missing)
    finally:
        await client.close()
    return drift


def _fact_of(event_type: Any, payload: dict[str, Any]) -> tuple[Any, ...] | None:
    """The documents fact an event stands for (None for events that stand for none)."""
    match event_type:
        case "post.created":
            return ("post", str(payload.get("post_id")))
        case "comment.created":
            return ("comment", str(payload.get("comment_id")))
        case "post.liked":
            return ("like", (str(payload.get("post_id")), int(payload.get("user_id", 0))))
    return None


async def _repair_documents(db: Any, missing: list[tuple[Any, ...]]) -> int:
    # A lost event is queued again as a document of its own in `requeued`, which the documents
    # relay drains like an outbox. An insert: the post, comment or like itself is never
    # updated here, so this cannot lose an edit or an outbox change made meanwhile (an update
    # on FerretDB v1 is read, modify, write without a lock; see campus_documents' locks.py).
    from bson import ObjectId

    from campus_common.events import SCHEMA_VERSION

    done = 0
    now = datetime.now(UTC)
    for kind, key in missing:
        if kind == "comment":
            doc = await db.comments.find_one({"_id": ObjectId(key)})
            post = await db.posts.find_one({"_id": doc["post_id"]}) if doc else None
            if not doc or not post:
                continue
            etype, user, payload = (
                "comment.created",
                doc["author_id"],
                {
                    "comment_id": key,
                    "post_id": str(post["_id"]),
                    "group_id": post.get("group_id"),
                    "author_id": doc["author_id"],
                    "post_author_id": post["author_id"],
                },
            )
            event_key = str(post["_id"])
        else:
            pid = key if kind == "post" else key[0]
            post = await db.posts.find_one({"_id": ObjectId(pid)})
            if not post:
                continue
            event_key = pid
            if kind == "post":
                etype, user = "post.created", post["author_id"]
                payload = {
                    "post_id": pid,
                    "group_id": post.get("group_id"),
                    "author_id": post["author_id"],
                    "type": post["type"],
                    "title": post["title"],
                    "tags": list(post.get("tags", [])),
                }
            else:
                etype, user = "post.liked", key[1]
                payload = {
                    "post_id": pid,
                    "group_id": post.get("group_id"),
                    "user_id": key[1],
                    "author_id": post["author_id"],
                }
        event = {
            "id": str(uuid.uuid4()),
            "type": etype,
            "occurred_at": now,
            "schema_version": SCHEMA_VERSION,
            "key": event_key,
            "user_id": user,
            "payload": payload,
        }
        await db.requeued.insert_one({"outbox": [event], "pending": True})
        done += 1
    return done


# --- all ---------------------------------------------------------------------------------------


async def reconcile(*, repair: bool = False) -> list[Drift]:
    """Drift of every derived store against its sources (and repair it when asked)."""
    s = StoreSettings()
    src = await read_source(s)
    log = await read_log(s, timeseries=True)
    try:
        drifts = list(
            await asyncio.gather(
                check_neo4j(s, src, log, repair=repair),
                check_redis(s, src, log, repair=repair),
                check_timeseries(s, log, repair=repair),
                check_documents(s, log, repair=repair),
            )
        )
    finally:
        await log.close()
    drifts[2].notes["unparseable_records"] = log.unparseable
    drifts[2].notes["log_records"] = log.records
    drifts[2].notes["log_bytes"] = log.bytes
    for projection, dead in log.dead.items():
        drifts[0].notes[f"dead_lettered_{projection}"] = len(dead)
    return drifts


def total(drifts: Iterable[Drift]) -> dict[str, int]:
    """Sum of every category over all stores."""
    out = dict.fromkeys(CATEGORIES, 0)
    for d in drifts:
        for cat in CATEGORIES:
            out[cat] += len(getattr(d, cat))
    return out
