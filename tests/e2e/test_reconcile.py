"""The reconcile finds, and `--repair` fixes, drift planted by hand in the real stores.

The three cases a new user tried: one leaderboard increment applied a second time (ZINCRBY),
one FRIEND relationship deleted in Neo4j, one update event deleted from `events`.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from campus_cli.reconcile import Drift, check_documents, read_log, reconcile
from campus_cli.stores import StoreSettings
from tests.conftest import StackSettings
from tests.e2e.conftest import converged

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def _user(http: httpx.AsyncClient, email: str | None = None) -> tuple[int, str]:
    email = email or f"rec-{uuid.uuid4().hex[:10]}@university.edu"
    r = await http.post(
        "/users", json={"email": email, "full_name": "Reconcile Me", "password": "reconcile-pw"}
    )
    assert r.status_code == 201, r.text
    tok = await http.post("/auth/token", data={"username": email, "password": "reconcile-pw"})
    return int(r.json()["id"]), tok.json()["access_token"]


def _of(drifts: list[Drift], store: str) -> Drift:
    return next(d for d in drifts if d.store == store)


@pytest.fixture
async def pair(stack: StackSettings) -> dict[str, Any]:
    """Two friends, one renamed, one in a group: a leaderboard score, an edge, an update row."""
    async with httpx.AsyncClient(base_url=stack.service_url("gateway"), timeout=15) as http:
        email_a = f"rec-{uuid.uuid4().hex[:10]}@university.edu"
        (a, ta), (b, _) = await _user(http, email_a), await _user(http)
        auth = {"Authorization": f"Bearer {ta}"}
        r = await http.post(f"/users/{a}/friends/{b}", headers=auth)
        assert r.status_code in (200, 201), r.text
        g = await http.post("/groups", json={"name": "Rec", "course_code": "R-1"}, headers=auth)
        r = await http.post(f"/groups/{g.json()['id']}/join", json={}, headers=auth)
        assert r.status_code == 201, r.text
        r = await http.put(f"/users/{a}", json={"full_name": "Renamed Rec"}, headers=auth)
        assert r.status_code == 200, r.text
    await converged()
    return {"a": a, "b": b, "group": g.json()["id"], "email": email_a}


async def test_a_leaderboard_increment_applied_twice_is_found_and_repaired(
    pair: dict[str, Any],
) -> None:
    r = StoreSettings().redis()
    try:
        before = await r.zscore("leaderboard:points", str(pair["a"]))
        assert before is not None and before > 0
        await r.zincrby("leaderboard:points", 5, str(pair["a"]))
    finally:
        await r.aclose()
    redis = _of(await reconcile(), "redis")
    assert ("leaderboard", pair["a"]) in redis.duplicated
    assert _of(await reconcile(repair=True), "redis").repaired >= 1
    assert _of(await reconcile(), "redis").clean
    r = StoreSettings().redis()
    try:
        assert await r.zscore("leaderboard:points", str(pair["a"])) == before
    finally:
        await r.aclose()


async def test_a_friend_edge_deleted_in_neo4j_is_found_and_repaired(
    pair: dict[str, Any],
) -> None:
    a, b = pair["a"], pair["b"]
    async with StoreSettings().neo4j() as d:
        await d.execute_query(
            "MATCH (:User {id: $a})-[f:FRIEND]->(:User {id: $b}) DELETE f", a=a, b=b
        )
    neo4j = _of(await reconcile(), "neo4j")
    assert ("friend", (a, b)) in neo4j.missing
    assert _of(await reconcile(repair=True), "neo4j").repaired >= 1
    assert _of(await reconcile(), "neo4j").clean
    async with StoreSettings().neo4j() as d:
        recs, _, _ = await d.execute_query(
            "MATCH (:User {id: $a})-[f:FRIEND]-(:User {id: $b}) RETURN count(f) AS n", a=a, b=b
        )
        assert recs[0]["n"] == 2  # both directions, once each


async def test_an_update_event_deleted_from_events_is_found_and_repaired(
    pair: dict[str, Any],
) -> None:
    dsn = StoreSettings().ts_dsn()
    like = f"cdc:users:updated:%:{pair['a']}"
    conn = await asyncpg.connect(dsn)
    try:
        key = await conn.fetchval("SELECT dedupe_key FROM events WHERE dedupe_key LIKE $1", like)
        assert key is not None
        await conn.execute("DELETE FROM events WHERE dedupe_key = $1", key)
    finally:
        await conn.close()
    ts = _of(await reconcile(), "timeseries")
    assert [k for _, (k, _) in ts.missing] == [key]
    assert _of(await reconcile(repair=True), "timeseries").repaired == 1
    assert _of(await reconcile(), "timeseries").clean
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT event_type, user_id, properties->>'full_name' AS name FROM events "
            "WHERE dedupe_key = $1",
            key,
        )
    finally:
        await conn.close()
    assert row is not None
    assert dict(row) == {"event_type": "user.updated", "user_id": pair["a"], "name": "Renamed Rec"}


async def test_a_post_whose_event_was_lost_is_found_and_published_again(
    stack: StackSettings, pair: dict[str, Any]
) -> None:
    # The planted drift: a post stored with its outbox already cleared but its post.created
    # never in Kafka (a copy of a real post under a new id, so the repaired event is a true one).
    async with httpx.AsyncClient(base_url=stack.service_url("gateway"), timeout=15) as http:
        r = await http.post(
            "/auth/token", data={"username": pair["email"], "password": "reconcile-pw"}
        )
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        body = {"type": "note", "title": "Lost", "tags": ["rec"]}
        r = await http.post(f"/groups/{pair['group']}/posts", json=body, headers=auth)
        assert r.status_code == 201, r.text
        source = r.json()["id"]
    await converged()
    s = StoreSettings()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(**s.mongo_options())
    db = mongo[s.docs_db_name]
    try:
        copy = await db.posts.find_one({"_id": ObjectId(source)})
        assert copy is not None and copy["pending"] is False
        lost = ObjectId()
        planted = {**copy, "_id": lost, "outbox": [], "pending": False}
        planted["idempotency_key"] = f"reconcile-{lost}"
        await db.posts.insert_one(planted)
        drift = await check_documents(s, await read_log(s), repair=True)
        assert ("post", str(lost)) in drift.missing and drift.repaired == 1
        # Queued as a document of its own: the post itself was not updated (on FerretDB v1 an
        # update racing an edit or the relay could lose one of them).
        assert await db.posts.find_one({"_id": lost}) == planted

        await converged()  # published once, projected everywhere, nothing else drifted
        assert await db.requeued.count_documents({}) == 0  # dropped once published
        log = await read_log(s)
        assert len(log.documents.facts[("post", str(lost))]) == 1  # one post.created, one id
    finally:
        await mongo.close()
