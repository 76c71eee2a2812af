"""Injection attempts through the public gateway reach no database as code.

SQL and Cypher payloads are stored and returned as the literal text they are, and the tables and
the graph are still there afterwards (checked in PostgreSQL and over Bolt, not only through the
API). MongoDB operators and dotted keys are refused (422) or matched as literal strings, never
evaluated. Text no store can hold (NUL, lone surrogates, absurd nesting) is a 422, not a 5xx.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase

from tests.conftest import StackSettings
from tests.e2e.security.security_helpers import PASSWORD, Account, register
from tests.helpers import eventually, unique_email

pytestmark = [pytest.mark.e2e, pytest.mark.security, pytest.mark.timeout(180)]

SQL = [
    "'; DROP TABLE users; --",
    "Robert'); DELETE FROM groups;--",
    "1' OR '1'='1",
    "x'; UPDATE users SET full_name = 'sql-pwned' WHERE '1'='1'; --",
    "$1); TRUNCATE group_memberships; --",
]
CYPHER = [
    "x'}) DETACH DELETE n //",
    'x"}) MATCH (n) DETACH DELETE n //',
    "`) MATCH (n) DETACH DELETE n RETURN 1 //`",
    "{id: 1, full_name: $name}) MATCH (n) DETACH DELETE n //",
    "\\'}) MERGE (x:Pwned) //",
]


@pytest.fixture
async def pg(stack: StackSettings) -> AsyncIterator[asyncpg.Connection]:
    dsn = stack.users_dsn()
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def neo4j(stack: StackSettings) -> AsyncIterator[AsyncDriver]:
    uri = stack.neo4j_uri
    auth = stack.neo4j_auth
    async with AsyncGraphDatabase.driver(uri, auth=auth) as driver:
        yield driver


async def _create_group(gw: httpx.AsyncClient, who: Account, name: str, code: str) -> int:
    r = await gw.post("/groups", json={"name": name, "course_code": code}, headers=who.auth)
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["course_code"]) == (name, code)
    return int(r.json()["id"])


async def test_sql_payloads_are_stored_literally_and_the_tables_stay(
    gw: httpx.AsyncClient, user: Account, pg: asyncpg.Connection
) -> None:
    sentinel = await _create_group(gw, user, "Sentinel", "SEC-S")
    groups_before = await pg.fetchval("SELECT count(*) FROM groups")

    victim = await register(gw, SQL[0])
    assert (await gw.get(f"/users/{victim.id}")).json()["full_name"] == SQL[0]
    for payload in SQL:
        r = await gw.put(f"/users/{victim.id}", json={"full_name": payload}, headers=victim.auth)
        assert r.status_code == 200 and r.json()["full_name"] == payload, r.text
        row = await pg.fetchval("SELECT full_name FROM users WHERE id = $1", victim.id)
        assert row == payload
    for payload in SQL:
        group_id = await _create_group(gw, user, payload, payload[:50])
        assert (await gw.get(f"/groups/{group_id}")).json()["name"] == payload
        r = await gw.post(f"/groups/{group_id}/join", json={}, headers=victim.auth)
        assert r.status_code == 201, r.text

    # As login names and as ids: refused, never a way in.
    for username in (SQL[2], f"{user.email}' --", f"{user.email}'; --", "' OR 1=1 --"):
        r = await gw.post("/auth/token", data={"username": username, "password": "x' OR '1'='1"})
        assert r.status_code == 401, (username, r.text)
    for path in (
        "/users/1%20OR%201=1",
        "/groups/1;DROP%20TABLE%20groups",
        "/users?after=0%20OR%201",
    ):
        assert (await gw.get(path)).status_code == 422, path

    for table in ("users", "groups", "group_memberships"):
        assert await pg.fetchval("SELECT to_regclass($1)", f"public.{table}") is not None, table
    assert await pg.fetchval("SELECT count(*) FROM groups WHERE id = $1", sentinel) == 1
    assert await pg.fetchval("SELECT count(*) FROM groups") >= groups_before + len(SQL)
    assert await pg.fetchval("SELECT count(*) FROM users WHERE full_name = 'sql-pwned'") == 0
    members = await pg.fetchval(
        "SELECT count(*) FROM group_memberships WHERE user_id = $1", victim.id
    )
    assert members == len(SQL)


async def _node(driver: AsyncDriver, label: str, node_id: int) -> dict[str, Any] | None:
    query = f"MATCH (n:{label} {{id: $id}}) RETURN properties(n) AS p"  # label: a constant
    records, _, _ = await driver.execute_query(query, id=node_id)
    return dict(records[0]["p"]) if records else None


async def _projected(driver: AsyncDriver, label: str, node_id: int, **want: str) -> None:
    """Wait for the `graph` projection (fed by CDC) to give the node exactly these properties."""

    async def probe() -> dict[str, Any] | None:
        return await _node(driver, label, node_id)

    def arrived(node: dict[str, Any] | None) -> bool:
        return node is not None and all(node.get(k) == v for k, v in want.items())

    await eventually(probe, until=arrived, timeout=30, interval=0.3)


async def test_cypher_payloads_reach_neo4j_as_literal_names(
    gw: httpx.AsyncClient, user: Account, neo4j: AsyncDriver
) -> None:
    sentinel = await register(gw, "Graph Sentinel")
    await _projected(neo4j, "User", sentinel.id, full_name="Graph Sentinel")

    people = [await register(gw, payload) for payload in CYPHER]
    group_id = await _create_group(gw, user, CYPHER[0], CYPHER[1][:50])
    for person in people:
        r = await gw.post(f"/users/{user.id}/friends/{person.id}", headers=user.auth)
        assert r.status_code == 201, r.text

    for person, payload in zip(people, CYPHER, strict=True):
        await _projected(neo4j, "User", person.id, full_name=payload)
    await _projected(neo4j, "Group", group_id, name=CYPHER[0], course_code=CYPHER[1][:50])
    friends = (await gw.get(f"/users/{user.id}/friends", headers=user.auth)).json()["items"]
    assert {f["full_name"] for f in friends} == set(CYPHER)

    # Ids with quotes and braces never reach a query: the gateway wants integers.
    for path in (
        "/users/1'%7D)%20DETACH%20DELETE%20n%20//friends",
        "/recommendations/users/1%7D/friends",
        "/recommendations/users/1/friends?strategy=mutual'%7D)%20DETACH%20DELETE%20n",
    ):
        assert (await gw.get(path, headers=user.auth)).status_code in (404, 422), path
    r = await gw.post("/follow", json={"followee_id": "1}) DETACH DELETE n //"}, headers=user.auth)
    assert r.status_code == 422, r.text

    assert await _node(neo4j, "User", sentinel.id) is not None
    records, _, _ = await neo4j.execute_query("MATCH (n:Pwned) RETURN count(n) AS n")
    assert records[0]["n"] == 0


REFUSED_POST_BODIES: list[dict[str, Any]] = [
    {"title": {"$where": "1"}},
    {"title": "t", "author_id": {"$gt": 0}},
    {"title": "t", "group_id": {"$ne": None}},
    {"title": "t", "tags": {"$ne": None}},
    {"title": "t", "tags": [{"$gt": ""}]},
    {"title": "t", "meta.likes": 5},
    {"title": "t", "meta": {"likes": 5}},
    {"title": "t", "$where": "sleep(1000)"},
    {"title": "t", "attachments": [{"type": "link", "url": "http://x.edu", "$where": "1"}]},
    {"title": "t", "attachments": [{"type": {"$ne": "x"}, "url": "http://x.edu"}]},
]
REFUSED_UPDATES: list[dict[str, Any]] = [
    {"title": {"$set": "x"}},
    {"meta.likes": 1000},
    {"$inc": {"meta.likes": 1000}},
    {"$set": {"author_id": 1}},
    {"tags": {"$each": ["a"]}},
    {"author_id": 1},
]
# Query strings that try to smuggle an operator past a filter (qs-style brackets, JSON values).
SMUGGLED = [
    "author_id[$ne]=1",
    "author_id[$gt]=0",
    'author_id={"$ne":1}',
    "tag[$ne]=x",
    'tag={"$ne":null}',
    "tag[$regex]=.*",
    "group_id[$exists]=true",
    "$where=1",
    "cursor[$gt]=",
    "limit[$gt]=0",
]


async def test_mongodb_operators_are_refused_or_literal(
    gw: httpx.AsyncClient, user: Account, other: Account
) -> None:
    marker = f"m{uuid.uuid4().hex[:12]}"
    for body in REFUSED_POST_BODIES:
        r = await gw.post("/posts", json=body, headers=user.auth)
        assert r.status_code == 422, (body, r.status_code, r.text)

    literal = {"title": '{"$where": "1"}', "body": "{$gt: ''}", "tags": [marker, "$where", "a.b"]}
    r = await gw.post("/posts", json=literal, headers=user.auth)
    assert r.status_code == 201, r.text
    post = r.json()
    assert (post["title"], post["body"], post["tags"]) == (
        literal["title"],
        literal["body"],
        literal["tags"],
    )
    other_post = await gw.post("/posts", json={"title": "t", "tags": [marker]}, headers=other.auth)
    assert other_post.status_code == 201, other_post.text

    for body in REFUSED_UPDATES:
        r = await gw.put(f"/posts/{post['id']}", json=body, headers=user.auth)
        assert r.status_code == 422, (body, r.status_code, r.text)
    for body in ({"body": {"$gt": ""}}, {"body": "x", "post_id": {"$ne": None}}):
        r = await gw.post(f"/posts/{post['id']}/comments", json=body, headers=user.auth)
        assert r.status_code == 422, (body, r.text)
    r = await gw.post(f"/posts/{post['id']}/like", json={"user_id": {"$gt": 0}}, headers=user.auth)
    assert r.status_code == 422, r.text
    stored = (await gw.get(f"/posts/{post['id']}")).json()
    assert (stored["author_id"], stored["meta"]["likes"], stored["title"]) == (
        user.id,
        0,
        literal["title"],
    )

    # A literal tag that looks like an operator matches as text: only this post has it.
    found = (await gw.get("/posts", params={"tag": "$where", "author_id": user.id})).json()
    assert [p["id"] for p in found["items"]] == [post["id"]]

    anchored = f"author_id={user.id}&tag={marker}"
    for smuggled in SMUGGLED:
        r = await gw.get(f"/posts?{anchored}&{smuggled}")
        assert r.status_code in (200, 422), (smuggled, r.status_code, r.text)
        if r.status_code == 200:  # the operator was ignored or matched as text, never obeyed
            assert {p["id"] for p in r.json()["items"]} <= {post["id"]}, (smuggled, r.text)
        alone = await gw.get(f"/posts?{smuggled}")
        assert alone.status_code in (200, 422), (smuggled, alone.status_code, alone.text)

    # Comments and feeds stay within their post and group whatever else the query says.
    elsewhere = other_post.json()["id"]
    r = await gw.post(f"/posts/{elsewhere}/comments", json={"body": "there"}, headers=other.auth)
    assert r.status_code == 201, r.text
    r = await gw.get(f"/posts/{post['id']}/comments?post_id[$ne]=x&post_id={elsewhere}")
    assert r.status_code == 200 and r.json()["items"] == [], r.text
    group_id = await _create_group(gw, user, "Feed probe", "SEC-F")
    r = await gw.post(f"/groups/{group_id}/join", json={}, headers=user.auth)
    assert r.status_code == 201, r.text
    r = await gw.post(f"/groups/{group_id}/posts", json={"title": "in"}, headers=user.auth)
    assert r.status_code == 201, r.text
    feed = await gw.get(f"/groups/{group_id}/posts/feed?group_id[$ne]={group_id}&$where=1")
    assert feed.status_code == 200, feed.text
    assert [p["group_id"] for p in feed.json()["items"]] == [group_id]


async def test_text_no_store_can_hold_is_a_422(
    gw: httpx.AsyncClient, user: Account, other: Account, admin: Account
) -> None:
    """NUL cannot be stored by PostgreSQL (users) nor FerretDB (posts); a lone surrogate cannot
    be encoded as UTF-8; deep nesting exhausts recursion; an id past bigint overflows the driver.
    Each used to end in a 500 or 502."""
    nul = "a\x00b"
    post = (await gw.post("/posts", json={"title": "ok"}, headers=user.auth)).json()
    group_id = await _create_group(gw, user, "NUL probe", "SEC-N")
    attempts: list[tuple[str, str, Any, Account | None]] = [
        ("POST", "/users", {"email": unique_email(), "full_name": nul, "password": PASSWORD}, None),
        ("PUT", f"/users/{user.id}", {"full_name": nul}, user),
        ("POST", "/groups", {"name": nul, "course_code": "X"}, user),
        ("POST", "/groups", {"name": "x", "course_code": nul}, user),
        ("POST", f"/groups/{group_id}/join", {"user_id": 2**63}, admin),  # past bigint
        ("POST", "/posts", {"title": nul}, user),
        ("POST", "/posts", {"title": "t", "tags": [nul]}, user),
        ("POST", "/posts", {"title": "t", "extra": {nul: 1}}, user),
        ("PUT", f"/posts/{post['id']}", {"body": nul}, user),
        ("POST", f"/posts/{post['id']}/comments", {"body": nul}, other),
    ]
    for method, path, body, who in attempts:
        r = await gw.request(method, path, json=body, headers=who.auth if who else {})
        assert r.status_code == 422, (method, path, body, r.status_code, r.text)
    assert (await gw.get("/posts", params={"tag": nul})).status_code == 422

    deep = '{"title": "t", "extra": ' + '{"a": ' * 900 + "1" + "}" * 900 + "}"
    raw = [
        ("/posts", b'{"title": "a\\ud800b"}'),
        ("/posts", b'{"title": "t", "x\\udc00": 1}'),
        (f"/posts/{post['id']}/comments", b'{"body": "\\udfff"}'),
        ("/posts", deep.encode()),
        ("/posts", b'{"title": "t", "tags": ' + b"[" * 500 + b"]" * 500 + b"}"),
    ]
    json_type = {"content-type": "application/json"}
    for path, content in raw:
        r = await gw.post(path, content=content, headers={**user.auth, **json_type})
        assert r.status_code in (400, 422), (path, content[:40], r.status_code, r.text)
    assert (await gw.get("/health")).status_code == 200
