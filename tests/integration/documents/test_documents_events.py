"""Events of the documents service: every acknowledged write reaches Kafka, crashes included."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from bson import ObjectId
from docs_support import EventTail, Instance, Member, about, free_port, new_post
from pymongo import AsyncMongoClient

from campus_documents.config import Settings
from campus_documents.relay import OutboxRelay
from campus_documents.schemas import CommentCreate, PostCreate
from campus_documents.service import (
    Store,
    add_comment,
    create_post,
    delete_post,
    like_post,
)
from campus_documents.users_client import UsersClient
from tests.conftest import StackSettings
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def test_every_write_publishes_one_event_in_order(
    http: httpx.AsyncClient,
    docs_url: str,
    member: Member,
    events: EventTail,
    make_member: Callable[..., Awaitable[Member]],
    mongo: AsyncMongoClient[Any],
    docs_settings: Settings,
) -> None:
    fan = await make_member(member.group_id)
    r = await http.post(f"{docs_url}/groups/{member.group_id}/posts", json=new_post(member.user_id))
    post = r.json()
    pid = post["id"]
    author = {"X-User-Id": str(member.user_id)}
    await http.put(
        f"{docs_url}/posts/{pid}", json={"title": "Edited", "tags": ["exam"]}, headers=author
    )
    for _ in range(2):
        await http.post(f"{docs_url}/posts/{pid}/like", json={"user_id": fan.user_id})
    r = await http.post(
        f"{docs_url}/posts/{pid}/comments",
        json={"author_id": fan.user_id, "body": "Same question!"},
    )
    comment_id = r.json()["id"]
    assert (await http.delete(f"{docs_url}/posts/{pid}", headers=author)).status_code == 204

    got = await events.wait_for(about(pid), count=5, settle=2.0)
    by_type = {e.type: e for e in got}
    assert sorted(by_type) == sorted(
        ["post.created", "post.updated", "post.liked", "comment.created", "post.deleted"]
    )
    assert len(got) == 5, [e.type for e in got]  # the second like emitted nothing
    assert all(e.key == pid and e.source == "documents" for e in got)
    # One key, one partition: the events of the post document keep their order (comments and
    # likes are documents of their own, published in time order as far as one round sees them).
    post_events = [e.type for e in got if e.type not in ("comment.created", "post.liked")]
    assert post_events == ["post.created", "post.updated", "post.deleted"]

    common = {"post_id": pid, "group_id": member.group_id, "author_id": member.user_id}
    assert by_type["post.created"].payload == common | {
        "type": "question",
        "title": post["title"],
        "tags": ["cs-450", "indexes"],
    }
    assert by_type["post.created"].user_id == member.user_id
    assert by_type["post.updated"].payload == common | {
        "type": "question",
        "title": "Edited",
        "tags": ["exam"],
    }
    assert by_type["post.liked"].payload == common | {"user_id": fan.user_id}
    assert by_type["post.liked"].user_id == fan.user_id
    assert by_type["comment.created"].payload == {
        "comment_id": comment_id,
        "post_id": pid,
        "group_id": member.group_id,
        "author_id": fan.user_id,
        "post_author_id": member.user_id,
    }
    assert by_type["post.deleted"].payload == common

    # Once post.deleted is out, the soft-deleted post and its comments are removed for good.
    db = mongo[docs_settings.docs_db_name]

    async def leftovers() -> int:
        return await db.posts.count_documents(
            {"_id": ObjectId(pid)}
        ) + await db.comments.count_documents({"post_id": ObjectId(pid)})

    await eventually(leftovers, until=lambda n: n == 0, timeout=10)


async def test_a_retried_request_publishes_one_event(
    http: httpx.AsyncClient, docs_url: str, member: Member, events: EventTail
) -> None:
    url = f"{docs_url}/groups/{member.group_id}/posts"
    body, key = new_post(member.user_id), {"Idempotency-Key": str(uuid.uuid4())}
    replies = [await http.post(url, json=body, headers=key) for _ in range(3)]
    pid = replies[0].json()["id"]
    got = await events.wait_for(about(pid, "post.created"), settle=2.0)
    assert len(got) == 1


async def test_an_acknowledged_post_survives_a_crash_while_kafka_is_down(
    http: httpx.AsyncClient,
    member: Member,
    scratch_topic: tuple[str, EventTail],
    scratch_db: str,
    start_instance: Callable[..., Awaitable[Instance]],
    mongo: AsyncMongoClient[Any],
) -> None:
    # An instance whose Kafka is unreachable acknowledges the post, then dies hard.
    topic, events = scratch_topic
    offline = await start_instance(
        kafka_port=str(free_port()), docs_db_name=scratch_db, docs_events_topic=topic
    )
    r = await http.post(
        f"{offline.url}/groups/{member.group_id}/posts", json=new_post(member.user_id)
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    health = (await http.get(f"{offline.url}/health")).json()
    assert health["dependencies"]["outbox_relay"]["status"] == "down"
    await asyncio.sleep(1.0)
    await offline.crash()

    stored = await mongo[scratch_db].posts.find_one({"_id": ObjectId(pid)})
    assert stored is not None and stored["pending"] is True
    assert [e["type"] for e in stored["outbox"]] == ["post.created"]
    assert not [e for e in events.seen if about(pid)(e)]

    # A fresh instance on the same data, with Kafka back: the event goes out exactly once.
    await start_instance(docs_db_name=scratch_db, docs_events_topic=topic)
    got = await events.wait_for(about(pid), timeout=30, settle=3.0)
    assert [e.type for e in got] == ["post.created"]
    assert str(got[0].id) == stored["outbox"][0]["id"]

    async def cleared() -> dict[str, Any] | None:
        return await mongo[scratch_db].posts.find_one({"_id": ObjectId(pid)})

    doc = await eventually(cleared, until=lambda d: d is not None and d["pending"] is False)
    assert doc is not None and doc["outbox"] == []


@pytest.fixture
async def users(stack: StackSettings) -> AsyncIterator[UsersClient]:
    """The documents service's client of the users service, as the operator."""
    client = UsersClient(
        httpx.AsyncClient(
            base_url=stack.service_url("users"), timeout=5, auth=stack.operator_auth()
        )
    )
    yield client
    await client.http.aclose()


