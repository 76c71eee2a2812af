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

from campus_cli.reconcile import Drift, reconcile
from campus_cli.stores import StoreSettings
from tests.conftest import StackSettings
from tests.e2e.conftest import converged

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def _user(http: httpx.AsyncClient) -> tuple[int, str]:
    email = f"rec-{uuid.uuid4().hex[:10]}@university.edu"
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
        (a, ta), (b, _) = await _user(http), await _user(http)
        auth = {"Authorization": f"Bearer {ta}"}
        r = await http.post(f"/users/{a}/friends/{b}", headers=auth)
        assert r.status_code in (200, 201), r.text
        g = await http.post("/groups", json={"name": "Rec", "course_code": "R-1"}, headers=auth)
        r = await http.post(f"/groups/{g.json()['id']}/join", json={}, headers=auth)
        assert r.status_code == 201, r.text
        r = await http.put(f"/users/{a}", json={"full_name": "Renamed Rec"}, headers=auth)
        assert r.status_code == 200, r.text
    await converged()
    return {"a": a, "b": b}


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
