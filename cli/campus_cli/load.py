"""A mixed write load through the public gateway, as real signed-in clients, for faults and chaos.

Each worker owns a few users and one group and writes with their tokens: profile renames,
throwaway accounts created and deleted, joins and leaves, posts (created, edited, deleted),
comments, likes, friendships and follows (added and removed). Workers never touch each other's
users, so each worker's acknowledged writes, in order, say what the final state must be.

Every attempt is recorded: an acknowledged write (2xx) as `acked`, anything else as an error
with its status (or exception). A write that failed may still have been applied (a timeout after
the commit), so the entities it touched become `uncertain` and `verify()` leaves them to the
reconcile, which checks every store against its sources whatever the API said.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
from bson import ObjectId
from pymongo import AsyncMongoClient

from campus_cli.stores import StoreSettings

PASSWORD = "mixed-load-pw-1"  # noqa: S105 (the throwaway test accounts' password)


@dataclass(frozen=True, slots=True)
class Attempt:
    op: str
    at: float
    status: int  # 0 when the request raised
    detail: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Expected:
    """The final state the acknowledged writes imply (entities not made uncertain by an error)."""

    users: dict[int, str] = field(default_factory=dict)  # id → full_name
    deleted_users: set[int] = field(default_factory=set)
    renames: Counter[int] = field(default_factory=Counter)
    members: set[tuple[int, int]] = field(default_factory=set)
    left: set[tuple[int, int]] = field(default_factory=set)
    posts: dict[str, int] = field(default_factory=dict)  # live post → author
    deleted_posts: set[str] = field(default_factory=set)
    comments: dict[str, str] = field(default_factory=dict)  # comment → post
    likes: set[tuple[str, int]] = field(default_factory=set)
    friends: set[tuple[int, int]] = field(default_factory=set)  # (low, high)
    unfriended: set[tuple[int, int]] = field(default_factory=set)
    follows: set[tuple[int, int]] = field(default_factory=set)
    unfollowed: set[tuple[int, int]] = field(default_factory=set)
    uncertain: set[Any] = field(default_factory=set)
    everyone: set[int] = field(default_factory=set)  # every account the load created


@dataclass
class Worker:
    users: dict[int, str]  # id → token
    group: int
    throwaway: dict[int, str] = field(default_factory=dict)
    posts: list[str] = field(default_factory=list)


class MixedLoad:
    """`async with MixedLoad(base_url) as load:` writes in the background until the block ends."""

    def __init__(
        self,
        base_url: str,
        *,
        workers: int = 3,
        users_per_worker: int = 4,
        rate: float = 15.0,
        timeout: float = 10.0,
        seed: int | None = None,
    ) -> None:
        self.base_url = base_url
        self.n_workers = workers
        self.users_per_worker = users_per_worker
        self.rate = rate
        self.timeout = timeout
        self.rng = random.Random(seed)
        self.attempts: list[Attempt] = []
        self.expected = Expected()
        self.workers: list[Worker] = []
        self.tag = uuid.uuid4().hex[:8]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None

    # lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> MixedLoad:
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout)
        for _ in range(self.n_workers):
            self.workers.append(await self._new_worker())
        self._tasks = [asyncio.create_task(self._run(w)) for w in self.workers]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    # counts ----------------------------------------------------------------------------------

    @property
    def acked(self) -> list[Attempt]:
        return [a for a in self.attempts if a.ok]

    @property
    def errors(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.ok]

    def window(self, start: float, end: float) -> list[Attempt]:
        """Attempts started in [start, end] (time.monotonic())."""
        return [a for a in self.attempts if start <= a.at <= end]

    def error_statuses(self, start: float = 0, end: float = float("inf")) -> Counter[int]:
        return Counter(a.status for a in self.window(start, end) if not a.ok)

    def error_rate(self, start: float = 0, end: float = float("inf")) -> float:
        tried = self.window(start, end)
        return sum(not a.ok for a in tried) / len(tried) if tried else 0.0

    async def wait_for_acks(self, n: int, timeout: float = 60) -> None:
        """Block until `n` more writes are acknowledged (the load is really flowing)."""
        target = len(self.acked) + n
        deadline = time.monotonic() + timeout
        while len(self.acked) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"load acknowledged {len(self.acked)}/{target} writes")
            await asyncio.sleep(0.1)

    # requests --------------------------------------------------------------------------------

    async def _call(
        self, op: str, method: str, path: str, token: str | None = None, **kw: Any
    ) -> httpx.Response | None:
        assert self._http is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        at = time.monotonic()
        try:
            r = await self._http.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            self.attempts.append(Attempt(op, at, 0, type(exc).__name__))
            return None
        detail = "" if r.is_success else r.text[:200]
        self.attempts.append(Attempt(op, at, r.status_code, detail))
        return r if r.is_success else None

    async def _new_user(self, op: str) -> tuple[int, str] | None:
        email = f"load-{self.tag}-{uuid.uuid4().hex[:10]}@university.edu"
        name = f"Load {uuid.uuid4().hex[:6]}"
        r = await self._call(
            op, "POST", "/users", json={"email": email, "full_name": name, "password": PASSWORD}
        )
        if r is None:
            return None
        uid = int(r.json()["id"])
        self.expected.users[uid] = name
        self.expected.everyone.add(uid)
        assert self._http is not None
        tok = await self._http.post("/auth/token", data={"username": email, "password": PASSWORD})
        if tok.status_code != 200:
            return None
        return uid, tok.json()["access_token"]

    async def _new_worker(self) -> Worker:
        users: dict[int, str] = {}
        while len(users) < self.users_per_worker:
            made = await self._new_user("user.create")
            if made:
                users[made[0]] = made[1]
        token = next(iter(users.values()))
        r = await self._call(
            "group.create",
            "POST",
            "/groups",
            token,
            json={"name": f"Load {self.tag}", "course_code": f"LD-{self.rng.randrange(999)}"},
        )
        assert r is not None, "could not create the load's group"
        gid = int(r.json()["id"])
        for uid, tok in users.items():
            if await self._call("group.join", "POST", f"/groups/{gid}/join", tok, json={}):
                self.expected.members.add((uid, gid))
        return Worker(users, gid)

    # the loop --------------------------------------------------------------------------------

    async def _run(self, w: Worker) -> None:
        ops = [
            (self._rename, 10),
            (self._throwaway, 4),
            (self._join_or_leave, 8),
            (self._post, 14),
            (self._edit_post, 5),
            (self._delete_post, 2),
            (self._comment, 14),
            (self._like, 12),
            (self._friend, 10),
            (self._follow, 8),
        ]
        fns = [f for f, _ in ops]
        weights = [wt for _, wt in ops]
        per_worker = max(self.rate / max(self.n_workers, 1), 0.1)
        while not self._stop.is_set():
            started = time.monotonic()
            fn = self.rng.choices(fns, weights)[0]
            await fn(w)
            pause = 1 / per_worker - (time.monotonic() - started)
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), pause)

    def _pick(self, w: Worker) -> tuple[int, str]:
        uid = self.rng.choice(list(w.users))
        return uid, w.users[uid]

    def _pick_member(self, w: Worker) -> tuple[int, str] | None:
        """A user surely in the worker's group: only members may comment and like (else 403)."""
        members = [
            u
            for u in w.users
            if (u, w.group) in self.expected.members
            and ("member", (u, w.group)) not in self.expected.uncertain
        ]
        if not members:
            return None
        uid = self.rng.choice(members)
        return uid, w.users[uid]

    async def _rename(self, w: Worker) -> None:
        uid, tok = self._pick(w)
        name = f"Renamed {uuid.uuid4().hex[:6]}"
        if await self._call("user.rename", "PUT", f"/users/{uid}", tok, json={"full_name": name}):
            self.expected.users[uid] = name
            self.expected.renames[uid] += 1
        else:
            self.expected.uncertain.add(("user", uid))

    async def _throwaway(self, w: Worker) -> None:
        # Accounts that only live and die: their create, rename and delete all flow through CDC.
        if w.throwaway and self.rng.random() < 0.6:
            uid = self.rng.choice(list(w.throwaway))
            tok = w.throwaway.pop(uid)
            if await self._call("user.delete", "DELETE", f"/users/{uid}", tok):
                self.expected.users.pop(uid, None)
                self.expected.deleted_users.add(uid)
            else:
                self.expected.uncertain.add(("user", uid))
            return
        made = await self._new_user("user.create")
        if made:
            w.throwaway[made[0]] = made[1]

    async def _join_or_leave(self, w: Worker) -> None:
        uid, tok = self._pick(w)
        pair = (uid, w.group)
        if pair in self.expected.members:
            path = f"/groups/{w.group}/members/{uid}"
            if await self._call("group.leave", "DELETE", path, tok):
                self.expected.members.discard(pair)
                self.expected.left.add(pair)
            else:
                self.expected.uncertain.add(("member", pair))
        else:
            if await self._call("group.join", "POST", f"/groups/{w.group}/join", tok, json={}):
                self.expected.members.add(pair)
                self.expected.left.discard(pair)
            else:
                self.expected.uncertain.add(("member", pair))

    async def _post(self, w: Worker) -> None:
        members = [u for u in w.users if (u, w.group) in self.expected.members]
        if not members:
            return await self._join_or_leave(w)
        uid = self.rng.choice(members)
        body = {
            "title": f"Load post {uuid.uuid4().hex[:6]}",
            "body": "mixed load",
            "tags": ["load"],
        }
        r = await self._call(
            "post.create", "POST", f"/groups/{w.group}/posts", w.users[uid], json=body
        )
        if r is not None:
            pid = str(r.json()["id"])
            w.posts.append(pid)
            self.expected.posts[pid] = uid

    def _live_post(self, w: Worker) -> str | None:
        live = [p for p in w.posts if p in self.expected.posts]
        return self.rng.choice(live) if live else None

    async def _edit_post(self, w: Worker) -> None:
        pid = self._live_post(w)
        if pid is None:
            return await self._post(w)
        tok = w.users[self.expected.posts[pid]]
        body = {"title": f"Edited {uuid.uuid4().hex[:6]}"}
        if not await self._call("post.update", "PUT", f"/posts/{pid}", tok, json=body):
            self.expected.uncertain.add(("post", pid))

    async def _delete_post(self, w: Worker) -> None:
        pid = self._live_post(w)
        if pid is None:
            return
        tok = w.users[self.expected.posts[pid]]
        if await self._call("post.delete", "DELETE", f"/posts/{pid}", tok):
            del self.expected.posts[pid]
            self.expected.deleted_posts.add(pid)
        else:
            self.expected.uncertain.add(("post", pid))

    async def _comment(self, w: Worker) -> None:
        pid = self._live_post(w)
        if pid is None:
            return await self._post(w)
        member = self._pick_member(w)
        if member is None:
            return await self._join_or_leave(w)
        _, tok = member
        body = {"body": f"comment {uuid.uuid4().hex[:6]}"}
        r = await self._call("comment.create", "POST", f"/posts/{pid}/comments", tok, json=body)
        if r is not None:
            self.expected.comments[str(r.json()["id"])] = pid
        else:
            self.expected.uncertain.add(("post", pid))

    async def _like(self, w: Worker) -> None:
        pid = self._live_post(w)
        if pid is None:
            return await self._post(w)
        member = self._pick_member(w)
        if member is None:
            return await self._join_or_leave(w)
        uid, tok = member
        if await self._call("post.like", "POST", f"/posts/{pid}/like", tok, json={}):
            self.expected.likes.add((pid, uid))
        else:
            self.expected.uncertain.add(("post", pid))

    async def _friend(self, w: Worker) -> None:
        a, tok = self._pick(w)
        b = self.rng.choice([u for u in w.users if u != a])
        pair = (min(a, b), max(a, b))
        if pair in self.expected.friends:
            ok = await self._call("friend.remove", "DELETE", f"/users/{a}/friends/{b}", tok)
            if ok:
                self.expected.friends.discard(pair)
                self.expected.unfriended.add(pair)
        else:
            ok = await self._call("friend.add", "POST", f"/users/{a}/friends/{b}", tok)
            if ok:
                self.expected.friends.add(pair)
                self.expected.unfriended.discard(pair)
        if not ok:
            self.expected.uncertain.add(("friend", pair))

    async def _follow(self, w: Worker) -> None:
        a, tok = self._pick(w)
        b = self.rng.choice([u for u in w.users if u != a])
        pair = (a, b)
        body = {"followee_id": b}
        if pair in self.expected.follows:
            ok = await self._call("follow.remove", "DELETE", "/follow", tok, json=body)
            if ok:
                self.expected.follows.discard(pair)
                self.expected.unfollowed.add(pair)
        else:
            ok = await self._call("follow.add", "POST", "/follow", tok, json=body)
            if ok:
                self.expected.follows.add(pair)
                self.expected.unfollowed.discard(pair)
        if not ok:
            self.expected.uncertain.add(("follow", pair))


