"""The graph service against the running stack: CDC into Neo4j, edges, events, recommendations."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from neo4j import AsyncDriver, AsyncGraphDatabase
from neo4j.exceptions import ServiceUnavailable

from campus_common import topics
from campus_common.consumer import Delivered
from campus_common.events import Event
from campus_common.web import MAX_ID
from campus_graph.projection import GraphChange, GraphProjection
from tests.conftest import StackSettings
from tests.helpers import eventually, unique_email

pytestmark = pytest.mark.integration

CDC_WAIT = 5.0


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
async def neo4j(stack: StackSettings) -> AsyncIterator[AsyncDriver]:
    driver = AsyncGraphDatabase.driver(
        stack.neo4j_uri,
        auth=stack.neo4j_auth,
    )
    try:
        yield driver
    finally:
        await driver.close()


@pytest.fixture
def graph_url(stack: StackSettings) -> str:
    return stack.service_url("graph")


@pytest.fixture
def users_url(stack: StackSettings) -> str:
    return stack.service_url("users")


async def create_user(http: httpx.AsyncClient, users_url: str, name: str = "Student") -> int:
    r = await http.post(
        f"{users_url}/users",
        json={"email": unique_email("graph"), "full_name": name, "password": "correct horse 1"},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def create_group(http: httpx.AsyncClient, users_url: str, members: list[int]) -> int:
    r = await http.post(
        f"{users_url}/groups", json={"name": f"g-{uuid.uuid4().hex[:8]}", "course_code": "GR-101"}
    )
    assert r.status_code == 201, r.text
    group_id = int(r.json()["id"])
    for user_id in members:
        r = await http.post(f"{users_url}/groups/{group_id}/members", json={"user_id": user_id})
        assert r.status_code == 201, r.text
    return group_id


async def user_node(neo4j: AsyncDriver, user_id: int) -> dict[str, Any] | None:
    records, _, _ = await neo4j.execute_query(
        "MATCH (u:User {id: $id}) RETURN properties(u) AS p", id=user_id
    )
    return dict(records[0]["p"]) if records else None


async def snapshot(neo4j: AsyncDriver, ids: list[int]) -> list[Any]:
    """Everything the graph holds about these ids: nodes, MEMBER_OF edges and tombstones."""
    records, _, _ = await neo4j.execute_query(
        """
        CALL () {
          MATCH (n) WHERE (n:User OR n:Group) AND n.id IN $ids
          RETURN labels(n) AS what, properties(n) AS props
          UNION ALL
          MATCH (u:User)-[m:MEMBER_OF]->(g:Group) WHERE u.id IN $ids
          RETURN [toString(u.id), toString(g.id)] AS what, properties(m) AS props
          UNION ALL
          MATCH (t:Tombstone) WHERE t.id IN $ids OR t.user_id IN $ids
          RETURN [t.key] AS what, properties(t) AS props
        }
        RETURN what, props
        """,
        ids=ids,
    )
    return sorted(((r["what"], dict(r["props"])) for r in records), key=repr)


async def forget(neo4j: AsyncDriver, ids: list[int]) -> None:
    await neo4j.execute_query(
        "MATCH (n) WHERE (n:User OR n:Group OR n:Tombstone) "
        "AND (n.id IN $ids OR n.user_id IN $ids) DETACH DELETE n",
        ids=ids,
    )


def fake_ids(n: int) -> list[int]:
    # Far above any identity value the users service hands out, so no real row is touched.
    base = 9 * 10**17 + secrets.randbelow(10**15)
    return [base + i for i in range(n)]


def cdc(
    topic: str,
    op: str,
    lsn: int,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> Delivered[GraphChange]:
    """A Debezium record as the connector writes it, decoded by the projection itself."""
    value = orjson.dumps(
        {
            "op": op,
            "before": before,
            "after": after,
            "source": {"table": "t", "ts_ms": 1, "lsn": lsn},
        }
    )
    raw = ConsumerRecord(topic, 0, lsn, 0, 0, b"{}", value, None, 0, 0, [])
    decoded = GraphProjection(driver=None).decode(raw)  # type: ignore[arg-type]
    assert decoded is not None
    return Delivered(topic, 0, lsn, 0, b"{}", decoded)


def user_row(user_id: int, name: str) -> dict[str, Any]:
    at = "2025-03-01T10:00:00.000001Z"
    return {
        "id": user_id,
        "email": f"{user_id}@university.edu",
        "full_name": name,
        "created_at": at,
        "updated_at": at,
    }


async def tail(stack: StackSettings, topic: str) -> AIOKafkaConsumer:
    """A group-less consumer positioned at the current end of every partition of `topic`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka.bootstrap_servers)
    await admin.start()
    try:
        [meta] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = [TopicPartition(topic, p["partition"]) for p in meta["partitions"]]
    assert parts, f"{topic} has no partitions"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)  # resolve the end now, before anything is produced
    return consumer


