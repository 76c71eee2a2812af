"""`campus reconcile`: compare PostgreSQL (the source of truth) with every projected store.

Per store it reports ids missing from the store, ids the store has that PostgreSQL does not
(extra), and entries whose values differ (stale). `--repair` makes the store agree: Neo4j nodes
and edges are rewritten at the current WAL position (so any later change still wins), stale
Redis entries are dropped (cache-aside refills them), missing time-series "created" events are
inserted with the projection's own dedupe keys (so a later replay adds nothing).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from redis.asyncio.cluster import RedisCluster

from campus_cli.stores import StoreSettings


@dataclass
class Drift:
    store: str
    checked: int = 0
    missing: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    stale: list[Any] = field(default_factory=list)
    repaired: int = 0

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.stale)


@dataclass
class Source:
    users: dict[int, str]
    groups: dict[int, str]
    memberships: dict[tuple[int, int], str]
    position: int


async def _source(s: StoreSettings) -> Source:
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


async def _neo4j(s: StoreSettings, src: Source, repair: bool) -> Drift:
    drift = Drift("neo4j")
    async with s.neo4j() as d:
        recs, _, _ = await d.execute_query(
            "MATCH (u:User) WHERE u.lsn IS NOT NULL RETURN u.id AS id, u.full_name AS name"
        )
        users = {r["id"]: r["name"] for r in recs}
        recs, _, _ = await d.execute_query(
            "MATCH (g:Group) WHERE g.lsn IS NOT NULL RETURN g.id AS id, g.name AS name"
        )
        groups = {r["id"]: r["name"] for r in recs}
        recs, _, _ = await d.execute_query(
            "MATCH (u:User)-[m:MEMBER_OF]->(g:Group) RETURN u.id AS u, g.id AS g, m.role AS role"
        )
        members = {(r["u"], r["g"]): r["role"] for r in recs}
        drift.checked = len(src.users) + len(src.groups) + len(src.memberships)
        checks: list[tuple[str, dict[Any, str], dict[Any, str]]] = [
            ("user", src.users, users),
            ("group", src.groups, groups),
            ("membership", src.memberships, members),
        ]
        for kind, want, have in checks:
            drift.missing += [(kind, k) for k in want if k not in have]
            drift.extra += [(kind, k) for k in have if k not in want]
            drift.stale += [(kind, k) for k in want if k in have and have[k] != want[k]]
        if repair and not drift.clean:
            drift.repaired = await _repair_neo4j(d, src, drift)
    return drift


async def _repair_neo4j(d: Any, src: Source, drift: Drift) -> int:
    pos = src.position
    fix = [k for kind, k in drift.missing + drift.stale if kind == "user"]
    await d.execute_query(
        "UNWIND $rows AS r MERGE (u:User {id: r.id}) SET u.full_name = r.name, u.lsn = $pos",
        rows=[{"id": k, "name": src.users[k]} for k in fix],
        pos=pos,
    )
    fix_g = [k for kind, k in drift.missing + drift.stale if kind == "group"]
    await d.execute_query(
        "UNWIND $rows AS r MERGE (g:Group {id: r.id}) SET g.name = r.name, g.lsn = $pos",
        rows=[{"id": k, "name": src.groups[k]} for k in fix_g],
        pos=pos,
    )
    fix_m = [k for kind, k in drift.missing + drift.stale if kind == "membership"]
    await d.execute_query(
        """UNWIND $rows AS r MATCH (u:User {id: r.u}), (g:Group {id: r.g})
           MERGE (u)-[m:MEMBER_OF]->(g) SET m.role = r.role, m.lsn = $pos""",
        rows=[{"u": u, "g": g, "role": src.memberships[(u, g)]} for u, g in fix_m],
        pos=pos,
    )
    for kind, k in drift.extra:
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
    return len(fix) + len(fix_g) + len(fix_m) + len(drift.extra)


async def _redis(s: StoreSettings, src: Source, repair: bool) -> Drift:
    drift = Drift("redis")
    r = s.redis()
    try:
        for kind, truth, field_name in (
            ("user", src.users, "full_name"),
            ("group", src.groups, "name"),
        ):
            keys = [k async for k in r.scan_iter(match=f"{kind}:*", count=1000)]
            if not keys:
                values = []
            elif isinstance(r, RedisCluster):  # one MGET per slot
                values = await r.mget_nonatomic(keys)
            else:
                values = await r.mget(keys)
            for key, raw in zip(keys, values, strict=True):
                if raw is None:
                    continue
                entity = int(bytes(key).split(b":", 1)[1])
                blob = raw if isinstance(raw, bytes) else str(raw).encode()
                state, _, payload = blob.split(b":", 2)
                drift.checked += 1
                if state == b"V":
                    value = orjson.loads(payload).get(field_name)
                    if entity not in truth:
                        drift.extra.append((kind, entity))
                    elif value != truth[entity]:
                        drift.stale.append((kind, entity))
                elif state == b"D" and entity in truth:
                    drift.stale.append((kind, entity))
        if repair and not drift.clean:
            doomed = [f"{kind}:{k}" for kind, k in drift.extra + drift.stale]
            drift.repaired = await r.delete(*doomed)
    finally:
        await r.aclose()
    return drift


async def _timeseries(s: StoreSettings, src: Source, repair: bool) -> Drift:
    drift = Drift("timeseries")
    conn = await asyncpg.connect(s.ts_dsn())
    try:
        rows = await conn.fetch(
            "SELECT dedupe_key, count(*) AS n FROM events WHERE dedupe_key LIKE 'cdc:%:created:%' "
            "GROUP BY dedupe_key"
        )
        have = {r["dedupe_key"]: r["n"] for r in rows}
        want = {f"cdc:users:created:{k}" for k in src.users}
        want |= {f"cdc:groups:created:{k}" for k in src.groups}
        want |= {f"cdc:group_memberships:created:{u}:{g}" for u, g in src.memberships}
        drift.checked = len(want)
        drift.missing = sorted(k for k in want if k not in have)
        # One source event must be one row: a key seen twice was applied twice.
        drift.stale = sorted(k for k, n in have.items() if n > 1)
        if repair and drift.missing:
            drift.repaired = await _repair_ts(s, conn, drift.missing)
    finally:
        await conn.close()
    return drift


async def _repair_ts(s: StoreSettings, ts: asyncpg.Connection, keys: list[str]) -> int:
    conn = await asyncpg.connect(s.users_dsn())
    rows = []
    try:
        for key in keys:
            _, table, _, pk = key.split(":", 3)
            if table == "users":
                r = await conn.fetchrow(
                    "SELECT id, email::text, full_name, created_at FROM users WHERE id=$1", int(pk)
                )
                if r:
                    rows.append(
                        (r["created_at"], r["id"], "user.created", dict(r), "cdc:users", key)
                    )
            elif table == "groups":
                r = await conn.fetchrow(
                    "SELECT id, name, course_code, created_at FROM groups WHERE id=$1", int(pk)
                )
                if r:
                    rows.append(
                        (r["created_at"], None, "group.created", dict(r), "cdc:groups", key)
                    )
            else:
                u, g = (int(x) for x in pk.split(":"))
                r = await conn.fetchrow(
                    "SELECT user_id, group_id, role, joined_at FROM group_memberships "
                    "WHERE user_id=$1 AND group_id=$2",
                    u,
                    g,
                )
                if r:
                    rows.append(
                        (
                            r["joined_at"],
                            u,
                            "membership.created",
                            dict(r),
                            "cdc:group_memberships",
                            key,
                        )
                    )
    finally:
        await conn.close()
    await ts.executemany(
        "INSERT INTO events (time, user_id, event_type, properties, source, dedupe_key) "
        "VALUES ($1, $2, $3, $4::jsonb, $5, $6) ON CONFLICT DO NOTHING",
        [(t, u, e, orjson.dumps(p, default=str).decode(), src, k) for t, u, e, p, src, k in rows],
    )
    return len(rows)


async def reconcile(*, repair: bool = False) -> list[Drift]:
    """Drift of every projected store against PostgreSQL (and repair it when asked)."""
    s = StoreSettings()
    src = await _source(s)
    return list(
        await asyncio.gather(
            _neo4j(s, src, repair), _redis(s, src, repair), _timeseries(s, src, repair)
        )
    )
