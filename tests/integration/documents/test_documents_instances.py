"""Two documents instances on one FerretDB database: likes and comments are inserts with unique
keys, post updates hold leases that span instances, so nothing is lost or counted twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from bson import ObjectId
from docs_support import (
    NOTE,
    EventTail,
    Instance,
    Member,
    about,
    check_hammered,
    hammer_one_post,
)
from pymongo import AsyncMongoClient

from campus_documents import repository as repo
from campus_documents.locks import Leases, post_key
from campus_documents.outbox import new_event, now
from campus_documents.service import Store, adopt_embedded_likes, stored_post
from tests.helpers import eventually

log = logging.getLogger(__name__)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def test_two_instances_count_every_like_and_comment_and_lose_no_edit(
    http: httpx.AsyncClient,
    users_url: str,
    scratch_db: str,
    scratch_topic: tuple[str, EventTail],
    start_instance: Callable[..., Awaitable[Instance]],
    mongo: AsyncMongoClient[Any],
) -> None:
    topic, events = scratch_topic
    first, second = [
        await start_instance(docs_db_name=scratch_db, docs_events_topic=topic) for _ in range(2)
    ]
    urls = [first.url, second.url]
    hammered = await hammer_one_post(http, urls, users_url=users_url)
    resent = await check_hammered(http, urls, hammered, events)
    log.info("records that repeated an event id: %d", resent)

    # Stored once each, and the relays' clearing of the post's outbox lost none of its edits.
    db = mongo[scratch_db]
    oid = ObjectId(hammered.post_id)
    assert await db.likes.count_documents({"post_id": oid}) == len(hammered.likers)
    assert await db.comments.count_documents({"post_id": oid}) == len(hammered.comment_ids)

    async def post() -> dict[str, Any] | None:
        return await db.posts.find_one({"_id": oid})

    stored = await eventually(post, until=lambda d: d is not None and d["pending"] is False)
    assert stored is not None and stored["outbox"] == []
    assert stored["rev"] == len(hammered.edit_titles)
    assert await db.leases.count_documents({"key": post_key(oid)}) == 0  # all released


async def test_one_holder_per_lease_across_instances(
    mongo: AsyncMongoClient[Any], scratch_db: str
) -> None:
    db = mongo[scratch_db]
    await repo.ensure_indexes(db)
    # Two Leases objects stand for two instances (each has its own update slots).
    one, two = Leases(db), Leases(db)
    key = post_key(ObjectId())
    taken = await asyncio.gather(*(ls.try_take(key) for ls in [one, two] * 10))
    assert len([lease for lease in taken if lease is not None]) == 1

    other = post_key(ObjectId())
    many = await two.take_many([key, other])
    assert set(many) == {other}  # the held key is left out, the free one taken


async def test_an_expired_lease_is_taken_over_and_its_late_release_frees_nothing(
    mongo: AsyncMongoClient[Any], scratch_db: str
) -> None:
    db = mongo[scratch_db]
    await repo.ensure_indexes(db)
    crashed, survivor = Leases(db, ttl_s=0.5), Leases(db, ttl_s=30)
    key = post_key(ObjectId())
    stale = await crashed.take(key)
    assert await survivor.try_take(key) is None  # held and not expired

    successor = await survivor.take(key)  # waits until the first one's time is up
    assert not stale.fresh()
    await crashed.release([stale])  # the old holder wakes up late: the successor keeps its lease
    assert await survivor.try_take(key) is None
    await survivor.release([successor])
    assert await survivor.try_take(key) is not None


async def test_likes_kept_inside_old_posts_are_moved_once_without_new_events(
    http: httpx.AsyncClient,
    member: Member,
    scratch_db: str,
    scratch_topic: tuple[str, EventTail],
    start_instance: Callable[..., Awaitable[Instance]],
    mongo: AsyncMongoClient[Any],
) -> None:
    db = mongo[scratch_db]
    await repo.ensure_indexes(db)
    oid, at, other = ObjectId(), now(), member.user_id + 1_000_000
    old = {
        **stored_post(
            oid=oid,
            author_id=member.user_id,
            group_id=member.group_id,
            content=NOTE | {"title": "Written before likes had documents"},
            at=at,
            idempotency_key=f"old:{oid}",
            request_hash="old",
        ),
        # Two likes; the second one's event was still waiting in the post's outbox.
        "meta": {"likes": 2},
        "liked_by": [member.user_id, other],
        "pending": True,
        "outbox": [
            new_event(
                "post.liked",
                key=str(oid),
                user_id=other,
                payload={
                    "post_id": str(oid),
                    "group_id": member.group_id,
                    "user_id": other,
                    "author_id": member.user_id,
                },
            )
        ],
    }
    await db.posts.insert_one(old)
    store = Store(db=db)
    assert await adopt_embedded_likes(store=store) == 2
    assert await adopt_embedded_likes(store=store) == 0  # idempotent
    moved = await db.posts.find_one({"_id": oid})
    assert moved is not None and "liked_by" not in moved and "likes" not in moved["meta"]
    likes = await db.likes.find({"post_id": oid}).to_list()
    assert sorted(like["user_id"] for like in likes) == sorted([member.user_id, other])
    assert all(like["outbox"] == [] and like["pending"] is False for like in likes)

    # An instance on that data: the count is kept, liking again is no new like, and only the
    # event that was waiting goes out.
    topic, events = scratch_topic
    instance = await start_instance(docs_db_name=scratch_db, docs_events_topic=topic)
    got = (await http.get(f"{instance.url}/posts/{oid}")).json()
    assert got["meta"] == {"likes": 2}
    again = await http.post(f"{instance.url}/posts/{oid}/like", json={"user_id": member.user_id})
    assert (again.json()["liked"], again.json()["likes"]) == (False, 2)
    published = await events.wait_for(about(str(oid)), settle=3.0)
    assert [(e.type, e.user_id) for e in published] == [("post.liked", other)]
    assert str(published[0].id) == old["outbox"][0]["id"]