async def drain(consumer: AIOKafkaConsumer, seconds: float) -> list[ConsumerRecord[bytes, bytes]]:
    out: list[ConsumerRecord[bytes, bytes]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            out.extend(records)
    return out


# --- CDC projection ---------------------------------------------------------------------------


async def test_user_create_update_delete_reach_neo4j(
    http: httpx.AsyncClient, users_url: str, neo4j: AsyncDriver
) -> None:
    user_id = await create_user(http, users_url, "Grace Hopper")
    node = await eventually(lambda: user_node(neo4j, user_id), timeout=CDC_WAIT)
    assert node is not None
    assert node["full_name"] == "Grace Hopper" and node["email"].startswith("graph-")
    assert node["lsn"] > 0

    r = await http.put(f"{users_url}/users/{user_id}", json={"full_name": "Rear Admiral Hopper"})
    assert r.status_code == 200
    node = await eventually(
        lambda: user_node(neo4j, user_id),
        until=lambda n: n is not None and n["full_name"] == "Rear Admiral Hopper",
        timeout=CDC_WAIT,
    )

    assert node is not None
    assert (await http.delete(f"{users_url}/users/{user_id}")).status_code == 204
    await eventually(lambda: user_node(neo4j, user_id), until=lambda n: n is None, timeout=CDC_WAIT)
    records, _, _ = await neo4j.execute_query(
        "MATCH (t:Tombstone {key: $key}) RETURN t.lsn AS lsn", key=f"user:{user_id}"
    )
    assert records and records[0]["lsn"] > node["lsn"]


async def test_membership_appears_as_member_of(
    http: httpx.AsyncClient, users_url: str, neo4j: AsyncDriver
) -> None:
    user_id = await create_user(http, users_url)
    group_id = await create_group(http, users_url, [user_id])

    async def edge() -> list[Any]:
        records, _, _ = await neo4j.execute_query(
            "MATCH (:User {id: $u})-[m:MEMBER_OF]->(g:Group {id: $g}) "
            "RETURN m.role AS role, g.course_code AS course",
            u=user_id,
            g=group_id,
        )
        return [(r["role"], r["course"]) for r in records]

    assert await eventually(edge, until=lambda e: e == [("member", "GR-101")], timeout=CDC_WAIT)

    r = await http.delete(f"{users_url}/groups/{group_id}/members/{user_id}")
    assert r.status_code == 204
    await eventually(edge, until=lambda e: e == [], timeout=CDC_WAIT)


async def test_a_batch_delivered_twice_leaves_the_graph_unchanged(neo4j: AsyncDriver) -> None:
    u1, u2, g = fake_ids(3)
    batch = [
        cdc(topics.USERS, "c", 1000, after=user_row(u1, "One")),
        cdc(topics.USERS, "c", 1001, after=user_row(u2, "Two")),
        cdc(topics.GROUPS, "c", 1002, after={"id": g, "name": "Algebra", "course_code": "M-1"}),
        cdc(
            topics.MEMBERSHIPS,
            "c",
            1003,
            after={
                "user_id": u1,
                "group_id": g,
                "role": "member",
                "joined_at": "2025-03-01T10:00:00Z",
            },
        ),
        cdc(
            topics.MEMBERSHIPS,
            "c",
            1004,
            after={
                "user_id": u2,
                "group_id": g,
                "role": "admin",
                "joined_at": "2025-03-01T10:00:00Z",
            },
        ),
        cdc(topics.USERS, "u", 1005, after=user_row(u1, "One renamed")),
        cdc(topics.MEMBERSHIPS, "d", 1006, before={"user_id": u2, "group_id": g}),
    ]
    projection = GraphProjection(neo4j)
    try:
        await projection.apply(batch)
        first = await snapshot(neo4j, [u1, u2, g])
        await projection.apply(batch)
        assert await snapshot(neo4j, [u1, u2, g]) == first
        # And the content is the newest state: renamed, one membership, one edge tombstone.
        node = await user_node(neo4j, u1)
        assert node is not None and node["full_name"] == "One renamed" and node["lsn"] == 1005
        kinds = sorted(str(what) for what, _ in first)
        assert kinds == sorted(
            [
                str(["Group"]),
                str(["User"]),
                str(["User"]),
                str([str(u1), str(g)]),
                str([f"membership:{u2}:{g}"]),
            ]
        )
    finally:
        await forget(neo4j, [u1, u2, g])


async def test_an_older_change_never_overwrites_a_newer_one(neo4j: AsyncDriver) -> None:
    u1, u2, g = fake_ids(3)
    projection = GraphProjection(neo4j)
    joined = "2025-03-01T10:00:00Z"
    try:
        # Update first, then a late older update: the name stays.
        await projection.apply([cdc(topics.USERS, "u", 2000, after=user_row(u1, "Newer"))])
        await projection.apply([cdc(topics.USERS, "u", 1500, after=user_row(u1, "Older"))])
        node = await user_node(neo4j, u1)
        assert node is not None and node["full_name"] == "Newer" and node["lsn"] == 2000

        # Delete, then the create replayed: the user stays deleted.
        await projection.apply([cdc(topics.USERS, "d", 3000, before={"id": u2})])
        await projection.apply([cdc(topics.USERS, "c", 1000, after=user_row(u2, "Ghost"))])
        assert await user_node(neo4j, u2) is None

        # A late membership of the deleted user does not bring it back as a bare node.
        member = {"user_id": u2, "group_id": g, "role": "member", "joined_at": joined}
        await projection.apply([cdc(topics.MEMBERSHIPS, "c", 2500, after=member)])
        assert await user_node(neo4j, u2) is None

        # Membership removed, then its creation replayed: no edge.
        member = {"user_id": u1, "group_id": g, "role": "member", "joined_at": joined}
        await projection.apply(
            [cdc(topics.MEMBERSHIPS, "d", 4000, before={"user_id": u1, "group_id": g})]
        )
        await projection.apply([cdc(topics.MEMBERSHIPS, "c", 3500, after=member)])
        records, _, _ = await neo4j.execute_query(
            "MATCH (:User {id: $u})-[m:MEMBER_OF]->() RETURN m", u=u1
        )
        assert records == []

        # A newer membership (re-joined) applies and clears the edge's tombstone.
        await projection.apply([cdc(topics.MEMBERSHIPS, "c", 4500, after=member)])
        records, _, _ = await neo4j.execute_query(
            "MATCH (:User {id: $u})-[m:MEMBER_OF]->(g:Group) "
            "RETURN m.lsn AS lsn, g.lsn AS group_lsn, "
            "EXISTS { MATCH (t:Tombstone {key: $key}) } AS tomb",
            u=u1,
            key=f"membership:{u1}:{g}",
        )
        # The group is a bare node until its own change arrives.
        assert [r.data() for r in records] == [{"lsn": 4500, "group_lsn": None, "tomb": False}]
    finally:
        await forget(neo4j, [u1, u2, g])


async def test_neo4j_down_is_a_transient_failure_not_poison() -> None:
    # A real driver against a port nothing listens on: the error the runner would see.
    driver = AsyncGraphDatabase.driver(
        "bolt://127.0.0.1:1", auth=("neo4j", "unused"), max_transaction_retry_time=0.5
    )
    projection = GraphProjection(driver)
    [user_id] = fake_ids(1)
    try:
        with pytest.raises(ServiceUnavailable) as failure:
            await projection.apply([cdc(topics.USERS, "c", 1, after=user_row(user_id, "X"))])
        assert projection.is_transient(failure.value)
    finally:
        await driver.close()


async def test_unparseable_record_is_dead_lettered_and_the_partition_moves_on(
    stack: StackSettings, http: httpx.AsyncClient, users_url: str, neo4j: AsyncDriver
) -> None:
    user_id = await create_user(http, users_url, "Before Poison")
    await eventually(lambda: user_node(neo4j, user_id), timeout=CDC_WAIT)
    dlq = await tail(stack, topics.dead_letter("graph"))
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka.bootstrap_servers)
    await producer.start()
    try:
        # Debezium's key bytes, so the poison lands on the user's own partition ahead of the
        # update below: that update only arrives if the partition moved past the poison.
        key = orjson.dumps({"id": user_id})
        meta = await producer.send_and_wait(topics.USERS, b"{this is not json", key=key)
        r = await http.put(f"{users_url}/users/{user_id}", json={"full_name": "After Poison"})
        assert r.status_code == 200
        await eventually(
            lambda: user_node(neo4j, user_id),
            until=lambda n: n is not None and n["full_name"] == "After Poison",
            timeout=CDC_WAIT,
        )

        async def dead() -> list[ConsumerRecord[bytes, bytes]]:
            return [r for r in await drain(dlq, 0.5) if r.key == key]

        [record] = await eventually(dead, timeout=CDC_WAIT)
        headers = dict(record.headers)
        assert record.value == b"{this is not json"
        assert b"ValidationError" in headers["error"]
        assert headers["original_topic"] == topics.USERS.encode()
        assert headers["original_partition"] == str(meta.partition).encode()
        assert headers["original_offset"] == str(meta.offset).encode()
    finally:
        await producer.stop()
        await dlq.stop()