class _Crash(Exception):
    pass


class _CrashBeforeClearing(OutboxRelay):
    """Dies after Kafka acknowledged, before the outbox is cleared: the worst moment."""

    async def _settle(self, collection: str, settled: Any) -> None:
        raise _Crash()


async def test_a_crash_between_publish_and_clear_republishes_the_same_event_id(
    stack: StackSettings,
    http: httpx.AsyncClient,
    member: Member,
    scratch_topic: tuple[str, EventTail],
    scratch_db: str,
    mongo: AsyncMongoClient[Any],
    users: UsersClient,
) -> None:
    topic, events = scratch_topic
    db = mongo[scratch_db]
    post, _ = await create_post(
        store=Store(db=db),
        users=users,
        data=PostCreate(**new_post(member.user_id)),
        group_id=member.group_id,
        idempotency_key=None,
    )

    crashing = _CrashBeforeClearing(db=db, kafka=stack.kafka, topic=topic)
    await crashing.connect()
    try:
        with pytest.raises(_Crash):
            await crashing.run_once()
    finally:
        await crashing.stop()
    first = await events.wait_for(about(post.id))
    stuck = await db.posts.find_one({"_id": ObjectId(post.id)})
    assert stuck is not None and stuck["pending"] is True

    relay = OutboxRelay(db=db, kafka=stack.kafka, topic=topic)
    await relay.connect()
    try:
        assert await relay.run_once() == 1
        assert await relay.run_once() == 0  # nothing left: cleared exactly what was published
    finally:
        await relay.stop()
    both = await events.wait_for(about(post.id), count=2, settle=2.0)
    assert len(both) == 2 and both[0].id == both[1].id == first[0].id  # consumers dedupe by id
    doc = await db.posts.find_one({"_id": ObjectId(post.id)})
    assert doc is not None and (doc["pending"], doc["outbox"]) == (False, [])


async def test_one_round_with_a_delete_purges_the_post_its_comments_and_likes(
    stack: StackSettings,
    member: Member,
    make_member: Callable[..., Awaitable[Member]],
    scratch_topic: tuple[str, EventTail],
    scratch_db: str,
    mongo: AsyncMongoClient[Any],
    users: UsersClient,
) -> None:
    # Written before any relay round: the post's delete and its comment's and like's events
    # are all settled in the same round, whatever order the collections are read in.
    topic, events = scratch_topic
    db = mongo[scratch_db]
    fan = await make_member(member.group_id)
    store = Store(db=db)
    post, _ = await create_post(
        store=store,
        users=users,
        data=PostCreate(**new_post(member.user_id)),
        group_id=member.group_id,
        idempotency_key=None,
    )
    await add_comment(
        store=store,
        users=users,
        post_id=post.id,
        data=CommentCreate(author_id=fan.user_id, body="Same question!"),
        idempotency_key=None,
    )
    await like_post(store=store, users=users, post_id=post.id, user_id=fan.user_id)
    await delete_post(store=store, post_id=post.id, actor=member.user_id)

    relay = OutboxRelay(db=db, kafka=stack.kafka, topic=topic)
    await relay.connect()
    try:
        assert await relay.run_once() == 4
    finally:
        await relay.stop()
    got = await events.wait_for(about(post.id), count=4, settle=1.0)
    assert sorted(e.type for e in got) == [
        "comment.created",
        "post.created",
        "post.deleted",
        "post.liked",
    ]
    oid = ObjectId(post.id)
    left = {
        name: await db[name].count_documents({"_id": oid} if name == "posts" else {"post_id": oid})
        for name in ("posts", "comments", "likes")
    }
    assert left == {"posts": 0, "comments": 0, "likes": 0}