# --- verification ------------------------------------------------------------------------------


async def verify(load: MixedLoad, s: StoreSettings | None = None) -> list[str]:
    """Every acknowledged write, checked in every store that projects it; returns the problems.

    PostgreSQL and the documents database (the sources), Neo4j (users, memberships, friendships,
    follows), the time-series store (a row per change and per event) and the documents topic
    (through the time-series rows its events became). Redis aggregates are the reconcile's part.
    """
    s = s or StoreSettings()
    e = load.expected
    unsure = e.uncertain
    problems: list[str] = []
    users = {u: n for u, n in e.users.items() if ("user", u) not in unsure}
    gone = {u for u in e.deleted_users if ("user", u) not in unsure}
    members = {m for m in e.members if ("member", m) not in unsure}
    left = {m for m in e.left if ("member", m) not in unsure}
    friends = {p for p in e.friends if ("friend", p) not in unsure}
    unfriended = {p for p in e.unfriended if ("friend", p) not in unsure}
    follows = {p for p in e.follows if ("follow", p) not in unsure}
    unfollowed = {p for p in e.unfollowed if ("follow", p) not in unsure}
    # Every user a checked fact names, uncertain ones too: a user whose rename failed still has
    # memberships and edges to look up.
    ids = sorted(
        set(e.users)
        | e.deleted_users
        | {u for u, _ in members | left}
        | {u for pair in friends | unfriended | follows | unfollowed for u in pair}
    )

    pg = await asyncpg.connect(s.users_dsn())
    try:
        rows = await pg.fetch("SELECT id, full_name FROM users WHERE id = ANY($1::bigint[])", ids)
        have = {r["id"]: r["full_name"] for r in rows}
        problems += [
            f"postgres: user {u} is {have.get(u)!r}, want {n!r}"
            for u, n in users.items()
            if have.get(u) != n
        ]
        problems += [f"postgres: deleted user {u} still there" for u in gone if u in have]
    finally:
        await pg.close()

    async with s.neo4j() as d:
        recs, _, _ = await d.execute_query(
            "MATCH (u:User) WHERE u.id IN $ids AND u.lsn IS NOT NULL "
            "RETURN u.id AS id, u.full_name AS n",
            ids=ids,
        )
        have = {r["id"]: r["n"] for r in recs}
        problems += [
            f"neo4j: user {u} is {have.get(u)!r}, want {n!r}"
            for u, n in users.items()
            if have.get(u) != n
        ]
        problems += [f"neo4j: deleted user {u} still there" for u in gone if u in have]
        recs, _, _ = await d.execute_query(
            "MATCH (u:User)-[:MEMBER_OF]->(g:Group) WHERE u.id IN $ids RETURN u.id AS u, g.id AS g",
            ids=ids,
        )
        have_m = {(r["u"], r["g"]) for r in recs}
        problems += [f"neo4j: membership {m} missing" for m in members - have_m]
        problems += [f"neo4j: membership {m} still there after leaving" for m in left & have_m]
        for rel, want, unwant, both in (
            ("FRIEND", friends, unfriended, True),
            ("FOLLOWS", follows, unfollowed, False),
        ):
            recs, _, _ = await d.execute_query(
                f"MATCH (a:User)-[:{rel}]->(b:User) WHERE a.id IN $ids RETURN a.id AS a, b.id AS b",
                ids=ids,
            )
            have_e = Counter((r["a"], r["b"]) for r in recs)
            for a, b in want:
                for edge in ((a, b), (b, a)) if both else ((a, b),):
                    if have_e[edge] != 1:
                        problems.append(f"neo4j: {rel} {edge} present {have_e[edge]} times, want 1")
            for a, b in unwant:
                for edge in ((a, b), (b, a)) if both else ((a, b),):
                    if have_e[edge]:
                        problems.append(f"neo4j: {rel} {edge} still there after removal")

    ts = await asyncpg.connect(s.ts_dsn())
    try:
        keys = set(
            await ts.fetchval(
                "SELECT coalesce(array_agg(dedupe_key), '{}') FROM events "
                "WHERE source LIKE 'cdc:%' AND user_id = ANY($1::bigint[])",
                ids,
            )
        )
        for u in users:
            if f"cdc:users:created:{u}" not in keys:
                problems.append(f"timeseries: no user.created row for {u}")
            n = sum(k.startswith("cdc:users:updated:") and k.endswith(f":{u}") for k in keys)
            if n < e.renames[u]:
                problems.append(
                    f"timeseries: {n} user.updated rows for {u}, {e.renames[u]} renames acked"
                )
        for u in gone:
            if not any(k.startswith("cdc:users:deleted:") and k.endswith(f":{u}") for k in keys):
                problems.append(f"timeseries: no user.deleted row for {u}")
        for u, g in members:
            if f"cdc:group_memberships:created:{u}:{g}" not in keys:
                problems.append(f"timeseries: no membership.created row for {(u, g)}")
        for u, g in left:
            if not any(
                k.startswith("cdc:group_memberships:deleted:") and k.endswith(f":{u}:{g}")
                for k in keys
            ):
                problems.append(f"timeseries: no membership.deleted row for {(u, g)}")
        rows = await ts.fetch(
            "SELECT event_type, properties FROM events WHERE source IN ('documents', 'graph') "
            "AND user_id = ANY($1::bigint[])",
            sorted(e.everyone),
        )
        seen: Counter[tuple[Any, ...]] = Counter()
        for r in rows:
            p = _json(r["properties"])
            t = r["event_type"]
            if t == "post.created":
                seen[("post", p["post_id"])] += 1
            elif t == "comment.created":
                seen[("comment", p["comment_id"])] += 1
            elif t == "post.liked":
                seen[("like", p["post_id"], p["user_id"])] += 1
            elif t.startswith(("friend.", "follow.")):
                seen[(t,)] += 1
        all_posts = set(e.posts) | e.deleted_posts
        for pid in all_posts:
            if seen[("post", pid)] != 1:
                problems.append(
                    f"timeseries: post.created for {pid} seen {seen[('post', pid)]} times"
                )
        for cid in e.comments:
            if seen[("comment", cid)] != 1:
                problems.append(
                    f"timeseries: comment.created for {cid} seen {seen[('comment', cid)]} times"
                )
        for pid, uid in e.likes:
            if seen[("like", pid, uid)] != 1:
                problems.append(
                    f"timeseries: post.liked {pid} by {uid} seen {seen[('like', pid, uid)]} times"
                )
    finally:
        await ts.close()

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(**s.mongo_options())
    try:
        db = client[s.docs_db_name]
        live = {
            str(p["_id"]): p
            async for p in db.posts.find(
                {"_id": {"$in": [ObjectId(p) for p in e.posts]}}, {"deleted_at": 1}
            )
        }
        for pid in e.posts:
            if pid not in live or live[pid].get("deleted_at") is not None:
                problems.append(f"documents: post {pid} missing")
        liked_posts = list({ObjectId(pid) for pid, _ in e.likes})
        likes = {
            (str(like["post_id"]), int(like["user_id"]))
            async for like in db.likes.find(
                {"post_id": {"$in": liked_posts}}, {"post_id": 1, "user_id": 1}
            )
        }
        for pid, uid in e.likes:
            if pid in live and (pid, uid) not in likes:
                problems.append(f"documents: like of {pid} by {uid} missing")
        found = {
            str(c["_id"])
            async for c in db.comments.find(
                {"_id": {"$in": [ObjectId(c) for c in e.comments]}}, {"_id": 1}
            )
        }
        problems += [
            f"documents: comment {c} missing"
            for c, p in e.comments.items()
            if c not in found and p in e.posts
        ]
        gone_posts = await db.posts.count_documents(
            {"_id": {"$in": [ObjectId(p) for p in e.deleted_posts]}, "deleted_at": None}
        )
        if gone_posts:
            problems.append(f"documents: {gone_posts} deleted posts are live again")
    finally:
        await client.close()
    return problems


def _json(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else dict(orjson.loads(value))