# --- friend and follow edges -----------------------------------------------------------------


async def test_friend_endpoints(
    http: httpx.AsyncClient, users_url: str, graph_url: str, neo4j: AsyncDriver
) -> None:
    a = await create_user(http, users_url, "Alice")
    b = await create_user(http, users_url, "Bob")

    r = await http.post(f"{graph_url}/users/{a}/friends/{b}")
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == a and r.json()["other_id"] == b
    again = await http.post(f"{graph_url}/users/{b}/friends/{a}")
    assert again.status_code == 200  # already friends, from either side
    records, _, _ = await neo4j.execute_query(
        "MATCH (:User {id: $a})-[r:FRIEND]-(:User {id: $b}) RETURN count(r) AS n", a=a, b=b
    )
    assert records[0]["n"] == 2  # both directions stored

    for user, other in ((a, b), (b, a)):
        page = (await http.get(f"{graph_url}/users/{user}/friends")).json()
        assert [f["id"] for f in page["items"]] == [other]

    assert (await http.post(f"{graph_url}/users/{a}/friends/{a}")).status_code == 422
    assert (await http.post(f"{graph_url}/users/{a}/friends/0")).status_code == 422
    assert (await http.post(f"{graph_url}/users/{a}/friends/{MAX_ID + 1}")).status_code == 422
    missing = await http.post(f"{graph_url}/users/{a}/friends/{MAX_ID}")
    assert missing.status_code == 404 and str(MAX_ID) in missing.json()["detail"]
    assert (await http.get(f"{graph_url}/users/{MAX_ID}/friends")).status_code == 404

    assert (await http.delete(f"{graph_url}/users/{a}/friends/{b}")).status_code == 204
    assert (await http.delete(f"{graph_url}/users/{a}/friends/{b}")).status_code == 204
    assert (await http.get(f"{graph_url}/users/{b}/friends")).json()["items"] == []


async def test_follow_endpoints(http: httpx.AsyncClient, users_url: str, graph_url: str) -> None:
    a = await create_user(http, users_url, "Follower")
    b = await create_user(http, users_url, "Followee")
    body = {"follower_id": a, "followee_id": b}

    assert (await http.post(f"{graph_url}/follow", json=body)).status_code == 201
    assert (await http.post(f"{graph_url}/follow", json=body)).status_code == 200
    # One way only: b following a back is a new edge.
    assert (
        await http.post(f"{graph_url}/follow", json={"follower_id": b, "followee_id": a})
    ).status_code == 201

    async def mine() -> list[tuple[str, str | None, str | None]]:
        found, offset = [], 0
        while True:  # every page: other runs' edges are in the graph too
            r = await http.get(
                f"{graph_url}/relationships", params={"limit": 500, "offset": offset}
            )
            assert r.status_code == 200, r.text
            page = r.json()
            found += [
                (x["type"], x["from_name"], x["to_name"])
                for x in page["items"]
                if {x["from_id"], x["to_id"]} == {a, b}
            ]
            if page["next_offset"] is None:
                return sorted(found, key=repr)
            offset = page["next_offset"]

    # The names arrive with the users' own CDC changes (the edge may be there first).
    expected = [("FOLLOWS", "Followee", "Follower"), ("FOLLOWS", "Follower", "Followee")]
    await eventually(mine, until=lambda m: m == expected, timeout=CDC_WAIT)

    assert (
        await http.post(f"{graph_url}/follow", json={"follower_id": a, "followee_id": a})
    ).status_code == 422
    assert (await http.post(f"{graph_url}/follow", json={"follower_id": a})).status_code == 422
    unknown = {"follower_id": a, "followee_id": MAX_ID}
    assert (await http.post(f"{graph_url}/follow", json=unknown)).status_code == 404

    assert (await http.request("DELETE", f"{graph_url}/follow", json=body)).status_code == 204
    assert (await http.request("DELETE", f"{graph_url}/follow", json=body)).status_code == 204


async def test_friend_event_is_published_exactly_once_per_change(
    stack: StackSettings, http: httpx.AsyncClient, users_url: str, graph_url: str
) -> None:
    a = await create_user(http, users_url)
    b = await create_user(http, users_url)
    events = await tail(stack, topics.GRAPH_EVENTS)
    try:
        assert (await http.post(f"{graph_url}/users/{a}/friends/{b}")).status_code == 201
        assert (await http.post(f"{graph_url}/users/{a}/friends/{b}")).status_code == 200
        assert (await http.delete(f"{graph_url}/users/{b}/friends/{a}")).status_code == 204
        assert (await http.delete(f"{graph_url}/users/{b}/friends/{a}")).status_code == 204

        seen: list[tuple[bytes | None, Event]] = []

        async def ours() -> list[tuple[bytes | None, Event]]:
            for rec in await drain(events, 0.5):
                event = Event.from_bytes(rec.value)
                if {event.payload.get("user_id"), event.payload.get("other_id")} == {a, b}:
                    seen.append((rec.key, event))
            return seen

        await eventually(ours, until=lambda s: len(s) >= 2, timeout=10)
        await drain(events, 2.0)  # a duplicate would show up right behind
        await ours()
        assert [(e.type, e.user_id, e.payload) for _, e in seen] == [
            ("friend.added", a, {"user_id": a, "other_id": b}),
            ("friend.removed", b, {"user_id": b, "other_id": a}),
        ]
        assert {k for k, _ in seen} == {str(min(a, b)).encode()}
    finally:
        await events.stop()


# --- recommendations and the dashboard graph ------------------------------------------------


async def test_recommendations_on_a_small_hand_built_graph(
    http: httpx.AsyncClient, users_url: str, graph_url: str, neo4j: AsyncDriver
) -> None:
    me, b, c, d, e, f = [await create_user(http, users_url, n) for n in "ABCDEF"]
    for x, y in ((me, b), (me, c), (b, d), (b, e), (c, d)):
        assert (await http.post(f"{graph_url}/users/{x}/friends/{y}")).status_code == 201
    g1 = await create_group(http, users_url, [me, e, f, b])
    g2 = await create_group(http, users_url, [me, f])
    g3 = await create_group(http, users_url, [b, c])
    g4 = await create_group(http, users_url, [c])

    async def memberships() -> int:
        records, _, _ = await neo4j.execute_query(
            "MATCH (:User)-[m:MEMBER_OF]->(g:Group) WHERE g.id IN $g RETURN count(m) AS n",
            g=[g1, g2, g3, g4],
        )
        return int(records[0]["n"])

    await eventually(memberships, until=lambda n: n == 9, timeout=CDC_WAIT)

    async def recommend(strategy: str) -> list[tuple[int, int, int, int]]:
        r = await http.get(
            f"{graph_url}/recommendations/users/{me}/friends", params={"strategy": strategy}
        )
        assert r.status_code == 200, r.text
        return [(x["id"], x["mutual_friends"], x["common_groups"], x["score"]) for x in r.json()]

    # d: friends b and c; e: friend b, group g1; f: groups g1 and g2; b is a friend already.
    assert await recommend("mutual") == [(d, 2, 0, 2), (e, 1, 1, 1)]
    assert await recommend("groups") == [(f, 0, 2, 2), (e, 1, 1, 1)]
    assert await recommend("combined") == [(d, 2, 0, 4), (e, 1, 1, 3), (f, 0, 2, 2)]
    r = await http.get(f"{graph_url}/recommendations/users/{me}/friends", params={"limit": 1})
    assert [x["full_name"] for x in r.json()] == ["D"]

    r = await http.get(f"{graph_url}/recommendations/users/{me}/groups")
    assert [(x["id"], x["friends_in_group"]) for x in r.json()] == [(g3, 2), (g4, 1)]

    assert (
        await http.get(f"{graph_url}/recommendations/users/{me}/friends", params={"strategy": "x"})
    ).status_code == 422
    assert (
        await http.get(f"{graph_url}/recommendations/users/{MAX_ID}/friends")
    ).status_code == 404
    assert (await http.get(f"{graph_url}/recommendations/users/{MAX_ID}/groups")).status_code == 404
    # Known to the users service but with no graph data yet: an empty list, not a 404.
    loner = await create_user(http, users_url)
    r = await http.get(f"{graph_url}/recommendations/users/{loner}/groups")
    assert r.status_code == 200 and r.json() == []


async def test_graph_view_lists_nodes_and_edges(
    http: httpx.AsyncClient, users_url: str, graph_url: str
) -> None:
    a = await create_user(http, users_url)
    b = await create_user(http, users_url)
    assert (await http.post(f"{graph_url}/users/{a}/friends/{b}")).status_code == 201
    r = await http.get(f"{graph_url}/graph", params={"limit": 50})
    assert r.status_code == 200
    body = r.json()
    ids = {n["id"] for n in body["nodes"]}
    assert 0 < len(ids) <= 50
    assert all(e["source"] in ids and e["target"] in ids for e in body["edges"])
    assert (await http.get(f"{graph_url}/graph", params={"limit": 0})).status_code == 422


async def test_projection_api_and_health(http: httpx.AsyncClient, graph_url: str) -> None:
    health = await http.get(f"{graph_url}/health")
    assert health.status_code == 200, health.text
    assert set(health.json()["dependencies"]) == {"neo4j", "kafka"}
    [projection] = (await http.get(f"{graph_url}/projections")).json()
    assert projection["name"] == "graph" and projection["state"] == "running"
    assert set(projection["topics"]) == set(topics.CDC_TOPICS)
